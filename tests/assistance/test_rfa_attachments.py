"""Evidence attached to the answer of a request for assistance: the recipient attaches items
of the request's case (with the answer, or before it while working the request), each step is
in the item's custody, the case's and the request's timelines and the audit log, both sides
see the attachments, the requester may download them even outside the case, and every bad
input is one clear 400 that leaves nothing written."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from qalqan.assistance import attach_evidence, describe, load_rfa, transition
from qalqan.cli.rfas import rfa_app
from qalqan.domain.principal import Role
from qalqan.errors import Conflict, Forbidden, InvalidInput, NotFound
from qalqan.evidence import service as evidence_service
from qalqan.store.tables import audit_log, case_timeline, evidence_custody, rfa_attachments, rfas
from qalqan.testing import TestNode, assert_problem

B, C, C_READER, D = "analyst@b.test", "analyst@c.test", "reader@c.test", "analyst@d.test"
NODE_ADMIN = "admin@a.test"  # of CERT-A, which takes no part
NOTE = b"ransom note: send 5 BTC to bc1q... <script>alert(1)</script>"
PCAP = b"\xd4\xc3\xb2\xa1 pcap of the C2 traffic"


@dataclass
class Site:
    node: TestNode
    client: TestClient
    case_id: str
    other_case_id: str
    note: dict[str, Any]
    pcap: dict[str, Any]
    elsewhere: dict[str, Any]

    def auth(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.keys[email]}"}

    def call(self, method: str, path: str, email: str, body: Any = None) -> Any:
        return self.client.request(method, f"/api/v1{path}", json=body, headers=self.auth(email))

    def ok(self, response: Any, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()

    def upload(self, email: str, case_id: str, name: str, content: bytes) -> dict[str, Any]:
        made = self.client.post(
            "/api/v1/evidence",
            params={"case": case_id, "name": name},
            content=content,
            headers={**self.auth(email), "Content-Type": "application/octet-stream"},
        )
        return self.ok(made, 201)  # type: ignore[no-any-return]

    def request(self, *, case: str | None = "case") -> dict[str, Any]:
        """A request from CERT-B to CERT-C, sent and acknowledged."""
        body = {"to": "CERT-C", "kind": "information-request", "title": "What hit you?"}
        body["send"] = True  # type: ignore[assignment]
        if case is not None:
            body["case"] = self.case_id
        made = self.ok(self.call("POST", "/rfas", B, body), 201)
        return self.ok(  # type: ignore[no-any-return]
            self.call("POST", f"/rfas/{made['id']}/transition", C, {"to": "acknowledged"})
        )

    def answer(self, rfa: dict[str, Any], attachments: list[Any], email: str = C) -> Any:
        body = {"to": "answered", "answer": "see the files", "attachments": attachments}
        return self.call("POST", f"/rfas/{rfa['id']}/transition", email, body)


@pytest.fixture
def site(node: TestNode, client: TestClient) -> Site:
    """CERT-C leads a case CERT-B contributes to and holds two items of it (and one of a
    case of its own); CERT-D and the node's admin of CERT-A take no part."""
    for org in ("CERT-B", "CERT-C", "CERT-D"):
        node.add_org(org)
    for email, org, role in (
        (B, "CERT-B", Role.ANALYST),
        (C, "CERT-C", Role.ANALYST),
        (C_READER, "CERT-C", Role.READER),
        (D, "CERT-D", Role.ANALYST),
    ):
        node.add_user(email, org, role)
    partial = Site(node, client, "", "", {}, {}, {})
    case = partial.ok(partial.call("POST", "/cases", C, {"title": "Ransomware at ACME"}), 201)
    other = partial.ok(partial.call("POST", "/cases", C, {"title": "Another case"}), 201)
    invited = {"org": "CERT-B", "role": "contributor"}
    partial.ok(partial.call("POST", f"/cases/{case['id']}/participants", C, invited), 201)
    return Site(
        node,
        client,
        case["id"],
        other["id"],
        partial.upload(C, case["id"], "note.txt", NOTE),
        partial.upload(C, case["id"], "c2.pcap", PCAP),
        partial.upload(C, other["id"], "unrelated.bin", b"not for this request"),
    )


def _count(site: Site, table: Any, *where: Any) -> int:
    with site.node.instance.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _custody(site: Site, evidence_id: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    with site.node.instance.begin() as conn:
        rows = conn.execute(
            select(evidence_custody.c.action, evidence_custody.c.actor_org_id,
                   evidence_custody.c.detail)
            .where(evidence_custody.c.evidence_id == evidence_id)
            .order_by(evidence_custody.c.id)
        )  # fmt: skip
        return [(str(a), o, orjson.loads(d)) for a, o, d in rows]


# --- the answer carries attachments ----------------------------------------------------------


def test_answer_with_attachments_is_in_custody_timelines_and_audit(site: Site) -> None:
    rfa = site.request()
    ids = [site.note["id"], site.pcap["id"], site.note["id"].upper()]  # a duplicate, ignored
    answered = site.ok(site.answer(rfa, ids))
    assert answered["status"] == "answered"
    attached = answered["attachments"]
    assert [(a["evidence"], a["name"], a["sha256"], a["size"]) for a in attached] == [
        (site.pcap["id"], "c2.pcap", hashlib.sha256(PCAP).hexdigest(), len(PCAP)),
        (site.note["id"], "note.txt", hashlib.sha256(NOTE).hexdigest(), len(NOTE)),
    ]  # fmt: skip
    org_c = site.node.org_ids["CERT-C"]
    assert {a["attached_org"]["id"] for a in attached} == {org_c}
    assert attached[0]["attached_org"]["name"] == "CERT-C"
    assert attached[0]["attached_at"] == answered["answered"]
    assert attached[0]["links"]["content"] == f"/api/v1/evidence/{site.pcap['id']}/content"
    assert "note.txt" in answered["events"][-1]["note"]
    assert "c2.pcap" in answered["events"][-1]["note"]
    # The requester sees the same attachments.
    seen = site.ok(site.call("GET", f"/rfas/{rfa['id']}", B))
    assert seen["attachments"] == attached
    for item in (site.note, site.pcap):
        action, actor_org, detail = _custody(site, item["id"])[-1]
        assert (action, actor_org) == ("attached", org_c)
        assert detail == {"rfa": rfa["id"], "number": rfa["number"],
                          "to": site.node.org_ids["CERT-B"]}  # fmt: skip
    assert _count(site, audit_log, audit_log.c.action == "evidence.attached") == 2
    assert _count(site, case_timeline, case_timeline.c.action == "evidence.attached") == 2
    with site.node.instance.begin() as conn:
        logged = conn.execute(
            select(audit_log.c.detail)
            .where(audit_log.c.target == rfa["id"], audit_log.c.action == "rfa.transition")
            .order_by(audit_log.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()
    assert logged is not None
    assert orjson.loads(logged)["attachments"] == [site.note["id"], site.pcap["id"]]


def test_attachments_ahead_of_the_answer_then_with_it(site: Site) -> None:
    rfa = site.request()
    path = f"/rfas/{rfa['id']}/attachments"
    first = site.ok(site.call("POST", path, C, {"evidence": [site.note["id"]]}))
    assert [a["name"] for a in first["attachments"]] == ["note.txt"]
    assert first["status"] == "acknowledged"
    assert first["events"][-1]["from"] == first["events"][-1]["to"] == "acknowledged"
    assert "note.txt" in first["events"][-1]["note"]
    # Attaching the same item again changes nothing.
    again = site.ok(site.call("POST", path, C, {"evidence": [site.note["id"]]}))
    assert again["events"] == first["events"]
    assert [c[0] for c in _custody(site, site.note["id"])].count("attached") == 1
    site.ok(site.call("POST", f"/rfas/{rfa['id']}/transition", C, {"to": "in-progress"}))
    done = site.ok(site.answer(rfa, [site.note["id"], site.pcap["id"]]))
    assert sorted(a["name"] for a in done["attachments"]) == ["c2.pcap", "note.txt"]
    assert "c2.pcap" in done["events"][-1]["note"]
    assert "note.txt" not in done["events"][-1]["note"]  # attached before
    # Once answered, the answer is closed: nothing more is attached.
    late = site.call("POST", path, C, {"evidence": [site.pcap["id"]]})
    assert assert_problem(late, 409, "conflict")["current"] == "answered"


# --- bad input leaves nothing behind ---------------------------------------------------------


def _nothing_written(site: Site, rfa: dict[str, Any], status: str = "acknowledged") -> None:
    assert _count(site, rfa_attachments) == 0
    assert _count(site, evidence_custody, evidence_custody.c.action == "attached") == 0
    assert _count(site, rfas, rfas.c.id == rfa["id"], rfas.c.status == status) == 1


def test_bad_attachments_are_refused_and_nothing_is_written(site: Site) -> None:
    rfa = site.request()
    unknown = str(uuid.uuid4())
    cases = [
        ([site.note["id"], unknown], 1, unknown),
        ([site.elsewhere["id"]], 0, site.elsewhere["id"]),  # evidence of another case
        ([site.note["id"], "../etc/passwd"], 1, None),
    ]
    for attachments, index, named in cases:
        body = assert_problem(site.answer(rfa, attachments), 400, "invalid_input")
        assert body["field"] == "attachments"
        assert body["index"] == index
        assert f"attachments[{index}]" in body["detail"]
        if named is not None:
            assert named in body["detail"]
            assert "not an evidence item of the request's case" in body["detail"]
        _nothing_written(site, rfa)
    not_text = assert_problem(site.answer(rfa, [site.note["id"], 7]), 400, "invalid_input")
    assert not_text["field"] == "attachments.1"
    # One missing item reads exactly like an item of a case the principal is not in.
    missing = site.answer(rfa, [unknown]).json()
    foreign = site.answer(rfa, [site.elsewhere["id"]]).json()
    assert missing["detail"].replace(unknown, "X") == foreign["detail"].replace(
        site.elsewhere["id"], "X"
    )
    too_many = [site.note["id"]] * 101
    assert_problem(site.answer(rfa, too_many), 400, "invalid_input")
    moved = site.call(
        "POST", f"/rfas/{rfa['id']}/transition", C,
        {"to": "in-progress", "attachments": [site.note["id"]]},
    )  # fmt: skip
    assert assert_problem(moved, 400, "invalid_input")["field"] == "attachments"
    empty = site.call("POST", f"/rfas/{rfa['id']}/attachments", C, {"evidence": []})
    assert_problem(empty, 400, "invalid_input")
    _nothing_written(site, rfa)


def test_a_request_without_a_case_takes_no_attachments(site: Site) -> None:
    rfa = site.request(case=None)
    body = assert_problem(site.answer(rfa, [site.note["id"]]), 400, "invalid_input")
    assert body["field"] == "attachments"
    assert "case" in body["detail"]
    _nothing_written(site, rfa)
    # Answering without attachments is still fine.
    assert site.ok(site.answer(rfa, []))["attachments"] == []


def test_only_the_recipients_writers_attach(site: Site) -> None:
    rfa = site.request()
    path = f"/rfas/{rfa['id']}/attachments"
    body = {"evidence": [site.note["id"]]}
    assert_problem(site.call("POST", path, B, body), 403, "forbidden")
    assert_problem(site.call("POST", path, C_READER, body), 403, "forbidden")
    assert_problem(site.answer(rfa, [site.note["id"]], email=C_READER), 403, "forbidden")
    assert_problem(site.answer(rfa, [site.note["id"]], email=B), 403, "forbidden")
    # Outsiders cannot tell the request from a missing one.
    for email in (D, NODE_ADMIN):
        hidden = site.call("POST", path, email, body)
        unknown = str(uuid.uuid4())
        missing = site.call("POST", f"/rfas/{unknown}/attachments", email, body)
        assert_problem(hidden, 404, "not_found")
        assert hidden.text.replace(rfa["id"], "X") == missing.text.replace(unknown, "X")
        assert_problem(site.call("GET", f"/rfas/{rfa['id']}", email), 404, "not_found")
    _nothing_written(site, rfa)


def test_a_sent_request_is_acknowledged_before_anything_is_attached(site: Site) -> None:
    made = site.ok(
        site.call(
            "POST", "/rfas", B,
            {"to": "CERT-C", "kind": "takedown", "title": "t", "case": site.case_id, "send": True},
        ),
        201,
    )  # fmt: skip
    refused = site.call("POST", f"/rfas/{made['id']}/attachments", C,
                        {"evidence": [site.note["id"]]})  # fmt: skip
    assert assert_problem(refused, 409, "conflict")["current"] == "sent"


# --- the requester downloads what it was given -----------------------------------------------


def test_the_requester_downloads_attachments_even_outside_the_case(site: Site) -> None:
    rfa = site.request()
    site.ok(site.answer(rfa, [site.note["id"]]))
    # CERT-B leaves the case: it keeps what it was given, and only that.
    removed = site.call("DELETE", f"/cases/{site.case_id}/participants/CERT-B", C)
    assert removed.status_code == 204, removed.text
    got = site.client.get(f"/api/v1/evidence/{site.note['id']}/content", headers=site.auth(B))
    assert got.status_code == 200, got.text
    assert got.content == NOTE
    assert got.headers["x-evidence-sha256"] == hashlib.sha256(NOTE).hexdigest()
    details = site.ok(site.call("GET", f"/evidence/{site.note['id']}", B))
    assert details["custody"][-1]["action"] == "downloaded"
    assert details["custody"][-1]["actor_org_id"] == site.node.org_ids["CERT-B"]
    assert _count(site, audit_log, audit_log.c.action == "evidence.downloaded") == 1
    # Not the items that were not attached, not the case's list, not the case.
    for path in (f"/evidence/{site.pcap['id']}", f"/evidence/{site.pcap['id']}/content",
                 f"/cases/{site.case_id}/evidence", f"/cases/{site.case_id}"):  # fmt: skip
        assert_problem(site.call("GET", path, B), 404, "not_found")
    # Nor does anyone else get the attached item.
    for email in (D, NODE_ADMIN):
        for path in (f"/evidence/{site.note['id']}", f"/evidence/{site.note['id']}/content"):
            assert_problem(site.call("GET", path, email), 404, "not_found")
    # A requester outside the case only reads: it records no custody.
    entry = {"action": "note", "note": "x"}
    refused = site.call("POST", f"/evidence/{site.note['id']}/custody", B, entry)
    assert_problem(refused, 403, "forbidden")


# --- the service, without HTTP ---------------------------------------------------------------


def test_the_service_checks_and_attaches_in_one_step(site: Site) -> None:
    rfa = site.request()
    b, c, d = (site.node.principals[e] for e in (B, C, D))
    with site.node.instance.begin() as conn:
        with pytest.raises(InvalidInput) as bad:
            transition(conn, c, rfa["id"], "answered", answer="x",
                       attachments=[site.pcap["id"], str(uuid.uuid4())])  # fmt: skip
        assert bad.value.context["index"] == 1
        with pytest.raises(Forbidden):
            attach_evidence(conn, b, rfa["id"], [site.note["id"]])
        with pytest.raises(NotFound):
            attach_evidence(conn, d, rfa["id"], [site.note["id"]])
        with pytest.raises(InvalidInput):
            attach_evidence(conn, c, rfa["id"], [])
        with pytest.raises(InvalidInput) as crowded:
            attach_evidence(conn, c, rfa["id"], [site.note["id"]] * 101)
        assert "at most 100" in crowded.value.detail
        row = attach_evidence(conn, c, str(rfa["number"]), [site.pcap["id"]])
        assert row.status == "acknowledged"
        row = transition(conn, c, row.id, "answered", answer="x", attachments=[site.note["id"]])
        with pytest.raises(Conflict):
            attach_evidence(conn, c, row.id, [site.note["id"]])
        shown = describe(conn, b, load_rfa(conn, b, row.id), detail=True)
        assert [a["name"] for a in shown["attachments"]] == ["c2.pcap", "note.txt"]
        assert "attachments" not in describe(conn, b, row)
        # The evidence service lets the requester read them, and no one else.
        assert evidence_service.evidence_details(conn, b, site.note["id"]).item.name == "note.txt"
        with pytest.raises(NotFound):
            evidence_service.evidence_details(conn, d, site.note["id"])


# --- the command line ------------------------------------------------------------------------


def test_the_command_line_attaches_and_shows(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = site.node.instance.settings
    monkeypatch.setenv("QALQAN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("QALQAN_DATABASE_URL", settings.resolved_database_url)
    rfa = site.request()
    number = str(rfa["number"])
    runner = CliRunner()
    answer = ["transition", number, "--to", "answered", "--answer", "see files", "--org", "CERT-C"]
    bad = runner.invoke(rfa_app, [*answer, "--attach", site.elsewhere["id"]])
    assert isinstance(bad.exception, InvalidInput)
    assert "not an evidence item of the request's case" in bad.exception.detail
    done = runner.invoke(
        rfa_app, [*answer, "--attach", site.note["id"], "--attach", site.note["id"], "--json"]
    )
    assert done.exit_code == 0, done.output
    assert [a["name"] for a in orjson.loads(done.stdout)["attachments"]] == ["note.txt"]
    shown = runner.invoke(rfa_app, ["show", number, "--org", "CERT-B"])
    assert shown.exit_code == 0, shown.output
    assert "attachments:" in shown.stdout
    assert f"{site.note['id']}  note.txt  {len(NOTE)} bytes" in shown.stdout
