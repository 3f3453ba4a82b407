"""REST: sightings reported and read back per object, and the notifications they raise."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from qalqan.api.deps import CurrentPrincipal, DbConn, get_instance
from qalqan.api.problems import problem_response, problem_responses
from qalqan.api.sighting_schemas import (
    Marked,
    MarkRead,
    NotificationPage,
    SightingReportIn,
    SightingSubmitted,
    SightingTotalsOut,
)
from qalqan.domain.handling import TLP, Distribution
from qalqan.errors import Conflict, Forbidden, InvalidInput, NotFound, PolicyViolation, parse_field
from qalqan.intel import notifications, sighting_reports
from qalqan.intel.importer import load_document, objects_of

__all__ = ["router"]

router = APIRouter(tags=["sightings"], responses=problem_responses(400, 401))

_STATUS = {e.code: e.status for e in (InvalidInput, NotFound, Forbidden, Conflict, PolicyViolation)}
_SUBMISSION_SCHEMA = {
    "description": "A sighting report, a STIX 2.1 sighting, or a list or bundle of them",
    "oneOf": [
        SightingReportIn.model_json_schema(),
        {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
        {"type": "array", "items": {"type": "object"}},
    ],
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _reports(document: Any) -> tuple[list[Any], bool]:
    """The reports of a body and whether it is one report (not a list or bundle)."""
    if isinstance(document, dict) and document.get("type") != "bundle":
        return [document], True
    return objects_of(document), False


@router.post(
    "/sightings",
    response_model=SightingSubmitted,
    status_code=201,
    summary="Report sightings (short form or STIX 2.1; one, a list or a bundle)",
    responses={
        200: {"model": SightingSubmitted, "description": "Every sighting was already stored"},
        **problem_responses(
            403,
            404,
            413,
            422,
            described={400: "Nothing accepted; a batch's problem carries the report"},
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _SUBMISSION_SCHEMA}},
        }
    },
)
async def report_sightings(
    request: Request,
    principal: CurrentPrincipal,
    share: Annotated[
        bool, Query(description="release to the sighted objects' owners (reports may override)")
    ] = True,
    tlp: Annotated[str | None, Query(description="clear, green, amber, amber+strict, red")] = None,
    distribution: Annotated[
        str | None, Query(description="organization (default), node, connected, all, ...")
    ] = None,
    sharing_group: Annotated[str | None, Query(description="sharing group id or name")] = None,
) -> Response:
    """Each report is accepted or rejected on its own. A sighting of an object you may not see
    is refused exactly like one of an object that does not exist (404 for a single report)."""
    defaults = sighting_reports.SightingDefaults(
        parse_field("tlp", TLP.parse, tlp),
        parse_field("distribution", Distribution.parse, distribution),
        sharing_group,
        share,
    )
    body = await request.body()
    instance = get_instance(request)

    def run() -> tuple[dict[str, Any], bool]:
        reports, single = _reports(load_document(body, "the body"))
        with instance.begin() as conn:
            result = sighting_reports.submit_sightings(
                conn, principal, reports, defaults, source=f"user:{principal.user_id}"
            )
        return result.to_dict(), single

    report, single = await run_in_threadpool(run)
    if report["accepted"] or not report["errors"]:
        return _json(report, 201 if report["created"] else 200)
    codes = {e["code"] for e in report["errors"]}
    code = codes.pop() if len(codes) == 1 else "invalid_input"
    status = _STATUS.get(code, 400)
    if single:
        (error,) = report["errors"]
        detail = error["reason"] if code == "not_found" else f"{error['field']}: {error['reason']}"
        return problem_response(status, code, detail, field=error["field"], index=0)
    first = report["errors"][0]
    return problem_response(
        status,
        code,
        f"no sighting accepted; first: report {first['index']} {first['field']}: {first['reason']}",
        **report,
    )


@router.get(
    "/indicators/{stix_id}/sightings",
    response_model=SightingTotalsOut,
    summary="Sighting totals of an indicator (by kind, org, country) and the sightings",
    responses=problem_responses(404),
)
def indicator_sightings(
    conn: DbConn,
    principal: CurrentPrincipal,
    stix_id: str,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Only sightings you may read count. 404 when the indicator does not exist or you may not
    see it."""
    totals = sighting_reports.sighting_totals(conn, principal, stix_id, cursor, limit)
    return _json(totals.to_dict())


@router.get(
    "/notifications",
    response_model=NotificationPage,
    summary="Your org's notifications, newest first",
)
def list_notifications(
    conn: DbConn,
    principal: CurrentPrincipal,
    unread: Annotated[bool | None, Query(description="true: unread only; false: read only")] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """A ``sighting`` notification says another org saw an object your org owns."""
    page = notifications.list_notifications(
        conn, principal, unread=unread, cursor=cursor, limit=limit
    )
    return _json(page.to_dict())


@router.post(
    "/notifications/read",
    response_model=Marked,
    summary="Mark notifications read: by id, or all up to an id",
)
def mark_notifications_read(conn: DbConn, principal: CurrentPrincipal, body: MarkRead) -> Marked:
    """Ids of notifications that are not your org's change nothing."""
    return Marked(marked=notifications.mark_read(conn, principal, body.ids, body.up_to))
