"""A cross-border case from start to end, through the served REST API, and what an org that
takes no part in it can learn of it: nothing.

CERT-KZ opens a ransomware case from its template, invites CERT-UZ (contributor) and CERT-KG
(observer), links an observable, asks CERT-UZ for assistance; CERT-UZ acknowledges, files
evidence in the case and answers with it attached; CERT-KZ downloads the attachment and checks
its SHA-256; every task is closed and the case resolved. Then CERT-TJ's analyst, org admin and
node admin try every read (and a few writes) on the case, its tasks, timeline, comments,
observables, evidence, the request and its attachments, the listings, search and their
notifications: each answer is a 404 or an empty list, byte for byte what an unknown id gets.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from qalqan import audit
from qalqan.api import create_app
from qalqan.domain.principal import Role
from qalqan.instance import Instance
from qalqan.testing import TestNode, bundle, indicator, serving_app

LEAD, CONTRIBUTOR, OBSERVER = "analyst@kz.test", "analyst@uz.test", "analyst@kg.test"
OUTSIDERS = ("analyst@tj.test", "orgadmin@tj.test", "nodeadmin@tj.test")
TITLE = "LockBit affiliate against hospitals in three states"
C2 = "203.0.113.66"
RANSOM_NOTE = b"Your files are encrypted. Write to lockbit-support@example.onion \x00\xff"
AREAS = ("/api/v1/cases", "/api/v1/tasks", "/api/v1/rfas", "/api/v1/evidence")


@dataclass
class Api:
    """A client of the served node that acts as one user or another."""

    http: httpx.Client
    node: TestNode
    exercised: set[str] = field(default_factory=set)

    def call(self, method: str, path: str, who: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.node.keys[who]}", **kwargs.pop("headers", {})}
        return self.http.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def ok(self, method: str, path: str, who: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, who, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.text}"
        return response.json() if response.content else None


@pytest.fixture
def api(instance: Instance) -> Iterator[Api]:
    node = TestNode.create(instance, "CERT-KZ", "KZ")
    for org, country in (("CERT-UZ", "UZ"), ("CERT-KG", "KG"), ("CERT-TJ", "TJ")):
        node.add_org(org, country)
    for email, org, role in (
        (LEAD, "CERT-KZ", Role.ANALYST),
        (CONTRIBUTOR, "CERT-UZ", Role.ANALYST),
        (OBSERVER, "CERT-KG", Role.ANALYST),
        ("analyst@tj.test", "CERT-TJ", Role.ANALYST),
        ("orgadmin@tj.test", "CERT-TJ", Role.ORG_ADMIN),
        ("nodeadmin@tj.test", "CERT-TJ", Role.NODE_ADMIN),
    ):
        node.add_user(email, org, role)
    with serving_app(instance) as base, httpx.Client(base_url=base, timeout=60) as http:
        yield Api(http, node)


@dataclass
class Walked:
    """What the walk left behind, by kind: the ids an outsider will ask for."""

    case: dict[str, Any]
    tasks: list[str]
    rfa: dict[str, Any]
    evidence: dict[str, Any]


def _walk(api: Api) -> Walked:
    # The lead opens the case from the ransomware template and invites two orgs.
    case = api.ok("POST", "/cases", LEAD, 201, json={"title": TITLE, "template": "ransomware"})
    assert case["template"] == "ransomware"
    for org, role in (("CERT-UZ", "contributor"), ("CERT-KG", "observer")):
        invited = {"org": org, "role": role}
        api.ok("POST", f"/cases/{case['id']}/participants", LEAD, 201, json=invited)
    api.ok("POST", f"/cases/{case['id']}/observables", LEAD, 201, json={"value": "203.0.113[.]66"})
    api.ok("POST", f"/cases/{case['id']}/comments", OBSERVER, 201,
           json={"body": "Seen the same note at @CERT-KZ's hospitals"})  # fmt: skip
    page = api.ok("GET", f"/cases/{case['id']}", CONTRIBUTOR)
    assert page["your_role"] == "contributor"
    assert len(page["tasks"]) == 6
    assert [o["value"] for o in page["observables"]] == [C2]
    # The lead knows C2 as intelligence of its own: search finds it for the lead only.
    own = bundle(indicator(C2, name="LockBit C2"))
    api.ok("POST", "/objects", LEAD, 201, json=own,
           params={"tlp": "amber", "distribution": "organization"})  # fmt: skip
    assert api.ok("GET", "/search", LEAD, params={"q": C2})["items"]

    # The lead asks CERT-UZ for assistance; CERT-UZ acknowledges and files evidence.
    rfa = api.ok("POST", "/rfas", LEAD, 201, json={
        "to": "CERT-UZ", "kind": "data-preservation", "title": f"Preserve logs: {TITLE}",
        "case": case["id"], "observables": [C2], "send": True,
    })  # fmt: skip
    api.ok("POST", f"/rfas/{rfa['id']}/transition", CONTRIBUTOR, json={"to": "acknowledged"})
    evidence = api.ok(
        "POST", "/evidence", CONTRIBUTOR, 201, content=RANSOM_NOTE,
        params={"case": case["id"], "name": "README-RESTORE.txt", "collected_by": "CERT-UZ"},
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    answered = api.ok("POST", f"/rfas/{rfa['id']}/transition", CONTRIBUTOR, json={
        "to": "answered", "answer": "Logs preserved; the ransom note is attached.",
        "attachments": [evidence["id"]],
    })  # fmt: skip
    assert answered["status"] == "answered"

    # The requester downloads the attachment, and its hash verifies.
    seen = api.ok("GET", f"/rfas/{rfa['id']}", LEAD)
    [attached] = seen["attachments"]
    assert attached["evidence"] == evidence["id"]
    assert attached["attached_org"]["name"] == "CERT-UZ"
    got = api.call("GET", f"/evidence/{attached['evidence']}/content", LEAD)
    assert got.status_code == 200, got.text
    assert hashlib.sha256(got.content).hexdigest() == attached["sha256"]
    assert got.headers["x-evidence-sha256"] == attached["sha256"]
    assert attached["sha256"] == hashlib.sha256(RANSOM_NOTE).hexdigest()
    custody = api.ok("GET", f"/evidence/{evidence['id']}", LEAD)["custody"]
    assert [c["action"] for c in custody] == ["collected", "uploaded", "attached", "downloaded"]

    # Every task is closed, then the case is resolved.
    tasks = api.ok("GET", "/tasks", LEAD, params={"case": case["id"]})["items"]
    assert len(tasks) == 6
    for task in tasks:
        api.ok("POST", f"/tasks/{task['id']}/log", CONTRIBUTOR, 201, json={"text": "done here"})
        api.ok("PATCH", f"/tasks/{task['id']}", LEAD, json={"status": "done"})
    still_open = api.ok("GET", "/tasks", LEAD, params={"case": case["id"], "status": "open"})
    assert still_open["items"] == []
    api.ok("POST", f"/cases/{case['id']}/status", LEAD, json={"status": "in-progress"})
    resolution = {"status": "resolved", "resolution": "Affiliate's C2 taken down"}
    resolved = api.ok("POST", f"/cases/{case['id']}/status", LEAD, json=resolution)
    assert resolved["status"] == "resolved"
    assert resolved["resolution"] == "Affiliate's C2 taken down"
    return Walked(case, [t["id"] for t in tasks], seen, evidence)


def _masked(text: str, ref: str) -> str:
    """``text`` with ``ref`` (standing on its own, not inside a longer word) as ``REF``."""
    return re.sub(rf"(?<![\w-]){re.escape(ref)}(?![\w-])", "REF", text)


def _same(response: httpx.Response, unknown: httpx.Response, real: str, fake: str) -> None:
    """An outsider's answer about a real thing is the answer about an unknown one."""
    assert response.status_code in (404, 200), response.text
    assert response.status_code == unknown.status_code
    assert response.headers["content-type"] == unknown.headers["content-type"]
    assert _masked(response.text, real) == _masked(unknown.text, fake)
    if response.status_code == 200:
        assert response.json().get("items") == []


def _nothing_in(api: Api, who: str, walked: Walked) -> None:
    """Every read and a few writes by ``who`` on what the walk made."""
    case, rfa, item = walked.case, walked.rfa, walked.evidence
    fake = str(uuid.uuid4())
    reads = [  # (route, real path, unknown path)
        ("/cases/{case_ref}", f"/cases/{case['id']}", f"/cases/{fake}"),
        ("/cases/{case_ref}/timeline", f"/cases/{case['id']}/timeline", f"/cases/{fake}/timeline"),
        ("/cases/{case_ref}/comments", f"/cases/{case['id']}/comments", f"/cases/{fake}/comments"),
        ("/cases/{case_ref}/observables", f"/cases/{case['id']}/observables",
         f"/cases/{fake}/observables"),
        ("/cases/{case_id}/evidence", f"/cases/{case['id']}/evidence", f"/cases/{fake}/evidence"),
        ("/evidence/{evidence_id}", f"/evidence/{item['id']}", f"/evidence/{fake}"),
        ("/evidence/{evidence_id}/content", f"/evidence/{item['id']}/content",
         f"/evidence/{fake}/content"),
        ("/rfas/{ref}", f"/rfas/{rfa['id']}", f"/rfas/{fake}"),
        *[("/tasks/{task_id}/log", f"/tasks/{t}/log", f"/tasks/{fake}/log")
          for t in walked.tasks],
    ]  # fmt: skip
    for route, real_path, unknown_path in reads:
        _same(
            api.call("GET", real_path, who),
            api.call("GET", unknown_path, who),
            item_of(real_path),
            fake,
        )
        api.exercised.add(route)
    # The same by number, for the things that have one.
    unknown_number = "2147483000"
    for path, number in (("/cases/", str(case["number"])), ("/rfas/", str(rfa["number"]))):
        got = api.call("GET", path + number, who)
        _same(got, api.call("GET", path + unknown_number, who), number, unknown_number)
    # Listings and filters: empty, as for a filter that matches nothing.
    words = "hospitals in three states"
    lists = [
        ("/cases", {}),
        ("/cases", {"text": words}),
        ("/cases", {"label": "ransomware"}),
        ("/cases", {"org": "CERT-KZ"}),
        ("/cases", {"status": "resolved"}),
        ("/tasks", {}),
        ("/tasks", {"status": "done"}),
        ("/rfas", {}),
        ("/rfas", {"text": "Preserve logs"}),
        ("/rfas", {"org": "CERT-UZ"}),
        ("/rfas", {"status": "answered"}),
    ]
    for route, params in lists:
        got = api.ok("GET", route, who, params=params)
        assert got == {"items": [], "next": None}, (route, params, got)
        api.exercised.add(route)
    _same(api.call("GET", "/tasks", who, params={"case": case["id"]}),
          api.call("GET", "/tasks", who, params={"case": fake}), case["id"], fake)  # fmt: skip
    for q in (C2, "203.0.113[.]66", words, "LockBit"):
        found = api.ok("GET", "/search", who, params={"q": q})
        assert found["items"] == [], (q, found)
    assert api.ok("GET", "/notifications", who)["items"] == []
    # Writes: the same 404 as for an unknown case, request, task or item.
    writes: list[tuple[str, str, str, dict[str, Any]]] = [
        ("POST", "/cases/{}/comments", case["id"], {"json": {"body": "let me in"}}),
        ("POST", "/cases/{}/participants", case["id"],
         {"json": {"org": "CERT-TJ", "role": "observer"}}),
        ("POST", "/cases/{}/status", case["id"], {"json": {"status": "closed", "resolution": "x"}}),
        ("PATCH", "/cases/{}", case["id"], {"json": {"title": "mine now"}}),
        ("POST", "/cases/{}/observables", case["id"], {"json": {"value": "198.51.100.1"}}),
        ("POST", "/cases/{}/timeline", case["id"], {"json": {"text": "was here"}}),
        ("POST", "/cases/{}/tasks", case["id"], {"json": {"title": "mine"}}),
        ("PATCH", "/tasks/{}", walked.tasks[0], {"json": {"status": "open"}}),
        ("POST", "/tasks/{}/log", walked.tasks[0], {"json": {"text": "was here"}}),
        ("POST", "/rfas/{}/transition", rfa["id"], {"json": {"to": "withdrawn"}}),
        ("POST", "/rfas/{}/attachments", rfa["id"], {"json": {"evidence": [item["id"]]}}),
        ("POST", "/evidence/{}/custody", item["id"], {"json": {"action": "note", "note": "x"}}),
        ("POST", "/evidence?case={}", case["id"],
         {"content": b"x", "headers": {"Content-Type": "application/octet-stream"}}),
    ]  # fmt: skip
    for method, template, real, kwargs in writes:
        done = api.call(method, template.format(real), who, **kwargs)
        unknown = api.call(method, template.format(fake), who, **kwargs)
        assert done.status_code == 404, (method, template, done.text)
        _same(done, unknown, real, fake)


def item_of(path: str) -> str:
    """The id in an API path (the segment after the collection's name)."""
    return path.split("/")[2]


def _get_routes(instance: Instance) -> set[str]:
    """Every GET route of the app under the case, task, request and evidence areas."""
    routes = set()
    for route in iter_route_contexts(create_app(instance).routes):
        path = str(route.path)
        if "GET" in (route.methods or ()) and path.startswith(AREAS):
            routes.add(path.removeprefix("/api/v1"))
    return routes


def test_a_case_worked_across_borders_is_invisible_to_others(api: Api, instance: Instance) -> None:
    walked = _walk(api)
    # What the outsiders will not see is there for the orgs in the case.
    for who, path, params in (
        (LEAD, "/cases", {"text": "hospitals in three states"}),
        (OBSERVER, "/tasks", {"status": "done"}),
        (CONTRIBUTOR, "/rfas", {"text": "Preserve logs"}),
        (LEAD, "/notifications", {}),
        (CONTRIBUTOR, "/notifications", {}),
    ):
        assert api.ok("GET", path, who, params=params)["items"], (who, path)
    for who in OUTSIDERS:
        _nothing_in(api, who, walked)
    # Every way to read those areas was tried: a new route cannot slip past.
    routes = _get_routes(instance)
    assert {
        "/cases",
        "/cases/{case_ref}",
        "/rfas/{ref}",
        "/evidence/{evidence_id}/content",
    } <= routes
    missed = routes - api.exercised
    assert not missed, f"routes no outsider tried: {sorted(missed)}"
    # The outsiders' attempts changed nothing, and the audit chain holds.
    page = api.ok("GET", f"/cases/{walked.case['id']}", LEAD)
    assert page["case"]["title"] == TITLE
    assert page["case"]["status"] == "resolved"
    assert {p["org_name"] for p in page["participants"]} == {"CERT-KZ", "CERT-UZ", "CERT-KG"}
    comments = api.ok("GET", f"/cases/{walked.case['id']}/comments", LEAD)["items"]
    assert not any("let me in" in c["body"] for c in comments)
    assert api.ok("GET", f"/rfas/{walked.rfa['id']}", LEAD)["status"] == "answered"
    with instance.begin() as conn:
        report = audit.verify(conn)
    assert report.broken_at is None, report.reason
    assert report.checked > 0
