"""Exports: a STIX 2.1 bundle and the detection formats, streamed; stable URLs that sensors poll
with an API key, answered ``304 Not Modified`` while nothing changed (``ETag``)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from qalqan.api.deps import CurrentPrincipal, get_instance
from qalqan.api.problems import problem_responses
from qalqan.instance import Instance
from qalqan.interop.exports import (
    Export,
    archive,
    formats,
    object_link,
    parse_request,
    prepare,
)
from qalqan.interop.exports.base import MAIN

__all__ = ["router"]

router = APIRouter(tags=["exports"], responses=problem_responses(400, 401))

_ARCHIVE = "application/gzip"
_TEXT = {"type": "string"}
_BUNDLE_SCHEMA = {
    "type": "object",
    "required": ["type", "id", "objects"],
    "properties": {
        "type": {"const": "bundle"},
        "id": {"type": "string"},
        "objects": {"type": "array", "items": {"type": "object"}},
    },
}
_MISP_SCHEMA = {
    "type": "object",
    "required": ["Event"],
    "properties": {"Event": {"type": "object"}},
}
_ETAG_HEADER = {
    "ETag": {"description": "a weak validator: send it back as If-None-Match", "schema": _TEXT}
}
_FORMAT_LIST = ", ".join(formats())


def _media_type(export: Export) -> str:
    return _ARCHIVE if export.format.has_side_files else export.format.media_type


def _file_name(export: Export) -> str:
    fmt = export.format
    return f"qalqan-{fmt.name}" + (".tar.gz" if fmt.has_side_files else fmt.suffix)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2): ``W/`` prefixes do not count."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


def _stream(instance: Instance, export: Export) -> Iterator[bytes]:
    try:
        with instance.begin() as conn:
            if export.format.has_side_files:
                yield from archive(export, conn, f"qalqan{export.format.suffix}")
            else:
                for name, data in export.chunks(conn):
                    if name == MAIN:
                        yield data
    finally:
        # Its own transaction: a download cut off midway is still recorded (as incomplete).
        with instance.begin() as conn:
            export.audit(conn)


@router.get(
    "/export/{format}",
    summary="An export of what you may see: STIX bundle, or detection rules and lists",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The export, streamed. `suricata` is a tar.gz of the rules and the "
            "dataset files they load; `stix` a STIX 2.1 bundle; `misp` a MISP event",
            "headers": _ETAG_HEADER,
            "content": {
                "application/stix+json;version=2.1": {"schema": _BUNDLE_SCHEMA},
                "application/json": {"schema": _MISP_SCHEMA},
                "text/plain": {"schema": _TEXT},
                "text/csv": {"schema": _TEXT},
                _ARCHIVE: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        304: {"description": "Not modified since the ETag sent as If-None-Match"},
    },
)
def export(
    request: Request,
    principal: CurrentPrincipal,
    format: Annotated[str, Path(max_length=40, description=_FORMAT_LIST)],
    type: Annotated[
        list[str] | None, Query(description="stix: STIX types; others: as kind")
    ] = None,
    kind: Annotated[
        list[str] | None, Query(description="observable kinds: ip, cidr, domain, url, ...")
    ] = None,
    max_tlp: Annotated[
        str | None, Query(description="TLP ceiling; detection formats: default green, red never")
    ] = None,
    min_confidence: Annotated[
        str | None, Query(description="confidence floor 0-100 (detection formats)")
    ] = None,
    since: Annotated[
        str | None, Query(description="only what was added since (RFC 3339 timestamp)")
    ] = None,
    added_after: Annotated[str | None, Query(deprecated=True, description="as since")] = None,
    feed: Annotated[list[str] | None, Query(description="only what these feeds made")] = None,
    label: Annotated[list[str] | None, Query(description="only objects with a label")] = None,
    if_none_match: Annotated[str | None, Header(description="an ETag of an earlier export")] = None,
) -> Response:
    """Detection formats hold only *active* indicators: not revoked, withdrawn or expired,
    meant for detection, on no warninglist, confident enough, within the TLP ceiling. Poll the
    same URL with `If-None-Match`: `304` until something in it changes."""
    wanted = parse_request(
        format,
        kinds=kind,
        types=type,
        max_tlp=max_tlp,
        min_confidence=min_confidence,
        since=since if since is not None else added_after,
        feeds=feed,
        labels=label,
    )
    instance = get_instance(request)
    settings = instance.settings
    with instance.begin() as conn:
        prepared = prepare(
            conn,
            principal,
            wanted,
            default_min_confidence=settings.export_min_confidence,
            object_url=object_link(settings.export_link_base),
        )
        etag = prepared.etag(conn)
    headers: dict[str, Any] = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    chunks = _stream(instance, prepared)
    # Taken before the response starts, so that a refused filter is a problem response.
    head = next(chunks, b"")
    headers["Content-Disposition"] = f'attachment; filename="{_file_name(prepared)}"'
    return StreamingResponse(
        itertools.chain((head,), chunks), media_type=_media_type(prepared), headers=headers
    )
