"""Request and response shapes of sightings and notifications (the OpenAPI document is built
from these; the service checks the reports themselves, item by item)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qalqan.api.schemas import HandlingPublic, OrgRef

__all__ = [
    "CountryTotals",
    "KindTotals",
    "MarkRead",
    "Marked",
    "NotificationItem",
    "NotificationPage",
    "OrgTotals",
    "SightingHandling",
    "SightingItem",
    "SightingReportIn",
    "SightingSubmitted",
    "SightingTotalsOut",
    "Tally",
]


_Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class SightingReportIn(BaseModel):
    """The short form of a sighting report; a STIX 2.1 ``sighting`` is accepted as well."""

    model_config = ConfigDict(extra="forbid", title="SightingReport")

    sighting_of_ref: str = Field(description="the indicator (or other domain object) seen")
    count: int = Field(1, ge=0, le=999_999_999, description="how many times")
    first_seen: str | None = Field(None, description="RFC 3339; default: last_seen")
    last_seen: str | None = Field(None, description="RFC 3339; default: now")
    kind: Literal["sighting", "false-positive", "expiration"] = "sighting"
    where_sighted_refs: list[str] | None = Field(
        None, description="identity or location ids; default: your org's identity"
    )
    description: str | None = Field(None, max_length=10_000)
    share: bool = Field(True, description="release it to the sighted object's owner")
    tlp: str | None = Field(None, description="default: your org's, at least the object's")
    distribution: str | None = Field(None, description="default: organization")
    sharing_group: str | None = None


class SightingHandling(HandlingPublic):
    shared_with: str | None = Field(description="the org it is released to (the owner)")


class SightingItem(BaseModel):
    id: str
    handling: SightingHandling
    object: dict[str, Any] = Field(description="the STIX 2.1 sighting, exactly as stored")


class SightingResult(SightingItem):
    index: int = Field(description="the report's position in the request")
    status: str = Field(description="created or unchanged")


class SightingSubmitted(BaseModel):
    accepted: int
    created: int
    unchanged: int
    rejected: int
    shared: int = Field(description="how many are released to the sighted objects' owners")
    sightings: list[SightingResult]
    errors: list[dict[str, Any]] = Field(description="index, id, field, reason and code of each")


class Tally(BaseModel):
    reports: int = Field(description="how many sightings")
    count: int = Field(description="the sum of their counts")
    first_seen: str | None
    last_seen: str | None


class KindTotals(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    sighting: Tally
    false_positive: Tally = Field(alias="false-positive")
    expiration: Tally


class OrgTotals(BaseModel):
    org: OrgRef
    totals: KindTotals


class CountryTotals(BaseModel):
    country: str
    totals: KindTotals


class SightingTotalsOut(BaseModel):
    model_config = ConfigDict(title="SightingTotals")

    sighting_of_ref: str
    totals: KindTotals
    by_org: list[OrgTotals]
    by_country: list[CountryTotals]
    items: list[SightingItem] = Field(description="the sightings themselves, newest first")
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class NotificationItem(BaseModel):
    id: int
    kind: str = Field(description="sighting")
    subject: str | None = Field(description="the STIX id it is about")
    detail: dict[str, Any]
    created: str
    read: str | None


class NotificationPage(BaseModel):
    items: list[NotificationItem]
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class MarkRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[_Id] = Field(default_factory=list, max_length=10_000)
    up_to: _Id | None = Field(None, description="also every notification with an id up to this")


class Marked(BaseModel):
    marked: int
