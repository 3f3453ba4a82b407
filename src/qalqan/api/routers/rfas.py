"""Requests for assistance between member orgs: draft, send, acknowledge, work on, answer
(with evidence of the request's case attached), decline or withdraw them, and read them in
filtered keyset pages.

Only the requesting and the receiving org see a request (drafts only the requester); for
everyone else it does not exist: 404, the same as for an unknown id.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from qalqan.api.deps import CurrentPrincipal, DbConn
from qalqan.api.problems import problem_responses
from qalqan.api.rfa_schemas import (
    RfaAttach,
    RfaCreate,
    RfaDetail,
    RfaPage,
    RfaTransition,
    RfaUpdate,
)
from qalqan.assistance import service
from qalqan.assistance.service import RfaSpec

__all__ = ["router"]

router = APIRouter(tags=["requests for assistance"], responses=problem_responses(400, 401))

_RFA = Path(max_length=100, description="request id or number")


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@router.post(
    "/rfas",
    response_model=RfaDetail,
    status_code=201,
    summary="Draft a request for assistance to another org (or send it at once)",
    responses=problem_responses(403, 404),
)
def create_rfa(conn: DbConn, principal: CurrentPrincipal, body: RfaCreate) -> Response:
    """Your org is the requester. ``send: true`` sends it at once, which notifies the
    recipient; a draft is seen by your org only. 404 when ``case`` names a case your org takes
    no part in."""
    row = service.create_rfa(
        conn,
        principal,
        RfaSpec(
            to=body.to,
            kind=body.kind,
            title=body.title,
            body=body.body,
            legal_basis=body.legal_basis,
            due=body.due,
            priority=body.priority,
            case=body.case,
            observables=body.observables,
            send=body.send,
        ),
    )
    return _json(service.describe(conn, principal, row, detail=True), status=201)


@router.get("/rfas", response_model=RfaPage, summary="Requests your org sent or received")
def list_rfas(
    conn: DbConn,
    principal: CurrentPrincipal,
    role: Annotated[str | None, Query(description="sent or received (default both)")] = None,
    status: Annotated[str | None, Query(max_length=20, description="draft … withdrawn")] = None,
    overdue: Annotated[bool | None, Query(description="past the deadline, unanswered")] = None,
    org: Annotated[str | None, Query(max_length=300, description="the other org")] = None,
    text: Annotated[
        str | None, Query(max_length=300, description="in title, body or legal basis")
    ] = None,
    sort: Annotated[
        str, Query(max_length=20, description="updated, created, number or due; - descends")
    ] = "-updated",
    cursor: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Newest change first by default; pass ``next`` back as ``cursor`` for the next page."""
    page = service.list_rfas(
        conn,
        principal,
        role=role,
        status=status,
        overdue=overdue,
        org=org,
        text=text,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return _json(page.to_dict())


@router.get(
    "/rfas/{ref}",
    response_model=RfaDetail,
    summary="A request with its observables and status timeline",
    responses=problem_responses(404),
)
def get_rfa(conn: DbConn, principal: CurrentPrincipal, ref: str = _RFA) -> Response:
    row = service.load_rfa(conn, principal, ref)
    return _json(service.describe(conn, principal, row, detail=True))


@router.patch(
    "/rfas/{ref}",
    response_model=RfaDetail,
    summary="Change a draft",
    responses=problem_responses(403, 404, 409),
)
def update_rfa(
    conn: DbConn, principal: CurrentPrincipal, body: RfaUpdate, ref: str = _RFA
) -> Response:
    """Only drafts change (409 once sent); ``due`` or ``case`` null clears them."""
    changes = body.model_dump(include=body.model_fields_set)
    row = service.update_draft(conn, principal, ref, changes)
    return _json(service.describe(conn, principal, row, detail=True))


@router.post(
    "/rfas/{ref}/transition",
    response_model=RfaDetail,
    summary="Move a request to its next status",
    responses=problem_responses(
        403,
        404,
        described={409: "The workflow has no such step; `allowed` lists the next statuses"},
    ),
)
def transition_rfa(
    conn: DbConn, principal: CurrentPrincipal, body: RfaTransition, ref: str = _RFA
) -> Response:
    """The requester sends and withdraws; the recipient acknowledges, starts work
    (``in-progress``), answers (``answer`` required; ``attachments``: evidence ids of the
    request's case) or declines (``note``: the reason). A bad attachment leaves the request
    as it was."""
    row = service.transition(
        conn,
        principal,
        ref,
        body.to,
        note=body.note,
        answer=body.answer,
        attachments=body.attachments,
    )
    return _json(service.describe(conn, principal, row, detail=True))


@router.post(
    "/rfas/{ref}/attachments",
    response_model=RfaDetail,
    summary="Attach evidence of the request's case to the answer, before answering",
    responses=problem_responses(
        403,
        404,
        described={409: "The request is not acknowledged or in progress"},
    ),
)
def attach_evidence(
    conn: DbConn, principal: CurrentPrincipal, body: RfaAttach, ref: str = _RFA
) -> Response:
    """Writers of the recipient org, while the request is acknowledged or in progress. Each
    id must be an evidence item of the request's case that you may read (400 naming the
    first that is not, and nothing attached); items attached already are skipped. The
    requester may then download them."""
    row = service.attach_evidence(conn, principal, ref, body.evidence)
    return _json(service.describe(conn, principal, row, detail=True))
