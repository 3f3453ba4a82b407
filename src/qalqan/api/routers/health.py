"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from qalqan import __version__
from qalqan.api.deps import DbConn

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Is the node up and its database reachable?")
def healthz(conn: DbConn) -> dict[str, Any]:
    """No authentication; says nothing about the data."""
    conn.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}
