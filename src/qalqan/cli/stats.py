"""``qalqan stats``."""

from __future__ import annotations

import typer

__all__ = ["stats_app"]

stats_app = typer.Typer(help="stats", no_args_is_help=True)
