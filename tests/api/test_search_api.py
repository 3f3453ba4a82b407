"""GET /api/v1/search: modes, filters, facets and pages over HTTP, what each of three orgs sees,
the documented response shape, and hostile or malformed parameters (200 or a clear 400, never
500)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from qalqan.api import create_app
from qalqan.api.search_schemas import SearchPage
from qalqan.domain.principal import Role
from qalqan.testing import STAMP, TestNode, assert_problem, fresh_instance, indicator, stix_id

A, B, C = "analyst@a.test", "analyst@b.test", "analyst@c.test"


@dataclass
class Site:
    node: TestNode
    client: TestClient
    ids: dict[str, str]

    def search(self, email: str = A, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.node.keys[email]}"}
        return self.client.get("/api/v1/search", params=params, headers=headers)

    def ok(self, email: str = A, **params: Any) -> dict[str, Any]:
        response = self.search(email, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        SearchPage.model_validate(body)
        return body

    def post(self, email: str, objects: list[dict[str, Any]], **params: str) -> None:
        headers = {"Authorization": f"Bearer {self.node.keys[email]}"}
        bundle = {"type": "bundle", "id": stix_id("bundle"), "objects": objects}
        response = self.client.post("/api/v1/objects", json=bundle, params=params, headers=headers)
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with fresh_instance(tmp_path_factory.mktemp("search-api")) as inst:
        node = TestNode.create(inst, "CERT-A", "KZ")
        node.add_org("CERT-B", "UZ")
        node.add_org("CERT-C", "KG")
        node.add_user(A, "CERT-A", Role.ANALYST)
        node.add_user(B, "CERT-B", Role.ANALYST)
        node.add_user(C, "CERT-C", Role.READER)
        node.add_group("A and B", "CERT-A", ["CERT-A", "CERT-B"])
        with TestClient(create_app(inst)) as client:
            site = Site(node, client, {})
            public = [indicator(f"192.0.2.{n}", labels=["scanner"]) for n in range(1, 8)]
            public += [
                indicator("phish.example.org", "domain-name", labels=["phishing"]),
                indicator("https://phish.example.org/pay", "url", name="pay page"),
                {
                    "type": "threat-actor",
                    "spec_version": "2.1",
                    "id": stix_id("threat-actor"),
                    "created": STAMP,
                    "modified": STAMP,
                    "name": "Sandworm Team",
                    "description": "Destructive attacks on power grids",
                },
            ]
            site.post(A, public, tlp="green", distribution="node")
            secret = indicator("192.0.2.100", name="A secret", labels=["secret-label"])
            site.post(A, [secret], tlp="amber", distribution="organization")
            shared = indicator("192.0.2.101", name="AB shared", labels=["group-label"])
            site.post(
                A, [shared], tlp="amber", distribution="sharing_group", sharing_group="A and B"
            )
            b_item = indicator("lure.example.org", "domain-name", name="B lure")
            site.post(B, [b_item], tlp="clear", distribution="node")
            site.ids.update(secret=secret["id"], shared=shared["id"])
            yield site


def _values(body: dict[str, Any]) -> list[str]:
    return [item["matched"]["value"] for item in body["items"]]


def test_the_endpoint_is_documented(site: Site) -> None:
    spec = site.client.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/search"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"q", "mode", "type", "org", "country", "tlp", "label", "score", "cursor"} <= names
    assert {"limit", "facets"} <= names
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/SearchPage")
    assert "400" in operation["responses"]


def test_each_mode_over_http(site: Site) -> None:
    body = site.ok(q="192.0.2.0/29")
    assert body["query"]["mode"] == "cidr"
    assert _values(body) == [f"192.0.2.{n}" for n in range(1, 8)]
    assert site.ok(q="192[.]0[.]2[.]3")["query"] == {
        "q": "192[.]0[.]2[.]3",
        "mode": "exact",
        "kind": "ip",
        "value": "192.0.2.3",
        "terms": None,
    }
    assert _values(site.ok(q="hxxps://phish[.]example[.]org/pay")) == [
        "https://phish.example.org/pay"
    ]
    assert _values(site.ok(q="*.example.org")) == ["lure.example.org", "phish.example.org"]
    assert _values(site.ok(q="phish*")) == ["phish.example.org"]
    text = site.ok(q="power grids")
    assert text["query"]["terms"] == ["power", "grids"]
    assert [i["name"] for i in text["items"]] == ["Sandworm Team"]
    assert text["items"][0]["matched"] is None
    by_name = site.ok(q="192.0.2.3", mode="text")["items"]
    assert [(i["name"], i["matched"]) for i in by_name] == [("192.0.2.3", None)]


def test_items_carry_handling_and_score(site: Site) -> None:
    item = site.ok(q="lure.example.org")["items"][0]
    assert item["type"] == "indicator"
    assert item["name"] == "B lure"
    assert item["handling"]["owner_org"]["name"] == "CERT-B"
    assert item["handling"]["tlp"] == "CLEAR"
    assert item["score"] is None or 0 <= item["score"] <= 100


def test_filters_over_http(site: Site) -> None:
    assert _values(site.ok(q="*.example.org", org="CERT-B")) == ["lure.example.org"]
    assert _values(site.ok(q="*.example.org", country="uz")) == ["lure.example.org"]
    assert _values(site.ok(q="*.example.org", tlp="clear")) == ["lure.example.org"]
    assert _values(site.ok(q="*.example.org", label="phishing")) == ["phish.example.org"]
    assert site.ok(q="sandworm", type="indicator")["items"] == []
    assert len(site.ok(q="sandworm", type=["indicator", "threat-actor"])["items"]) == 1
    everything = site.ok(q="192.0.2.0/24", limit=1000)["items"]
    banded = [
        item
        for band in ("low", "medium", "high", "none")
        for item in site.ok(q="192.0.2.0/24", score=band, limit=1000)["items"]
    ]
    assert sorted(i["id"] for i in banded) == sorted(i["id"] for i in everything)


def test_keyset_pages_over_http(site: Site) -> None:
    whole = [i["id"] for i in site.ok(q="192.0.2.0/24", limit=1000)["items"]]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": "192.0.2.0/24", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = site.ok(**params)
        seen.extend(i["id"] for i in body["items"])
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == whole
    assert len(whole) == 9


def test_facets_over_http(site: Site) -> None:
    body = site.ok(q="*.example.org", facets="true")
    facets = body["facets"]
    assert facets["exact"] is True
    assert facets["objects"] == 2
    assert {(f["value"], f["count"]) for f in facets["country"]} == {("KZ", 1), ("UZ", 1)}
    assert {o["name"] for o in facets["org"]} == {"CERT-A", "CERT-B"}
    assert facets["label"] == [{"value": "phishing", "count": 1}]
    assert site.ok(q="*.example.org")["facets"] is None


@pytest.mark.parametrize(
    ("email", "sees_secret", "sees_shared"), [(A, True, True), (B, False, True), (C, False, False)]
)
@pytest.mark.parametrize("q", ["192.0.2.0/24", "192.0.2.10*", "0.0.0.0/0", "192.0.2.100"])
def test_visibility_matrix(
    site: Site, email: str, sees_secret: bool, sees_shared: bool, q: str
) -> None:
    body = site.ok(email, q=q, facets="true", limit=1000)
    ids = {item["id"] for item in body["items"]}
    assert (site.ids["secret"] in ids) is sees_secret
    assert (site.ids["shared"] in ids) is (sees_shared and q != "192.0.2.100")
    facets = body["facets"]
    assert facets["objects"] == len(ids)
    labels = {f["value"] for f in facets["label"]}
    assert ("secret-label" in labels) is (site.ids["secret"] in ids)
    assert ("group-label" in labels) is (site.ids["shared"] in ids)
    assert sum(f["count"] for f in facets["tlp"]) == len(ids)


def test_invisible_objects_leave_no_trace_in_filters(site: Site) -> None:
    for label in ("secret-label", "group-label"):
        body = site.ok(C, q="0.0.0.0/0", label=label, facets="true")
        assert body["items"] == []
        assert body["facets"]["objects"] == 0


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


HOSTILE = [
    '"',
    "NEAR(a b)",
    "*",
    "OR",
    "a OR b AND NOT c",
    "'; DROP TABLE object_versions; --",
    "%",
    "_",
    "%%__",
    "(a|b)*[^x]+$",
    "<script>alert(1)</script>",
    "x" * 10_000,
    "sandworm\x00team",
    "\x00",
    "body:sandworm",
    "*.",
    "1.2.3.4/77",
    "ß*",
    "🙂",
]


@pytest.mark.parametrize("q", HOSTILE)
@pytest.mark.parametrize("mode", ["auto", "text", "exact", "cidr", "suffix", "prefix"])
def test_hostile_queries_get_200_or_a_clear_400(site: Site, q: str, mode: str) -> None:
    response = site.search(C, q=q, mode=mode, facets="true")
    if response.status_code == 200:
        SearchPage.model_validate(response.json())
    else:
        body = assert_problem(response, 400, "invalid_input")
        assert body["field"] == "q"


def test_syntax_is_searched_as_text(site: Site) -> None:
    assert [i["name"] for i in site.ok(q="sandworm\x00team")["items"]] == ["Sandworm Team"]
    assert [i["name"] for i in site.ok(q='"Sandworm" (Team)')["items"]] == ["Sandworm Team"]
    assert site.ok(q="sandworm OR nothing")["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x", "mode": "regex"}, "mode"),
        ({"q": "x", "tlp": "purple"}, "tlp"),
        ({"q": "x", "score": "huge"}, "score"),
        ({"q": "x", "limit": 0}, "limit"),
        ({"q": "x", "limit": 5000}, "limit"),
        ({"q": "x", "cursor": "%%%"}, "cursor"),
        ({"q": "192.0.2.0/24", "cursor": "dGV4dDowOjE"}, "cursor"),
        ({"q": "192.0.2.0/24", "cursor": _cursor("cidr:2:99999999999999999999999")}, "cursor"),
        ({"q": "192.0.2.0/24", "cursor": _cursor("cidr:-1:5")}, "cursor"),
        ({"q": "example.org", "mode": "cidr"}, "q"),
        ({"q": "x", "facets": "maybe"}, "facets"),
    ],
)
def test_bad_parameters_are_problem_documents(
    site: Site, params: dict[str, Any], field: str
) -> None:
    body = assert_problem(site.search(A, **params), 400, "invalid_input")
    assert body["field"] == field


def test_search_needs_a_key(site: Site) -> None:
    assert_problem(site.client.get("/api/v1/search", params={"q": "x"}), 401, "unauthorized")
