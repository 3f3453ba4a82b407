"""The newest version's handling governs an object: narrowing it hides older versions too, and
withdrawn objects stay out of observable lookups."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qalqan.testing import TestNode, indicator


def _submit(client: TestClient, key: str, obj: dict[str, object], distribution: str) -> None:
    r = client.post(
        f"/api/v1/objects?tlp=green&distribution={distribution}",
        json=obj,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code in (200, 201), r.text


def test_narrowing_the_newest_version_hides_the_object(node: TestNode, client: TestClient) -> None:
    node.add_org("CERT-B")
    key_a = node.keys["admin@a.test"]
    key_b = node.add_user("analyst@b.test", "CERT-B")
    first = indicator("198.51.100.44")
    _submit(client, key_a, first, "node")
    newer = {**first, "modified": "2026-02-01T00:00:00.000Z", "name": "narrowed"}
    _submit(client, key_a, newer, "organization")
    b = {"Authorization": f"Bearer {key_b}"}
    for version in ("last", "first", "all", "2026-01-01T00:00:00.000Z"):
        r = client.get(f"/api/v1/objects/{first['id']}?version={version}", headers=b)
        assert r.status_code == 404, (version, r.text)
    listed = client.get("/api/v1/objects?type=indicator", headers=b).json()
    assert first["id"] not in str(listed)
    found = client.get("/api/v1/observables?value=198.51.100.44", headers=b).json()
    assert found["items"] == []
    own = client.get(
        f"/api/v1/objects/{first['id']}?version=all", headers={"Authorization": f"Bearer {key_a}"}
    )
    assert len(own.json()["versions"]) == 2


def test_withdrawn_objects_leave_observable_lookups(node: TestNode, client: TestClient) -> None:
    key = node.keys["admin@a.test"]
    foreign = indicator("198.51.100.45", created_by_ref=None)
    del foreign["created_by_ref"]
    _submit(client, key, foreign, "node")
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/observables?value=198.51.100.45", headers=auth).json()["items"]
    r = client.delete(f"/api/v1/objects/{foreign['id']}", headers=auth)
    assert r.status_code == 200
    assert r.json()["handling"]["withdrawn"] is True
    assert client.get("/api/v1/observables?value=198.51.100.45", headers=auth).json()["items"] == []
