"""``qalqan sighting``."""

from __future__ import annotations

import typer

__all__ = ["sighting_app"]

sighting_app = typer.Typer(help="sighting", no_args_is_help=True)
