"""Response schemas of sweeps and detections (documentation of the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["HitItem", "HitPage", "RunItem", "RunPage"]


class RunItem(BaseModel):
    id: str
    status: str = Field(description="queued, running, done or failed")
    origin: str = Field(description="cli, api or watch")
    created: str
    finished: str | None
    files: list[str]
    options: dict[str, Any]
    summary: dict[str, Any] = Field(description="events read, hits, rules loaded/skipped, ...")
    hits: int
    error: str | None
    links: dict[str, str]


class RunPage(BaseModel):
    items: list[RunItem]
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class HitItem(BaseModel):
    id: int
    run: str
    kind: str = Field(description="indicator or rule")
    event: dict[str, Any] = Field(description="file, line, offset and time of the event")
    match: dict[str, Any] = Field(description="the indicator or rule that matched")
    fields: dict[str, Any] = Field(description="the event's fields")


class HitPage(BaseModel):
    items: list[HitItem]
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")
