"""Response shapes of indicator scores (the OpenAPI schema is built from these)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from qalqan.domain.stix import format_timestamp
from qalqan.intel.scoring import ScoreView

__all__ = ["DecayModelPublic", "ScoreItem", "ScorePage"]


def _time(micros: int | None) -> str | None:
    return None if micros is None else format_timestamp(micros)


class DecayModelPublic(BaseModel):
    tau_days: float = Field(description="days until the score reaches 0")
    delta: float = Field(description="the bend of the curve: < 1 falls late, > 1 falls early")


class ScoreItem(BaseModel):
    id: str
    name: str | None
    kind: str | None = Field(description="observable kind whose decay model applies, or other")
    confidence: int | None = Field(description="the latest version's confidence, if any")
    base: int = Field(description="what the score decays from: confidence (or 50) + sightings")
    false_positives: int = Field(description="false-positive reports; each halves the score")
    score: int = Field(description="0-100, now")
    stored_score: int = Field(description="0-100 as last refreshed: what min, max and sort use")
    model: DecayModelPublic
    threshold: int
    cutoff: float = Field(description="below this score it leaves detection")
    reset_at: str = Field(description="when the decay started (stored, re-asserted or sighted)")
    expired_at: str | None = Field(description="when an expiration was reported")
    decays_at: str | None = Field(description="when it leaves detection; null: never")
    refreshed_at: str
    detection: bool = Field(description="takes part in sweeps and detection exports now")

    @classmethod
    def of(cls, view: ScoreView) -> dict[str, Any]:
        """The JSON-able body of one score."""
        row = view.row
        return {
            "id": row.stix_id,
            "name": row.name,
            "kind": row.kind,
            "confidence": row.confidence,
            "base": row.base,
            "false_positives": row.false_positives,
            "score": view.score,
            "stored_score": row.score,
            "model": {"tau_days": view.model.tau_days, "delta": view.model.delta},
            "threshold": view.threshold,
            "cutoff": view.cutoff,
            "reset_at": _time(row.reset_at),
            "expired_at": _time(row.expired_at),
            "decays_at": _time(row.decays_at),
            "refreshed_at": _time(row.refreshed_at),
            "detection": row.detection,
        }


class ScorePage(BaseModel):
    items: list[ScoreItem]
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")
