"""REST: evidence of cases — upload, list, read with its chain of custody, download verified."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from qalqan.api.deps import CurrentPrincipal, DbConn, get_instance
from qalqan.api.problems import problem_responses
from qalqan.domain.stix import format_timestamp, parse_timestamp
from qalqan.errors import Conflict, InvalidInput, parse_field
from qalqan.evidence import service
from qalqan.evidence.storage import EvidenceStorage
from qalqan.intel.reading import decode_cursor, encode_cursor
from qalqan.store.evidence import CustodyEntry, EvidenceRecord

__all__ = ["EVIDENCE_PATH", "router"]

router = APIRouter(tags=["evidence"], responses=problem_responses(400, 401, 404))

EVIDENCE_PATH = "/evidence"  # streamed to disk under its own limit (see api.limits)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _time(value: int | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _item(item: EvidenceRecord) -> dict[str, Any]:
    return {
        "id": item.id,
        "case": item.case_id,
        "sha256": item.sha256,
        "name": item.name,
        "media_type": item.media_type,
        "size": item.size,
        "description": item.description,
        "collected_by": item.collected_by,
        "collected_at": _time(item.collected_at),
        "collection_method": item.collection_method,
        "uploaded_by": item.uploaded_by,
        "uploaded_org": item.uploaded_org_id,
        "created_at": format_timestamp(item.created_at),
    }


def _custody(entry: CustodyEntry) -> dict[str, Any]:
    return {
        "at": format_timestamp(entry.at),
        "action": entry.action,
        "actor_user_id": entry.actor_user_id,
        "actor_org_id": entry.actor_org_id,
        "detail": orjson.loads(entry.detail),
    }


def _storage(request: Request) -> EvidenceStorage:
    return EvidenceStorage(get_instance(request).settings.evidence_dir)


@router.post(
    EVIDENCE_PATH,
    status_code=201,
    summary="Add a file to a case's evidence (raw body, streamed, stored by its SHA-256)",
    responses=problem_responses(403, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The file, as it is. It is never executed or rendered.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def add_evidence(
    request: Request,
    principal: CurrentPrincipal,
    case: Annotated[str, Query(max_length=36, description="the case's id")],
    name: Annotated[str | None, Query(max_length=1000, description="the file's name")] = None,
    media_type: Annotated[str | None, Query(max_length=100)] = None,
    description: Annotated[str, Query(max_length=10_000)] = "",
    collected_by: Annotated[str, Query(max_length=300)] = "",
    collected_at: Annotated[str | None, Query(max_length=40, description="RFC 3339")] = None,
    collection_method: Annotated[str, Query(max_length=10_000)] = "",
) -> Response:
    """Only writers of an org leading or contributing to the case; the file streams to disk
    up to ``QALQAN_EVIDENCE_MAX_BYTES`` and nothing is left behind when it is refused."""
    instance = get_instance(request)
    collected = parse_field("collected_at", parse_timestamp, collected_at)
    meta = service.EvidenceMeta(
        name=name,
        media_type=media_type,
        description=description,
        collected_by=collected_by,
        collected_at=collected,
        collection_method=collection_method,
    )
    # Check access before reading the body: an outsider's upload never reaches the disk.
    await run_in_threadpool(_check_case, instance, principal, case)
    storage = EvidenceStorage(instance.settings.evidence_dir)
    received = await storage.receive(request.stream(), instance.settings.evidence_max_bytes)

    def store() -> EvidenceRecord:
        with instance.begin() as conn:
            return service.add_evidence(conn, principal, case, received, meta)

    item = await run_in_threadpool(store)
    return _json(_item(item), status=201)


def _check_case(instance: Any, principal: Any, case: str) -> None:
    with instance.begin() as conn:
        service.case_evidence(conn, principal, case, None, 1)


@router.get("/cases/{case_id}/evidence", summary="A case's evidence, oldest first")
def list_case_evidence(
    conn: DbConn,
    principal: CurrentPrincipal,
    case_id: str,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """404 unless your org takes part in the case."""
    after = None
    if cursor:
        at, _, key = cursor.partition(".")
        after = (decode_cursor(at), key)
    items = service.case_evidence(conn, principal, case_id, after, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    next_cursor = f"{encode_cursor(items[-1].created_at)}.{items[-1].id}" if more else None
    return _json({"items": [_item(i) for i in items], "next": next_cursor})


@router.get("/evidence/{evidence_id}", summary="An evidence item and its chain of custody")
def get_evidence(conn: DbConn, principal: CurrentPrincipal, evidence_id: str) -> Response:
    """404 unless your org takes part in the item's case."""
    found = service.evidence_details(conn, principal, evidence_id)
    return _json({**_item(found.item), "custody": [_custody(c) for c in found.custody]})


@router.get(
    "/evidence/{evidence_id}/content",
    summary="Download an evidence file, its SHA-256 verified first",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the file"},
        **problem_responses(409),
    },
)
def download_evidence(request: Request, principal: CurrentPrincipal, evidence_id: str) -> Response:
    """Always served as an attachment of type application/octet-stream, never as what it says
    it is; 409 if the stored file no longer has its SHA-256 (the failure is in its custody)."""
    instance = get_instance(request)
    storage = _storage(request)
    with instance.begin() as conn:
        started = service.start_download(conn, principal, evidence_id, storage)
    item = started.item
    if not started.intact:
        raise Conflict(
            f"the stored file of evidence {item.id} does not match its SHA-256 {item.sha256}; "
            "it is not served"
        )
    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(item.name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "X-Evidence-SHA256": item.sha256,
        "Content-Length": str(item.size),
    }
    return StreamingResponse(
        storage.read(item.sha256), media_type="application/octet-stream", headers=headers
    )


@router.post(
    "/evidence/{evidence_id}/custody",
    status_code=201,
    summary="Record a custody step: transferred, received, sealed, examined or a note",
    responses=problem_responses(403),
)
def add_custody(
    conn: DbConn,
    principal: CurrentPrincipal,
    evidence_id: str,
    body: dict[str, Any],
) -> Response:
    """``{"action": "transferred", "to": "...", "note": "...", "at": "RFC 3339"}``."""
    action = body.get("action")
    if not isinstance(action, str):
        raise InvalidInput("action is required", field="action")
    fields = {k: body.get(k, "") for k in ("to", "note")}
    for key, value in fields.items():
        if not isinstance(value, str):
            raise InvalidInput(f"{key} must be text", field=key)
    at_text = body.get("at")
    if at_text is not None and not isinstance(at_text, str):
        raise InvalidInput("at must be an RFC 3339 time", field="at")
    at = parse_field("at", parse_timestamp, at_text)
    entry = service.record_custody(
        conn, principal, evidence_id, action, to=fields["to"], note=fields["note"], at=at
    )
    return _json(_custody(entry), status=201)
