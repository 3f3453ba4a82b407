"""The TAXII 2.1 HTTP interface, mounted at ``/taxii2/``: discovery, one API root, its
collections, objects, manifest, versions and status resources.

Everything here is rendering and parsing: media types, authentication headers, envelopes,
TAXII error messages. What a caller sees is decided by the collection services and policy.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import Connection
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from qalqan.accounts import KEY_PREFIX, authenticate_password, identify, record_use
from qalqan.api.deps import get_instance
from qalqan.domain.principal import Principal
from qalqan.domain.stix import format_timestamp
from qalqan.errors import InvalidInput, QalqanError, Unauthorized
from qalqan.instance import Instance
from qalqan.intel.importer import load_document
from qalqan.intel.reading import decode_cursor
from qalqan.interop.taxii import objects as service
from qalqan.interop.taxii.collections import Collection, collections_for, find_collection
from qalqan.interop.taxii.readahead import PreparedPage, ReadAhead
from qalqan.store import accounts as accounts_store
from qalqan.store.taxii import ManifestRow, ObjectQuery

__all__ = ["API_ROOT", "PREFIX", "TAXII_MEDIA_TYPE", "install", "router", "taxii_error"]

PREFIX = "/taxii2"
_READ_AHEAD_LIMIT = 5000  # pages larger than this are not prepared in advance
API_ROOT = "api"
TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Refused by the handling rules",
}


def install(app: FastAPI) -> None:
    """Serve TAXII in ``app``: the routes, and the pages prepared ahead, which live and stop
    with the app."""
    pages = ReadAhead()
    app.state.taxii_read_ahead = pages
    running = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        async with running(served) as state:
            try:
                yield state
            finally:
                await run_in_threadpool(pages.close)

    app.router.lifespan_context = lifespan
    app.include_router(router)


def taxii_error(status: int, description: str, **headers: str) -> Response:
    """A TAXII error message response."""
    body = {
        "title": _TITLES.get(status, "Server error"),
        "description": description,
        "http_status": str(status),
    }
    return Response(orjson.dumps(body), status, headers or None, media_type=TAXII_MEDIA_TYPE)


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = value.partition(";")
    params = {}
    for part in rest.split(";"):
        name, _, val = part.partition("=")
        if name.strip():
            params[name.strip().lower()] = val.strip().strip('"')
    return kind.strip().lower(), params


def _taxii_type(value: str) -> bool:
    kind, params = _media_type(value)
    return kind == "application/taxii+json" and params.get("version", "2.1") == "2.1"


def _accepts_taxii(header: str | None) -> bool:
    if not header:
        return True
    for item in header.split(","):
        kind, params = _media_type(item)
        wanted = kind in ("*/*", "application/*") or _taxii_type(item)
        if wanted and params.get("q", "1") not in ("0", "0.0", "0.00", "0.000"):
            return True
    return False


class _TaxiiRoute(APIRoute):
    """Answers with TAXII error messages instead of problem documents, and refuses requests
    whose ``Accept`` or ``Content-Type`` is not TAXII 2.1."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            if not _accepts_taxii(request.headers.get("accept")):
                return taxii_error(406, f"this endpoint answers with {TAXII_MEDIA_TYPE}")
            if request.method == "POST" and not _taxii_type(
                request.headers.get("content-type", "")
            ):
                return taxii_error(415, f"send the body as {TAXII_MEDIA_TYPE}")
            try:
                return await handler(request)
            except Unauthorized as exc:
                challenge = 'Basic realm="qalqan", Bearer realm="qalqan"'
                return taxii_error(401, exc.detail, **{"WWW-Authenticate": challenge})
            except QalqanError as exc:
                where = f" ({exc.context['field']})" if "field" in exc.context else ""
                return taxii_error(exc.status, exc.detail + where)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                return taxii_error(400, str(first.get("msg", "invalid request")))

        return route


class TaxiiResponse(Response):
    """A response in the TAXII 2.1 media type."""

    media_type = TAXII_MEDIA_TYPE


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["title", "http_status"],
    "properties": {
        "title": {"type": "string"},
        "description": {"type": "string"},
        "http_status": {"type": "string"},
    },
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": _TITLES[status],
            "content": {TAXII_MEDIA_TYPE: {"schema": _ERROR_SCHEMA}},
        }
        for status in statuses
    }


def _ok(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": description,
                     "content": {TAXII_MEDIA_TYPE: {"schema": {"type": "object"}}}}}  # fmt: skip


_FILTERS = (
    ("added_after", "Only objects added after this timestamp"),
    ("limit", "Page size (default 1,000, at most 10,000)"),
    ("next", "The token of the next page"),
    ("match[id]", "Comma-separated object ids"),
    ("match[type]", "Comma-separated STIX types"),
    ("match[version]", "first, last, all or a modified timestamp (comma-separated)"),
    ("match[spec_version]", "2.0 or 2.1 (comma-separated)"),
)


def _filters(*names: str) -> dict[str, Any]:
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "description": text,
             "schema": {"type": "string"}}
            for name, text in _FILTERS
            if name in names
        ]
    }  # fmt: skip


router = APIRouter(
    prefix=PREFIX,
    route_class=_TaxiiRoute,
    tags=["taxii"],
    default_response_class=TaxiiResponse,
    responses=_errors(400, 401, 403, 404, 406),
)


def _identify(conn: Connection, header: str | None) -> tuple[Principal, str | None]:
    """The caller, and the id of their API key if its use should be recorded."""
    if not header:
        raise Unauthorized("send an API key as a Bearer token, or HTTP Basic credentials")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return identify(conn, value)
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials") from None
        if password.startswith(KEY_PREFIX):
            return identify(conn, password)
        return authenticate_password(conn, user, password), None
    raise Unauthorized(f"unsupported authentication scheme {scheme[:20]!r}")


Work = Callable[[Connection, Principal], Response]


async def _serve(request: Request, work: Work) -> Response:
    """Authenticate and do the work in one trip to the thread pool, in one transaction."""
    instance = get_instance(request)
    header = request.headers.get("authorization")

    def run() -> Response:
        with instance.begin() as conn:
            principal, stale_key = _identify(conn, header)
            response = work(conn, principal)
        if stale_key is not None:
            # In a transaction of its own, and rarely: the work's reads stay a read transaction.
            with instance.begin() as conn:
                record_use(conn, stale_key)
        return response

    return await run_in_threadpool(run)


def _reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type=TAXII_MEDIA_TYPE)


class _NoRoot(QalqanError):
    code = "not_found"
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"no API root {name[:100]!r}; this server has {API_ROOT!r}")


def _root(api_root: str) -> None:
    if api_root != API_ROOT:
        raise _NoRoot(api_root)


def _params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, []).append(value)
    return params


def _added_headers(page: service.Page) -> dict[str, str]:
    if page.first_added is None or page.last_added is None:
        return {}
    return {
        "X-TAXII-Date-Added-First": format_timestamp(page.first_added),
        "X-TAXII-Date-Added-Last": format_timestamp(page.last_added),
    }


def _collection(conn: Connection, principal: Principal, api_root: str, ref: str) -> Collection:
    _root(api_root)
    return find_collection(conn, principal, ref)


def _node_name(conn: Connection) -> str:
    node = accounts_store.local_node(conn)
    return node.name if node else ""


@router.get("/", summary="TAXII discovery", responses=_ok(200, "The discovery resource"))
async def discovery(request: Request) -> Response:
    def work(conn: Connection, principal: Principal) -> Response:
        return _reply(
            {
                "title": f"Qalqan {_node_name(conn)}".strip(),
                "description": "Threat intelligence shared under TLP 2.0 and distribution rules.",
                "default": f"{PREFIX}/{API_ROOT}/",
                "api_roots": [f"{PREFIX}/{API_ROOT}/"],
            }
        )

    return await _serve(request, work)


@router.get("/{api_root}/", summary="TAXII API root", responses=_ok(200, "The API root"))
async def api_root_info(request: Request, api_root: str) -> Response:
    limit = get_instance(request).settings.max_body_bytes

    def work(conn: Connection, principal: Principal) -> Response:
        _root(api_root)
        return _reply(
            {
                "title": f"Qalqan {_node_name(conn)}".strip(),
                "description": "Every collection here shows only what your organization may see.",
                "versions": [TAXII_MEDIA_TYPE],
                "max_content_length": limit,
            }
        )

    return await _serve(request, work)


@router.get(
    "/{api_root}/status/{status_id}/",
    summary="TAXII status resource",
    responses=_ok(200, "The status resource"),
)
async def status(request: Request, api_root: str, status_id: str) -> Response:
    def work(conn: Connection, principal: Principal) -> Response:
        _root(api_root)
        return _reply(service.status_resource(service.get_status(conn, principal, status_id)))

    return await _serve(request, work)


@router.get(
    "/{api_root}/collections/", summary="TAXII collections", responses=_ok(200, "Collections")
)
async def collections(request: Request, api_root: str) -> Response:
    def work(conn: Connection, principal: Principal) -> Response:
        _root(api_root)
        found = collections_for(conn, principal)
        return _reply({"collections": [c.resource() for c in found]} if found else {})

    return await _serve(request, work)


@router.get(
    "/{api_root}/collections/{collection_id}/",
    summary="One TAXII collection",
    responses=_ok(200, "The collection"),
)
async def collection(request: Request, api_root: str, collection_id: str) -> Response:
    def work(conn: Connection, principal: Principal) -> Response:
        return _reply(_collection(conn, principal, api_root, collection_id).resource())

    return await _serve(request, work)


def _envelope(page: service.Page) -> bytes:
    if page.more:
        head = b'{"more":true,"next":"' + (page.next or "").encode() + b'"'
    else:
        head = b'{"more":false'
    if not page.rows:
        return head + b"}"
    return head + b',"objects":[' + ",".join([r[1] for r in page.rows]).encode() + b"]}"


@dataclass(frozen=True, slots=True)
class _Continuation:
    """What preparing the page after a page needs: its collection, query and size."""

    collection: Collection
    query: ObjectQuery
    limit: int


def _render_objects(
    conn: Connection, principal: Principal, c: Collection, q: ObjectQuery, limit: int
) -> PreparedPage:
    page = service.get_objects(conn, principal, c, q, limit)
    following = _Continuation(c, replace(q, after=page.last_added), limit) if page.more else None
    return PreparedPage(_envelope(page), _added_headers(page), following)


def _request_key(
    principal: Principal, where: tuple[str, str], params: dict[str, list[str]], after: int
) -> Hashable:
    """A page request as the client will make it: the caller (user, org, groups), the API root
    and collection as named in the URL, the parameters but ``next``, and the position."""
    rest = tuple(sorted((name, tuple(v)) for name, v in params.items() if name != "next"))
    groups = tuple(sorted(principal.group_ids))
    return (principal.user_id, principal.org_id, groups, where, rest, after)


def _read_ahead(
    pages: ReadAhead,
    instance: Instance,
    principal: Principal,
    where: tuple[str, str],
    params: dict[str, list[str]],
    page: PreparedPage,
) -> None:
    """Prepare the page after ``page`` while the client reads this one."""
    following: _Continuation | None = page.following
    if following is None or following.limit > _READ_AHEAD_LIMIT:
        return
    after = following.query.after
    assert after is not None

    def render() -> PreparedPage:
        with instance.begin() as conn:
            return _render_objects(
                conn, principal, following.collection, following.query, following.limit
            )

    pages.prepare(_request_key(principal, where, params, after), render)


def _position(params: dict[str, list[str]]) -> int | None:
    """The position a ``next`` token names, or None (the request then reports a bad one)."""
    token = params.get("next")
    if not token or len(token) != 1:
        return None
    try:
        return decode_cursor(token[0])
    except InvalidInput:
        return None


@router.get(
    "/{api_root}/collections/{collection_id}/objects/",
    summary="TAXII objects",
    responses=_ok(200, "An envelope of objects"),
    openapi_extra=_filters(*(name for name, _ in _FILTERS)),
)
async def get_objects(request: Request, api_root: str, collection_id: str) -> Response:
    params = _params(request)
    instance = get_instance(request)
    pages: ReadAhead = request.app.state.taxii_read_ahead
    where = (api_root, collection_id)

    def work(conn: Connection, principal: Principal) -> Response:
        after = _position(params)
        # A page prepared for this very request, by this caller, a moment ago: the collection
        # was found and the filters checked when it was prepared.
        page = pages.take(_request_key(principal, where, params, after)) if after else None
        if page is None:
            c = _collection(conn, principal, api_root, collection_id)
            q, limit = service.parse_filters(params, c.query())
            page = _render_objects(conn, principal, c, q, limit)
        # Once the page is sent: preparing the next one holds the interpreter for a while,
        # which would otherwise hold up sending this one.
        later = BackgroundTask(_read_ahead, pages, instance, principal, where, params, page)
        return Response(page.body, 200, page.headers, media_type=TAXII_MEDIA_TYPE, background=later)

    return await _serve(request, work)


@router.post(
    "/{api_root}/collections/{collection_id}/objects/",
    summary="Add TAXII objects",
    status_code=202,
    responses={**_ok(202, "The status resource"), **_errors(413, 415)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {TAXII_MEDIA_TYPE: {"schema": {"type": "object"}}},
        }
    },
)
async def add_objects(request: Request, api_root: str, collection_id: str) -> Response:
    body = await request.body()

    def work(conn: Connection, principal: Principal) -> Response:
        # Parsing a large body is CPU work too: it stays off the event loop with the import.
        envelope = load_document(body, "the envelope")
        c = _collection(conn, principal, api_root, collection_id)
        return _reply(
            service.status_resource(service.add_objects(conn, principal, c, envelope)), 202
        )

    return await _serve(request, work)


@router.get(
    "/{api_root}/collections/{collection_id}/objects/{object_id}/",
    summary="One TAXII object",
    responses=_ok(200, "An envelope of the object's versions"),
    openapi_extra=_filters("added_after", "limit", "next", "match[version]", "match[spec_version]"),
)
async def get_object(
    request: Request, api_root: str, collection_id: str, object_id: str
) -> Response:
    params = _params(request)

    def work(conn: Connection, principal: Principal) -> Response:
        c = _collection(conn, principal, api_root, collection_id)
        matches = frozenset({"version", "spec_version"})
        q, limit = service.parse_filters(params, c.query(), matches=matches)
        page = service.get_object(conn, principal, c, object_id, q, limit)
        return Response(_envelope(page), 200, _added_headers(page), media_type=TAXII_MEDIA_TYPE)

    return await _serve(request, work)


@router.delete(
    "/{api_root}/collections/{collection_id}/objects/{object_id}/",
    summary="Delete a TAXII object (its owner org only)",
    responses={200: {"description": "Deleted", "content": {TAXII_MEDIA_TYPE: {}}}},
    openapi_extra=_filters("match[version]", "match[spec_version]"),
)
async def delete_object(
    request: Request, api_root: str, collection_id: str, object_id: str
) -> Response:
    params = _params(request)

    def work(conn: Connection, principal: Principal) -> Response:
        c = _collection(conn, principal, api_root, collection_id)
        matches = frozenset({"version", "spec_version"})
        q, _ = service.parse_filters(params, c.query(), matches=matches, default_version="all")
        service.delete_object(conn, principal, c, object_id, q)
        return Response(status_code=200, media_type=TAXII_MEDIA_TYPE)

    return await _serve(request, work)


def _listing(page: service.Page, name: str, items: list[Any]) -> Response:
    """A manifest or versions resource: ``more``, ``next`` and the items under ``name``."""
    body: dict[str, Any] = {"more": page.more}
    if page.next:
        body["next"] = page.next
    if items:
        body[name] = items
    return _reply(body, headers=_added_headers(page))


def _manifest_entry(row: ManifestRow) -> dict[str, Any]:
    return {
        "id": row.stix_id,
        "date_added": format_timestamp(row.date_added),
        "version": service.version_of(row),
        "media_type": STIX_MEDIA_TYPE,
    }


@router.get(
    "/{api_root}/collections/{collection_id}/manifest/",
    summary="TAXII manifest",
    responses=_ok(200, "The manifest"),
    openapi_extra=_filters(*(name for name, _ in _FILTERS)),
)
async def get_manifest(request: Request, api_root: str, collection_id: str) -> Response:
    params = _params(request)

    def work(conn: Connection, principal: Principal) -> Response:
        c = _collection(conn, principal, api_root, collection_id)
        q, limit = service.parse_filters(params, c.query())
        page = service.get_manifest(conn, principal, c, q, limit)
        return _listing(page, "objects", [_manifest_entry(r) for r in page.rows])

    return await _serve(request, work)


@router.get(
    "/{api_root}/collections/{collection_id}/objects/{object_id}/versions/",
    summary="Versions of a TAXII object",
    responses=_ok(200, "The object's versions"),
    openapi_extra=_filters("added_after", "limit", "next", "match[spec_version]"),
)
async def get_versions(
    request: Request, api_root: str, collection_id: str, object_id: str
) -> Response:
    params = _params(request)

    def work(conn: Connection, principal: Principal) -> Response:
        c = _collection(conn, principal, api_root, collection_id)
        matches = frozenset({"spec_version"})
        q, limit = service.parse_filters(params, c.query(), matches=matches, default_version="all")
        page = service.get_versions(conn, principal, c, object_id, q, limit)
        return _listing(page, "versions", [service.version_of(r) for r in page.rows])

    return await _serve(request, work)
