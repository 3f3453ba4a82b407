"""Response shapes of correlation lookups (``/observables/{type}/{value}/related``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from qalqan.api.schemas import OrgRef
from qalqan.domain.handling import TLP
from qalqan.domain.stix import format_timestamp
from qalqan.intel.correlation import Related

__all__ = ["ObjectRelated", "RelatedPublic", "related_body"]


def _time(value: int | None) -> str | None:
    return None if value is None else format_timestamp(value)


class OrgCorrelation(BaseModel):
    org: OrgRef
    objects: int = Field(description="visible objects of this org naming the value or a relative")
    first_added: str = Field(description="when the first of them reached this node")
    last_added: str


class CountryCorrelation(BaseModel):
    country: str
    orgs: int
    objects: int


class SightingTotal(BaseModel):
    org: OrgRef
    kind: str = Field(description="sighting, false-positive or expiration")
    sightings: int
    count: int = Field(description="sum of the sightings' counts")
    first_seen: str | None
    last_seen: str | None


class RelatedItem(BaseModel):
    id: str
    type: str
    name: str | None
    relation: str = Field(description="same, contains, inside, parent, child, url, host, domain")
    matched: dict[str, str] = Field(description="the index entry that matched: kind and value")
    owner_org: OrgRef
    tlp: str
    distribution: str
    sharing_group: str | None
    created: str | None
    modified: str
    date_added: str


class RelatedPublic(BaseModel):
    query: dict[str, str] = Field(description="the value as looked up: kind and canonical value")
    total: int = Field(description="visible objects naming the value or a relative of it")
    over_correlating: bool = Field(
        description="named by more than list_limit visible objects: summarized, not listed"
    )
    list_limit: int
    summary_capped: bool = Field(description="the summary read only the first 200,000 entries")
    relations: dict[str, int] = Field(description="visible objects per relation")
    orgs: list[OrgCorrelation]
    countries: list[CountryCorrelation]
    sightings: list[SightingTotal]
    items: list[RelatedItem]
    next: str | None = Field(description="cursor of the next page of items")


class ObjectRelated(BaseModel):
    id: str
    values: list[RelatedPublic] = Field(
        description="for each value the object names, what else relates to it (no item lists)"
    )


def related_body(found: Related) -> dict[str, Any]:
    """The JSON body of one lookup."""
    return {
        "query": {"kind": found.value.kind, "value": found.value.value},
        "total": found.total,
        "over_correlating": found.over_correlating,
        "list_limit": found.list_limit,
        "summary_capped": found.capped,
        "relations": found.relations,
        "orgs": [
            {
                "org": {"id": o.org_id, "name": o.org_name, "country": o.country},
                "objects": o.objects,
                "first_added": format_timestamp(o.first_added),
                "last_added": format_timestamp(o.last_added),
            }
            for o in found.orgs
        ],
        "countries": [
            {"country": c.country, "orgs": c.orgs, "objects": c.objects} for c in found.countries
        ],
        "sightings": [
            {
                "org": {"id": s.org_id, "name": s.org_name, "country": s.country},
                "kind": s.kind,
                "sightings": s.sightings,
                "count": s.count,
                "first_seen": _time(s.first_seen),
                "last_seen": _time(s.last_seen),
            }
            for s in found.sightings
        ],
        "items": [
            {
                "id": h.stix_id,
                "type": h.type,
                "name": h.name,
                "relation": h.relation,
                "matched": {"kind": h.kind, "value": h.value},
                "owner_org": {
                    "id": h.owner_org_id,
                    "name": h.owner_org_name,
                    "country": h.owner_country,
                },
                "tlp": TLP(h.tlp).label,
                "distribution": h.distribution,
                "sharing_group": h.sharing_group_id,
                "created": _time(h.created),
                "modified": format_timestamp(h.modified),
                "date_added": format_timestamp(h.date_added),
            }
            for h in found.items
        ],
        "next": found.next_cursor,
    }
