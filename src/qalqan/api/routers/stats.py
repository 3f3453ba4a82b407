"""Statistics for dashboards: objects and sightings per day, org, country, type, TLP or kind;
the most named values; the health of feeds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from qalqan.api.analysis_schemas import (
    FeedHealthList,
    ObjectStatsPage,
    SightingStatsPage,
    TopValuesPage,
)
from qalqan.api.deps import CurrentPrincipal, DbConn
from qalqan.api.problems import problem_responses
from qalqan.intel import stats
from qalqan.intel.periods import parse_period
from qalqan.store.clock import now_us

__all__ = ["router"]

router = APIRouter(tags=["statistics"], responses=problem_responses(400, 401))

_Since = Annotated[
    str | None,
    Query(
        max_length=64,
        description="ISO time or date, or a duration back from now (7d, 24h); default 30d",
    ),
]
_Until = Annotated[str | None, Query(max_length=64, description="as `since`; default now")]


@router.get(
    "/stats/objects",
    response_model=ObjectStatsPage,
    summary="Objects and versions added, grouped by day, org, country, type and TLP",
)
def object_stats(
    conn: DbConn,
    principal: CurrentPrincipal,
    since: _Since = None,
    until: _Until = None,
    by: Annotated[
        list[str] | None, Query(description="day, org, country, type, tlp (comma list)")
    ] = None,
) -> ObjectStatsPage:
    """Only versions you may see; the period spans at most 366 days."""
    period = parse_period(since, until, now=now_us())
    dims = stats.parse_dimensions(by, stats.OBJECT_DIMENSIONS)
    return ObjectStatsPage.of(stats.object_stats(conn, principal, period, dims))


@router.get(
    "/stats/sightings",
    response_model=SightingStatsPage,
    summary="Sightings and the sum of their counts, grouped by day, org, country and kind",
)
def sighting_stats(
    conn: DbConn,
    principal: CurrentPrincipal,
    since: _Since = None,
    until: _Until = None,
    by: Annotated[list[str] | None, Query(description="day, org, country, kind")] = None,
) -> SightingStatsPage:
    """Only sightings you may see, seen in the period (at most 366 days)."""
    period = parse_period(since, until, now=now_us())
    dims = stats.parse_dimensions(by, stats.SIGHTING_DIMENSIONS)
    return SightingStatsPage.of(stats.sighting_stats(conn, principal, period, dims))


@router.get(
    "/stats/top-values",
    response_model=TopValuesPage,
    summary="The values named by the most objects added in the period",
)
def top_values(
    conn: DbConn,
    principal: CurrentPrincipal,
    since: _Since = None,
    until: _Until = None,
    kind: Annotated[list[str] | None, Query(description="ip, domain, url, sha256, ...")] = None,
    limit: Annotated[int, Query(ge=1, le=stats.MAX_TOP_VALUES)] = 20,
    min_objects: Annotated[
        int, Query(ge=1, le=stats.MAX_MIN_OBJECTS, description="named by at least this many")
    ] = 2,
    include_warninglisted: bool = False,
) -> TopValuesPage:
    """Distinct visible objects per (kind, value); values on a warninglist are left out."""
    period = parse_period(since, until, now=now_us())
    kinds = [k.strip() for part in kind or () for k in part.split(",") if k.strip()]
    values = stats.top_values(
        conn,
        principal,
        period,
        kinds=kinds,
        limit=limit,
        min_objects=min_objects,
        include_warninglisted=include_warninglisted,
    )
    return TopValuesPage.of(period, values)


@router.get(
    "/stats/feeds",
    response_model=FeedHealthList,
    summary="The health of the feeds you may see",
)
def feed_stats(conn: DbConn, principal: CurrentPrincipal) -> FeedHealthList:
    """Last run, last good run, failures in a row, stale and healthy flags."""
    return FeedHealthList.of(stats.feed_health(conn, principal, now=now_us()))
