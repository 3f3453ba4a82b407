"""Sweeps of uploaded logs (run in the background) and the detections they and CLI sweeps
recorded. Runs and hits are the org's own: no other org reads them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from qalqan.api.deps import CurrentPrincipal, DbConn, get_instance
from qalqan.api.detection_schemas import HitPage, RunItem, RunPage
from qalqan.api.problems import problem_responses
from qalqan.detect.jobs import SweepJobs
from qalqan.detect.matcher import parse_field_map
from qalqan.detect.sweep import SweepOptions
from qalqan.domain.handling import TLP
from qalqan.domain.principal import Principal
from qalqan.errors import InvalidInput, NotFound, PayloadTooLarge
from qalqan.instance import Instance
from qalqan.store import detections as store

__all__ = ["SWEEPS_PATH", "router"]

router = APIRouter(tags=["detection"], responses=problem_responses(400, 401))

_RUN_ID = Path(max_length=36, description="a run id")
SWEEPS_PATH = "/sweeps"
_RUN_STATUSES = ("queued", "running", "done", "failed")
_MIN_KEY, _MAX_KEY = -(2**63), 2**63 - 1


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def _run(run: store.RunRow) -> dict[str, Any]:
    base = f"/api/v1/sweeps/{run.id}"
    return {
        "id": run.id,
        "status": run.status,
        "origin": run.origin,
        "created": _iso(run.created_at),
        "finished": _iso(run.finished_at),
        "files": run.files,
        "options": run.options,
        "summary": run.summary,
        "hits": run.hit_count,
        "error": run.error,
        "links": {"self": base, "hits": f"{base}/hits"},
    }


def _hit(row: dict[str, Any]) -> dict[str, Any]:
    match: dict[str, Any]
    if row["kind"] == "indicator":
        match = {
            "indicator": row["match_id"],
            "value": row["value"],
            "field": row["field"],
            "name": row["title"],
            "owner_org": row["owner_org_id"],
            "tlp": TLP(row["tlp"]).label.lower() if row["tlp"] is not None else None,
            "confidence": row["confidence"],
        }
    else:
        match = {
            "rule": row["match_id"],
            "title": row["title"],
            "level": row["level"],
            "tags": orjson.loads(row["tags"]) if row["tags"] else [],
        }
    return {
        "id": row["id"],
        "run": row["run_id"],
        "kind": row["kind"],
        "event": {
            "file": row["file"],
            "line": row["line"],
            "offset": row["offset"],
            "time": _iso(row["event_time"]),
        },
        "match": match,
        "fields": orjson.loads(row["event"]),
    }


def _stored_run(instance: Instance, principal: Principal, run_id: str) -> store.RunRow | None:
    with instance.begin() as conn:
        return store.get_run(conn, principal, run_id)


def _encode(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")


def _cursor_part(part: Any, kind: type) -> bool:
    # JSON true is a Python int too, and a number beyond 64 bits fits no column: neither is
    # a key this API gave out.
    if kind is int:
        return type(part) is int and _MIN_KEY <= part <= _MAX_KEY
    return isinstance(part, kind)


def _decode(cursor: str, shape: tuple[type, ...]) -> list[Any]:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        parts = None
    if (
        not isinstance(parts, list)
        or len(parts) != len(shape)
        or not all(_cursor_part(p, t) for p, t in zip(parts, shape, strict=True))
    ):
        raise InvalidInput("cursor is not one this API gave out", field="cursor")
    return parts


def _since(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"since {text!r} is not an RFC 3339 timestamp", field="since") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


@router.post(
    SWEEPS_PATH,
    response_model=RunItem,
    status_code=202,
    summary="Sweep an uploaded log in the background",
    responses=problem_responses(413, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The log file as it is on disk (gzip and zstd are read too).",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def submit_sweep(
    request: Request,
    principal: CurrentPrincipal,
    format: Annotated[
        str, Query(max_length=20, description="auto, jsonl, zeek, eve, ...")
    ] = "auto",
    map: Annotated[
        list[str] | None, Query(description="FIELD=KIND, e.g. query=domain (repeat)")
    ] = None,
    sigma: Annotated[bool, Query(description="also apply the node's Sigma rules")] = False,
    share: Annotated[bool, Query(description="release sightings to indicator owners")] = False,
    min_confidence: Annotated[int | None, Query(ge=0, le=100)] = None,
    name: Annotated[str | None, Query(max_length=200, description="the log's file name")] = None,
) -> Response:
    """The run is recorded as ``queued`` and swept in the background; poll
    ``GET /api/v1/sweeps/{id}`` for its status and summary, and read its hits at
    ``/hits``. Indicator hits become sightings of the caller's org."""
    instance = get_instance(request)
    settings = instance.settings
    jobs: SweepJobs = request.app.state.sweep_jobs
    from qalqan.detect.readers import READERS, known_formats

    if format != "auto" and format not in READERS:
        raise InvalidInput(
            f"unknown log format {format!r}; known: auto, {', '.join(known_formats())}",
            field="format",
        )
    fields = parse_field_map(list(map or ()))
    rules: list[str] = []
    if sigma:
        if settings.sigma_rules is None:
            raise InvalidInput(
                "this node has no Sigma rules (QALQAN_SIGMA_RULES is not set)", field="sigma"
            )
        rules = [str(settings.sigma_rules)]
    run_id, upload = jobs.new_upload(name)
    limit = settings.sweep_max_upload_bytes
    size = 0
    try:
        with upload.open("wb") as handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the log is larger than the limit of {limit} bytes")
                handle.write(chunk)
    except BaseException:
        upload.unlink(missing_ok=True)
        raise
    if size == 0:
        upload.unlink(missing_ok=True)
        raise InvalidInput("the request body is empty: send the log file", field="body")
    options = SweepOptions(
        paths=[str(upload)],
        names={str(upload): upload.name.removeprefix(f"{run_id}-")},
        format=format,
        fields=fields,
        rules=rules,
        share=share,
        min_confidence=min_confidence,
        origin="api",
    )
    await run_in_threadpool(jobs.submit, run_id, principal, options, upload)
    run = await run_in_threadpool(_stored_run, instance, principal, run_id)
    assert run is not None
    return _json(_run(run), status=202)


@router.get("/sweeps", response_model=RunPage, summary="The org's detection runs, newest first")
def list_sweeps(
    conn: DbConn,
    principal: CurrentPrincipal,
    status: Annotated[str | None, Query(description="queued, running, done or failed")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Runs of CLI, API and watch sweeps of the caller's org."""
    if status is not None and status not in _RUN_STATUSES:
        raise InvalidInput(f"status {status!r}: use {', '.join(_RUN_STATUSES)}", field="status")
    before = tuple(_decode(cursor, (int, str))) if cursor else None
    runs = store.list_runs(conn, principal, limit=limit + 1, before=before, status=status)
    more = len(runs) > limit
    runs = runs[:limit]
    token = _encode([runs[-1].created_at, runs[-1].id]) if more else None
    return _json({"items": [_run(r) for r in runs], "next": token})


@router.get(
    "/sweeps/{run_id}",
    response_model=RunItem,
    summary="A detection run: status and summary",
    responses=problem_responses(404),
)
def get_sweep(conn: DbConn, principal: CurrentPrincipal, run_id: str = _RUN_ID) -> Response:
    """404 for a run of another org, as for one that does not exist."""
    run = store.get_run(conn, principal, run_id)
    if run is None:
        raise NotFound(f"no detection run {run_id}", id=run_id)
    return _json(_run(run))


def _hits_page(
    conn: Any,
    principal: Any,
    *,
    cursor: str | None,
    limit: int,
    run_id: str | None = None,
    kind: str | None = None,
    match_id: str | None = None,
    since: int | None = None,
) -> Response:
    after = _decode(cursor, (int,))[0] if cursor else None
    rows = store.list_hits(
        conn,
        principal,
        limit=limit + 1,
        after=after,
        run_id=run_id,
        kind=kind,
        match_id=match_id,
        since=since,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    token = _encode([rows[-1]["id"]]) if more else None
    return _json({"items": [_hit(r) for r in rows], "next": token})


@router.get(
    "/sweeps/{run_id}/hits",
    response_model=HitPage,
    summary="The hits a run stored",
    responses=problem_responses(404),
)
def sweep_hits(
    conn: DbConn,
    principal: CurrentPrincipal,
    run_id: str = _RUN_ID,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """In event order; a run stores its first ``QALQAN_SWEEP_STORED_HITS`` hits."""
    if store.get_run(conn, principal, run_id) is None:
        raise NotFound(f"no detection run {run_id}", id=run_id)
    return _hits_page(conn, principal, cursor=cursor, limit=limit, run_id=run_id)


@router.get("/detections", response_model=HitPage, summary="Hits of the org's runs, across runs")
def list_detections(
    conn: DbConn,
    principal: CurrentPrincipal,
    run: Annotated[str | None, Query(max_length=36, description="one run's hits")] = None,
    kind: Annotated[str | None, Query(description="indicator or rule")] = None,
    indicator: Annotated[str | None, Query(max_length=300, description="an indicator id")] = None,
    rule: Annotated[str | None, Query(max_length=300, description="a Sigma rule id")] = None,
    since: Annotated[str | None, Query(description="runs started at or after (RFC 3339)")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Oldest first; pass ``next`` back as ``cursor`` for the following page."""
    if kind is not None and kind not in ("indicator", "rule"):
        raise InvalidInput(f"kind {kind!r}: use indicator or rule", field="kind")
    if indicator and rule:
        raise InvalidInput("give indicator or rule, not both", field="rule")
    return _hits_page(
        conn,
        principal,
        cursor=cursor,
        limit=limit,
        run_id=run,
        kind=kind,
        match_id=indicator or rule,
        since=_since(since),
    )
