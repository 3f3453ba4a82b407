"""``/api/v1/cases``, ``/tasks`` and ``/case-templates``: the whole workflow of a case worked by
three orgs, what an uninvolved org learns of it (nothing), the status workflow's refusals, what
readers and observers may do, and one clear answer for every bad request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from qalqan.domain.principal import Role
from qalqan.testing import TestNode, assert_problem, bundle, indicator

LEAD = "analyst@b.test"
HELPER = "analyst@c.test"
WATCHER = "analyst@d.test"
READER_B = "reader@b.test"
OUTSIDER = "analyst@e.test"
NODE_ADMIN = "admin@a.test"  # a node admin of CERT-A, which takes no part


@dataclass
class Site:
    node: TestNode
    client: TestClient

    def auth(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.keys[email]}"}

    def call(self, method: str, path: str, email: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, "/api/v1" + path, headers=self.auth(email), **kwargs)

    def ok(self, method: str, path: str, email: str, status: int = 200, **kwargs: Any) -> Any:
        r = self.call(method, path, email, **kwargs)
        assert r.status_code == status, r.text
        return r.json() if r.content else None

    def open_case(self, email: str = LEAD, **fields: Any) -> dict[str, Any]:
        body = {"title": "Ransomware against hospitals", **fields}
        result: dict[str, Any] = self.ok("POST", "/cases", email, 201, json=body)
        return result


@pytest.fixture
def site(node: TestNode, client: TestClient) -> Site:
    for org, country in (("CERT-B", "UZ"), ("CERT-C", "KG"), ("CERT-D", "TJ"), ("CERT-E", "TM")):
        node.add_org(org, country)
    node.add_user(LEAD, "CERT-B")
    node.add_user(READER_B, "CERT-B", Role.READER)
    node.add_user(HELPER, "CERT-C")
    node.add_user(WATCHER, "CERT-D")
    node.add_user(OUTSIDER, "CERT-E")
    return Site(node, client)


def test_full_workflow_and_an_uninvolved_org_sees_none_of_it(site: Site) -> None:
    case = site.open_case(template="ransomware", labels=["hospitals"], tlp="amber+strict")
    cid = case["id"]
    assert case["status"] == "new"
    assert case["labels"] == ["hospitals", "ransomware"]
    assert case["tlp"] == "amber+strict"
    assert case["severity"] == "critical"
    site.ok("POST", f"/cases/{cid}/participants", LEAD, 201, json={"org": "CERT-C"})
    site.ok(
        "POST", f"/cases/{cid}/participants", LEAD, 201, json={"org": "CERT-D", "role": "observer"}
    )
    site.ok("POST", f"/cases/{cid}/status", LEAD, json={"status": "in-progress"})
    task = site.ok(
        "POST",
        f"/cases/{cid}/tasks",
        LEAD,
        201,
        json={"title": "Collect samples", "assignee": HELPER, "due": "2020-01-01"},
    )
    assert task["overdue"] is True
    assert task["org_id"] == site.node.org_ids["CERT-C"]
    mine = site.ok("GET", "/tasks", HELPER, params={"assignee": "me"})
    assert [t["id"] for t in mine["items"]] == [task["id"]]
    overdue = site.ok("GET", "/cases", HELPER, params={"overdue": "true"})
    assert [c["id"] for c in overdue["items"]] == [cid]
    site.ok("POST", f"/tasks/{task['id']}/log", HELPER, 201, json={"text": "got 3 samples"})
    site.ok("PATCH", f"/tasks/{task['id']}", HELPER, json={"status": "done"})
    page = site.ok("GET", f"/cases/{cid}", LEAD)
    for t in page["tasks"]:
        if t["status"] != "done":
            site.ok("PATCH", f"/tasks/{t['id']}", LEAD, json={"status": "cancelled"})
    site.ok("POST", f"/cases/{cid}/comments", WATCHER, 201, json={"body": "ping @cert-b"})
    site.ok(
        "POST",
        f"/cases/{cid}/timeline",
        HELPER,
        201,
        json={"text": "first encryption seen", "event_time": "2026-01-02T03:04:05Z"},
    )
    site.ok(
        "POST", f"/cases/{cid}/observables", HELPER, 201, json={"value": "hxxp://evil[.]example/x"}
    )
    done = site.ok(
        "POST",
        f"/cases/{cid}/status",
        LEAD,
        json={"status": "resolved", "resolution": "<i>contained</i>"},
    )
    assert done["status"] == "resolved"
    assert done["resolution"] == "<i>contained</i>"
    page = site.ok("GET", f"/cases/{cid}", WATCHER)
    assert page["your_role"] == "observer"
    assert {p["org_name"]: p["role"] for p in page["participants"]} == {
        "CERT-B": "lead",
        "CERT-C": "contributor",
        "CERT-D": "observer",
    }
    actions = [e["action"] for e in site.ok("GET", f"/cases/{cid}/timeline", HELPER)["items"]]
    assert actions[0] == "case.status"
    assert "case.participant.add" in actions
    assert "case.timeline.add" in actions
    assert actions[-1] == "case.create"
    comments = site.ok("GET", f"/cases/{cid}/comments", LEAD)["items"]
    assert comments[0]["mentions"] == [site.node.org_ids["CERT-B"]]
    observables = site.ok("GET", f"/cases/{cid}/observables", LEAD)["items"]
    assert [(o["kind"], o["value"]) for o in observables] == [("url", "http://evil.example/x")]

    # The uninvolved org, and a node admin of another org, learn nothing.
    for email in (OUTSIDER, NODE_ADMIN):
        assert site.ok("GET", "/cases", email)["items"] == []
        assert site.ok("GET", "/cases", email, params={"text": "Ransomware"})["items"] == []
        assert site.ok("GET", "/tasks", email)["items"] == []
        for method, path, body in (
            ("GET", f"/cases/{cid}", None),
            ("GET", f"/cases/{case['number']}", None),
            ("PATCH", f"/cases/{cid}", {"title": "x"}),
            ("POST", f"/cases/{cid}/status", {"status": "closed", "resolution": "x"}),
            ("POST", f"/cases/{cid}/participants", {"org": "CERT-E"}),
            ("DELETE", f"/cases/{cid}/participants/CERT-C", None),
            ("POST", f"/cases/{cid}/tasks", {"title": "x"}),
            ("PATCH", f"/tasks/{task['id']}", {"status": "open"}),
            ("GET", f"/tasks/{task['id']}/log", None),
            ("POST", f"/tasks/{task['id']}/log", {"text": "x"}),
            ("GET", f"/cases/{cid}/timeline", None),
            ("POST", f"/cases/{cid}/timeline", {"text": "x"}),
            ("GET", f"/cases/{cid}/comments", None),
            ("POST", f"/cases/{cid}/comments", {"body": "x"}),
            ("GET", f"/cases/{cid}/observables", None),
            ("POST", f"/cases/{cid}/observables", {"value": "198.51.100.1"}),
        ):
            r = site.call(method, path, email, json=body)
            assert_problem(r, 404, "not_found")
        r = site.call("GET", "/tasks", email, params={"case": cid})
        assert_problem(r, 404, "not_found")
    missing = site.call("GET", "/cases/00000000-0000-0000-0000-000000000000", LEAD)
    assert missing.json()["detail"].startswith("no case")


def test_illegal_transitions_are_409_with_the_allowed_states(site: Site) -> None:
    cid = site.open_case()["id"]
    body = assert_problem(
        site.call("POST", f"/cases/{cid}/status", LEAD, json={"status": "new"}), 409, "conflict"
    )
    assert body["allowed"] == ["in-progress", "on-hold", "resolved", "closed"]
    r = site.call("POST", f"/cases/{cid}/status", LEAD, json={"status": "closed"})
    assert assert_problem(r, 400, "invalid_input")["field"] == "resolution"
    site.ok("POST", f"/cases/{cid}/status", LEAD, json={"status": "closed", "resolution": "dup"})
    body = assert_problem(
        site.call("POST", f"/cases/{cid}/status", LEAD, json={"status": "on-hold"}),
        409,
        "conflict",
    )
    assert body["allowed"] == ["in-progress"]
    assert body["current"] == "closed"
    r = site.call("POST", f"/cases/{cid}/status", LEAD, json={"status": "finished"})
    assert assert_problem(r, 400, "invalid_input")["field"] == "status"
    # Only a lead reopens a closed case.
    site.ok("POST", f"/cases/{cid}/participants", LEAD, 201, json={"org": "CERT-C"})
    r = site.call("POST", f"/cases/{cid}/status", HELPER, json={"status": "in-progress"})
    assert_problem(r, 403, "forbidden")
    assert (
        site.ok("POST", f"/cases/{cid}/status", LEAD, json={"status": "in-progress"})["closed"]
        is None
    )


def test_readers_and_observers_read_but_do_not_edit(site: Site) -> None:
    cid = site.open_case()["id"]
    site.ok(
        "POST", f"/cases/{cid}/participants", LEAD, 201, json={"org": "CERT-D", "role": "observer"}
    )
    for email in (READER_B, WATCHER):
        assert site.ok("GET", f"/cases/{cid}", email)["case"]["id"] == cid
        for method, path, body in (
            ("PATCH", f"/cases/{cid}", {"title": "changed"}),
            ("POST", f"/cases/{cid}/status", {"status": "in-progress"}),
            ("POST", f"/cases/{cid}/tasks", {"title": "x"}),
            ("POST", f"/cases/{cid}/observables", {"value": "198.51.100.1"}),
            ("POST", f"/cases/{cid}/participants", {"org": "CERT-E"}),
        ):
            assert_problem(site.call(method, path, email, json=body), 403, "forbidden")
    # Observers comment; readers do not.
    site.ok("POST", f"/cases/{cid}/comments", WATCHER, 201, json={"body": "noted"})
    r = site.call("POST", f"/cases/{cid}/comments", READER_B, json={"body": "noted"})
    assert_problem(r, 403, "forbidden")
    # Contributors edit but do not invite.
    site.ok("POST", f"/cases/{cid}/participants", LEAD, 201, json={"org": "CERT-C"})
    site.ok("PATCH", f"/cases/{cid}", HELPER, json={"severity": "high"})
    r = site.call("POST", f"/cases/{cid}/participants", HELPER, json={"org": "CERT-E"})
    assert_problem(r, 403, "forbidden")
    # The owner org stays lead and cannot be removed.
    owner = site.node.org_ids["CERT-B"]
    assert_problem(site.call("DELETE", f"/cases/{cid}/participants/{owner}", LEAD), 409, "conflict")
    changed = site.ok(
        "PATCH", f"/cases/{cid}/participants/CERT-D", LEAD, params={"role": "contributor"}
    )
    assert changed["role"] == "contributor"
    site.ok("PATCH", f"/cases/{cid}", WATCHER, json={"pap": "red"})
    assert site.call("DELETE", f"/cases/{cid}/participants/CERT-D", LEAD).status_code == 204
    assert_problem(site.call("GET", f"/cases/{cid}", WATCHER), 404, "not_found")


def test_html_is_stored_as_text(site: Site) -> None:
    html = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    case = site.open_case(title=html, description=html)
    page = site.ok("GET", f"/cases/{case['id']}", LEAD)
    assert page["case"]["title"] == html
    assert page["case"]["description"] == html
    comment = site.ok("POST", f"/cases/{case['id']}/comments", LEAD, 201, json={"body": html})
    assert comment["body"] == html


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x" * 301}, "title"),
        ({"title": "ok", "description": "x" * 20_001}, "description"),
        ({"title": "ok", "labels": ["x" * 101]}, "labels"),
        ({"title": "ok", "template": "earthquake"}, "template"),
        ({"title": "ok", "tlp": "purple"}, "tlp"),
        ({"title": "ok", "severity": "apocalyptic"}, "severity"),
        ({"title": "ok", "techniques": ["not-a-technique"]}, "techniques"),
        ({"title": "nul\x00"}, "title"),
        ({"title": "   "}, "title"),
    ],
)
def test_bad_case_input_names_the_field(site: Site, body: dict[str, Any], field: str) -> None:
    r = site.call("POST", "/cases", LEAD, json=body)
    problem = assert_problem(r, 400, "invalid_input")
    assert problem["field"].startswith(field), problem


def test_hostile_requests_get_clear_answers(site: Site) -> None:
    cid = site.open_case()["id"]
    r = site.call("POST", f"/cases/{cid}/participants", LEAD, json={"org": "NO-SUCH-CERT"})
    assert assert_problem(r, 400, "invalid_input")["field"] == "org"
    r = site.call("GET", "/cases", LEAD, params={"cursor": "not-a-cursor"})
    assert assert_problem(r, 400, "invalid_input")["field"] == "cursor"
    r = site.call("POST", f"/cases/{cid}/tasks", LEAD, json={"title": "x", "due": "tomorrow"})
    assert assert_problem(r, 400, "invalid_input")["field"] == "due"
    r = site.call("POST", f"/cases/{cid}/timeline", LEAD, json={"text": "x", "event_time": "x"})
    assert assert_problem(r, 400, "invalid_input")["field"] == "event_time"
    r = site.call("GET", "/cases", LEAD, params={"org": "NO-SUCH-CERT"})
    assert assert_problem(r, 400, "invalid_input")["field"] == "org"
    r = site.call("GET", "/cases", LEAD, params={"status": "done"})
    assert assert_problem(r, 400, "invalid_input")["field"] == "status"
    r = site.call("POST", f"/cases/{cid}/tasks", LEAD, json={"title": "x", "assignee": OUTSIDER})
    assert assert_problem(r, 400, "invalid_input")["field"] == "assignee"
    r = site.call("POST", f"/cases/{cid}/observables", LEAD, json={"value": "not a value"})
    assert assert_problem(r, 400, "invalid_input")["field"] == "value"
    for ref in ("99999999999999", "x" * 90, "0", "-1"):
        assert_problem(site.call("GET", f"/cases/{ref}", LEAD), 404, "not_found")
    assert_problem(site.call("PATCH", "/tasks/nope", LEAD, json={}), 404, "not_found")
    site.ok("POST", f"/cases/{cid}/participants", LEAD, 201, json={"org": "CERT-C"})
    r = site.call("POST", f"/cases/{cid}/participants", LEAD, json={"org": "CERT-C"})
    assert_problem(r, 409, "conflict")
    site.ok("POST", f"/cases/{cid}/observables", LEAD, 201, json={"value": "198.51.100.7"})
    r = site.call("POST", f"/cases/{cid}/observables", LEAD, json={"value": "198.51.100.7"})
    assert_problem(r, 409, "conflict")


def test_case_list_pages_by_keyset_and_filters(site: Site) -> None:
    ids = [
        site.open_case(title=f"case {n}", labels=["odd" if n % 2 else "even"])["id"]
        for n in range(7)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = site.ok("GET", "/cases", LEAD, params=params)
        seen += [c["id"] for c in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    odd = site.ok("GET", "/cases", LEAD, params={"label": "odd"})["items"]
    assert len(odd) == 3
    assert [
        c["title"] for c in site.ok("GET", "/cases", LEAD, params={"text": "CASE 4"})["items"]
    ] == ["case 4"]
    # LIKE wildcards in the text match themselves.
    assert site.ok("GET", "/cases", LEAD, params={"text": "case_"})["items"] == []
    assert site.ok("GET", "/cases", LEAD, params={"text": "%"})["items"] == []
    site.ok("POST", f"/cases/{ids[0]}/status", LEAD, json={"status": "on-hold"})
    held = site.ok("GET", "/cases", LEAD, params={"status": "on-hold"})["items"]
    assert [c["id"] for c in held] == [ids[0]]
    # A change moves a case to the top.
    assert site.ok("GET", "/cases", LEAD, params={"limit": 1})["items"][0]["id"] == ids[0]


def test_observables_show_correlations_visible_to_the_viewer(site: Site) -> None:
    r = site.client.post(
        "/api/v1/objects",
        json=bundle(indicator("203.0.113.9")),
        params={"tlp": "green", "distribution": "node"},
        headers=site.auth(HELPER),
    )
    assert r.status_code == 201, r.text
    cid = site.open_case()["id"]
    added = site.ok("POST", f"/cases/{cid}/observables", LEAD, 201, json={"value": "203.0.113.9"})
    assert added["correlation"]["objects"] == 1
    assert added["correlation"]["orgs"] == 1


def test_templates_are_listed(site: Site) -> None:
    names = [t["name"] for t in site.ok("GET", "/case-templates", OUTSIDER)]
    assert names == ["ransomware", "phishing-campaign", "ddos", "data-leak", "online-fraud"]
