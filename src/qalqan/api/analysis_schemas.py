"""Response shapes of analysis: ATT&CK techniques with their counts, and the dashboards'
statistics (REST API and ``--json`` output)."""

from __future__ import annotations

import orjson
from pydantic import BaseModel, Field

from qalqan.api.schemas import ObjectItem, OrgRef
from qalqan.domain.durations import format_duration
from qalqan.domain.handling import TLP
from qalqan.domain.stix import format_timestamp
from qalqan.intel.attack import Technique, TechniqueCounts, TechniqueDetail, TechniquePage
from qalqan.intel.periods import Period
from qalqan.intel.reading import handling_of
from qalqan.intel.stats import Counts, FeedHealth, TopValue

__all__ = [
    "FeedHealthList",
    "FeedHealthPublic",
    "FeedRunSummary",
    "ObjectStatsPage",
    "ObjectStatsRow",
    "PeriodPublic",
    "SightingStatsPage",
    "SightingStatsRow",
    "TechniqueDetailPublic",
    "TechniqueOrgCounts",
    "TechniquePagePublic",
    "TechniqueRef",
    "TechniqueSummary",
    "TopValueItem",
    "TopValuesPage",
]


def _time(micros: int | None) -> str | None:
    return format_timestamp(micros) if micros is not None else None


class PeriodPublic(BaseModel):
    since: str | None = Field(description="start (inclusive); null: from the beginning")
    until: str = Field(description="end (exclusive)")

    @classmethod
    def of(cls, period: Period) -> PeriodPublic:
        return cls(since=_time(period.since), until=format_timestamp(period.until))


# --- ATT&CK ------------------------------------------------------------------------------


class TechniqueOrgCounts(BaseModel):
    id: str
    name: str
    country: str
    intelligence: int = Field(description="objects of this org linked to the technique")
    sightings: int = Field(description="sum of the counts of this org's sightings")
    sighting_reports: int = Field(description="how many sightings this org reported")


class TechniqueRef(BaseModel):
    attack_id: str = Field(examples=["T0800", "T1059.001"])
    stix_id: str
    name: str

    @classmethod
    def of(cls, t: Technique) -> TechniqueRef:
        return cls(attack_id=t.attack_id, stix_id=t.stix_id, name=t.name)


class TechniqueSummary(TechniqueRef):
    tactics: list[str] = Field(description="kill chain phase names")
    domains: list[str] = Field(description="enterprise-attack, mobile-attack, ics-attack")
    is_subtechnique: bool
    parent: str | None = Field(description="the parent technique of a sub-technique")
    deprecated: bool
    url: str | None
    intelligence: int = Field(description="distinct visible objects linked to the technique")
    intelligence_by_type: dict[str, int]
    sightings: int = Field(description="sum of the counts of the visible sightings")
    sighting_reports: int = Field(description="number of those sightings")
    orgs: list[TechniqueOrgCounts] | None = Field(description="per org, with `by=org`")

    @classmethod
    def of_counts(cls, c: TechniqueCounts) -> TechniqueSummary:
        t = c.technique
        return cls(
            attack_id=t.attack_id,
            stix_id=t.stix_id,
            name=t.name,
            tactics=list(t.tactics),
            domains=list(t.domains),
            is_subtechnique=t.is_subtechnique,
            parent=t.parent,
            deprecated=t.deprecated,
            url=t.url,
            intelligence=c.intelligence,
            intelligence_by_type=c.intelligence_by_type,
            sightings=c.sightings,
            sighting_reports=c.sighting_reports,
            orgs=None
            if c.orgs is None
            else [
                TechniqueOrgCounts(
                    id=o.id,
                    name=o.name,
                    country=o.country,
                    intelligence=o.intelligence,
                    sightings=o.sightings,
                    sighting_reports=o.sighting_reports,
                )
                for o in c.orgs
            ],
        )


class TechniquePagePublic(BaseModel):
    period: PeriodPublic | None = Field(description="null: all time")
    items: list[TechniqueSummary]
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")

    @classmethod
    def of(cls, page: TechniquePage) -> TechniquePagePublic:
        return cls(
            period=PeriodPublic.of(page.period) if page.period else None,
            items=[TechniqueSummary.of_counts(i) for i in page.items],
            next=page.next_cursor,
        )


class TechniqueDetailPublic(BaseModel):
    technique: TechniqueSummary
    description: str | None
    subtechniques: list[TechniqueRef]
    items: list[ObjectItem] = Field(description="the linked intelligence, oldest first")
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")

    @classmethod
    def of(cls, detail: TechniqueDetail) -> TechniqueDetailPublic:
        items = [
            ObjectItem.model_validate(
                {
                    "id": v.stix_id,
                    "type": v.type,
                    "handling": handling_of(v),
                    "object": orjson.loads(v.content),
                }
            )
            for v in detail.items
        ]
        return cls(
            technique=TechniqueSummary.of_counts(detail.counts),
            description=detail.counts.technique.description,
            subtechniques=[TechniqueRef.of(t) for t in detail.subtechniques],
            items=items,
            next=detail.next_cursor,
        )


# --- statistics --------------------------------------------------------------------------


class ObjectStatsRow(BaseModel):
    day: str | None = Field(default=None, description="UTC day of date_added, with `by=day`")
    org: OrgRef | None = Field(default=None, description="the owner org, with `by=org`")
    country: str | None = Field(default=None, description="the owner's country")
    type: str | None = Field(default=None, description="STIX type")
    tlp: str | None = Field(default=None, description="CLEAR, GREEN, AMBER, AMBER+STRICT, RED")
    objects: int = Field(description="distinct objects with a version added")
    versions: int = Field(description="versions added")


class ObjectStatsPage(BaseModel):
    period: PeriodPublic
    by: list[str]
    rows: list[ObjectStatsRow]
    objects: int = Field(description="distinct objects over the whole period")
    versions: int

    @classmethod
    def of(cls, counts: Counts) -> ObjectStatsPage:
        return cls(
            period=PeriodPublic.of(counts.period),
            by=counts.by,
            rows=[ObjectStatsRow.model_validate(r) for r in counts.rows],
            **counts.totals,
        )


class SightingStatsRow(BaseModel):
    day: str | None = Field(default=None, description="UTC day last seen, with `by=day`")
    org: OrgRef | None = Field(default=None, description="the reporting org, with `by=org`")
    country: str | None = None
    kind: str | None = Field(default=None, description="sighting, false-positive, expiration")
    sightings: int = Field(description="number of sightings")
    count: int = Field(description="sum of their counts")


class SightingStatsPage(BaseModel):
    period: PeriodPublic
    by: list[str]
    rows: list[SightingStatsRow]
    sightings: int
    count: int

    @classmethod
    def of(cls, counts: Counts) -> SightingStatsPage:
        return cls(
            period=PeriodPublic.of(counts.period),
            by=counts.by,
            rows=[SightingStatsRow.model_validate(r) for r in counts.rows],
            **counts.totals,
        )


class TopValueItem(BaseModel):
    kind: str
    value: str
    objects: int = Field(description="distinct visible objects naming the value")
    orgs: int = Field(description="distinct owner orgs of those objects")


class TopValuesPage(BaseModel):
    period: PeriodPublic
    items: list[TopValueItem]

    @classmethod
    def of(cls, period: Period, values: list[TopValue]) -> TopValuesPage:
        return cls(
            period=PeriodPublic.of(period),
            items=[
                TopValueItem(kind=v.kind, value=v.value, objects=v.objects, orgs=v.orgs)
                for v in values
            ],
        )


class FeedRunSummary(BaseModel):
    id: int
    status: str = Field(description="running, ok or failed")
    started: str
    finished: str | None
    counts: dict[str, int]
    error: str | None


class FeedHealthPublic(BaseModel):
    id: str
    name: str
    source: str
    owner_org_id: str
    enabled: bool
    schedule: str | None
    tlp: str
    status: str = Field(description="healthy, failing, stale, never-run or disabled")
    healthy: bool
    stale: bool = Field(description="scheduled, and no good run for three intervals")
    last_run: FeedRunSummary | None
    last_success: str | None
    failures_in_a_row: int

    @classmethod
    def of(cls, h: FeedHealth) -> FeedHealthPublic:
        feed, state = h.feed, h.state
        last_run = None
        if state is not None and state.last_run_id is not None:
            assert state.last_status is not None
            assert state.last_started_at is not None
            last_run = FeedRunSummary(
                id=state.last_run_id,
                status=state.last_status,
                started=format_timestamp(state.last_started_at),
                finished=_time(state.last_finished_at),
                counts=state.last_counts,
                error=state.last_error,
            )
        return cls(
            id=feed.id,
            name=feed.name,
            source=feed.source,
            owner_org_id=feed.owner_org_id,
            enabled=feed.enabled,
            schedule=format_duration(feed.schedule_seconds) if feed.schedule_seconds else None,
            tlp=TLP(feed.tlp).label,
            status=h.status,
            healthy=h.healthy,
            stale=h.stale,
            last_run=last_run,
            last_success=_time(state.last_success_at) if state else None,
            failures_in_a_row=state.failures_in_a_row if state else 0,
        )


class FeedHealthList(BaseModel):
    items: list[FeedHealthPublic]

    @classmethod
    def of(cls, health: list[FeedHealth]) -> FeedHealthList:
        return cls(items=[FeedHealthPublic.of(h) for h in health])
