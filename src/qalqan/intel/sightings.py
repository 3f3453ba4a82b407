"""Sightings: reported by analysts, detection runs and peers; totals; owners told."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection

if TYPE_CHECKING:
    from qalqan.intel.indexing import IndexBatch

__all__ = ["notify_owners"]


def notify_owners(conn: Connection, batch: IndexBatch) -> None:
    """Tell the owners of sighted indicators about the sightings in ``batch`` they may read."""
