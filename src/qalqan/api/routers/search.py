"""REST: search."""

from __future__ import annotations

from fastapi import APIRouter

from qalqan.api.problems import problem_responses

__all__ = ["router"]

router = APIRouter(tags=["search"], responses=problem_responses(400, 401))
