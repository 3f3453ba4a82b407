"""``GET /api/v1/observables/{type}/{value}/related`` and ``/objects/{id}/related`` over HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient

from qalqan.instance import Instance
from qalqan.testing import TestNode, assert_problem, bundle, indicator


def _setup(instance: Instance) -> TestNode:
    node = TestNode.create(instance, "CERT-A", "KZ")
    node.add_org("CERT-B", "UZ")
    node.add_org("CERT-C", "KG")
    for email, org in (("a@a.test", "CERT-A"), ("b@b.test", "CERT-B"), ("c@c.test", "CERT-C")):
        node.add_user(email, org)
    return node


def _get(client: TestClient, node: TestNode, who: str, path: str) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {node.keys[who]}"})


def _post(client: TestClient, node: TestNode, who: str, body: Any, dist: str) -> Any:
    response = client.post(
        f"/api/v1/objects?distribution={dist}&tlp=amber",
        json=body,
        headers={"Authorization": f"Bearer {node.keys[who]}"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_related_counts_depend_on_the_viewer(instance: Instance, client: TestClient) -> None:
    node = _setup(instance)
    url = "https://login.evil.example/path?q=<script>"
    _post(
        client, node, "a@a.test", bundle(indicator("91.215.85.99"), indicator(url, "url")), "node"
    )
    _post(client, node, "b@b.test", bundle(indicator("91.215.85.99")), "organization")
    path = "/api/v1/observables/ipv4-addr/91.215.85.99/related"
    b = _get(client, node, "b@b.test", path).json()
    c = _get(client, node, "c@c.test", path).json()
    assert b["total"] == 2
    assert c["total"] == 1
    assert {o["org"]["name"] for o in b["orgs"]} == {"CERT-A", "CERT-B"}
    assert [o["org"]["name"] for o in c["orgs"]] == ["CERT-A"]
    assert c["orgs"][0]["org"]["country"] == "KZ"
    assert "CERT-B" not in str(c)
    assert c["items"][0]["relation"] == "same"
    # A URL travels in the path, percent-encoded (defanged is fine too).
    found = _get(
        client, node, "c@c.test", "/api/v1/observables/url/" + quote(url, safe="") + "/related"
    )
    assert found.status_code == 200, found.text
    assert found.json()["query"]["value"] == "https://login.evil.example/path?q=<script>"
    assert found.json()["total"] == 1
    by_domain = _get(
        client, node, "c@c.test", "/api/v1/observables/domain-name/login.evil[.]example/related"
    )
    assert by_domain.json()["relations"] == {"url": 1}


def test_object_related_and_its_errors(instance: Instance, client: TestClient) -> None:
    node = _setup(instance)
    mine = indicator("evil.example", "domain-name")
    private = indicator("evil.example", "domain-name")
    _post(client, node, "a@a.test", bundle(mine), "node")
    _post(client, node, "b@b.test", bundle(private), "organization")
    _post(client, node, "c@c.test", bundle(indicator("www.evil.example", "domain-name")), "node")
    got = _get(client, node, "b@b.test", f"/api/v1/objects/{mine['id']}/related").json()
    assert [v["relations"] for v in got["values"]] == [{"same": 1, "child": 1}]
    assert_problem(
        _get(client, node, "c@c.test", f"/api/v1/objects/{private['id']}/related"), 404, "not_found"
    )
    assert_problem(
        _get(client, node, "c@c.test", "/api/v1/observables/bogus/x/related"), 400, "invalid_input"
    )
    assert_problem(
        _get(client, node, "c@c.test", "/api/v1/observables/ipv4-addr/evil.example/related"),
        400,
        "invalid_input",
    )
    assert_problem(
        _get(client, node, "c@c.test", "/api/v1/observables/ip/1.2.3.4/related?cursor=%%%"),
        400,
        "invalid_input",
    )
    assert client.get("/api/v1/observables/ip/1.2.3.4/related").status_code == 401
