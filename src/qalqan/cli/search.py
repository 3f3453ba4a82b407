"""``qalqan search``."""

from __future__ import annotations

import typer

__all__ = ["search_app"]

search_app = typer.Typer(help="search", no_args_is_help=True)
