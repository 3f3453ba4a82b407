"""REST: scores."""

from __future__ import annotations

from fastapi import APIRouter

from qalqan.api.problems import problem_responses

__all__ = ["router"]

router = APIRouter(tags=["scores"], responses=problem_responses(400, 401))
