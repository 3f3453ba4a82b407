"""``/api/v1/feeds`` and ``/api/v1/warninglists``: the operations, who may do them, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qalqan.api import create_app
from qalqan.domain.principal import Role
from qalqan.store.tables import audit_log
from qalqan.testing import TestNode, assert_problem, fresh_instance

NODE_ADMIN = "admin@a.test"
USERS = {
    "orgadmin@a.test": ("CERT-A", Role.ORG_ADMIN),
    "analyst@a.test": ("CERT-A", Role.ANALYST),
    "reader@a.test": ("CERT-A", Role.READER),
    "orgadmin@b.test": ("CERT-B", Role.ORG_ADMIN),
    "analyst@b.test": ("CERT-B", Role.ANALYST),
}


@dataclass
class Site:
    node: TestNode
    client: TestClient
    feed_file: Path

    def call(self, method: str, path: str, email: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.node.keys[email]}"}
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with fresh_instance(tmp_path / "data") as inst:
        node = TestNode.create(inst, "CERT-A", "KZ")
        node.add_org("CERT-B", "UZ")
        for email, (org, role) in USERS.items():
            node.add_user(email, org, role)
        feed_file = tmp_path / "drop.txt"
        feed_file.write_text("45.9.148.3 ; SBL1\n8.8.8.8\n999.1.1.1\nevil.example\n")
        with TestClient(create_app(inst)) as client:
            yield Site(node, client, feed_file)


def _add(site: Site, email: str, **body: Any) -> httpx.Response:
    payload = {"name": "drop", "source": "text", "url": site.feed_file.as_uri()} | body
    return site.call("POST", "/feeds", email, json=payload)


def test_subscribe_run_show_change_remove(site: Site) -> None:
    made = _add(site, NODE_ADMIN, owner_org="CERT-A", tlp="green", expire_after="0s")
    assert made.status_code == 201, made.text
    feed = made.json()
    assert feed["tlp"] == "GREEN"
    assert feed["expire_after"] == "0s"
    ran = site.call("POST", "/feeds/drop/runs", "analyst@a.test")
    assert ran.status_code == 200, ran.text
    report = ran.json()
    assert (report["status"], report["new"], report["rejected"]) == ("ok", 3, 1)
    assert report["warninglisted"] == 1
    assert report["errors"][0]["line"] == 3
    shown = site.call("GET", "/feeds/drop", "analyst@a.test").json()
    assert shown["runs"][0]["new"] == 3
    assert shown["runs"][0]["errors"][0]["reason"]
    changed = site.call("PATCH", "/feeds/drop", "orgadmin@a.test", json={"enabled": False})
    assert changed.json()["enabled"] is False
    runs = site.call("GET", "/feeds/drop/runs", "analyst@a.test").json()
    assert len(runs) == 1
    assert site.call("DELETE", "/feeds/drop", "orgadmin@a.test").status_code == 204
    assert_problem(site.call("GET", "/feeds/drop", NODE_ADMIN), 404, "not_found")
    with site.node.instance.begin() as conn:
        actions = list(conn.execute(select(audit_log.c.action)).scalars())
    assert {"feed.add", "feed.run", "feed.change", "feed.remove"} <= set(actions)


def test_access_matrix(site: Site) -> None:
    # Only node admins may read files of the server.
    assert_problem(_add(site, "orgadmin@a.test"), 403, "forbidden")
    assert _add(site, NODE_ADMIN).status_code == 201
    http_feed = {"name": "b-feed", "url": "https://feeds.example/b.txt"}
    assert_problem(_add(site, "analyst@b.test", **http_feed), 403, "forbidden")
    assert _add(site, "orgadmin@b.test", **http_feed).status_code == 201

    def names(email: str) -> list[str]:
        r = site.call("GET", "/feeds", email)
        assert r.status_code == 200, r.text
        return [f["name"] for f in r.json()]

    assert names(NODE_ADMIN) == ["b-feed", "drop"]
    assert names("analyst@a.test") == ["drop"]
    assert names("orgadmin@b.test") == ["b-feed"]
    assert names("reader@a.test") == []
    # Other orgs' feeds do not exist for them, for reading, running, changing or removing.
    for method, path in [
        ("GET", "/feeds/drop"),
        ("POST", "/feeds/drop/runs"),
        ("GET", "/feeds/drop/runs"),
        ("PATCH", "/feeds/drop"),
        ("DELETE", "/feeds/drop"),
    ]:
        body = {"json": {"enabled": False}} if method == "PATCH" else {}
        assert_problem(site.call(method, path, "analyst@b.test", **body), 404, "not_found")
        assert_problem(site.call(method, path, "reader@a.test", **body), 404, "not_found")
    # Analysts run their org's feeds but do not change them.
    assert_problem(
        site.call("PATCH", "/feeds/drop", "analyst@a.test", json={"enabled": False}),
        403,
        "forbidden",
    )
    assert site.call("POST", "/feeds/drop/runs", "analyst@a.test").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "<script>alert(1)</script>"}, "name"),
        ({"source": "gopher"}, "source"),
        ({"url": "ftp://feeds.example/x"}, "url"),
        ({"tlp": "purple"}, "tlp"),
        ({"tlp": "red", "distribution": "node"}, "distribution"),
        ({"schedule": "often"}, "schedule"),
        ({"expire_after": "-1d"}, "expire_after"),
        ({"options": {"columns": "=cmd|' /C calc'!A0"}}, "options"),
        ({"on_warninglist": "ignore"}, "on_warninglist"),
    ],
)
def test_bad_subscriptions_name_the_field(site: Site, body: dict[str, Any], field: str) -> None:
    r = _add(site, NODE_ADMIN, **body)
    problem = assert_problem(r, 400, "invalid_input")
    assert problem.get("field") == field, problem


def test_a_name_taken_is_a_conflict(site: Site) -> None:
    assert _add(site, NODE_ADMIN).status_code == 201
    assert_problem(_add(site, NODE_ADMIN), 409, "conflict")


def test_secret_options_are_never_shown(site: Site) -> None:
    r = _add(
        site,
        NODE_ADMIN,
        name="partner",
        source="taxii",
        url="https://taxii.example/api1/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116/",
        options={"username": "cert-a", "password": "s3cret-value"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["options"] == {"username": "cert-a", "password": "***"}
    listed = site.call("GET", "/feeds", NODE_ADMIN).text
    assert "s3cret-value" not in listed
    with site.node.instance.begin() as conn:
        details = " ".join(conn.execute(select(audit_log.c.detail)).scalars())
    assert "s3cret-value" not in details


def test_custom_warninglists(site: Site) -> None:
    body = {
        "name": "Our government ranges",
        "type": "cidr",
        "list": ["45.9.148.0/24"],
        "matching_attributes": ["ip-dst", "ip-src"],
    }
    assert_problem(
        site.call("POST", "/warninglists", "orgadmin@a.test", json=body), 403, "forbidden"
    )
    made = site.call("POST", "/warninglists", NODE_ADMIN, json=body)
    assert made.status_code == 201, made.text
    assert made.json()["entries"] == 1
    hit = site.call("GET", "/warninglists/check", "reader@a.test", params={"value": "45.9.148.9"})
    assert hit.json()["list"] == "Our government ranges"
    miss = site.call(
        "GET", "/warninglists/check", "reader@a.test", params={"value": "203.0.113.99"}
    )
    assert miss.json()["kind"] == "ip"
    # A feed run after the list was added flags the value.
    assert _add(site, NODE_ADMIN).status_code == 201
    report = site.call("POST", "/feeds/drop/runs", NODE_ADMIN).json()
    assert report["warninglisted"] == 2
    bad = dict(body, type="glob")
    problem = assert_problem(
        site.call("POST", "/warninglists", NODE_ADMIN, json=bad), 400, "invalid_input"
    )
    assert problem["field"] == "type"
    assert site.call("DELETE", "/warninglists/Our government ranges", NODE_ADMIN).status_code == 204
    assert_problem(site.call("DELETE", "/warninglists/nope", NODE_ADMIN), 404, "not_found")
    assert_problem(
        site.call("GET", "/warninglists/check", NODE_ADMIN, params={"value": "exa mple"}),
        400,
        "invalid_input",
    )
