"""``qalqan score``."""

from __future__ import annotations

import typer

__all__ = ["score_app"]

score_app = typer.Typer(help="score", no_args_is_help=True)
