"""``qalqan attack``."""

from __future__ import annotations

import typer

__all__ = ["attack_app"]

attack_app = typer.Typer(help="attack", no_args_is_help=True)
