"""The ``stix`` source: bundles and lists of objects from files and over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from qalqan.domain.stix import check_object
from qalqan.errors import InvalidInput
from qalqan.feeds.items import Item, StixObject, Unchanged
from qalqan.feeds.sources import Job, make_source
from qalqan.testing import serving

BUNDLE_PATH = Path(__file__).parent / "data" / "stix_bundle.json"
BUNDLE = json.loads(BUNDLE_PATH.read_text())
OBJECTS: list[dict[str, Any]] = BUNDLE["objects"]


def read(url: str, state: dict[str, Any] | None = None, **options: Any) -> list[Item]:
    job = Job(url, "stix-feed", state=state if state is not None else {})
    return list(make_source("stix", options).read(job))


def write_json(tmp_path: Path, document: object) -> str:
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(document))
    return path.as_uri()


def test_the_fixture_holds_valid_stix_objects() -> None:
    assert [obj["type"] for obj in OBJECTS] == [
        "identity",
        "indicator",
        "indicator",
        "malware",
        "relationship",
    ]
    assert all(check_object(obj) == [] for obj in OBJECTS)


def test_a_bundle_yields_each_object_numbered_from_zero() -> None:
    items = read(BUNDLE_PATH.as_uri())
    assert items == [StixObject(index, obj) for index, obj in enumerate(OBJECTS)]


def test_a_list_of_objects_is_read_like_a_bundle(tmp_path: Path) -> None:
    items = read(write_json(tmp_path, OBJECTS[1:3]))
    assert items == [StixObject(0, OBJECTS[1]), StixObject(1, OBJECTS[2])]


def test_one_stix_object_alone_is_read(tmp_path: Path) -> None:
    assert read(write_json(tmp_path, OBJECTS[3])) == [StixObject(0, OBJECTS[3])]


def test_objects_that_are_not_json_objects_are_left_to_the_importer(tmp_path: Path) -> None:
    items = read(write_json(tmp_path, [OBJECTS[0], "not an object"]), types="identity")
    assert items == [StixObject(0, OBJECTS[0]), StixObject(1, "not an object")]


def test_bad_json_is_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    path.write_text('{"type": "bundle", "objects": [')
    with pytest.raises(InvalidInput, match="is not valid JSON"):
        read(path.as_uri())


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"type": "FeatureCollection", "features": []}, "got a JSON object of type"),
        ({"objects": []}, "got a JSON object without a type"),
        ({"type": "bundle", "objects": []}, "not a STIX 2.1 bundle: id is required"),
        ({"type": "bundle", "id": "bundle--ee3832e8-71d1-4176-b12c-ff5e3dd7d8ac"}, "objects"),
        (42, "expected a STIX 2.1 bundle"),
        ("a string", "expected a STIX 2.1 bundle"),
    ],
)
def test_a_document_that_is_not_a_bundle_is_invalid_input(
    tmp_path: Path, document: object, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        read(write_json(tmp_path, document))


@pytest.mark.parametrize("types", ["indicator, malware", ["malware", "indicator"]])
def test_types_keeps_those_types_with_their_positions(types: object) -> None:
    items = read(BUNDLE_PATH.as_uri(), types=types)
    assert items == [StixObject(i, OBJECTS[i]) for i in (1, 2, 3)]


@pytest.mark.parametrize("types", ["indicator,Malware", "", " , ", 42, ["indicator", 7]])
def test_types_must_name_stix_types(types: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        make_source("stix", {"types": types})
    assert caught.value.field == "options"


def test_unknown_options_are_refused() -> None:
    with pytest.raises(InvalidInput, match="option"):
        make_source("stix", {"type": "indicator"})


def test_objects_carry_their_own_lifecycle() -> None:
    assert make_source("stix", {}).expires_missing is False


class _BundleServer(BaseHTTPRequestHandler):
    """Serves the fixture bundle with an ETag and answers 304 when it still matches."""

    etag = '"bundle-v1"'
    requests: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.requests.append(self.headers.get("If-None-Match"))
        if self.headers.get("If-None-Match") == self.etag:
            self.send_response(304)
            self.send_header("ETag", self.etag)
            self.end_headers()
            return
        body = BUNDLE_PATH.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/stix+json;version=2.1")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", self.etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def bundle_url() -> Iterator[str]:
    _BundleServer.requests = []
    with serving(_BundleServer) as url:
        yield f"{url}feeds/bundle.json"


def test_a_bundle_over_http_is_unchanged_when_the_server_says_304(bundle_url: str) -> None:
    state: dict[str, Any] = {}
    first = read(bundle_url, state)
    assert [item.obj["id"] for item in first if isinstance(item, StixObject)] == [
        obj["id"] for obj in OBJECTS
    ]
    assert read(bundle_url, state) == [Unchanged()]
    assert _BundleServer.requests == [None, '"bundle-v1"']
