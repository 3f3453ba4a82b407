"""REST: correlation — who else reported or sighted a value, as far as the caller may know."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from qalqan.api.correlation_schemas import ObjectRelated, RelatedPublic, related_body
from qalqan.api.deps import CurrentInstance, CurrentPrincipal, DbConn
from qalqan.api.problems import problem_responses
from qalqan.intel import correlation

__all__ = ["router"]

router = APIRouter(tags=["correlation"], responses=problem_responses(400, 401))


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/observables/{type}/{value:path}/related",
    response_model=RelatedPublic,
    summary="Who else reported or sighted a value (and its networks, parents, subdomains)",
    # A value with a line break matches no route: no observable holds one.
    responses=problem_responses(404),
)
def related_to_value(
    conn: DbConn,
    principal: CurrentPrincipal,
    instance: CurrentInstance,
    type: str,
    value: str,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """``type`` is a STIX type (``ipv4-addr``, ``ipv6-addr``, ``domain-name``, ``url``,
    ``email-addr``, ``file`` for a hash) or a kind (``ip``, ``cidr``, ``domain``, ``sha256``…);
    ``value`` may be defanged and URL-encoded. Only objects you may see are counted."""
    wanted = correlation.parse_lookup(type, value)
    found = correlation.related(
        conn,
        principal,
        wanted,
        list_limit=instance.settings.correlation_list_limit,
        cursor=cursor,
        limit=limit,
    )
    return _json(related_body(found))


@router.get(
    "/objects/{stix_id}/related",
    response_model=ObjectRelated,
    summary="For each value an object names, who else reported or sighted it",
    responses=problem_responses(404),
)
def related_to_object(
    conn: DbConn, principal: CurrentPrincipal, instance: CurrentInstance, stix_id: str
) -> Response:
    """The object itself is left out; an object you may not see is 404."""
    found = correlation.object_related(
        conn, principal, stix_id, list_limit=instance.settings.correlation_list_limit
    )
    return _json({"id": stix_id, "values": [related_body(r) for r in found]})
