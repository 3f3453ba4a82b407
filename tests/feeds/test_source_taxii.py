"""The ``taxii`` source against a real TAXII 2.1 server (medallion) on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from qalqan.errors import FetchError, InvalidInput
from qalqan.feeds.fetch import FetchLimits
from qalqan.feeds.items import Item, StixObject
from qalqan.feeds.sources import Job, make_source
from qalqan.testing import indicator

from .taxii_server import (
    PASSWORD,
    SAMPLE_OBJECTS,
    USERNAME,
    WRITE_ONLY_ID,
    TaxiiServer,
    running_taxii_server,
)

CREDENTIALS = {"username": USERNAME, "password": PASSWORD}
SAMPLE_IDS = [obj["id"] for obj in SAMPLE_OBJECTS]
NEWEST_DATE_ADDED = "2024-05-01T10:04:00.000000Z"  # of the last of SAMPLE_OBJECTS


@pytest.fixture
def server() -> Iterator[TaxiiServer]:
    with running_taxii_server() as running:
        yield running


def poll(url: str, state: dict[str, Any] | None = None, **options: Any) -> list[Item]:
    """One run of the source; ``state`` is updated as the pipeline would keep it."""
    source = make_source("taxii", {**CREDENTIALS, **options})
    job = Job(url, "upstream", FetchLimits(timeout=5), state if state is not None else {})
    return list(source.read(job))


def ids(items: list[Item]) -> list[str]:
    assert all(isinstance(item, StixObject) for item in items)
    return [item.obj["id"] for item in items if isinstance(item, StixObject)]


def test_first_poll_reads_every_object_and_keeps_the_newest_date_added(
    server: TaxiiServer,
) -> None:
    state: dict[str, Any] = {}
    items = poll(server.collection_url(), state)
    assert ids(items) == SAMPLE_IDS
    assert [item.line for item in items if isinstance(item, StixObject)] == list(range(5))
    assert items[0] == StixObject(0, SAMPLE_OBJECTS[0])
    assert state["added_after"] == NEWEST_DATE_ADDED


def test_next_poll_reads_only_what_was_added_since(server: TaxiiServer) -> None:
    state: dict[str, Any] = {}
    poll(server.collection_url(), state)
    added = [indicator("192.0.2.10"), indicator("192.0.2.11")]
    server.add_objects(added)

    assert ids(poll(server.collection_url(), state)) == [obj["id"] for obj in added]
    assert state["added_after"] > NEWEST_DATE_ADDED
    cursor = state["added_after"]
    assert poll(server.collection_url(), state) == []
    assert state["added_after"] == cursor


@pytest.mark.parametrize("page_size", [1, 2, 3])
def test_pages_smaller_than_the_collection_read_each_object_once(
    server: TaxiiServer, page_size: int
) -> None:
    state: dict[str, Any] = {}
    items = poll(server.collection_url(), state, page_size=page_size)
    assert ids(items) == SAMPLE_IDS
    assert state["added_after"] == NEWEST_DATE_ADDED


def test_a_server_page_limit_below_page_size_still_reads_everything() -> None:
    with running_taxii_server(max_page_size=2) as small_pages:
        assert ids(poll(small_pages.collection_url(), page_size=1000)) == SAMPLE_IDS


def test_types_asks_the_server_for_those_types_only(server: TaxiiServer) -> None:
    items = poll(server.collection_url(), types="malware, relationship")
    assert [item.obj["type"] for item in items if isinstance(item, StixObject)] == [
        "malware",
        "relationship",
    ]


def test_a_cursor_read_with_other_types_is_not_reused(server: TaxiiServer) -> None:
    state: dict[str, Any] = {}
    poll(server.collection_url(), state, types="indicator")
    assert ids(poll(server.collection_url(), state)) == SAMPLE_IDS


def test_a_wrong_password_is_refused(server: TaxiiServer) -> None:
    with pytest.raises(FetchError, match="refused the credentials"):
        poll(server.collection_url(), password="wrong")


def test_no_credentials_says_they_are_needed(server: TaxiiServer) -> None:
    source = make_source("taxii", {})
    with pytest.raises(FetchError, match="requires credentials"):
        list(source.read(Job(server.collection_url(), "upstream", FetchLimits(timeout=5))))


def test_an_unknown_collection_is_not_found(server: TaxiiServer) -> None:
    with pytest.raises(FetchError, match="no such collection"):
        poll(server.collection_url("0d4f5b2c-0000-4000-8000-000000000000"))


def test_a_collection_that_cannot_be_read_is_refused(server: TaxiiServer) -> None:
    with pytest.raises(FetchError, match="can_read is false"):
        poll(server.collection_url(WRITE_ONLY_ID))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_an_unreachable_server_is_a_fetch_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/api1/collections/abc/"
    with pytest.raises(FetchError, match="cannot reach the TAXII server") as caught:
        poll(url)
    assert "refused" in str(caught.value)


def test_a_silent_server_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # connections complete in the backlog, and are never answered
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api1/collections/abc/"
        source = make_source("taxii", CREDENTIALS)
        job = Job(url, "upstream", FetchLimits(timeout=0.3))
        with pytest.raises(FetchError, match=r"timed out after 0\.3 s"):
            list(source.read(job))


class _WebPage(BaseHTTPRequestHandler):
    """Any path: an HTML page, as a web server that is not a TAXII server answers (or
    ``body`` in ``content_type``)."""

    seen_authorization: ClassVar[list[str | None]] = []
    content_type = "text/html"
    body = b"<html><body>Welcome</body></html>"

    def do_GET(self) -> None:
        self.seen_authorization.append(self.headers.get("Authorization"))
        body = self.body
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def web_server() -> Iterator[str]:
    _WebPage.seen_authorization = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api1/collections/abc/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_a_web_server_is_not_a_taxii_server(web_server: str) -> None:
    with pytest.raises(FetchError, match=r"is not a TAXII 2\.1 server"):
        poll(web_server)


def test_a_taxii_answer_that_is_not_a_collection_is_refused(
    web_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_WebPage, "content_type", "application/taxii+json;version=2.1")
    monkeypatch.setattr(_WebPage, "body", b'{"title": "no id"}')
    with pytest.raises(FetchError, match=r"is not a TAXII 2\.1 collection"):
        poll(web_server)


def test_a_token_is_sent_as_a_bearer_token(web_server: str) -> None:
    source = make_source("taxii", {"token": "t0k3n"})
    with pytest.raises(FetchError):
        list(source.read(Job(web_server, "upstream", FetchLimits(timeout=5))))
    assert _WebPage.seen_authorization == ["Bearer t0k3n"]


@pytest.mark.parametrize(
    "url",
    ["ftp://host/api1/collections/abc/", "https://host/api1/", "file:///tmp/collection.json"],
)
def test_a_url_that_is_not_a_collection_url_is_invalid(url: str) -> None:
    with pytest.raises(InvalidInput, match="TAXII collection URL") as caught:
        poll(url)
    assert caught.value.field == "url"


@pytest.mark.parametrize(
    "options",
    [
        {"token": "t", "username": "u", "password": "p"},
        {"username": "u"},
        {"password": "p"},
        {"page_size": 0},
        {"types": "indicator,Not A Type"},
        {"types": " , "},
        {"proxy": "http://proxy:3128"},
    ],
)
def test_options_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        make_source("taxii", options)


def test_options_from_the_command_line_and_secrets_hidden() -> None:
    source = make_source(
        "taxii", {"username": "u", "password": "p", "page_size": "50", "verify_tls": "false"}
    )
    assert source.options.public() == {
        "username": "u",
        "password": "***",
        "page_size": 50,
        "verify_tls": False,
    }
    assert make_source("taxii", {"token": "t"}).options.public() == {"token": "***"}
    assert source.expires_missing is False
