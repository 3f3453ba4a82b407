"""``taxii``: poll a TAXII 2.1 collection; each run reads only what was added since the last.

The feed's URL is the collection's, ``https://host/api-root/collections/<id>/``. Objects come
page by page (``page_size`` per request) through ``taxii2-client`` and are yielded as they are,
numbered from 0 in the order the server sends them, for the STIX importer to validate.

The cursor: every page of objects carries ``X-TAXII-Date-Added-Last``, the server's
``date_added`` of the newest object in the page. The newest of these is kept in
``job.state["added_after"]`` (as the server wrote it) and sent as ``added_after`` on the next
poll, so that the server returns only objects added since. The cursor belongs to the URL and
``types`` it was read with: changing either starts again from the beginning. A server that
sends no such header is read in full on every poll (the importer keeps what it already has).

Authentication is HTTP Basic (``username``/``password``), a Bearer ``token``, or none.
``job.limits.timeout`` bounds each request. Errors of the HTTP and TAXII libraries become
``FetchError`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import requests
from pydantic import Field, model_validator
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from taxii2client.common import _HTTPConnection
from taxii2client.exceptions import InvalidJSONError, TAXIIServiceException, ValidationError
from taxii2client.v21 import Collection, as_pages

from qalqan import __version__
from qalqan.domain.stix import parse_timestamp
from qalqan.errors import FetchError, InvalidInput
from qalqan.feeds.items import Item, StixObject
from qalqan.feeds.sources import Job, Source, SourceOptions, register
from qalqan.feeds.sources.stix import ObjectTypes

__all__ = ["TaxiiOptions", "TaxiiSource"]

_DATE_ADDED_LAST = "X-TAXII-Date-Added-Last"


class TaxiiOptions(SourceOptions):
    """Options of the ``taxii`` source: credentials, page size, TLS checking, types to poll."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"password", "token"})

    username: str | None = None
    password: str | None = None
    token: str | None = None
    page_size: int = Field(default=1000, ge=1, le=100_000)
    verify_tls: bool = True
    types: ObjectTypes = None

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        if self.token and (self.username or self.password):
            raise ValueError("give either a token or a username and password, not both")
        if bool(self.username) != bool(self.password):
            raise ValueError("give both a username and a password, or neither")
        return self


class _NewestDateAdded:
    """A response hook keeping the newest ``X-TAXII-Date-Added-Last`` the server sent.

    Values are compared as instants (servers write 0 to 9 fraction digits) and kept as written,
    since the server parses its own format best. An unreadable value is ignored: the cursor then
    stays where it was, which costs a re-read, never a missed object.
    """

    def __init__(self, saved: str | None):
        self.value = saved
        self._instant = self._parse(saved) if saved else None

    @staticmethod
    def _parse(value: str) -> int | None:
        try:
            return parse_timestamp(value)
        except ValueError:
            return None

    def __call__(self, response: Response, *args: Any, **kwargs: Any) -> None:
        written = response.headers.get(_DATE_ADDED_LAST) if response.ok else None
        instant = self._parse(written) if written else None
        if instant is not None and (self._instant is None or instant > self._instant):
            self.value, self._instant = written, instant


class _TimeoutAdapter(HTTPAdapter):
    """Gives every request a timeout: taxii2-client sends its requests without one."""

    def __init__(self, timeout: float):
        super().__init__()
        self._timeout = timeout

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> Response:
        timeout = self._timeout if timeout is None else timeout
        return super().send(request, stream, timeout, verify, cert, proxies)


def _bearer(token: str) -> Callable[[PreparedRequest], PreparedRequest]:
    """A requests auth callable sending ``Authorization: Bearer <token>``."""

    def authorize(request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    return authorize


def _collection(url: str, options: TaxiiOptions, timeout: float, hook: _NewestDateAdded) -> Any:
    """A taxii2-client ``Collection`` for ``url`` over a session set up for this poll."""
    # taxii2-client neither takes a timeout nor shows response headers; the connection it lets
    # callers pass (``conn=``) holds the requests session where both can be set.
    conn = _HTTPConnection(
        user=options.username,
        password=options.password,
        verify=options.verify_tls,
        user_agent=f"qalqan/{__version__}",
        version="2.1",
        auth=_bearer(options.token) if options.token else None,
    )
    adapter = _TimeoutAdapter(timeout)
    conn.session.mount("http://", adapter)
    conn.session.mount("https://", adapter)
    conn.session.hooks["response"].append(hook)
    return Collection(url, conn=conn)


def _check_url(url: str) -> str:
    """The collection URL with a trailing slash; InvalidInput if it cannot be one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"a TAXII collection URL is http:// or https://, got {url!r}", field="url"
        )
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2 or segments[-2] != "collections":
        raise InvalidInput(
            f"{url!r} is not a TAXII collection URL; it looks like "
            "https://host/api-root/collections/<collection id>/",
            field="url",
        )
    return url if url.endswith("/") else url + "/"


def _root_reason(exc: BaseException) -> str:
    """The innermost operating-system reason behind ``exc`` (e.g. "Connection refused")."""
    reason = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        current = current.__cause__ or current.__context__
    return reason or str(exc)


def _fetch_error(exc: Exception, url: str, options: TaxiiOptions, timeout: float) -> FetchError:
    """The ``FetchError`` standing for an exception of requests or taxii2-client."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status in (401, 403):
            if options.username or options.token:
                why = f"the TAXII server refused the credentials for {url} (HTTP {status})"
            else:
                why = (
                    f"the TAXII server at {url} requires credentials (HTTP {status}): "
                    "set username and password, or token"
                )
            return FetchError(why, url=url, http_status=status)
        if status == 404:
            return FetchError(f"no such collection: {url} (HTTP 404)", url=url, http_status=status)
        if status == 406:
            return FetchError(
                f"{url} is not a TAXII 2.1 server: it does not serve TAXII 2.1 (HTTP 406)",
                url=url,
                http_status=status,
            )
        return FetchError(
            f"the TAXII server answered HTTP {status} {exc.response.reason} for {url}",
            url=url,
            http_status=status,
        )
    if isinstance(exc, requests.Timeout):
        return FetchError(f"{url} timed out after {timeout:g} s", url=url)
    if isinstance(exc, requests.exceptions.SSLError):
        return FetchError(
            f"cannot connect to {url}: the TLS handshake failed: {_root_reason(exc)}", url=url
        )
    if isinstance(exc, requests.ConnectionError):
        return FetchError(f"cannot reach the TAXII server at {url}: {_root_reason(exc)}", url=url)
    if isinstance(exc, InvalidJSONError):
        return FetchError(f"{url} is not a TAXII 2.1 server: it did not answer JSON", url=url)
    if isinstance(exc, ValidationError):  # a collection resource without id, title, ...
        return FetchError(f"{url} is not a TAXII 2.1 collection: {exc}", url=url)
    if isinstance(exc, TAXIIServiceException):  # the answer's media type is not TAXII 2.1
        return FetchError(
            f"{url} is not a TAXII 2.1 server: it did not answer in the TAXII 2.1 media type",
            url=url,
        )
    return FetchError(f"cannot poll {url}: {exc}", url=url)


_TRANSLATED = (requests.RequestException, TAXIIServiceException)


def _objects(envelope: Any, url: str) -> list[Any]:
    """The objects of a TAXII envelope; FetchError if it is not one."""
    objects = envelope.get("objects", []) if isinstance(envelope, dict) else None
    if not isinstance(objects, list):
        raise FetchError(f"{url} is not a TAXII 2.1 collection: it sent no envelope", url=url)
    return objects


@register
class TaxiiSource(Source):
    kind = "taxii"
    summary = "poll a TAXII 2.1 collection; each run reads what was added since the last"
    options_model = TaxiiOptions
    expires_missing = False

    def read(self, job: Job) -> Iterator[Item]:
        """Yield the objects added to the collection at ``job.url`` since the last successful
        run; then remember the newest ``date_added`` seen in ``job.state["added_after"]``."""
        options = self.options
        assert isinstance(options, TaxiiOptions)
        url = _check_url(job.url)
        timeout = job.limits.timeout
        scope = {"url": url, "types": options.types}
        saved = job.state.get("added_after") if job.state.get("cursor_scope") == scope else None
        newest = _NewestDateAdded(saved if isinstance(saved, str) else None)
        filters: dict[str, str] = {}
        if newest.value:
            filters["added_after"] = newest.value
        if options.types:
            filters["type"] = ",".join(options.types)

        line = 0
        with _collection(url, options, timeout, newest) as collection:
            try:
                readable = collection.can_read
            except _TRANSLATED as exc:
                raise _fetch_error(exc, url, options, timeout) from exc
            if not readable:
                raise FetchError(
                    f"the TAXII collection at {url} cannot be read with these credentials "
                    "(can_read is false)",
                    url=url,
                )
            pages = as_pages(collection.get_objects, per_request=options.page_size, **filters)
            while True:
                try:
                    envelope = next(pages, None)
                except _TRANSLATED as exc:
                    raise _fetch_error(exc, url, options, timeout) from exc
                if envelope is None:
                    break
                for obj in _objects(envelope, url):
                    yield StixObject(line, obj)
                    line += 1
        if newest.value:
            job.state["added_after"] = newest.value
            job.state["cursor_scope"] = scope
