"""Evidence over HTTP: only the orgs taking part in a case see, add and download its evidence;
files are stored once by SHA-256, never served as what they claim to be, verified before every
download, and every step is in the chain of custody."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from qalqan.api import create_app
from qalqan.domain.principal import Role
from qalqan.evidence.storage import EvidenceStorage, safe_file_name
from qalqan.instance import Instance
from qalqan.store.tables import audit_log, case_participants, case_timeline, cases
from qalqan.testing import TestNode, assert_problem

PAYLOAD = b"MZ\x90\x00 <script>alert(1)</script> ransom note"


@pytest.fixture
def site(instance: Instance) -> tuple[TestNode, str]:
    node = TestNode.create(instance, "CERT-A", "KZ")
    for org in ("CERT-B", "CERT-C", "CERT-D"):
        node.add_org(org, "UZ")
    node.add_user("a@a.test", "CERT-A")
    node.add_user("b@b.test", "CERT-B")
    node.add_user("reader@b.test", "CERT-B", Role.READER)
    node.add_user("c@c.test", "CERT-C")
    node.add_user("d@d.test", "CERT-D")
    case_id = str(uuid.uuid4())
    with instance.begin() as conn:
        conn.execute(
            insert(cases).values(
                id=case_id, number=1, title="Ransomware against hospitals", description="",
                severity=3, tlp=2, pap=2, status="in-progress",
                owner_org_id=node.org_ids["CERT-A"], attack_techniques="[]",
                custom_fields="{}", created_at=1, updated_at=1,
            )
        )  # fmt: skip
        for org, role in (("CERT-A", "lead"), ("CERT-B", "contributor"), ("CERT-C", "observer")):
            conn.execute(
                insert(case_participants).values(
                    case_id=case_id, org_id=node.org_ids[org], role=role, added_at=1
                )
            )
    return node, case_id


def _auth(node: TestNode, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.keys[who]}"}


def _upload(
    client: TestClient, node: TestNode, who: str, case_id: str, body: bytes = PAYLOAD, **params: Any
) -> Any:
    return client.post(
        "/api/v1/evidence",
        params={"case": case_id, "name": "../../etc/passwd\x00.exe", **params},
        content=body,
        headers={**_auth(node, who), "Content-Type": "application/octet-stream"},
    )


def test_participants_add_read_and_download_evidence(
    site: tuple[TestNode, str], client: TestClient, instance: Instance
) -> None:
    node, case_id = site
    made = _upload(
        client,
        node,
        "b@b.test",
        case_id,
        collected_by="Officer K.",
        collected_at="2026-02-01T10:00:00Z",
        collection_method="disk image, write-blocked",
    )
    assert made.status_code == 201, made.text
    item = made.json()
    assert item["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert item["name"] == "passwd_.exe"
    again = _upload(client, node, "a@a.test", case_id)
    assert again.json()["sha256"] == item["sha256"]
    stored = list((instance.settings.evidence_dir).rglob(item["sha256"]))
    assert len(stored) == 1  # the same bytes are stored once
    assert not list((instance.settings.evidence_dir / "incoming").iterdir())

    for who in ("a@a.test", "reader@b.test", "c@c.test"):
        got = client.get(f"/api/v1/evidence/{item['id']}/content", headers=_auth(node, who))
        assert got.status_code == 200, got.text
        assert got.content == PAYLOAD
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["x-content-type-options"] == "nosniff"
    moved = client.post(
        f"/api/v1/evidence/{item['id']}/custody",
        json={"action": "transferred", "to": "Prosecutor's office <b>", "note": "sealed bag 7"},
        headers=_auth(node, "a@a.test"),
    )
    assert moved.status_code == 201, moved.text
    details = client.get(f"/api/v1/evidence/{item['id']}", headers=_auth(node, "c@c.test")).json()
    actions = [c["action"] for c in details["custody"]]
    assert actions == ["collected", "uploaded", "downloaded", "downloaded", "downloaded",
                       "transferred"]  # fmt: skip
    assert details["custody"][-1]["detail"]["to"] == "Prosecutor's office <b>"
    listed = client.get(
        f"/api/v1/cases/{case_id}/evidence?limit=1", headers=_auth(node, "a@a.test")
    )
    page = listed.json()
    assert len(page["items"]) == 1
    assert page["next"]
    rest = client.get(
        f"/api/v1/cases/{case_id}/evidence?cursor={page['next']}", headers=_auth(node, "a@a.test")
    ).json()
    assert len(rest["items"]) == 1
    assert rest["items"][0]["id"] != page["items"][0]["id"]
    with instance.begin() as conn:
        actions = set(conn.execute(select(audit_log.c.action)).scalars())
        timeline = conn.execute(select(case_timeline.c.action)).scalars().all()
    assert {"evidence.add", "evidence.downloaded", "evidence.transferred"} <= actions
    assert timeline.count("evidence.added") == 2


def test_outsiders_observers_and_readers_are_kept_to_their_place(
    site: tuple[TestNode, str], client: TestClient, instance: Instance
) -> None:
    node, case_id = site
    item = _upload(client, node, "a@a.test", case_id).json()
    # An org outside the case cannot tell the case or the item from missing ones.
    assert_problem(_upload(client, node, "d@d.test", case_id), 404, "not_found")
    for path in (f"/evidence/{item['id']}", f"/evidence/{item['id']}/content",
                 f"/cases/{case_id}/evidence", f"/evidence/{uuid.uuid4()}"):  # fmt: skip
        assert_problem(
            client.get("/api/v1" + path, headers=_auth(node, "d@d.test")), 404, "not_found"
        )
    assert_problem(_upload(client, node, "c@c.test", case_id), 403, "forbidden")
    assert_problem(_upload(client, node, "reader@b.test", case_id), 403, "forbidden")
    assert_problem(
        client.post(f"/api/v1/evidence/{item['id']}/custody", json={"action": "note"},
                    headers=_auth(node, "c@c.test")), 403, "forbidden",
    )  # fmt: skip
    assert not list((instance.settings.evidence_dir / "incoming").iterdir())


def test_bad_uploads_leave_nothing_behind(
    site: tuple[TestNode, str], instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    node, case_id = site
    monkeypatch.setattr(instance.settings, "evidence_max_bytes", 1024)
    with TestClient(create_app(instance)) as client:
        assert_problem(_upload(client, node, "a@a.test", case_id, b"x" * 5000), 413,
                       "payload_too_large")  # fmt: skip
        assert_problem(_upload(client, node, "a@a.test", case_id, b""), 400, "invalid_input")
        assert_problem(
            _upload(client, node, "a@a.test", case_id, collected_at="yesterday"),
            400,
            "invalid_input",
        )
        bad = client.post(
            "/api/v1/evidence/x/custody", json={"action": "burned"}, headers=_auth(node, "a@a.test")
        )
        assert bad.status_code == 404
    assert not list((instance.settings.evidence_dir / "incoming").glob("*"))
    assert not list(instance.settings.evidence_dir.rglob("*.part"))


def test_a_file_changed_on_disk_is_not_served(
    site: tuple[TestNode, str], client: TestClient, instance: Instance
) -> None:
    node, case_id = site
    item = _upload(client, node, "a@a.test", case_id).json()
    path = EvidenceStorage(instance.settings.evidence_dir).path_of(item["sha256"])
    path.chmod(0o640)
    path.write_bytes(b"tampered")
    got = client.get(f"/api/v1/evidence/{item['id']}/content", headers=_auth(node, "a@a.test"))
    assert_problem(got, 409, "conflict")
    custody = client.get(f"/api/v1/evidence/{item['id']}", headers=_auth(node, "a@a.test")).json()
    assert custody["custody"][-1]["action"] == "verification-failed"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("report.pdf", "report.pdf"),
        ("../../../etc/shadow", "shadow"),
        ("C:\\Windows\\evil.dll", "evil.dll"),
        ("\x00\x1b[31mred\r\n.txt", "_[31mred_.txt"),
        ("...", "evidence.bin"),
        ("", "evidence.bin"),
        ("отчёт 报告.docx", "отчёт 报告.docx"),
        ("a" * 400 + ".bin", "a" * 255),
    ],
)
def test_file_names_are_neutralized(given: str, kept: str, tmp_path: Path) -> None:
    assert safe_file_name(given) == kept
