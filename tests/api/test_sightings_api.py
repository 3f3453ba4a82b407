"""``/api/v1/sightings``, ``/api/v1/indicators/{id}/sightings`` and ``/api/v1/notifications``:
sightings reach the indicator's owner and no one else, totals count only what the caller may
read, an invisible indicator is as unknown as a missing one, bad reports get a clear answer,
and the owner is notified of other orgs' sightings (detection runs' too)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from qalqan.api import create_app
from qalqan.domain.principal import Role
from qalqan.instance import Instance
from qalqan.testing import TestNode, assert_problem, bundle, indicator, stix_id

A = "analyst@a.test"
B = "analyst@b.test"
C = "analyst@c.test"
READER_B = "reader@b.test"
SEEN = "2026-02-01T10:00:00.000Z"
RUN_WAIT_SECONDS = 60


@dataclass
class Site:
    node: TestNode
    client: TestClient

    def auth(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.keys[email]}"}

    def org(self, name: str) -> str:
        return self.node.org_ids[name]

    def get(self, path: str, email: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.auth(email))

    def ok(self, path: str, email: str, **params: Any) -> Any:
        response = self.get(path, email, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def publish(
        self,
        email: str,
        tlp: str = "green",
        distribution: str = "node",
        sharing_group: str | None = None,
    ) -> str:
        """Submit one indicator; its id."""
        obj = indicator(f"{uuid.uuid4().hex[:12]}.example", kind="domain-name")
        params = {"tlp": tlp, "distribution": distribution}
        if sharing_group:
            params["sharing_group"] = sharing_group
        r = self.client.post(
            "/api/v1/objects", json=bundle(obj), params=params, headers=self.auth(email)
        )
        assert r.status_code == 201, r.text
        return str(obj["id"])

    def post(self, email: str, body: Any, **params: Any) -> Any:
        return self.client.post(
            "/api/v1/sightings", json=body, params=params, headers=self.auth(email)
        )

    def sight(self, email: str, of: str, **fields: Any) -> dict[str, Any]:
        """Report one sighting (short form); the stored sighting."""
        r = self.post(
            email, {"sighting_of_ref": of, "first_seen": SEEN, "last_seen": SEEN, **fields}
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["accepted"] == 1
        sighting: dict[str, Any] = body["sightings"][0]
        return sighting

    def totals(self, email: str, of: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.ok(f"/api/v1/indicators/{of}/sightings", email, **params)
        return result

    def notes(self, email: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.ok("/api/v1/notifications", email, **params)["items"]
        return items


@pytest.fixture
def site(instance: Instance) -> Iterator[Site]:
    node = TestNode.create(instance, "CERT-A", "KZ")
    node.add_org("CERT-B", "UZ")
    node.add_org("CERT-C", "KG")
    node.add_user(A, "CERT-A", Role.ANALYST)
    node.add_user(B, "CERT-B", Role.ANALYST)
    node.add_user(C, "CERT-C", Role.ANALYST)
    node.add_user(READER_B, "CERT-B", Role.READER)
    with TestClient(create_app(instance)) as client:
        yield Site(node, client)


def _ids(items: list[dict[str, Any]]) -> set[str]:
    return {item["id"] for item in items}


# --- access matrix ----------------------------------------------------------------------------


def test_the_owner_reads_shared_sightings_with_org_and_country_totals(site: Site) -> None:
    ioc = site.publish(A)
    by_b = site.sight(B, ioc, count=3, last_seen="2026-02-02T00:00:00Z")
    by_b2 = site.sight(B, ioc, count=2, kind="false-positive")
    by_c = site.sight(C, ioc, count=5, share=False)
    by_a = site.sight(A, ioc, count=1)

    assert by_b["status"] == "created"
    assert by_b["handling"]["shared_with"] == site.org("CERT-A")
    assert by_b["handling"]["distribution"] == "organization"
    assert by_b["object"]["created_by_ref"] == f"identity--{site.org('CERT-B')}"
    assert by_b["object"]["x_qalqan_sighting_kind"] == "sighting"
    assert by_b2["object"]["x_qalqan_sighting_kind"] == "false-positive"
    assert by_c["handling"]["shared_with"] is None
    assert by_a["handling"]["shared_with"] is None  # its own indicator: no one to share with

    seen_by_a = site.totals(A, ioc)
    assert seen_by_a["totals"]["sighting"]["reports"] == 2
    assert seen_by_a["totals"]["sighting"]["count"] == 4
    assert seen_by_a["totals"]["false-positive"] == {
        "reports": 1,
        "count": 2,
        "first_seen": "2026-02-01T10:00:00.000000Z",
        "last_seen": "2026-02-01T10:00:00.000000Z",
    }
    assert seen_by_a["totals"]["sighting"]["last_seen"] == "2026-02-02T00:00:00.000000Z"
    orgs = {o["org"]["name"]: o for o in seen_by_a["by_org"]}
    assert set(orgs) == {"CERT-A", "CERT-B"}  # C's unshared sighting is not A's to count
    assert orgs["CERT-B"]["org"]["country"] == "UZ"
    assert orgs["CERT-B"]["totals"]["sighting"]["count"] == 3
    assert {c["country"]: c["totals"]["sighting"]["count"] for c in seen_by_a["by_country"]} == {
        "KZ": 1,
        "UZ": 3,
    }
    assert _ids(seen_by_a["items"]) == {by_a["id"], by_b["id"], by_b2["id"]}

    # Each other org reads only its own sightings.
    seen_by_b = site.totals(B, ioc)
    assert _ids(seen_by_b["items"]) == {by_b["id"], by_b2["id"]}
    assert [o["org"]["name"] for o in seen_by_b["by_org"]] == ["CERT-B"]
    seen_by_c = site.totals(C, ioc)
    assert _ids(seen_by_c["items"]) == {by_c["id"]}
    assert seen_by_c["totals"]["sighting"]["count"] == 5
    assert_problem(site.get(f"/api/v1/objects/{by_b['id']}", C), 404, "not_found")


def test_a_broadcast_sighting_is_read_by_everyone(site: Site) -> None:
    ioc = site.publish(A)
    shared = site.sight(B, ioc, distribution="node", share=False)
    assert site.totals(C, ioc)["totals"]["sighting"]["reports"] == 1
    assert _ids(site.totals(A, ioc)["items"]) == {shared["id"]}


def test_an_invisible_indicator_is_as_unknown_as_a_missing_one(site: Site) -> None:
    hidden = site.publish(A, tlp="amber", distribution="organization")
    missing = stix_id("indicator")
    bodies = []
    for of in (hidden, missing):
        r = site.post(B, {"sighting_of_ref": of})
        body = assert_problem(r, 404, "not_found")
        bodies.append(orjson.dumps(body).replace(of.encode(), b"X"))
        r = site.get(f"/api/v1/indicators/{of}/sightings", B)
        body = assert_problem(r, 404, "not_found")
        bodies.append(orjson.dumps(body).replace(of.encode(), b"X"))
    assert bodies[0] == bodies[2]
    assert bodies[1] == bodies[3]
    assert site.totals(A, hidden)["totals"]["sighting"]["reports"] == 0


def test_a_red_indicator_shared_with_a_group_is_sighted_at_red(site: Site) -> None:
    group = site.node.add_group("pair", "CERT-A", ["CERT-A", "CERT-B"])
    ioc = site.publish(A, tlp="red", distribution="sharing_group", sharing_group=group)
    sighting = site.sight(B, ioc, tlp="green")
    assert sighting["handling"]["tlp"] == "RED"  # never below the indicator's TLP
    assert sighting["handling"]["distribution"] == "organization"
    assert sighting["handling"]["shared_with"] == site.org("CERT-A")
    assert _ids(site.totals(A, ioc)["items"]) == {sighting["id"]}
    assert_problem(site.post(C, {"sighting_of_ref": ioc}), 404, "not_found")
    assert_problem(site.get(f"/api/v1/indicators/{ioc}/sightings", C), 404, "not_found")
    assert site.notes(C) == []


def test_a_reader_may_not_report_sightings(site: Site) -> None:
    ioc = site.publish(A)
    assert_problem(site.post(READER_B, {"sighting_of_ref": ioc}), 403, "forbidden")
    assert site.totals(READER_B, ioc)["totals"]["sighting"]["reports"] == 0


# --- bad input ------------------------------------------------------------------------------


def _future() -> str:
    return (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"count": -1}, "count"),
        ({"count": 10**12}, "count"),
        ({"count": 1e12}, "count"),
        ({"count": "3"}, "count"),
        ({"count": True}, "count"),
        ({"first_seen": "2026-02-03T00:00:00Z", "last_seen": "2026-02-02T00:00:00Z"}, "last_seen"),
        ({"first_seen": "yesterday"}, "first_seen"),
        ({"last_seen": "2026-02-30T00:00:00Z"}, "last_seen"),
        ({"last_seen": "2026-02-01T00:00:00"}, "last_seen"),
        ({"first_seen": "FUTURE"}, "first_seen"),
        ({"kind": "rumour"}, "kind"),
        (
            {"where_sighted_refs": ["indicator--0b5a3c1e-4f1d-4c8e-9a53-2b7f3e6f1a10"]},
            "where_sighted_refs",
        ),
        ({"where_sighted_refs": []}, "where_sighted_refs"),
        ({"share": "yes"}, "share"),
        ({"tlp": "purple"}, "tlp"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_report_names_its_field(site: Site, fields: dict[str, Any], field: str) -> None:
    ioc = site.publish(A)
    fields = {k: _future() if v == "FUTURE" else v for k, v in fields.items()}
    r = site.post(B, {"sighting_of_ref": ioc, **fields})
    body = assert_problem(r, 400, "invalid_input")
    assert body["field"] == field
    assert site.totals(A, ioc)["totals"]["sighting"]["reports"] == 0


@pytest.mark.parametrize(
    "of",
    [
        "relationship--0b5a3c1e-4f1d-4c8e-9a53-2b7f3e6f1a10",
        "ipv4-addr--0b5a3c1e-4f1d-4c8e-9a53-2b7f3e6f1a10",
        "not an id",
        None,
    ],
)
def test_a_sighting_must_be_of_a_domain_object(site: Site, of: Any) -> None:
    body = assert_problem(site.post(B, {"sighting_of_ref": of}), 400, "invalid_input")
    assert body["field"] == "sighting_of_ref"


def test_a_bad_body_is_refused(site: Site) -> None:
    r = site.client.post("/api/v1/sightings", content=b"{", headers=site.auth(B))
    assert_problem(r, 400, "invalid_input")
    assert_problem(site.post(B, "a string"), 400, "invalid_input")
    assert_problem(site.post(B, {}, share="perhaps"), 400, "invalid_input")


def test_html_in_a_description_is_stored_as_text(site: Site) -> None:
    ioc = site.publish(A)
    html = '<script>alert("x")</script><b>seen</b> & more'
    sighting = site.sight(B, ioc, description=html)
    assert sighting["object"]["description"] == html
    r = site.get(f"/api/v1/indicators/{ioc}/sightings", A)
    assert r.headers["content-type"] == "application/json"
    (item,) = r.json()["items"]
    assert item["object"]["description"] == html


# --- batches and STIX -------------------------------------------------------------------------


def test_one_bad_report_never_sinks_the_good_ones(site: Site) -> None:
    ioc = site.publish(A)
    hidden = site.publish(C, distribution="organization")
    r = site.post(
        B,
        [
            {"sighting_of_ref": ioc, "count": 2},
            {"sighting_of_ref": ioc, "count": -1},
            {"sighting_of_ref": hidden},
            "not an object",
        ],
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["accepted"], body["created"], body["rejected"], body["shared"]) == (1, 1, 3, 1)
    assert [s["index"] for s in body["sightings"]] == [0]
    errors = {e["index"]: e for e in body["errors"]}
    assert errors[1]["field"] == "count"
    assert errors[1]["code"] == "invalid_input"
    assert errors[2] == {
        "index": 2,
        "id": errors[2]["id"],
        "field": "sighting_of_ref",
        "reason": f"no object {hidden}",
        "code": "not_found",
    }
    assert errors[3]["code"] == "invalid_input"
    assert site.totals(A, ioc)["totals"]["sighting"]["count"] == 2


def test_a_batch_with_nothing_accepted_is_refused_with_its_report(site: Site) -> None:
    ioc = site.publish(A)
    r = site.post(B, [{"sighting_of_ref": ioc, "count": -1}, {"sighting_of_ref": "x"}])
    body = assert_problem(r, 400, "invalid_input")
    assert [e["index"] for e in body["errors"]] == [0, 1]
    unknown = [{"sighting_of_ref": stix_id("indicator")} for _ in range(2)]
    assert_problem(site.post(B, unknown), 404, "not_found")


def test_stix_sightings_are_accepted_in_a_bundle_and_resubmitting_changes_nothing(
    site: Site,
) -> None:
    ioc = site.publish(A)
    b_identity = f"identity--{site.org('CERT-B')}"
    stix = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": stix_id("sighting"),
        "created": SEEN,
        "modified": SEEN,
        "created_by_ref": b_identity,
        "sighting_of_ref": ioc,
        "count": 7,
        "first_seen": SEEN,
        "last_seen": SEEN,
        "where_sighted_refs": [b_identity],
        "x_qalqan_sighting_kind": "expiration",
    }
    first = site.post(B, bundle(stix))
    assert first.status_code == 201, first.text
    assert first.json()["sightings"][0]["object"] == stix
    again = site.post(B, stix)
    assert again.status_code == 200, again.text
    assert again.json()["sightings"][0]["status"] == "unchanged"
    totals = site.totals(A, ioc)["totals"]
    assert totals["expiration"]["count"] == 7
    assert len(site.notes(A)) == 1

    bad = {**stix, "id": stix_id("sighting"), "x_qalqan_sighting_kind": "rumour"}
    body = assert_problem(site.post(B, bad), 400, "invalid_input")
    assert body["field"] == "x_qalqan_sighting_kind"
    body = assert_problem(site.post(B, {**stix, "type": "indicator"}), 400, "invalid_input")
    assert body["field"] == "type"
    body = assert_problem(
        site.post(B, {**stix, "id": stix_id("sighting"), "count": 10**9}), 400, "invalid_input"
    )
    assert body["field"] == "count"


def test_the_sightings_of_an_indicator_are_paged_newest_first(site: Site) -> None:
    ioc = site.publish(A)
    made = [site.sight(B, ioc, count=n)["id"] for n in range(1, 6)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = site.totals(A, ioc, **params)
        assert page["totals"]["sighting"]["count"] == 15
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == made[::-1]
    assert_problem(
        site.get(f"/api/v1/indicators/{ioc}/sightings", A, cursor="!!"), 400, "invalid_input"
    )


# --- notifications ----------------------------------------------------------------------------


def test_the_owner_is_notified_of_other_orgs_sightings_only(site: Site) -> None:
    ioc = site.publish(A)
    by_b = site.sight(B, ioc, count=4)
    site.sight(A, ioc)  # its own: nothing to tell
    site.sight(C, ioc, share=False)  # not shared: A may not read it
    (note,) = site.notes(A)
    assert note["kind"] == "sighting"
    assert note["subject"] == ioc
    assert note["read"] is None
    detail = note["detail"]
    assert detail["sighting"] == by_b["id"]
    assert detail["org"] == {"id": site.org("CERT-B"), "name": "CERT-B", "country": "UZ"}
    assert (detail["count"], detail["kind"]) == (4, "sighting")
    assert detail["first_seen"] == "2026-02-01T10:00:00.000000Z"
    assert site.notes(B) == []
    assert site.notes(C) == []

    # A sighting every org reads is told once, however it is shared.
    site.sight(C, ioc, distribution="node")
    assert len(site.notes(A)) == 2


def test_notifications_are_marked_read_by_their_org_only(site: Site) -> None:
    ioc = site.publish(A)
    for _ in range(3):
        site.sight(B, ioc)
    newest, middle, oldest = site.notes(A)
    assert newest["id"] > middle["id"] > oldest["id"]

    r = site.client.post(
        "/api/v1/notifications/read", json={"ids": [newest["id"]]}, headers=site.auth(B)
    )
    assert r.json() == {"marked": 0}
    r = site.client.post(
        "/api/v1/notifications/read", json={"ids": [newest["id"]]}, headers=site.auth(A)
    )
    assert r.json() == {"marked": 1}
    assert _ids(site.notes(A, unread="true")) == {middle["id"], oldest["id"]}
    r = site.client.post(
        "/api/v1/notifications/read", json={"up_to": middle["id"]}, headers=site.auth(A)
    )
    assert r.json() == {"marked": 2}
    assert site.notes(A, unread="true") == []
    assert len(site.notes(A, unread="false")) == 3
    page = site.ok("/api/v1/notifications", A, limit=2)
    assert [n["id"] for n in page["items"]] == [newest["id"], middle["id"]]
    rest = site.ok("/api/v1/notifications", A, limit=2, cursor=page["next"])
    assert [n["id"] for n in rest["items"]] == [oldest["id"]]
    assert rest["next"] is None
    assert_problem(
        site.client.post("/api/v1/notifications/read", json={}, headers=site.auth(A)),
        400,
        "invalid_input",
    )


def test_detection_run_sightings_notify_the_owner_when_shared(site: Site) -> None:
    ioc_value = "sweep-target.example"
    obj = indicator(ioc_value, kind="domain-name")
    r = site.client.post(
        "/api/v1/objects",
        json=bundle(obj),
        params={"tlp": "green", "distribution": "node"},
        headers=site.auth(A),
    )
    assert r.status_code == 201, r.text
    log = b"".join(
        orjson.dumps({"ts": f"2026-02-01T0{h}:00:00Z", "query": f"x{h}.{ioc_value}"}) + b"\n"
        for h in range(3)
    )

    def sweep(share: str) -> dict[str, Any]:
        r = site.client.post(
            "/api/v1/sweeps",
            content=log,
            params={"format": "jsonl", "map": ["query=domain"], "name": "dns.log", "share": share},
            headers=site.auth(B),
        )
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        site.client.app.state.sweep_jobs.wait(run_id, timeout=RUN_WAIT_SECONDS)  # type: ignore[attr-defined]
        run: dict[str, Any] = site.ok(f"/api/v1/sweeps/{run_id}", B)
        assert run["status"] == "done", run
        return run

    assert sweep("false")["summary"]["sightings"] == 1
    assert site.notes(A) == []
    assert sweep("true")["summary"]["sightings_shared"] == 1
    (note,) = site.notes(A)
    assert note["subject"] == obj["id"]
    assert note["detail"]["count"] == 3
    assert note["detail"]["org"]["name"] == "CERT-B"
    totals = site.totals(A, obj["id"])["totals"]["sighting"]
    assert (totals["reports"], totals["count"]) == (1, 3)
