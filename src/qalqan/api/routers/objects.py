"""STIX objects and observables: submit, list, read, revoke, look up."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from qalqan.api.deps import CurrentPrincipal, DbConn, get_instance
from qalqan.api.problems import problem_response, problem_responses
from qalqan.api.schemas import ImportResult, ObjectItem, ObjectPage, ObjectVersions, ObservablePage
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.stix import parse_timestamp
from qalqan.errors import parse_field
from qalqan.intel import reading
from qalqan.intel.importer import HandlingRequest, import_objects, load_document, objects_of
from qalqan.store.objects import ObjectFilter, StoredVersion

__all__ = ["router"]

router = APIRouter(tags=["objects"], responses=problem_responses(400, 401))


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _item(version: StoredVersion) -> dict[str, Any]:
    return {
        "id": version.stix_id,
        "type": version.type,
        "handling": reading.handling_of(version),
        "object": orjson.Fragment(version.content),
    }


_SUBMISSION_SCHEMA = {
    "description": "A STIX 2.1 bundle, a JSON list of STIX objects, or one STIX object",
    "oneOf": [
        {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
        {"type": "array", "items": {"type": "object"}},
    ],
}


@router.post(
    "/objects",
    response_model=ImportResult,
    summary="Submit STIX 2.1 objects (a bundle, a list or one object)",
    responses={
        201: {"model": ImportResult, "description": "At least one object stored as new"},
        **problem_responses(
            413, described={400: "Nothing accepted; the problem carries the import report"}
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _SUBMISSION_SCHEMA}},
        }
    },
)
async def submit_objects(
    request: Request,
    principal: CurrentPrincipal,
    tlp: Annotated[str | None, Query(description="clear, green, amber, amber+strict, red")] = None,
    distribution: Annotated[
        str | None, Query(description="organization, node, connected, all, sharing_group")
    ] = None,
    sharing_group: Annotated[str | None, Query(description="sharing group id or name")] = None,
) -> Response:
    """Each object is accepted or rejected on its own; handling defaults to your org's."""
    handling = HandlingRequest(
        parse_field("tlp", TLP.parse, tlp),
        parse_field("distribution", Distribution.parse, distribution),
        sharing_group,
    )
    body = await request.body()
    instance = get_instance(request)

    def run() -> dict[str, Any]:
        # Parsing a large body is CPU work too: it stays off the event loop with the import.
        objects = objects_of(load_document(body, "the body"))
        with instance.begin() as conn:
            return import_objects(conn, principal, objects, handling).to_dict()

    report = await run_in_threadpool(run)
    if report["rejected"] and not report["accepted"]:
        first = report["errors"][0]
        return problem_response(
            400,
            "invalid_input",
            f"no object accepted; first: object {first['index']} "
            f"({first['id']}) {first['field']}: {first['reason']}",
            **report,
        )
    return _json(report, 201 if report["created"] else 200)


def _filter(
    type: list[str] | None,
    owner_org: str | None,
    tlp: list[str] | None,
    max_tlp: str | None,
    added_after: str | None,
    modified_since: str | None,
    modified_until: str | None,
    text: str | None,
    include_revoked: bool,
) -> ObjectFilter:
    tlps = [int(parse_field("tlp", TLP.parse, v)) for v in tlp or ()]
    ceiling = parse_field("max_tlp", TLP.parse, max_tlp)
    types = [t for part in type or () for t in part.split(",") if t]
    return ObjectFilter(
        types=types or None,
        owner_org_id=owner_org,
        tlps=tlps or None,
        max_tlp=int(ceiling) if ceiling is not None else None,
        added_after=parse_field("added_after", parse_timestamp, added_after),
        modified_since=parse_field("modified_since", parse_timestamp, modified_since),
        modified_until=parse_field("modified_until", parse_timestamp, modified_until),
        text=text,
        include_revoked=include_revoked,
        include_withdrawn=include_revoked,
    )


@router.get(
    "/objects",
    response_model=ObjectPage,
    summary="List the latest versions you may see (keyset pages)",
)
def list_objects(
    conn: DbConn,
    principal: CurrentPrincipal,
    type: Annotated[list[str] | None, Query(description="STIX type(s)")] = None,
    owner_org: Annotated[str | None, Query(description="owner org id")] = None,
    distribution: Annotated[
        list[str] | None, Query(description="organization, node, connected, all, sharing_group")
    ] = None,
    sharing_group: Annotated[str | None, Query(max_length=100, description="group id")] = None,
    tlp: Annotated[list[str] | None, Query()] = None,
    max_tlp: Annotated[str | None, Query(description="TLP ceiling")] = None,
    added_after: Annotated[str | None, Query(description="RFC 3339 timestamp")] = None,
    modified_since: str | None = None,
    modified_until: str | None = None,
    text: Annotated[str | None, Query(max_length=200, description="substring of name")] = None,
    include_revoked: bool = False,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Oldest ``date_added`` first; pass ``next`` back as ``cursor`` for the following page."""
    f = _filter(
        type,
        owner_org,
        tlp,
        max_tlp,
        added_after,
        modified_since,
        modified_until,
        text,
        include_revoked,
    )
    distributions = [parse_field("distribution", Distribution.parse, v) for v in distribution or ()]
    f = replace(
        f, distributions=[d.value for d in distributions] or None, sharing_group_id=sharing_group
    )
    page = reading.list_objects(conn, principal, f, cursor, limit)
    return _json({"items": [_item(v) for v in page.items], "next": page.next_cursor})


@router.get(
    "/objects/{stix_id}",
    response_model=ObjectItem | ObjectVersions,
    summary="One object: latest, first, all or a given version",
    responses=problem_responses(404),
)
def get_object(
    conn: DbConn,
    principal: CurrentPrincipal,
    stix_id: str,
    version: Annotated[str, Query(description="last, first, all or a modified timestamp")] = "last",
) -> Response:
    """404 when the object does not exist or you may not see it."""
    versions = reading.get_versions(conn, principal, stix_id, version)
    if version == "all":
        return _json({"id": stix_id, "versions": [_item(v) for v in versions]})
    return _json(_item(versions[0]))


@router.delete(
    "/objects/{stix_id}",
    response_model=ObjectItem,
    summary="Revoke an object (owner org only)",
    responses=problem_responses(403, 404),
)
def revoke_object(conn: DbConn, principal: CurrentPrincipal, stix_id: str) -> Response:
    """Your own objects get a revoked version; imported ones are withdrawn on this node."""
    return _json(_item(reading.revoke_object(conn, principal, stix_id)))


@router.get(
    "/observables",
    response_model=ObservablePage,
    summary="Find objects that name a value",
)
def find_observables(
    conn: DbConn,
    principal: CurrentPrincipal,
    value: Annotated[str, Query(min_length=1, max_length=8192, description="defanged is fine")],
    kind: Annotated[str | None, Query(description="ip, cidr, domain, url, email, md5, ...")] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Exact match on the normalized value; an IP also finds CIDRs containing it, a CIDR finds
    the addresses and networks inside it."""
    page = reading.search_observables(conn, principal, value, kind, cursor, limit)
    return _json(
        {
            "query": {"kind": page.kind, "value": page.value},
            "items": [{"kind": h.kind, "value": h.value, **_item(h.version)} for h in page.hits],
            "next": page.next_cursor,
        }
    )
