"""Org default handling and sharing-group membership, through the API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qalqan.domain.principal import Role
from qalqan.testing import TestNode, assert_problem, indicator


def _auth(node: TestNode, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.keys[email]}"}


def test_org_defaults_apply_to_submissions(node: TestNode, client: TestClient) -> None:
    org_b = node.add_org("CERT-B")
    node.add_user("admin@b.test", "CERT-B", Role.ORG_ADMIN)
    node.add_user("analyst@b.test", "CERT-B", Role.ANALYST)
    r = client.patch(
        f"/api/v1/orgs/{org_b}",
        json={"default_tlp": "green", "default_distribution": "organization"},
        headers=_auth(node, "admin@b.test"),
    )
    assert r.status_code == 200, r.text
    assert (r.json()["default_tlp"], r.json()["default_distribution"]) == ("GREEN", "organization")
    obj = indicator("198.51.100.61")
    r = client.post("/api/v1/objects", json=obj, headers=_auth(node, "analyst@b.test"))
    assert r.status_code == 201, r.text
    got = client.get(f"/api/v1/objects/{obj['id']}", headers=_auth(node, "analyst@b.test"))
    assert got.json()["handling"]["tlp"] == "GREEN"
    assert got.json()["handling"]["distribution"] == "organization"
    hidden = client.get(f"/api/v1/objects/{obj['id']}", headers=_auth(node, "admin@a.test"))
    assert_problem(hidden, 404, "not_found")


def test_org_defaults_refuse_what_the_rules_forbid(node: TestNode, client: TestClient) -> None:
    org_a = node.org_ids["CERT-A"]
    admin = _auth(node, "admin@a.test")
    r = client.patch(
        f"/api/v1/orgs/{org_a}",
        json={"default_tlp": "red", "default_distribution": "node"},
        headers=admin,
    )
    body = assert_problem(r, 400, "invalid_input")
    assert "TLP:RED" in body["detail"]
    r = client.patch(
        f"/api/v1/orgs/{org_a}", json={"default_distribution": "sharing_group"}, headers=admin
    )
    assert_problem(r, 400, "invalid_input")
    r = client.patch(f"/api/v1/orgs/{org_a}", json={"default_tlp": "purple"}, headers=admin)
    assert_problem(r, 400, "invalid_input")


def test_only_the_orgs_admins_change_its_defaults(node: TestNode, client: TestClient) -> None:
    node.add_org("CERT-B")
    node.add_user("admin@b.test", "CERT-B", Role.ORG_ADMIN)
    node.add_user("analyst@a2.test", "CERT-A", Role.ANALYST)
    org_a = node.org_ids["CERT-A"]
    for email in ("admin@b.test", "analyst@a2.test"):
        r = client.patch(
            f"/api/v1/orgs/{org_a}", json={"default_tlp": "clear"}, headers=_auth(node, email)
        )
        assert_problem(r, 403, "forbidden")


def test_group_members_come_and_go(node: TestNode, client: TestClient) -> None:
    node.add_org("CERT-B")
    node.add_org("CERT-C", "KG")
    key_c = node.add_user("analyst@c.test", "CERT-C")
    group = node.add_group("energy", "CERT-A", ["CERT-B"])
    admin = _auth(node, "admin@a.test")
    obj = indicator("198.51.100.62")
    r = client.post(
        "/api/v1/objects?tlp=amber&distribution=sharing_group&sharing_group=energy",
        json=obj,
        headers=admin,
    )
    assert r.status_code == 201, r.text
    c = {"Authorization": f"Bearer {key_c}"}
    assert client.get(f"/api/v1/objects/{obj['id']}", headers=c).status_code == 404
    org_c = node.org_ids["CERT-C"]
    r = client.post(f"/api/v1/sharing-groups/{group}/members", json={"org": org_c}, headers=admin)
    assert r.status_code == 200, r.text
    assert org_c in r.json()["member_org_ids"]
    assert client.get(f"/api/v1/objects/{obj['id']}", headers=c).status_code == 200
    r = client.delete(f"/api/v1/sharing-groups/{group}/members/{org_c}", headers=admin)
    assert r.status_code == 200, r.text
    assert client.get(f"/api/v1/objects/{obj['id']}", headers=c).status_code == 404
    owner = node.org_ids["CERT-A"]
    r = client.delete(f"/api/v1/sharing-groups/{group}/members/{owner}", headers=admin)
    assert_problem(r, 400, "invalid_input")


def test_root_leads_to_the_api_docs(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (302, 307)
    assert r.headers["location"] == "/docs"


def test_a_disabled_users_keys_are_refused(node: TestNode, client: TestClient) -> None:
    node.add_org("CERT-B")
    node.add_user("admin@b.test", "CERT-B", Role.ORG_ADMIN)
    key = node.add_user("analyst@b.test", "CERT-B")
    user_id = node.principals["analyst@b.test"].user_id
    analyst = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/me", headers=analyst).status_code == 200
    r = client.patch(
        f"/api/v1/users/{user_id}", json={"disabled": True}, headers=_auth(node, "admin@b.test")
    )
    assert r.status_code == 200, r.text
    assert r.json()["disabled"] is True
    assert_problem(client.get("/api/v1/me", headers=analyst), 401, "unauthorized")
    r = client.patch(
        f"/api/v1/users/{user_id}", json={"disabled": False}, headers=_auth(node, "admin@b.test")
    )
    assert client.get("/api/v1/me", headers=analyst).status_code == 200


def test_who_may_disable_whom(node: TestNode, client: TestClient) -> None:
    node.add_org("CERT-B")
    node.add_user("admin@b.test", "CERT-B", Role.ORG_ADMIN)
    node.add_user("analyst@b.test", "CERT-B")
    admin_a = node.principals["admin@a.test"].user_id
    analyst_b = node.principals["analyst@b.test"].user_id
    admin_b = node.principals["admin@b.test"].user_id
    # Another org's admin, a plain analyst, and anyone on themselves are refused.
    r = client.patch(
        f"/api/v1/users/{admin_a}", json={"disabled": True}, headers=_auth(node, "admin@b.test")
    )
    assert_problem(r, 403, "forbidden")
    r = client.patch(
        f"/api/v1/users/{admin_b}", json={"disabled": True}, headers=_auth(node, "analyst@b.test")
    )
    assert_problem(r, 403, "forbidden")
    r = client.patch(
        f"/api/v1/users/{admin_a}", json={"disabled": True}, headers=_auth(node, "admin@a.test")
    )
    assert_problem(r, 400, "invalid_input")
    r = client.patch(
        f"/api/v1/users/{analyst_b}",
        json={"disabled": "maybe"},
        headers=_auth(node, "admin@a.test"),
    )
    assert_problem(r, 400, "invalid_input")
