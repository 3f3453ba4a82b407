"""Confidence scores of indicators and their decay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection

if TYPE_CHECKING:
    from qalqan.intel.indexing import IndexBatch

__all__ = ["index_scores"]


def index_scores(conn: Connection, batch: IndexBatch) -> None:
    """Start or update the scores of the indicators and sightings in ``batch``."""
