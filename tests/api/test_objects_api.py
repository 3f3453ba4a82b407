"""The objects API under bad input: malformed bodies, partly bad bundles, oversized requests,
hostile strings, paging while others write, bad query parameters, and version selection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from qalqan.api import create_app
from qalqan.domain.principal import Role
from qalqan.instance import Instance
from qalqan.settings import Settings
from qalqan.testing import (
    STAMP,
    TestNode,
    assert_problem,
    bundle,
    fresh_instance,
    indicator,
    stix_id,
)

SMALL_LIMIT = 2048


@dataclass
class Site:
    node: TestNode
    client: TestClient

    def auth(self, email: str = "analyst@a.test") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.keys[email]}"}

    def post(self, document: Any, email: str = "analyst@a.test", **params: str) -> httpx.Response:
        return self.client.post(
            "/api/v1/objects", json=document, params=params, headers=self.auth(email)
        )

    def get(self, path: str, email: str = "analyst@a.test", **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers=self.auth(email))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with fresh_instance(tmp_path_factory.mktemp("objects")) as inst:
        node = TestNode.create(inst, "CERT-A", "KZ")
        node.add_org("CERT-B", "UZ")
        node.add_user("analyst@a.test", "CERT-A", Role.ANALYST)
        node.add_user("analyst@b.test", "CERT-B", Role.ANALYST)
        with TestClient(create_app(inst)) as client:
            yield Site(node, client)


# Bodies that are not STIX


@pytest.mark.parametrize(
    "body",
    [b'{"type": "bundle",', b"", b"not json", b"\xff\xfe{}", b'{"a": 1', b"[1, 2"],
    ids=["truncated", "empty", "text", "bad-utf8", "unclosed", "unclosed-list"],
)
def test_malformed_json_is_400(site: Site, body: bytes) -> None:
    r = site.client.post(
        "/api/v1/objects",
        content=body,
        headers={**site.auth(), "Content-Type": "application/json"},
    )
    body_out = assert_problem(r, 400, "invalid_input")
    assert "JSON" in body_out["detail"]


@pytest.mark.parametrize(
    "document",
    [
        {"a": 1},
        "a string",
        42,
        None,
        {"type": "bundle", "id": "bundle--nope", "objects": []},
        {"type": "bundle", "id": stix_id("bundle"), "objects": {"not": "a list"}},
    ],
    ids=["no-type", "string", "number", "null", "bad-bundle-id", "objects-not-a-list"],
)
def test_json_that_is_not_stix_is_400(site: Site, document: Any) -> None:
    assert_problem(site.post(document), 400, "invalid_input")


# Bundles with good and bad objects


def _relationship(source: str, target: str) -> dict[str, Any]:
    return {
        "type": "relationship",
        "spec_version": "2.1",
        "id": stix_id("relationship"),
        "created": STAMP,
        "modified": STAMP,
        "relationship_type": "related-to",
        "source_ref": source,
        "target_ref": target,
    }


def test_a_mixed_bundle_keeps_the_good_and_names_every_bad_one(site: Site) -> None:
    stored = indicator("198.51.100.9")
    assert site.post(stored).status_code == 201

    good1 = indicator("198.51.100.1")
    good2 = indicator("198.51.100.2")
    good3 = indicator("198.51.100.3")
    good_rel = _relationship(good1["id"], good2["id"])
    bad_spec = indicator("198.51.100.4", spec_version="2.0")
    bad_id = indicator("198.51.100.5", id="indicator--1234")
    bad_stamp = indicator("198.51.100.6", created="yesterday")
    bad_pattern = indicator("198.51.100.7", pattern="[ipv4-addr:value = ]")
    unknown_marking = stix_id("marking-definition")
    bad_marking = indicator("198.51.100.8", object_marking_refs=[unknown_marking])
    dangling = _relationship(good1["id"], stix_id("indicator"))
    clash_stored = {**stored, "name": "same id and modified, other content"}
    clash_batch = {**good3, "name": "the same in one batch"}
    objects = [
        good1,  # 0
        bad_spec,  # 1
        good2,  # 2
        bad_id,  # 3
        bad_stamp,  # 4
        bad_pattern,  # 5
        bad_marking,  # 6
        good_rel,  # 7
        dangling,  # 8
        clash_stored,  # 9
        good3,  # 10
        clash_batch,  # 11
    ]
    r = site.post(bundle(*objects))
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/json")
    report = r.json()
    assert report["accepted"] == 4
    assert report["created"] == 4
    assert report["rejected"] == 8
    assert [(o["index"], o["id"], o["status"]) for o in report["objects"]] == [
        (0, good1["id"], "created"),
        (2, good2["id"], "created"),
        (7, good_rel["id"], "created"),
        (10, good3["id"], "created"),
    ]
    found = {e["index"]: e for e in report["errors"]}
    expected = {
        1: (bad_spec["id"], "spec_version", "invalid_input"),
        3: ("indicator--1234", "id", "invalid_input"),
        4: (bad_stamp["id"], "created", "invalid_input"),
        5: (bad_pattern["id"], "pattern", "invalid_input"),
        6: (bad_marking["id"], "object_marking_refs[0]", "invalid_input"),
        8: (dangling["id"], "target_ref", "invalid_input"),
        9: (stored["id"], "modified", "conflict"),
        11: (good3["id"], "modified", "conflict"),
    }
    assert {i: (e["id"], e["field"], e["code"]) for i, e in found.items()} == expected
    for error in report["errors"]:
        assert isinstance(error["reason"], str)
        assert len(error["reason"]) > 5
    assert "2.0" in found[1]["reason"]
    assert unknown_marking in found[6]["reason"]
    assert dangling["target_ref"] in found[8]["reason"]

    for obj in (good1, good2, good3, good_rel):
        got = site.get(f"/api/v1/objects/{obj['id']}")
        assert got.status_code == 200, got.text
        assert got.json()["object"] == obj
    for obj in (bad_spec, bad_stamp, bad_pattern, bad_marking, dangling):
        assert site.get(f"/api/v1/objects/{obj['id']}").status_code == 404
    kept = site.get(f"/api/v1/objects/{stored['id']}", version="all").json()["versions"]
    assert [v["object"]["name"] for v in kept] == [stored["name"]]


def test_resubmitting_the_same_objects_changes_nothing(site: Site) -> None:
    obj = indicator("198.51.100.20")
    assert site.post(obj).status_code == 201
    again = site.post(bundle(obj))
    assert again.status_code == 200, again.text
    assert again.json()["created"] == 0
    assert again.json()["objects"] == [{"index": 0, "id": obj["id"], "status": "unchanged"}]


def test_only_the_owner_adds_versions(site: Site) -> None:
    obj = indicator("198.51.100.21")
    assert site.post(obj, distribution="node").status_code == 201
    newer = {**obj, "modified": "2026-02-01T00:00:00.000Z", "name": "hijacked"}
    r = site.post(newer, email="analyst@b.test")
    body = assert_problem(r, 400, "invalid_input")
    assert [(e["id"], e["field"], e["code"]) for e in body["errors"]] == [
        (obj["id"], "id", "forbidden")
    ]
    assert site.get(f"/api/v1/objects/{obj['id']}").json()["object"]["name"] == obj["name"]


def test_an_all_bad_bundle_is_400_with_every_error(site: Site) -> None:
    objects = [
        indicator("198.51.100.30", spec_version="2.0"),
        indicator("198.51.100.31", pattern="not a pattern"),
        {"type": "indicator"},
        "not an object",
    ]
    body = assert_problem(site.post(bundle(*objects)), 400, "invalid_input")
    assert body["accepted"] == 0
    assert body["rejected"] == 4
    assert [e["index"] for e in body["errors"]] == [0, 1, 2, 3]
    assert [e["id"] for e in body["errors"]] == [objects[0]["id"], objects[1]["id"], None, None]
    assert [e["field"] for e in body["errors"][:2]] == ["spec_version", "pattern"]
    assert "object 0" in body["detail"]


# Request size


@pytest.fixture(scope="module")
def small_client(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The same database behind an app that accepts bodies of at most SMALL_LIMIT bytes."""
    shared = site.node.instance
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("small"),
        database_url=shared.settings.database_url,
        max_body_bytes=SMALL_LIMIT,
    )
    with TestClient(create_app(Instance(settings, shared.engine))) as client:
        yield client


def _padded(size: int) -> bytes:
    obj = indicator("198.51.100.40")
    obj["description"] = ""
    filler = size - len(orjson.dumps(obj))
    obj["description"] = "x" * max(filler, 0)
    return orjson.dumps(obj)


def test_a_body_over_the_limit_is_413(site: Site, small_client: TestClient) -> None:
    headers = {**site.auth(), "Content-Type": "application/json"}
    big = _padded(SMALL_LIMIT + 1)
    assert len(big) == SMALL_LIMIT + 1
    r = small_client.post("/api/v1/objects", content=big, headers=headers)
    body = assert_problem(r, 413, "payload_too_large")
    assert str(SMALL_LIMIT) in body["detail"]
    assert site.get(f"/api/v1/objects/{orjson.loads(big)['id']}").status_code == 404


def test_a_streamed_body_over_the_limit_is_413(site: Site, small_client: TestClient) -> None:
    """Without a Content-Length the limit holds on the bytes actually sent."""
    headers = {**site.auth(), "Content-Type": "application/json"}
    big = _padded(SMALL_LIMIT * 3)
    chunks = [big[i : i + 512] for i in range(0, len(big), 512)]
    r = small_client.post("/api/v1/objects", content=iter(chunks), headers=headers)
    assert "content-length" not in r.request.headers
    assert_problem(r, 413, "payload_too_large")
    assert site.get(f"/api/v1/objects/{orjson.loads(big)['id']}").status_code == 404


def test_a_body_at_the_limit_is_accepted(site: Site, small_client: TestClient) -> None:
    headers = {**site.auth(), "Content-Type": "application/json"}
    exact = _padded(SMALL_LIMIT)
    assert len(exact) == SMALL_LIMIT
    r = small_client.post("/api/v1/objects", content=exact, headers=headers)
    assert r.status_code == 201, r.text


# Hostile strings


HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)> & \"q\" \\ \u00fc \u4e2d"


def test_markup_in_a_name_is_stored_verbatim_and_returned_as_json(site: Site) -> None:
    obj = indicator("198.51.100.50", name=HOSTILE, description="</textarea>{{7*7}}${7*7}")
    assert site.post(obj).status_code == 201
    for r in (
        site.get(f"/api/v1/objects/{obj['id']}"),
        site.get("/api/v1/objects", text="<script>"),
        site.get("/api/v1/observables", value="198.51.100.50"),
    ):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert "text/html" not in r.headers["content-type"]
        assert b"<script>alert('x')</script>" in r.content
        assert b"&lt;" not in r.content
    got = site.get(f"/api/v1/objects/{obj['id']}").json()
    assert got["object"]["name"] == HOSTILE
    assert got["object"]["description"] == "</textarea>{{7*7}}${7*7}"
    listed = site.get("/api/v1/objects", text="<script>").json()["items"]
    assert [i["id"] for i in listed] == [obj["id"]]
    assert site.get("/api/v1/objects", text="%").json()["items"] == []


# Paging


def test_keyset_paging_sees_every_object_once_while_others_write(site: Site) -> None:
    org = site.node.add_org("CERT-P", "TJ")
    site.node.add_user("writer@p.test", "CERT-P", Role.ANALYST)

    def add(n: int) -> list[str]:
        objs = [indicator(f"203.0.113.{len(written) + i + 1}") for i in range(n)]
        r = site.post(bundle(*objs), email="writer@p.test", distribution="node")
        assert r.status_code == 201, r.text
        return [o["id"] for o in objs]

    written: list[str] = []
    written += add(23)
    seen: list[str] = []
    stamps: list[str] = []
    cursor: str | None = None
    for page_number in range(50):
        params: dict[str, Any] = {"owner_org": org, "type": "indicator", "limit": 5}
        if cursor is not None:
            params["cursor"] = cursor
        r = site.get("/api/v1/objects", email="analyst@b.test", **params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 5
        seen += [i["id"] for i in page["items"]]
        stamps += [i["handling"]["date_added"] for i in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
        if page_number < 6:
            written += add(2)
    assert cursor is None
    assert len(seen) == len(set(seen)), "an object was listed twice"
    assert seen == written, "paging skipped or reordered objects"
    assert stamps == sorted(stamps)
    assert len(seen) == 23 + 12


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/objects", {"limit": "0"}),
        ("/api/v1/objects", {"limit": "-1"}),
        ("/api/v1/objects", {"limit": "abc"}),
        ("/api/v1/objects", {"limit": "1.5"}),
        ("/api/v1/objects", {"limit": "100000"}),
        ("/api/v1/objects", {"cursor": "!!!"}),
        ("/api/v1/objects", {"cursor": "abc"}),
        ("/api/v1/objects", {"cursor": "bm90LWEtbnVtYmVy"}),
        ("/api/v1/objects", {"cursor": "x" * 500}),
        ("/api/v1/objects", {"added_after": "yesterday"}),
        ("/api/v1/objects", {"added_after": "2026-13-01T00:00:00Z"}),
        ("/api/v1/objects", {"modified_since": "2026-01-01"}),
        ("/api/v1/objects", {"tlp": "purple"}),
        ("/api/v1/objects", {"max_tlp": "purple"}),
        ("/api/v1/objects", {"include_revoked": "perhaps"}),
        ("/api/v1/observables", {"value": "192.0.2.1", "limit": "0"}),
        ("/api/v1/observables", {"value": "192.0.2.1", "cursor": "!!!"}),
        ("/api/v1/observables", {"value": "not an observable at all"}),
        ("/api/v1/observables", {"value": "192.0.2.1", "kind": "no-such-kind"}),
        ("/api/v1/observables", {}),
        ("/api/v1/export/stix", {"added_after": "yesterday"}),
        ("/api/v1/objects/not-a-stix-id", {}),
    ],
)
def test_bad_query_parameters_are_400(site: Site, path: str, params: dict[str, str]) -> None:
    body = assert_problem(site.get(path, **params), 400, "invalid_input")
    assert body["detail"]


def test_added_after_returns_only_later_objects(site: Site) -> None:
    first = indicator("198.51.100.60")
    second = indicator("198.51.100.61")
    assert site.post(first).status_code == 201
    stamp = site.get(f"/api/v1/objects/{first['id']}").json()["handling"]["date_added"]
    assert site.post(second).status_code == 201
    items = site.get("/api/v1/objects", added_after=stamp, limit=1000).json()["items"]
    ids = [i["id"] for i in items]
    assert second["id"] in ids
    assert first["id"] not in ids
    assert all(i["handling"]["date_added"] > stamp for i in items)


# Versions


V1 = "2026-01-01T00:00:00.000Z"
V2 = "2026-02-01T00:00:00.000Z"


def test_version_selection(site: Site) -> None:
    first = indicator("198.51.100.70", created=V1, modified=V1, name="v1")
    second = {**first, "modified": V2, "name": "v2"}
    # The newer version arrives first: the older one must not become the latest.
    assert site.post(second).status_code == 201
    assert site.post(first).status_code == 201
    path = f"/api/v1/objects/{first['id']}"

    def name(**params: str) -> str:
        r = site.get(path, email="analyst@b.test", **params)
        assert r.status_code == 200, r.text
        found: str = r.json()["object"]["name"]
        return found

    assert name() == "v2"
    assert name(version="last") == "v2"
    assert name(version="latest") == "v2"
    assert name(version="first") == "v1"
    assert name(version=V1) == "v1"
    assert name(version=V2) == "v2"
    assert name(version="2026-02-01T00:00:00Z") == "v2"
    every = site.get(path, email="analyst@b.test", version="all").json()
    assert every["id"] == first["id"]
    assert [v["object"]["name"] for v in every["versions"]] == ["v1", "v2"]
    assert_problem(site.get(path, version="2026-03-01T00:00:00.000Z"), 404, "not_found")
    assert_problem(site.get(path, version="soon"), 400, "invalid_input")
    listed = site.get("/api/v1/objects", text="v", type="indicator", limit=1000).json()["items"]
    mine = [i for i in listed if i["id"] == first["id"]]
    assert [i["object"]["name"] for i in mine] == ["v2"]
    found = site.get("/api/v1/observables", value="198.51.100.70").json()["items"]
    assert [i["object"]["name"] for i in found] == ["v2"]


# Service endpoints


def test_healthz_needs_no_key(site: Site) -> None:
    r = site.client.get("/api/v1/healthz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"
    assert "version" in r.json()


def test_openapi_and_docs_are_served(site: Site) -> None:
    spec = site.client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in ("/api/v1/objects", "/api/v1/objects/{stix_id}", "/api/v1/healthz"):
        assert path in paths
    docs = site.client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text


def test_unknown_paths_and_methods_are_problems(site: Site) -> None:
    assert_problem(site.get("/api/v1/no-such-thing"), 404, "not_found")
    r = site.client.put("/api/v1/objects", headers=site.auth(), json={})
    assert_problem(r, 405, "method_not_allowed")
