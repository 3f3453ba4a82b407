"""``/api/v1/stats/...``: visibility, grouping, bounded periods, feeds' health, bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from qalqan.domain.handling import TLP, Distribution
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.testing import STAMP, TestNode, assert_problem, indicator, stix_id


def _submit(
    node: TestNode, email: str, tlp: TLP, distribution: Distribution, *objects: Any
) -> None:
    with node.instance.begin() as conn:
        report = import_objects(
            conn, node.principals[email], list(objects), HandlingRequest(tlp, distribution)
        )
    assert not report.rejected


@pytest.fixture
def site(node: TestNode, client: TestClient) -> TestNode:
    node.add_org("CERT-B", "UZ")
    node.add_user("analyst@a.test", "CERT-A")
    node.add_user("analyst@b.test", "CERT-B")
    shared = indicator("203.0.113.5")
    _submit(node, "analyst@b.test", TLP.GREEN, Distribution.NODE, shared, indicator("203.0.113.6"))
    _submit(node, "analyst@b.test", TLP.RED, Distribution.ORGANIZATION, indicator("203.0.113.5"))
    _submit(node, "analyst@a.test", TLP.AMBER, Distribution.NODE, indicator("203.0.113.5"))
    seen = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": stix_id("sighting"),
        "created": STAMP,
        "modified": STAMP,
        "sighting_of_ref": shared["id"],
        "count": 7,
    }
    _submit(node, "analyst@a.test", TLP.AMBER, Distribution.ORGANIZATION, seen)
    return node


def _get(
    client: TestClient, node: TestNode, email: str, path: str, **params: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {node.keys[email]}"}
    return client.get(f"/api/v1/stats{path}", headers=headers, params=params)


def test_objects_grouped_per_viewer(site: TestNode, client: TestClient) -> None:
    body = _get(client, site, "analyst@a.test", "/objects", by="org,tlp", since="1d").json()
    assert body["by"] == ["org", "tlp"]
    indicators = {
        (r["org"]["name"], r["tlp"]): r["objects"] for r in body["rows"] if r["tlp"] != "CLEAR"
    }
    assert indicators == {("CERT-A", "AMBER"): 2, ("CERT-B", "GREEN"): 2}
    theirs = _get(client, site, "analyst@b.test", "/objects", by=["type", "tlp"]).json()
    rows = {(r["type"], r["tlp"]): r["versions"] for r in theirs["rows"]}
    assert rows[("indicator", "RED")] == 1
    assert ("sighting", "AMBER") not in rows  # A's org-only sighting
    assert theirs["rows"][0]["day"] is None


def test_sightings_and_top_values(site: TestNode, client: TestClient) -> None:
    mine = _get(client, site, "analyst@a.test", "/sightings", by="day,kind").json()
    assert [(r["kind"], r["sightings"], r["count"]) for r in mine["rows"]] == [("sighting", 1, 7)]
    assert (mine["sightings"], mine["count"]) == (1, 7)
    theirs = _get(client, site, "analyst@b.test", "/sightings").json()
    assert (theirs["sightings"], theirs["count"]) == (0, 0)
    top_a = _get(client, site, "analyst@a.test", "/top-values", kind="ip").json()
    assert [(v["value"], v["objects"], v["orgs"]) for v in top_a["items"]] == [
        ("203.0.113.5", 2, 2)
    ]
    top_b = _get(client, site, "analyst@b.test", "/top-values", limit=1).json()
    assert [(v["value"], v["objects"]) for v in top_b["items"]] == [("203.0.113.5", 3)]


def test_feeds_health_lists_what_the_caller_may_run(site: TestNode, client: TestClient) -> None:
    made = client.post(
        "/api/v1/feeds",
        headers={"Authorization": f"Bearer {site.keys['admin@a.test']}"},
        json={"name": "drop", "source": "text", "url": "https://feeds.example/drop.txt"},
    )
    assert made.status_code == 201, made.text
    mine = _get(client, site, "analyst@a.test", "/feeds").json()["items"]
    assert [(f["name"], f["status"], f["healthy"], f["last_run"]) for f in mine] == [
        ("drop", "never-run", False, None)
    ]
    assert _get(client, site, "analyst@b.test", "/feeds").json()["items"] == []


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/objects", {"since": "400d"}, "since"),
        ("/objects", {"since": "2020-01-01", "until": "2022-01-01"}, "since"),
        ("/objects", {"since": "whenever"}, "since"),
        ("/objects", {"until": "1d", "since": "2h"}, "since"),
        ("/objects", {"by": "day,kind"}, "by"),
        ("/sightings", {"by": "tlp"}, "by"),
        ("/top-values", {"kind": "ipv9"}, "kind"),
        ("/top-values", {"until": "tomorrow-ish"}, "until"),
    ],
)
def test_bad_parameters_name_the_field(
    site: TestNode, client: TestClient, path: str, params: dict[str, str], field: str
) -> None:
    response = _get(client, site, "analyst@a.test", path, **params)
    assert assert_problem(response, 400, "invalid_input")["field"] == field


def test_needs_a_key_and_is_documented(client: TestClient) -> None:
    assert_problem(client.get("/api/v1/stats/objects"), 401, "unauthorized")
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/stats/objects", "/api/v1/stats/feeds"} <= set(paths)
