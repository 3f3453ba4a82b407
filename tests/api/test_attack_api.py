"""``/api/v1/attack/techniques``: counts per viewer, pages, the technique detail, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from qalqan.domain.handling import TLP, Distribution
from qalqan.intel import attack
from qalqan.intel.importer import HandlingRequest, import_objects, load_document, objects_of
from qalqan.testing import STAMP, TestNode, assert_problem, indicator, stix_id

T0800 = "attack-pattern--19a71d1e-6334-4233-8260-b749cae37953"
T0801 = "attack-pattern--2d0d40ad-22fa-4cc8-b264-072557e1364b"


def _relationship(source: str, target: str) -> dict[str, Any]:
    return {
        "type": "relationship",
        "spec_version": "2.1",
        "id": stix_id("relationship"),
        "created": STAMP,
        "modified": STAMP,
        "relationship_type": "indicates",
        "source_ref": source,
        "target_ref": target,
    }


def _submit(node: TestNode, email: str, distribution: Distribution, *objects: Any) -> None:
    with node.instance.begin() as conn:
        report = import_objects(
            conn,
            node.principals[email],
            list(objects),
            HandlingRequest(
                TLP.GREEN if distribution is Distribution.NODE else TLP.AMBER, distribution
            ),
        )
    assert not report.rejected


@pytest.fixture
def site(node: TestNode, client: TestClient, attack_bundle: Path) -> TestNode:
    node.add_org("CERT-B", "UZ")
    node.add_org("CERT-C", "KG")
    node.add_user("analyst@b.test", "CERT-B")
    node.add_user("analyst@c.test", "CERT-C")
    objects = objects_of(load_document(attack_bundle.read_bytes()))
    with node.instance.begin() as conn:
        attack.import_attack(conn, node.principals["admin@a.test"], objects)
    shared = [indicator(f"192.0.2.{i}") for i in range(3)]
    _submit(
        node,
        "analyst@b.test",
        Distribution.NODE,
        *shared,
        *(_relationship(i["id"], T0801) for i in shared),
        _relationship(shared[0]["id"], T0800),
    )
    private = indicator("198.51.100.1")
    _submit(
        node,
        "analyst@b.test",
        Distribution.ORGANIZATION,
        private,
        _relationship(private["id"], T0800),
        _relationship(private["id"], T0801),
    )
    return node


def _get(
    client: TestClient, node: TestNode, email: str, path: str, **params: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {node.keys[email]}"}
    return client.get(f"/api/v1{path}", headers=headers, params=params)


def test_top_techniques_per_viewer(site: TestNode, client: TestClient) -> None:
    seen_c = _get(client, site, "analyst@c.test", "/attack/techniques", domain="ics").json()
    assert [(i["attack_id"], i["intelligence"]) for i in seen_c["items"]] == [
        ("T0801", 3),
        ("T0800", 1),
    ]
    assert seen_c["period"] is None
    assert seen_c["items"][0]["tactics"] == ["collection"]
    assert seen_c["items"][0]["orgs"] is None
    seen_b = _get(client, site, "analyst@b.test", "/attack/techniques", by="org").json()
    assert [(i["attack_id"], i["intelligence"]) for i in seen_b["items"]] == [
        ("T0801", 4),
        ("T0800", 2),
    ]
    assert seen_b["items"][0]["orgs"] == [
        {
            "id": site.org_ids["CERT-B"],
            "name": "CERT-B",
            "country": "UZ",
            "intelligence": 4,
            "sightings": 0,
            "sighting_reports": 0,
        }
    ]
    assert _get(client, site, "analyst@c.test", "/attack/techniques", since="1h").json()["items"]
    empty = _get(client, site, "analyst@c.test", "/attack/techniques", country="KG").json()
    assert empty["items"] == []


def test_pages_follow_the_sort_key(site: TestNode, client: TestClient) -> None:
    first = _get(client, site, "analyst@c.test", "/attack/techniques", limit=1).json()
    assert [i["attack_id"] for i in first["items"]] == ["T0801"]
    second = _get(
        client, site, "analyst@c.test", "/attack/techniques", limit=1, cursor=first["next"]
    ).json()
    assert [i["attack_id"] for i in second["items"]] == ["T0800"]
    assert second["next"] is None
    listing = _get(
        client, site, "analyst@c.test", "/attack/techniques", include_zero="true", limit=1000
    ).json()
    assert len(listing["items"]) == 95 - 12


def test_technique_detail(site: TestNode, client: TestClient) -> None:
    detail = _get(client, site, "analyst@c.test", "/attack/techniques/T0801", limit=2).json()
    assert detail["technique"]["name"] == "Monitor Process State"
    assert detail["technique"]["intelligence"] == 3
    assert detail["description"]
    assert [i["type"] for i in detail["items"]] == ["indicator", "indicator"]
    assert detail["items"][0]["handling"]["owner_org"]["name"] == "CERT-B"
    rest = _get(
        client, site, "analyst@c.test", "/attack/techniques/t0801", cursor=detail["next"]
    ).json()
    assert len(rest["items"]) == 1
    assert rest["next"] is None
    missing = _get(client, site, "analyst@c.test", "/attack/techniques/T0999")
    assert_problem(missing, 404, "not_found")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "last week"}, "since"),
        ({"until": "2020-13-01"}, "until"),
        ({"domain": "cloud"}, "domain"),
        ({"sort": "name"}, "sort"),
        ({"cursor": "x"}, "cursor"),
        ({"by": "country"}, "by"),
        ({"country": "XX"}, "country"),
        ({"org": "CERT-Z"}, "org"),
    ],
)
def test_bad_parameters_name_the_field(
    site: TestNode, client: TestClient, params: dict[str, str], field: str
) -> None:
    response = _get(client, site, "analyst@c.test", "/attack/techniques", **params)
    assert assert_problem(response, 400, "invalid_input")["field"] == field


def test_needs_a_key_and_is_documented(client: TestClient) -> None:
    assert_problem(client.get("/api/v1/attack/techniques"), 401, "unauthorized")
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"TechniquePagePublic", "TechniqueDetailPublic", "TechniqueSummary"} <= set(schemas)
