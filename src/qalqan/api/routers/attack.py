"""ATT&CK context: techniques with the intelligence linked to them and its sightings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from qalqan.api.analysis_schemas import TechniqueDetailPublic, TechniquePagePublic
from qalqan.api.deps import CurrentPrincipal, DbConn
from qalqan.api.problems import problem_responses
from qalqan.errors import InvalidInput, parse_field
from qalqan.intel import attack
from qalqan.intel.periods import parse_period
from qalqan.store.clock import now_us

__all__ = ["router"]

router = APIRouter(tags=["attack"], responses=problem_responses(400, 401))

_Since = Annotated[
    str | None,
    Query(max_length=64, description="ISO time or date, or a duration back from now (7d, 24h)"),
]
_Until = Annotated[str | None, Query(max_length=64, description="as `since`; default now")]
_Org = Annotated[
    str | None, Query(max_length=200, description="only this org's intelligence (id or name)")
]
_Country = Annotated[
    str | None, Query(max_length=2, description="only intelligence of orgs of this country")
]
_By = Annotated[str | None, Query(max_length=20, description="`org`: counts per org too")]
_Rollup = Annotated[bool, Query(description="count sub-techniques into their parent")]


def _filter(
    since: str | None,
    until: str | None,
    org: str | None,
    country: str | None,
    domain: str | None,
    tactic: str | None,
    by: str | None,
    rollup: bool,
    include_deprecated: bool = False,
    include_zero: bool = False,
) -> attack.TechniqueFilter:
    if by not in (None, "", "org"):
        raise InvalidInput(f"by: only `org` is known, not {by!r}", field="by")
    period = None
    if since is not None or until is not None:
        period = parse_period(since, until, now=now_us(), default_days=None, max_days=None)
    return attack.TechniqueFilter(
        period=period,
        org=org,
        country=country,
        domain=parse_field("domain", attack.parse_domain, domain),
        tactic=tactic,
        rollup=rollup,
        by_org=by == "org",
        include_deprecated=include_deprecated,
        include_zero=include_zero,
    )


@router.get(
    "/attack/techniques",
    response_model=TechniquePagePublic,
    summary="ATT&CK techniques with counts of linked intelligence and sightings",
)
def list_techniques(
    conn: DbConn,
    principal: CurrentPrincipal,
    since: _Since = None,
    until: _Until = None,
    org: _Org = None,
    country: _Country = None,
    domain: Annotated[
        str | None, Query(max_length=20, description="enterprise, mobile, ics")
    ] = None,
    tactic: Annotated[str | None, Query(max_length=100, description="a phase name")] = None,
    by: _By = None,
    rollup: _Rollup = False,
    include_deprecated: bool = False,
    include_zero: Annotated[
        bool, Query(description="also techniques with nothing counted")
    ] = False,
    sort: Annotated[str, Query(description="intelligence, sightings or attack_id")] = (
        "intelligence"
    ),
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> TechniquePagePublic:
    """The top techniques first (by `sort`); a page's `next` is a keyset cursor on the sort key.
    Only what you may see is counted: intelligence linked in the period (by when the linking
    relationship or report was added), sightings seen in it."""
    f = _filter(
        since, until, org, country, domain, tactic, by, rollup, include_deprecated, include_zero
    )
    page = attack.list_techniques(conn, principal, f, sort=sort, cursor=cursor, limit=limit)
    return TechniquePagePublic.of(page)


@router.get(
    "/attack/techniques/{attack_id}",
    response_model=TechniqueDetailPublic,
    summary="One ATT&CK technique, its counts and its linked intelligence (keyset pages)",
    responses=problem_responses(404),
)
def show_technique(
    conn: DbConn,
    principal: CurrentPrincipal,
    attack_id: str,
    since: _Since = None,
    until: _Until = None,
    org: _Org = None,
    country: _Country = None,
    by: _By = None,
    rollup: _Rollup = False,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> TechniqueDetailPublic:
    """404 when you see no technique of that ATT&CK id (e.g. `T0800`, `T1059.001`)."""
    f = _filter(since, until, org, country, None, None, by, rollup, include_deprecated=True)
    detail = attack.show_technique(conn, principal, attack_id, f, cursor=cursor, limit=limit)
    return TechniqueDetailPublic.of(detail)
