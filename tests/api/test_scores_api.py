"""Scores over REST: one indicator's score, and listings by score that show only what the
caller may see, sorted and filtered in SQL, paged by keyset; bad parameters are 400s."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from qalqan.domain.principal import Role
from qalqan.testing import STAMP, TestNode, assert_problem, indicator, stix_id

ADMIN = "admin@a.test"
B = "analyst@b.test"
C = "analyst@c.test"


@pytest.fixture
def site(node: TestNode) -> TestNode:
    node.add_org("CERT-B", "UZ")
    node.add_org("CERT-C", "KG")
    node.add_user(B, "CERT-B", Role.ANALYST)
    node.add_user(C, "CERT-C", Role.ANALYST)
    return node


def auth(node: TestNode, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.keys[email]}"}


def post(
    client: TestClient, node: TestNode, obj: dict[str, Any], email: str = ADMIN, **params: Any
) -> str:
    query = {"tlp": "green", "distribution": "node", **params}
    r = client.post("/api/v1/objects", params=query, json=obj, headers=auth(node, email))
    assert r.status_code == 201, r.text
    return str(obj["id"])


def listed(client: TestClient, node: TestNode, email: str, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/api/v1/scores", params=params, headers=auth(node, email))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_one_score(site: TestNode, client: TestClient) -> None:
    ref = post(client, site, indicator("198.51.100.1", confidence=80))
    r = client.get(f"/api/v1/indicators/{ref}/score", headers=auth(site, B))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == ref
    assert (body["kind"], body["confidence"], body["base"], body["false_positives"]) == (
        "ip",
        80,
        80,
        0,
    )
    assert body["score"] == body["stored_score"] == 80
    assert body["model"] == {"tau_days": 30.0, "delta": 0.5}
    assert (body["threshold"], body["cutoff"]) == (30, 30.0)
    assert body["detection"] is True
    assert body["expired_at"] is None
    assert body["decays_at"] > body["reset_at"]


def test_a_false_positive_shows(site: TestNode, client: TestClient) -> None:
    ref = post(client, site, indicator("198.51.100.2"))
    report = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": stix_id("sighting"),
        "created": STAMP,
        "modified": STAMP,
        "sighting_of_ref": ref,
        "x_qalqan_sighting_kind": "false-positive",
    }
    post(client, site, report, email=B)
    body = client.get(f"/api/v1/indicators/{ref}/score", headers=auth(site, ADMIN)).json()
    assert (body["false_positives"], body["score"], body["detection"]) == (1, 25, False)


def test_what_each_org_sees(site: TestNode, client: TestClient) -> None:
    group = site.add_group("energy", "CERT-A", ["CERT-B"])
    public = post(client, site, indicator("198.51.100.10"))
    private = post(client, site, indicator("198.51.100.11"), distribution="organization")
    shared = post(
        client,
        site,
        indicator("198.51.100.12"),
        tlp="amber",
        distribution="sharing_group",
        sharing_group=group,
    )
    own_c = post(client, site, indicator("198.51.100.13"), email=C, distribution="organization")
    seen = {
        ADMIN: {public, private, shared},
        B: {public, shared},
        C: {public, own_c},
    }
    everything = {public, private, shared, own_c}
    for email, expected in seen.items():
        assert {i["id"] for i in listed(client, site, email)} == expected, email
        for ref in everything:
            r = client.get(f"/api/v1/indicators/{ref}/score", headers=auth(site, email))
            if ref in expected:
                assert r.status_code == 200, (email, ref, r.text)
            else:
                assert_problem(r, 404, "not_found")


def test_not_an_indicator_or_unknown(site: TestNode, client: TestClient) -> None:
    malware = {
        "type": "malware",
        "spec_version": "2.1",
        "id": stix_id("malware"),
        "created": STAMP,
        "modified": STAMP,
        "name": "x",
        "is_family": True,
    }
    ref = post(client, site, malware)
    headers = auth(site, ADMIN)
    assert_problem(client.get(f"/api/v1/indicators/{ref}/score", headers=headers), 404, "not_found")
    missing = stix_id("indicator")
    assert_problem(
        client.get(f"/api/v1/indicators/{missing}/score", headers=headers), 404, "not_found"
    )
    assert_problem(
        client.get("/api/v1/indicators/nonsense/score", headers=headers), 400, "invalid_input"
    )
    assert client.get(f"/api/v1/indicators/{ref}/score").status_code == 401


def test_sorted_filtered_and_paged(site: TestNode, client: TestClient) -> None:
    confidences = [10, 35, 35, 35, 60, 90]
    refs = {}
    for i, confidence in enumerate(confidences):
        refs[post(client, site, indicator(f"198.51.100.{20 + i}", confidence=confidence))] = (
            confidence
        )
    domain = post(client, site, indicator("evil.example", kind="domain-name", confidence=70))
    refs[domain] = 70

    def walk(**params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            r = client.get("/api/v1/scores", params=query, headers=auth(site, ADMIN))
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["items"]) <= 2
            items.extend(page["items"])
            cursor = page["next"]
            if cursor is None:
                return items

    down = walk()
    assert [i["stored_score"] for i in down] == sorted(refs.values(), reverse=True)
    assert len({i["id"] for i in down}) == len(refs)
    # Ties are ordered by id, the second part of the key.
    ties = [i["id"] for i in down if i["stored_score"] == 35]
    assert ties == sorted(ties, reverse=True)
    up = walk(sort="score")
    assert [i["id"] for i in up] == [i["id"] for i in reversed(down)]
    assert {i["id"] for i in walk(min=35, max=60)} == {r for r, c in refs.items() if 35 <= c <= 60}
    assert [i["id"] for i in walk(kind="domain")] == [domain]
    assert {i["id"] for i in walk(kind=["ip", "domain"])} == set(refs)
    # Confidence 10 is doubtful, not decayed: it takes part until half of it has gone.
    assert {i["id"] for i in walk(detection="true")} == set(refs)
    assert walk(detection="false") == []


def test_detection_filter(site: TestNode, client: TestClient) -> None:
    kept = post(client, site, indicator("198.51.100.40"))
    gone = post(client, site, indicator("198.51.100.41", x_qalqan_detect=False))
    assert [i["id"] for i in listed(client, site, ADMIN, detection="true")] == [kept]
    off = listed(client, site, ADMIN, detection="false")
    assert [i["id"] for i in off] == [gone]
    assert off[0]["detection"] is False


@pytest.mark.parametrize(
    "params",
    [
        {"min": -1},
        {"max": 101},
        {"min": "high"},
        {"min": 60, "max": 50},
        {"sort": "name"},
        {"kind": "wallet"},
        {"detection": "maybe"},
        {"limit": 0},
        {"limit": 1001},
        {"cursor": "not-a-cursor"},
        {"cursor": "WzEsMl0"},
    ],
)
def test_bad_parameters(site: TestNode, client: TestClient, params: dict[str, Any]) -> None:
    r = client.get("/api/v1/scores", params=params, headers=auth(site, ADMIN))
    assert_problem(r, 400, "invalid_input")
