"""Who may call what: API-key authentication, roles, org boundaries, revocation of objects and
keys, and secrets that must never be shown again or written to the audit log."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qalqan.api import create_app
from qalqan.domain.handling import TLP
from qalqan.domain.principal import Role
from qalqan.store.tables import audit_log
from qalqan.testing import TestNode, assert_problem, fresh_instance, indicator, stix_id

USERS = {
    "orgadmin@a.test": ("CERT-A", Role.ORG_ADMIN),
    "analyst@a.test": ("CERT-A", Role.ANALYST),
    "reader@a.test": ("CERT-A", Role.READER),
    "analyst@b.test": ("CERT-B", Role.ANALYST),
    "orgadmin@b.test": ("CERT-B", Role.ORG_ADMIN),
}
NODE_ADMIN = "admin@a.test"
SOME_ID = "indicator--6c2b3f1e-2d4a-4b8e-9c1d-0f5e7a3b9d21"


@dataclass
class Site:
    node: TestNode
    client: TestClient
    secrets: list[str]

    def auth(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.keys[email]}"}

    def call(self, method: str, path: str, email: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, headers=self.auth(email), **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with fresh_instance(tmp_path_factory.mktemp("access")) as inst:
        node = TestNode.create(inst, "CERT-A", "KZ")
        node.add_org("CERT-B", "UZ")
        for email, (org, role) in USERS.items():
            node.add_user(email, org, role)
        with TestClient(create_app(inst)) as client:
            yield Site(node, client, list(node.keys.values()))


# Authentication

BAD_AUTHORIZATION = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic YWRtaW5AYS50ZXN0OnNlY3JldA==",
    "Token qk_abcdefghijklmnop",
    "Bearerqk_abcdefghijklmnop",
    "Bearer not-a-qalqan-key",
    "Bearer qk_" + "A" * 43,
    "Bearer qk_" + "A" * 400,
]
CALLS = [
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/objects"),
    ("POST", "/api/v1/objects"),
    ("GET", f"/api/v1/objects/{SOME_ID}"),
    ("DELETE", f"/api/v1/objects/{SOME_ID}"),
    ("GET", "/api/v1/observables?value=192.0.2.1"),
    ("GET", "/api/v1/export/stix"),
    ("GET", "/api/v1/orgs"),
    ("POST", "/api/v1/keys"),
    ("GET", "/api/v1/users"),
]


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION, ids=lambda a: repr(a)[:24])
@pytest.mark.parametrize(("method", "path"), CALLS, ids=lambda v: str(v)[:40])
def test_requests_without_a_valid_key_get_401(
    site: Site, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = orjson.dumps(indicator("192.0.2.1")) if method == "POST" else None
    r = site.client.request(method, path, headers=headers, content=body)
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"


def test_a_revoked_key_gets_401(site: Site) -> None:
    made = site.call("POST", "/api/v1/keys", "analyst@b.test", json={"label": "to revoke"})
    assert made.status_code == 201, made.text
    key = made.json()
    site.secrets.append(key["key"])
    own = {"Authorization": f"Bearer {key['key']}"}
    assert site.client.get("/api/v1/me", headers=own).status_code == 200
    gone = site.call("DELETE", f"/api/v1/keys/{key['id']}", "analyst@b.test")
    assert gone.status_code == 200, gone.text
    assert gone.json()["revoked"] is not None
    assert_problem(site.client.get("/api/v1/me", headers=own), 401, "unauthorized")
    assert_problem(site.client.get("/api/v1/objects", headers=own), 401, "unauthorized")
    # The user's other key still works.
    assert site.call("GET", "/api/v1/me", "analyst@b.test").status_code == 200


def test_me_names_the_caller(site: Site) -> None:
    r = site.call("GET", "/api/v1/me", "reader@a.test")
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["email"] == "reader@a.test"
    assert me["role"] == "reader"
    assert me["org"]["id"] == site.node.org_ids["CERT-A"]
    assert me["org"]["identity_id"] == f"identity--{site.node.org_ids['CERT-A']}"


# Roles


def test_reader_may_read_but_not_submit(site: Site) -> None:
    obj = indicator("192.0.2.10")
    r = site.call("POST", "/api/v1/objects", "reader@a.test", json=obj)
    assert_problem(r, 403, "forbidden")
    assert site.call("GET", f"/api/v1/objects/{obj['id']}", NODE_ADMIN).status_code == 404
    assert site.call("GET", "/api/v1/objects", "reader@a.test").status_code == 200


def test_analyst_may_submit(site: Site) -> None:
    r = site.call("POST", "/api/v1/objects", "analyst@a.test", json=indicator("192.0.2.11"))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("email", ["analyst@a.test", "reader@a.test", "orgadmin@a.test"])
def test_only_node_admins_create_orgs(site: Site, email: str) -> None:
    r = site.call("POST", "/api/v1/orgs", email, json={"name": f"Org by {email}", "country": "KG"})
    assert_problem(r, 403, "forbidden")
    names = {o["name"] for o in site.call("GET", "/api/v1/orgs", NODE_ADMIN).json()}
    assert f"Org by {email}" not in names


def test_node_admin_creates_orgs(site: Site) -> None:
    r = site.call("POST", "/api/v1/orgs", NODE_ADMIN, json={"name": "CERT-N", "country": "TJ"})
    assert r.status_code == 201, r.text
    assert r.json()["identity_id"].startswith("identity--")


@pytest.mark.parametrize("org", ["CERT-A", "CERT-B"])
@pytest.mark.parametrize("email", ["analyst@a.test", "reader@a.test"])
def test_analysts_and_readers_add_no_users(site: Site, email: str, org: str) -> None:
    new = f"by-{email.split('@')[0]}-{org.lower()}@x.test"
    r = site.call("POST", "/api/v1/users", email, json={"email": new, "org": org})
    assert_problem(r, 403, "forbidden")


def test_org_admin_adds_users_to_its_own_org_only(site: Site) -> None:
    a, b = site.node.org_ids["CERT-A"], site.node.org_ids["CERT-B"]
    ok = site.call(
        "POST", "/api/v1/users", "orgadmin@a.test", json={"email": "new1@a.test", "org": a}
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["org_id"] == a
    for org in (b, "CERT-B"):
        r = site.call(
            "POST", "/api/v1/users", "orgadmin@a.test", json={"email": "x@b.test", "org": org}
        )
        assert_problem(r, 403, "forbidden")
    r = site.call(
        "POST",
        "/api/v1/users",
        "orgadmin@a.test",
        json={"email": "boss@a.test", "org": a, "role": "node-admin"},
    )
    assert_problem(r, 403, "forbidden")
    listed = {u["email"] for u in site.call("GET", "/api/v1/users", "orgadmin@a.test").json()}
    assert "new1@a.test" in listed
    assert "analyst@b.test" not in listed


def test_org_admin_manages_keys_of_its_own_org_only(site: Site) -> None:
    ok = site.call("POST", "/api/v1/keys", "orgadmin@a.test", json={"user": "reader@a.test"})
    assert ok.status_code == 201, ok.text
    site.secrets.append(ok.json()["key"])
    r = site.call("POST", "/api/v1/keys", "orgadmin@a.test", json={"user": "analyst@b.test"})
    assert_problem(r, 403, "forbidden")
    r = site.call("POST", "/api/v1/keys", "analyst@a.test", json={"user": "reader@a.test"})
    assert_problem(r, 403, "forbidden")
    b_keys = site.call("GET", "/api/v1/keys", "orgadmin@b.test").json()
    r = site.call("DELETE", f"/api/v1/keys/{b_keys[0]['id']}", "orgadmin@a.test")
    assert_problem(r, 403, "forbidden")


def test_listings_of_users_and_keys_follow_the_role(site: Site) -> None:
    a = site.node.org_ids["CERT-A"]
    every = site.call("GET", "/api/v1/users", NODE_ADMIN).json()
    assert {"analyst@b.test", "orgadmin@a.test", NODE_ADMIN} <= {u["email"] for u in every}
    org = site.call("GET", "/api/v1/users", "orgadmin@a.test").json()
    assert {u["org_id"] for u in org} == {a}
    alone = site.call("GET", "/api/v1/users", "analyst@a.test").json()
    assert [u["email"] for u in alone] == ["analyst@a.test"]

    users = {u["id"]: u for u in every}
    own_keys = site.call("GET", "/api/v1/keys", "analyst@a.test").json()
    assert own_keys
    assert {users[k["user_id"]]["email"] for k in own_keys} == {"analyst@a.test"}
    org_keys = site.call("GET", "/api/v1/keys", "orgadmin@a.test").json()
    assert {users[k["user_id"]]["org_id"] for k in org_keys} == {a}
    all_keys = site.call("GET", "/api/v1/keys", NODE_ADMIN).json()
    assert {users[k["user_id"]]["org_id"] for k in all_keys} >= {a, site.node.org_ids["CERT-B"]}


def test_node_admin_may_use_every_admin_endpoint(site: Site) -> None:
    b = site.node.org_ids["CERT-B"]
    user = site.call(
        "POST",
        "/api/v1/users",
        NODE_ADMIN,
        json={"email": "second-admin@b.test", "org": b, "role": "node-admin"},
    )
    assert user.status_code == 201, user.text
    key = site.call("POST", "/api/v1/keys", NODE_ADMIN, json={"user": "second-admin@b.test"})
    assert key.status_code == 201, key.text
    site.secrets.append(key.json()["key"])
    second = {"Authorization": f"Bearer {key.json()['key']}"}
    assert site.client.get("/api/v1/me", headers=second).json()["role"] == "node-admin"
    revoked = site.call("DELETE", f"/api/v1/keys/{key.json()['id']}", NODE_ADMIN)
    assert revoked.status_code == 200, revoked.text
    group = site.call(
        "POST",
        "/api/v1/sharing-groups",
        NODE_ADMIN,
        json={"name": "admin-made", "owner_org": "CERT-B", "members": []},
    )
    assert group.status_code == 201, group.text
    assert group.json()["owner_org_id"] == b
    added = site.call(
        "POST",
        f"/api/v1/sharing-groups/{group.json()['id']}/members",
        NODE_ADMIN,
        json={"org": "CERT-A"},
    )
    assert added.status_code == 200, added.text
    assert set(added.json()["member_org_ids"]) == {b, site.node.org_ids["CERT-A"]}
    listed = {g["name"] for g in site.call("GET", "/api/v1/sharing-groups", NODE_ADMIN).json()}
    assert "admin-made" in listed


def test_sharing_groups_are_changed_by_their_owners_admins(site: Site) -> None:
    r = site.call("POST", "/api/v1/sharing-groups", "analyst@a.test", json={"name": "by-analyst"})
    assert_problem(r, 403, "forbidden")
    r = site.call(
        "POST",
        "/api/v1/sharing-groups",
        "orgadmin@a.test",
        json={"name": "for-b", "owner_org": "CERT-B"},
    )
    assert_problem(r, 403, "forbidden")
    own = site.call("POST", "/api/v1/sharing-groups", "orgadmin@a.test", json={"name": "a-group"})
    assert own.status_code == 201, own.text
    path = f"/api/v1/sharing-groups/{own.json()['id']}/members"
    assert_problem(
        site.call("POST", path, "orgadmin@b.test", json={"org": "CERT-B"}), 403, "forbidden"
    )
    assert_problem(
        site.call("POST", path, "analyst@a.test", json={"org": "CERT-B"}), 403, "forbidden"
    )
    ok = site.call("POST", path, "orgadmin@a.test", json={"org": "CERT-B"})
    assert ok.status_code == 200, ok.text


# Revoking objects


def _submit(site: Site, email: str, objects: list[dict[str, Any]], **params: str) -> None:
    r = site.call(
        "POST", "/api/v1/objects", email, params=params, json={"type": "bundle", **_bundle(objects)}
    )
    assert r.status_code == 201, r.text
    assert r.json()["rejected"] == 0, r.text


def _bundle(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": stix_id("bundle"), "objects": objects}


def _identity_of(site: Site, email: str) -> str:
    identity: str = site.call("GET", "/api/v1/me", email).json()["org"]["identity_id"]
    return identity


def test_non_owners_cannot_revoke(site: Site) -> None:
    identity = _identity_of(site, "analyst@a.test")
    shared = indicator("192.0.2.20", created_by_ref=identity)
    private = indicator("192.0.2.21", created_by_ref=identity)
    _submit(site, "analyst@a.test", [shared], tlp="green", distribution="node")
    _submit(site, "analyst@a.test", [private], tlp="amber", distribution="organization")
    # Visible to B but not B's: forbidden. Invisible to B: not found, as if it did not exist.
    assert_problem(
        site.call("DELETE", f"/api/v1/objects/{shared['id']}", "analyst@b.test"), 403, "forbidden"
    )
    assert_problem(
        site.call("DELETE", f"/api/v1/objects/{private['id']}", "analyst@b.test"),
        404,
        "not_found",
    )
    assert_problem(
        site.call("DELETE", f"/api/v1/objects/{stix_id('indicator')}", "analyst@b.test"),
        404,
        "not_found",
    )
    # A reader of the owner org may not revoke either.
    assert_problem(
        site.call("DELETE", f"/api/v1/objects/{shared['id']}", "reader@a.test"), 403, "forbidden"
    )
    for sid in (shared["id"], private["id"]):
        versions = site.call("GET", f"/api/v1/objects/{sid}?version=all", "analyst@a.test").json()
        assert len(versions["versions"]) == 1
        assert versions["versions"][0]["handling"]["revoked"] is False


def test_owner_revokes_its_own_object_with_a_new_version(site: Site) -> None:
    identity = _identity_of(site, "analyst@a.test")
    obj = indicator("192.0.2.30", created_by_ref=identity)
    _submit(site, "analyst@a.test", [obj], tlp="green", distribution="node")
    r = site.call("DELETE", f"/api/v1/objects/{obj['id']}", "analyst@a.test")
    assert r.status_code == 200, r.text
    item = r.json()
    assert item["object"]["revoked"] is True
    assert item["object"]["modified"] > obj["modified"]
    assert item["handling"]["revoked"] is True
    assert item["handling"]["withdrawn"] is False
    assert item["handling"]["distribution"] == "node"
    assert item["handling"]["tlp"] == "GREEN"

    every = site.call("GET", f"/api/v1/objects/{obj['id']}?version=all", "analyst@b.test").json()
    assert [v["object"].get("revoked", False) for v in every["versions"]] == [False, True]
    assert site.call("GET", f"/api/v1/objects/{obj['id']}", "analyst@b.test").json()["object"][
        "revoked"
    ]
    listed = site.call("GET", "/api/v1/objects?limit=1000", "analyst@b.test").json()["items"]
    assert obj["id"] not in {i["id"] for i in listed}
    listed = site.call(
        "GET", "/api/v1/objects?limit=1000&include_revoked=true", "analyst@b.test"
    ).json()["items"]
    assert obj["id"] in {i["id"] for i in listed}
    # Revoking again changes nothing.
    again = site.call("DELETE", f"/api/v1/objects/{obj['id']}", "analyst@a.test")
    assert again.status_code == 200
    every = site.call("GET", f"/api/v1/objects/{obj['id']}?version=all", "analyst@a.test").json()
    assert len(every["versions"]) == 2


@pytest.mark.parametrize(
    ("tlp", "distribution"),
    [("amber", "organization"), ("red", "organization"), ("red", "sharing_group")],
)
def test_revocation_keeps_the_objects_handling(site: Site, tlp: str, distribution: str) -> None:
    """The revoked version is no more widely distributed than the object it revokes."""
    identity = _identity_of(site, "analyst@a.test")
    obj = indicator("192.0.2.31", created_by_ref=identity)
    params = {"tlp": tlp, "distribution": distribution}
    if distribution == "sharing_group":
        group = site.call(
            "POST",
            "/api/v1/sharing-groups",
            "orgadmin@a.test",
            json={"name": f"revocation-{tlp}-{distribution}"},
        )
        assert group.status_code == 201, group.text
        params["sharing_group"] = group.json()["id"]
    _submit(site, "analyst@a.test", [obj], **params)
    r = site.call("DELETE", f"/api/v1/objects/{obj['id']}", "analyst@a.test")
    assert r.status_code == 200, r.text
    handling = r.json()["handling"]
    assert handling["distribution"] == distribution
    assert handling["tlp"] == TLP.parse(tlp).label
    assert handling["sharing_group"] == params.get("sharing_group")
    assert r.json()["object"]["revoked"] is True
    for path in (f"/api/v1/objects/{obj['id']}", f"/api/v1/objects/{obj['id']}?version=all"):
        assert_problem(site.call("GET", path, "analyst@b.test"), 404, "not_found")


def test_owner_withdraws_an_imported_foreign_object(site: Site) -> None:
    foreign = {
        "type": "identity",
        "spec_version": "2.1",
        "id": stix_id("identity"),
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "name": "A vendor feed",
        "identity_class": "organization",
    }
    obj = indicator("192.0.2.40", created_by_ref=foreign["id"])
    bare = indicator("192.0.2.41")
    _submit(site, "analyst@a.test", [foreign, obj, bare], tlp="green", distribution="node")
    for sid in (obj["id"], bare["id"]):
        r = site.call("DELETE", f"/api/v1/objects/{sid}", "analyst@a.test")
        assert r.status_code == 200, r.text
        item = r.json()
        assert item["handling"]["withdrawn"] is True
        assert "revoked" not in item["object"]
        every = site.call("GET", f"/api/v1/objects/{sid}?version=all", "analyst@a.test").json()
        assert len(every["versions"]) == 1
    listed = site.call("GET", "/api/v1/objects?limit=1000", "analyst@b.test").json()["items"]
    assert {obj["id"], bare["id"]}.isdisjoint(i["id"] for i in listed)
    exported = orjson.loads(site.call("GET", "/api/v1/export/stix", "analyst@b.test").content)
    assert {obj["id"], bare["id"]}.isdisjoint(o["id"] for o in exported["objects"])
    found = site.call("GET", "/api/v1/observables?value=192.0.2.40", "analyst@b.test").json()
    # A lookup may still name it, but says it is withdrawn.
    assert all(i["handling"]["withdrawn"] for i in found["items"])


# Keys and secrets


def test_key_last_used_is_recorded(site: Site) -> None:
    secret = site.node.add_user("fresh@b.test", "CERT-B", Role.ANALYST)
    site.secrets.append(secret)
    prefix = secret[:11]

    def last_used() -> str | None:
        keys = site.call("GET", "/api/v1/keys", NODE_ADMIN).json()
        (key,) = (k for k in keys if k["prefix"] == prefix)
        used: str | None = key["last_used"]
        return used

    assert last_used() is None
    # The first use is a submission: recording the use must not block the write.
    r = site.client.post(
        "/api/v1/objects",
        json=indicator("192.0.2.50"),
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert r.status_code == 201, r.text
    assert last_used() is not None


def test_a_new_key_is_shown_once(site: Site) -> None:
    r = site.call("POST", "/api/v1/keys", "analyst@a.test", json={"label": "ci"})
    assert r.status_code == 201, r.text
    made = r.json()
    secret = made["key"]
    site.secrets.append(secret)
    assert secret.startswith("qk_")
    assert len(secret) > 40
    assert secret.startswith(made["prefix"])
    assert made["label"] == "ci"
    assert site.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).json()[
        "email"
    ] == ("analyst@a.test")
    for email in ("analyst@a.test", "orgadmin@a.test", NODE_ADMIN):
        listed = site.call("GET", "/api/v1/keys", email)
        assert listed.status_code == 200
        assert made["id"] in {k["id"] for k in listed.json()}
        assert all("key" not in k for k in listed.json())
        for known in site.secrets:
            assert known not in listed.text
            assert known[len(made["prefix"]) :] not in listed.text


def test_secrets_never_reach_the_audit_log(site: Site) -> None:
    password = "correct horse battery staple 42"
    r = site.call(
        "POST",
        "/api/v1/users",
        NODE_ADMIN,
        json={"email": "pw@a.test", "org": "CERT-A", "password": password},
    )
    assert r.status_code == 201, r.text
    assert password not in r.text
    r = site.call("POST", "/api/v1/keys", NODE_ADMIN, json={"user": "pw@a.test"})
    site.secrets.append(r.json()["key"])
    with site.node.instance.begin() as conn:
        rows = conn.execute(select(audit_log)).all()
    actions = {row.action for row in rows}
    assert {"key.create", "user.add"} <= actions
    text = "\n".join(" ".join(str(v) for v in row) for row in rows)
    for secret in site.secrets:
        assert secret not in text
        assert secret[11:] not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text
    assert password not in text
