"""REST: one search over observable values and full text, with filters, facets and keyset
pages (see ``intel.search``)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from qalqan.api.deps import CurrentPrincipal, DbConn
from qalqan.api.problems import problem_responses
from qalqan.api.search_schemas import SearchPage
from qalqan.intel import search as service

__all__ = ["router"]

router = APIRouter(tags=["search"], responses=problem_responses(400, 401))

_MODE_HELP = (
    "auto (default: from the query's shape), exact, cidr, suffix (`*.example.com`), "
    "prefix (`foo*`) or text"
)


@router.get("/search", response_model=SearchPage, summary="Search values, networks and text")
def search(
    conn: DbConn,
    principal: CurrentPrincipal,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=service.MAX_QUERY_LENGTH,
            description="a value (defanged is fine), a CIDR, `*.domain`, `prefix*` or words",
        ),
    ],
    mode: Annotated[str, Query(description=_MODE_HELP)] = "auto",
    type: Annotated[list[str] | None, Query(description="STIX type(s)")] = None,
    org: Annotated[list[str] | None, Query(description="owner org id or name")] = None,
    country: Annotated[list[str] | None, Query(description="owner org country")] = None,
    tlp: Annotated[list[str] | None, Query(description="TLP level(s)")] = None,
    label: Annotated[list[str] | None, Query(description="label(s): any of them")] = None,
    score: Annotated[
        list[str] | None, Query(description="score band(s): low, medium, high, none")
    ] = None,
    facets: Annotated[bool, Query(description="count matches by type, org, TLP, ...")] = False,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Only the latest versions you may see are found, and only they are counted in facets.
    Filters take repeated parameters or comma lists. Pass `next` back as `cursor` for the
    following page."""
    request = service.SearchRequest(
        q,
        mode,
        types=type or (),
        orgs=org or (),
        countries=country or (),
        tlps=tlp or (),
        labels=label or (),
        scores=score or (),
        cursor=cursor,
        limit=limit,
        facets=facets,
    )
    result = service.search(conn, principal, request)
    return Response(orjson.dumps(service.result_dict(result)), media_type="application/json")
