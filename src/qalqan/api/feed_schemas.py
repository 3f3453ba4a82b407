"""Request and response shapes of feeds and warninglists (REST API and ``--json`` output)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qalqan.domain.durations import format_duration
from qalqan.domain.handling import TLP
from qalqan.domain.stix import format_timestamp
from qalqan.feeds.sources import source_kinds
from qalqan.store.feeds import FeedRecord, RunRecord, WarninglistRecord

__all__ = [
    "FeedCreate",
    "FeedDetail",
    "FeedPublic",
    "FeedUpdate",
    "RunPublic",
    "WarninglistCheck",
    "WarninglistCreate",
    "WarninglistPublic",
]


class FeedCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["spamhaus-drop"])
    source: str = Field(description="text, csv, misp-feed, stix, taxii or report")
    url: str = Field(min_length=1, max_length=4000)
    owner_org: str | None = Field(default=None, description="org id or name; default: yours")
    options: dict[str, Any] = Field(default_factory=dict, description="the source's options")
    tlp: str | None = None
    distribution: str | None = None
    sharing_group: str | None = None
    confidence: int | None = Field(default=None, ge=0, le=100)
    schedule: str | None = Field(default=None, description="e.g. 1h; none: only by hand")
    expire_after: str | None = Field(default="7d", description="e.g. 7d; null: never")
    on_warninglist: str = Field(default="flag", description="flag or drop")
    enabled: bool = True


class FeedUpdate(BaseModel):
    url: str | None = Field(default=None, max_length=4000)
    options: dict[str, Any] | None = None
    tlp: str | None = None
    distribution: str | None = None
    sharing_group: str | None = None
    confidence: int | None = Field(default=None, ge=0, le=100)
    schedule: str | None = Field(default=None, description="e.g. 1h, or 'off'")
    expire_after: str | None = Field(default=None, description="e.g. 7d, or 'never'")
    on_warninglist: str | None = None
    enabled: bool | None = None


class FeedPublic(BaseModel):
    id: str
    name: str
    source: str
    url: str
    options: dict[str, Any]
    owner_org_id: str
    tlp: str
    distribution: str
    sharing_group_id: str | None
    confidence: int | None
    schedule: str | None
    expire_after: str | None
    on_warninglist: str
    enabled: bool

    @classmethod
    def of(cls, feed: FeedRecord) -> FeedPublic:
        source = source_kinds().get(feed.source)
        secret = source.options_model.secret_fields if source else frozenset()
        expire = feed.expire_after_seconds
        return cls(
            id=feed.id,
            name=feed.name,
            source=feed.source,
            url=feed.url,
            options={k: ("***" if k in secret and v else v) for k, v in feed.options.items()},
            owner_org_id=feed.owner_org_id,
            tlp=TLP(feed.tlp).label,
            distribution=feed.distribution,
            sharing_group_id=feed.sharing_group_id,
            confidence=feed.confidence,
            schedule=format_duration(feed.schedule_seconds) if feed.schedule_seconds else None,
            expire_after=format_duration(expire) if expire is not None else None,
            on_warninglist=feed.on_warninglist,
            enabled=feed.enabled,
        )


class RunPublic(BaseModel):
    run: int
    status: str
    trigger: str
    started_at: str
    duration_s: float | None
    new: int
    updated: int
    unchanged: int
    expired: int
    warninglisted: int
    dropped: int
    duplicates: int
    rejected: int
    error: str | None
    errors: list[dict[str, Any]] = Field(description="the first rejects: line, field, reason")

    @classmethod
    def of(cls, run: RunRecord) -> RunPublic:
        duration = (run.finished_at - run.started_at) / 1e6 if run.finished_at else None
        return cls(
            run=run.id,
            status=run.status,
            trigger=run.trigger,
            started_at=format_timestamp(run.started_at),
            duration_s=round(duration, 3) if duration is not None else None,
            new=run.new,
            updated=run.updated,
            unchanged=run.unchanged,
            expired=run.expired,
            warninglisted=run.warninglisted,
            dropped=run.dropped,
            duplicates=run.duplicates,
            rejected=run.rejected,
            error=run.error,
            errors=run.errors,
        )


class FeedDetail(FeedPublic):
    runs: list[RunPublic]


class WarninglistCreate(BaseModel):
    """A list in MISP's warninglist format."""

    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    type: str = Field(description="cidr, hostname, string, substring or regex")
    entries: list[str] = Field(alias="list", max_length=1_000_000)
    matching_attributes: list[str] = Field(
        min_length=1, description="MISP attribute types, e.g. ip-dst, domain, url"
    )
    description: str = ""


class WarninglistPublic(BaseModel):
    id: str
    name: str
    type: str
    kinds: list[str]
    entries: int
    description: str

    @classmethod
    def of(cls, wl: WarninglistRecord) -> WarninglistPublic:
        return cls(
            id=wl.id,
            name=wl.name,
            type=wl.type,
            kinds=list(wl.kinds),
            entries=len(wl.entries),
            description=wl.description,
        )


class WarninglistCheck(BaseModel):
    value: str
    kind: str
    list: str | None
    reason: str | None
