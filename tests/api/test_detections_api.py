"""``/api/v1/sweeps`` and ``/api/v1/detections``: uploaded logs swept in the background, hits
read back in keyset pages, runs only their own org reads, sightings released to the indicator's
owner and no one else, and one clear answer for every bad upload."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from qalqan.api import create_app
from qalqan.detect import sweep
from qalqan.detect.readers import known_formats
from qalqan.detect.sweep import SweepOptions
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Role
from qalqan.errors import QalqanError, StoreError
from qalqan.instance import Instance
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.intel.warninglists import WarninglistIndex, parse_list
from qalqan.store import detections as detections_store
from qalqan.testing import TestNode, assert_problem, bundle, indicator, serving_app

A = "analyst@a.test"
B = "analyst@b.test"
C = "analyst@c.test"
ADMIN_A = "admin@a.test"  # the node admin, a member of CERT-A
DNS_MAP = ("query=domain", "answer=ip")
RUN_WAIT_SECONDS = 60


def jsonl(*events: dict[str, Any]) -> bytes:
    """A JSON-lines log of ``events``."""
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def dns(query: str, answer: str = "192.0.2.1", ts: str = "2026-02-01T00:00:00Z") -> dict[str, Any]:
    """One DNS log record."""
    return {"ts": ts, "query": query, "answer": answer}


@dataclass
class Site:
    node: TestNode
    client: TestClient

    @property
    def uploads(self) -> Path:
        return self.node.instance.settings.data_dir / "uploads"

    def auth(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.keys[email]}"}

    def get(self, path: str, email: str = B, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers=self.auth(email))

    def ok(self, path: str, email: str = B, **params: Any) -> Any:
        response = self.get(path, email, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def submit(
        self, email: str, *objects: dict[str, Any], tlp: str = "green", distribution: str = "node"
    ) -> list[str]:
        """Submit ``objects``; their ids."""
        r = self.client.post(
            "/api/v1/objects",
            json=bundle(*objects),
            params={"tlp": tlp, "distribution": distribution},
            headers=self.auth(email),
        )
        assert r.status_code == 201, r.text
        return [o["id"] for o in objects]

    def upload(
        self, email: str, body: bytes, *, maps: tuple[str, ...] = DNS_MAP, **params: Any
    ) -> httpx.Response:
        query = {"format": "jsonl", "map": list(maps), "name": "dns.log", **params}
        return self.client.post(
            "/api/v1/sweeps", content=body, params=query, headers=self.auth(email)
        )

    def finished(self, email: str, run_id: str) -> dict[str, Any]:
        """The run once it has ended."""
        self.client.app.state.sweep_jobs.wait(run_id, timeout=RUN_WAIT_SECONDS)  # type: ignore[attr-defined]
        run: dict[str, Any] = self.ok(f"/api/v1/sweeps/{run_id}", email)
        assert run["status"] in ("done", "failed"), run
        return run

    def sweep(self, email: str, body: bytes, **params: Any) -> dict[str, Any]:
        """Upload ``body``, wait for its run, and return the run (which must be done)."""
        response = self.upload(email, body, **params)
        assert response.status_code == 202, response.text
        run = self.finished(email, response.json()["id"])
        assert run["status"] == "done", run
        return run

    def hits(
        self, email: str, path: str, limit: int = 1000, cursor: str | None = None, **params: Any
    ) -> list[dict[str, Any]]:
        """Every hit of a hit listing, page by page (from ``cursor`` on, if given)."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.ok(
                path, email, limit=limit, **params, **({"cursor": cursor} if cursor else {})
            )
            items.extend(page["items"])
            cursor = page["next"]
            if cursor is None:
                return items


@pytest.fixture
def site(instance: Instance) -> Iterator[Site]:
    node = TestNode.create(instance, "CERT-A", "KZ")
    node.add_org("CERT-B", "UZ")
    node.add_org("CERT-C", "KG")
    node.add_user(A, "CERT-A", Role.ANALYST)
    node.add_user(B, "CERT-B", Role.ANALYST)
    node.add_user(C, "CERT-C", Role.ANALYST)
    with TestClient(create_app(instance)) as client:
        yield Site(node, client)


def _values(hits: list[dict[str, Any]]) -> set[str]:
    return {h["match"]["value"] for h in hits}


# --- a sweep from upload to hits ------------------------------------------------------------


def test_an_upload_is_swept_in_the_background_and_its_hits_read_back(site: Site) -> None:
    evil, ip, net = site.submit(
        A,
        indicator("evil.example", kind="domain-name"),
        indicator("198.51.100.7"),
        indicator("203.0.113.0/24"),
    )
    log = jsonl(
        dns("cdn1.evil.example", ts="2026-02-01T00:00:01Z"),
        dns("notevil.example", ts="2026-02-01T00:00:02Z"),
        dns("clean.example", "198.51.100.7", ts="2026-02-01T00:00:03Z"),
        dns("clean.example", "203.0.113.99", ts="2026-02-01T00:00:04Z"),
        dns("clean.example", "198.51.100.8", ts="2026-02-01T00:00:05Z"),
    )
    submitted = site.upload(B, log)
    assert submitted.status_code == 202, submitted.text
    queued = submitted.json()
    assert queued["status"] in ("queued", "running")
    assert queued["origin"] == "api"
    assert queued["options"]["map"] == {"query": "domain", "answer": "ip"}
    assert queued["links"]["hits"] == f"/api/v1/sweeps/{queued['id']}/hits"

    run = site.finished(B, queued["id"])
    assert run["status"] == "done", run
    assert run["error"] is None
    assert run["finished"] is not None
    summary = run["summary"]
    assert (summary["events"], summary["hits"], summary["malformed"]) == (5, 3, 0)
    assert summary["events_hit"] == 3
    assert summary["by_indicator"] == {evil: 1, ip: 1, net: 1}
    assert run["hits"] == 3

    hits = site.hits(B, f"/api/v1/sweeps/{run['id']}/hits")
    assert [(h["event"]["line"], h["match"]["indicator"], h["match"]["field"]) for h in hits] == [
        (1, evil, "query"),
        (3, ip, "answer"),
        (4, net, "answer"),
    ]
    first = hits[0]
    assert first["run"] == run["id"]
    assert first["kind"] == "indicator"
    assert first["event"]["time"] == "2026-02-01T00:00:01Z"
    assert first["fields"]["query"] == "cdn1.evil.example"
    assert first["match"]["value"] == "evil.example"
    assert first["match"]["owner_org"] == site.node.org_ids["CERT-A"]
    assert first["match"]["tlp"] == "green"

    listed = site.ok("/api/v1/sweeps")["items"]
    assert [r["id"] for r in listed] == [run["id"]]
    assert site.ok("/api/v1/sweeps", status="done")["items"][0]["id"] == run["id"]
    assert site.ok("/api/v1/sweeps", status="failed")["items"] == []
    # The upload is gone once its run has ended.
    assert not any(site.uploads.iterdir())


def test_hits_and_runs_page_by_keyset_without_repeats_or_gaps(site: Site) -> None:
    site.submit(A, indicator("evil.example", kind="domain-name"))
    log = jsonl(*(dns(f"h{i}.evil.example") for i in range(7)), dns("clean.example"))
    run = site.sweep(B, log)
    path = f"/api/v1/sweeps/{run['id']}/hits"
    everything = site.ok(path, limit=1000)["items"]
    assert len(everything) == 7

    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        page = site.ok(path, limit=3, **({"cursor": cursor} if cursor else {}))
        pages.append(page["items"])
        cursor = page["next"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    ids = [h["id"] for p in pages for h in p]
    assert ids == sorted(set(ids))
    assert ids == [h["id"] for h in everything]
    assert [h["event"]["line"] for p in pages for h in p] == list(range(1, 8))

    # Hits stored while a client pages through /detections land after its cursor: read once.
    first = site.ok("/api/v1/detections", limit=4)
    second_run = site.sweep(B, jsonl(dns("late.evil.example")))
    rest = site.hits(B, "/api/v1/detections", limit=2, cursor=first["next"])
    seen = [h["id"] for h in first["items"] + rest]
    assert len(seen) == len(set(seen)) == 8
    assert [h["run"] for h in first["items"] + rest] == [run["id"]] * 7 + [second_run["id"]]

    # Runs page newest first.
    third_run = site.sweep(B, jsonl(dns("clean.example")))
    runs: list[str] = []
    cursor = None
    while True:
        page = site.ok("/api/v1/sweeps", limit=1, **({"cursor": cursor} if cursor else {}))
        runs.extend(r["id"] for r in page["items"])
        cursor = page["next"]
        if cursor is None:
            break
    assert runs == [third_run["id"], second_run["id"], run["id"]]


def test_detections_filter_by_run_kind_and_indicator(site: Site) -> None:
    evil, ip = site.submit(
        A, indicator("evil.example", kind="domain-name"), indicator("198.51.100.7")
    )
    first = site.sweep(B, jsonl(dns("a.evil.example"), dns("b.example", "198.51.100.7")))
    second = site.sweep(B, jsonl(dns("c.evil.example"), dns("evil.example", "198.51.100.7")))

    everything = site.hits(B, "/api/v1/detections")
    assert len(everything) == 5
    by_run = site.hits(B, "/api/v1/detections", run=first["id"])
    assert {h["run"] for h in by_run} == {first["id"]}
    assert len(by_run) == 2
    assert len(site.hits(B, "/api/v1/detections", kind="indicator")) == 5
    assert site.hits(B, "/api/v1/detections", kind="rule") == []
    on_ip = site.hits(B, "/api/v1/detections", indicator=ip)
    assert {h["match"]["indicator"] for h in on_ip} == {ip}
    assert len(on_ip) == 2
    both = site.hits(B, "/api/v1/detections", indicator=evil, run=second["id"])
    assert [h["fields"]["query"] for h in both] == ["c.evil.example", "evil.example"]
    assert site.hits(B, "/api/v1/detections", indicator="indicator--nope") == []
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert site.hits(B, "/api/v1/detections", since=future) == []
    assert len(site.hits(B, "/api/v1/detections", since="2000-01-01T00:00:00Z")) == 5

    body = assert_problem(site.get("/api/v1/detections", kind="sigma"), 400, "invalid_input")
    assert body["field"] == "kind"
    body = assert_problem(site.get("/api/v1/detections", since="yesterday"), 400, "invalid_input")
    assert body["field"] == "since"
    both_given = site.get("/api/v1/detections", indicator=evil, rule="r-1")
    assert assert_problem(both_given, 400, "invalid_input")["field"] == "rule"


# --- who reads what -------------------------------------------------------------------------


def test_runs_and_hits_are_read_by_their_own_org_only(site: Site) -> None:
    (evil,) = site.submit(A, indicator("evil.example", kind="domain-name"))
    run_b = site.sweep(B, jsonl(dns("x.evil.example")))
    run_a = site.sweep(A, jsonl(dns("y.evil.example")))
    assert run_b["hits"] == run_a["hits"] == 1

    for email in (A, ADMIN_A, C):
        for path in (f"/api/v1/sweeps/{run_b['id']}", f"/api/v1/sweeps/{run_b['id']}/hits"):
            assert_problem(site.get(path, email), 404, "not_found")
        assert site.hits(email, "/api/v1/detections", run=run_b["id"]) == []
        listed = [r["id"] for r in site.ok("/api/v1/sweeps", email)["items"]]
        assert run_b["id"] not in listed
    # Even the owner of the indicator that hit does not read the other org's hits.
    mine = site.hits(A, "/api/v1/detections", indicator=evil)
    assert [h["run"] for h in mine] == [run_a["id"]]
    assert [h["fields"]["query"] for h in site.hits(A, "/api/v1/detections")] == ["y.evil.example"]
    assert site.hits(C, "/api/v1/detections") == []
    # And the other way round.
    assert_problem(site.get(f"/api/v1/sweeps/{run_a['id']}", B), 404, "not_found")
    assert [h["run"] for h in site.hits(B, "/api/v1/detections")] == [run_b["id"]]
    assert_problem(site.get("/api/v1/sweeps/no-such-run", B), 404, "not_found")


def test_a_sweep_uses_only_the_indicators_its_org_may_see(site: Site) -> None:
    node = site.node
    group = node.add_group("A+B", "CERT-A", ["CERT-A", "CERT-B"])
    site.submit(A, indicator("node.example", kind="domain-name"))
    site.submit(A, indicator("a-org.example", kind="domain-name"), distribution="organization")
    site.submit(
        A, indicator("a-red.example", kind="domain-name"), tlp="red", distribution="organization"
    )
    r = site.client.post(
        "/api/v1/objects",
        json=bundle(indicator("a-group.example", kind="domain-name")),
        params={"tlp": "amber", "distribution": "sharing_group", "sharing_group": group},
        headers=site.auth(A),
    )
    assert r.status_code == 201, r.text
    site.submit(B, indicator("b-own.example", kind="domain-name"), distribution="organization")
    site.submit(
        B, indicator("b-red.example", kind="domain-name"), tlp="red", distribution="organization"
    )
    site.submit(C, indicator("c-org.example", kind="domain-name"), distribution="organization")
    names = [
        "node.example",
        "a-org.example",
        "a-red.example",
        "a-group.example",
        "b-own.example",
        "b-red.example",
        "c-org.example",
    ]
    log = jsonl(*(dns(f"www.{name}") for name in names))

    as_b = site.sweep(B, log)
    assert _values(site.hits(B, f"/api/v1/sweeps/{as_b['id']}/hits")) == {
        "node.example",
        "a-group.example",
        "b-own.example",
        "b-red.example",
    }
    # What B did not hit is not broken: its owner hits it.
    as_a = site.sweep(A, log)
    assert _values(site.hits(A, f"/api/v1/sweeps/{as_a['id']}/hits")) == {
        "node.example",
        "a-org.example",
        "a-red.example",
        "a-group.example",
    }
    as_c = site.sweep(C, log)
    assert _values(site.hits(C, f"/api/v1/sweeps/{as_c['id']}/hits")) == {
        "node.example",
        "c-org.example",
    }


def test_inactive_indicators_do_not_hit(site: Site) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    long_ago = "2020-01-01T00:00:00.000Z"
    live, revoked, _, _, _, _ = site.submit(
        A,
        indicator("live.example", kind="domain-name"),
        indicator("revoked.example", kind="domain-name"),
        indicator(
            "expired.example", kind="domain-name", valid_from=long_ago, valid_until=yesterday
        ),
        indicator("current.example", kind="domain-name", valid_from=long_ago, valid_until=tomorrow),
        indicator("hunting.example", kind="domain-name", x_qalqan_detect=False),
        indicator("unsure.example", kind="domain-name", confidence=20),
    )
    gone = site.client.delete(f"/api/v1/objects/{revoked}", headers=site.auth(A))
    assert gone.status_code == 200, gone.text
    # Warninglists are applied where intelligence is imported with them (feeds do so).
    benign = WarninglistIndex.compile(
        [parse_list({"name": "test benign", "type": "hostname", "list": ["benign.example"]})]
    )
    with site.node.instance.begin() as conn:
        report = import_objects(
            conn,
            site.node.principals[ADMIN_A],
            [indicator("benign.example", kind="domain-name")],
            HandlingRequest(tlp=TLP.GREEN, distribution=Distribution.NODE),
            warninglists=benign,
        )
    assert report.warninglisted == 1
    names = ["live", "revoked", "expired", "current", "hunting", "unsure", "benign"]
    log = jsonl(*(dns(f"{name}.example") for name in names))

    run = site.sweep(B, log)
    hits = site.hits(B, f"/api/v1/sweeps/{run['id']}/hits")
    assert _values(hits) == {"live.example", "current.example", "unsure.example"}
    assert live in {h["match"]["indicator"] for h in hits}
    confident = site.sweep(B, log, min_confidence=50)
    assert _values(site.hits(B, f"/api/v1/sweeps/{confident['id']}/hits")) == {
        "live.example",
        "current.example",
    }


# --- sightings ------------------------------------------------------------------------------


def _sightings(site: Site, email: str) -> list[dict[str, Any]]:
    items = site.ok("/api/v1/objects", email, type="sighting", limit=1000)["items"]
    return [item["object"] for item in items]


def test_shared_sightings_reach_the_indicators_owner_and_no_one_else(site: Site) -> None:
    (evil,) = site.submit(A, indicator("evil.example", kind="domain-name"))
    (c_ioc,) = site.submit(C, indicator("c.example", kind="domain-name"))
    log = jsonl(
        dns("b.evil.example", ts="2026-02-01T10:00:00Z"),
        dns("a.evil.example", ts="2026-02-01T09:00:00Z"),
        dns("www.c.example", ts="2026-02-01T12:00:00Z"),
        dns("c.evil.example", ts="2026-02-01T11:30:00Z"),
        dns("clean.example", ts="2026-02-01T13:00:00Z"),
    )
    shared = site.sweep(B, log, share="true")
    assert shared["summary"]["sightings"] == 2
    assert shared["summary"]["sightings_shared"] == 2

    (to_a,) = _sightings(site, A)
    assert to_a["sighting_of_ref"] == evil
    assert to_a["count"] == 3
    assert to_a["first_seen"] == "2026-02-01T09:00:00.000Z"
    assert to_a["last_seen"] == "2026-02-01T11:30:00.000Z"
    b_identity = f"identity--{site.node.org_ids['CERT-B']}"
    assert to_a["created_by_ref"] == b_identity
    assert to_a["where_sighted_refs"] == [b_identity]
    (to_c,) = _sightings(site, C)
    assert to_c["sighting_of_ref"] == c_ioc
    assert to_c["count"] == 1
    assert_problem(site.get(f"/api/v1/objects/{to_a['id']}", C), 404, "not_found")
    assert site.get(f"/api/v1/objects/{to_a['id']}", A).status_code == 200
    assert {s["id"] for s in _sightings(site, B)} == {to_a["id"], to_c["id"]}

    kept = site.sweep(B, log)
    assert kept["summary"]["sightings"] == 2
    assert kept["summary"]["sightings_shared"] == 0
    assert [s["id"] for s in _sightings(site, A)] == [to_a["id"]]
    assert [s["id"] for s in _sightings(site, C)] == [to_c["id"]]
    own = _sightings(site, B)
    assert len(own) == 4
    assert sorted(s["sighting_of_ref"] for s in own) == sorted([evil, evil, c_ioc, c_ioc])


# --- bad input ------------------------------------------------------------------------------


def _cursor(parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")


BAD_OPTIONS: list[tuple[dict[str, Any], str, str]] = [
    ({"format": "excel"}, "format", "unknown log format 'excel'"),
    ({"map": ["query"]}, "map", "FIELD=KIND"),
    ({"map": ["query=planet"]}, "map", "unknown field kind 'planet'"),
    ({"map": ["=domain"]}, "map", "FIELD=KIND"),
    ({"sigma": "true"}, "sigma", "no Sigma rules"),
]


def test_bad_sweep_options_are_400_and_leave_nothing_behind(site: Site) -> None:
    for params, field, says in BAD_OPTIONS:
        options = {"format": "jsonl", "map": list(DNS_MAP), **params}
        response = site.client.post(
            "/api/v1/sweeps",
            content=jsonl(dns("evil.example")),
            params=options,
            headers=site.auth(B),
        )
        body = assert_problem(response, 400, "invalid_input")
        assert body["field"] == field, params
        assert says in body["detail"], params
        if field == "format":
            assert all(name in body["detail"] for name in known_formats()), body["detail"]
    assert not site.uploads.exists() or not any(site.uploads.iterdir())
    assert site.ok("/api/v1/sweeps")["items"] == []


def test_an_empty_upload_is_400(site: Site) -> None:
    body = assert_problem(site.upload(B, b""), 400, "invalid_input")
    assert body["field"] == "body"
    assert not any(site.uploads.iterdir())
    assert site.ok("/api/v1/sweeps")["items"] == []


def test_an_upload_over_the_limit_is_413_and_not_kept(site: Site) -> None:
    instance = site.node.instance
    settings = instance.settings.model_copy(update={"sweep_max_upload_bytes": 1024})
    small = Instance(settings, engine=instance.engine)
    line = b'{"query":"ok.example"}'
    exactly = line + b" " * (1024 - len(line) - 1) + b"\n"
    assert len(exactly) == 1024
    with TestClient(create_app(small)) as client:
        small_site = Site(site.node, client)
        body = assert_problem(small_site.upload(B, exactly + b"\n"), 413, "payload_too_large")
        assert "1024" in body["detail"]
        assert not any(small_site.uploads.iterdir())
        assert small_site.ok("/api/v1/sweeps")["items"] == []
        # A log of exactly the limit is taken.
        assert small_site.sweep(B, exactly)["summary"]["events"] == 1
    # Streamed in chunks to a real server, the upload is cut off as soon as it is too large.
    with serving_app(small) as base:
        chunks = (exactly for _ in range(32))
        streamed = httpx.post(
            f"{base}/api/v1/sweeps",
            params={"format": "jsonl"},
            content=chunks,
            headers=site.auth(B),
            timeout=RUN_WAIT_SECONDS,
        )
        assert_problem(streamed, 413, "payload_too_large")
    assert not any(site.uploads.iterdir())
    assert len(site.ok("/api/v1/sweeps")["items"]) == 1


def test_malformed_lines_are_counted_and_the_rest_swept(site: Site) -> None:
    site.submit(A, indicator("evil.example", kind="domain-name"))
    log = b"".join(
        [
            jsonl(dns("one.evil.example")),
            b'{"query": "broken.evil.example"\n',
            jsonl(dns("three.evil.example")),
            b"[1, 2, 3]\n",
            b"\xff\xfe not json at all\n",
            jsonl(dns("six.example")),
            jsonl(dns("seven.evil.example")),
        ]
    )
    run = site.sweep(B, log)
    summary = run["summary"]
    assert summary["malformed"] == 3
    assert sorted(p["line"] for p in summary["problems"]) == [2, 4, 5]
    assert all(p["reason"] for p in summary["problems"])
    assert summary["events"] == 4
    hits = site.hits(B, f"/api/v1/sweeps/{run['id']}/hits")
    assert [h["event"]["line"] for h in hits] == [1, 3, 7]


def test_markup_in_a_log_comes_back_as_plain_json(site: Site) -> None:
    site.submit(A, indicator("evil.example", kind="domain-name"))
    query = "<script>alert(1)</script>.evil.example"
    answer = "<img src=x onerror=alert('x')> & \"quoted\" \u202e"
    run = site.sweep(B, jsonl(dns(query, answer)))
    response = site.get(f"/api/v1/sweeps/{run['id']}/hits")
    assert response.headers["content-type"].startswith("application/json")
    (hit,) = response.json()["items"]
    assert hit["fields"]["query"] == query
    assert hit["fields"]["answer"] == answer
    assert hit["match"]["value"] == "evil.example"


def test_the_upload_name_cannot_leave_the_uploads_folder(site: Site) -> None:
    site.submit(A, indicator("evil.example", kind="domain-name"))
    for name in ("../../etc/x", "/etc/passwd", "..", "a/../../b.log", "..\\..\\w.log", "\x00.log"):
        response = site.upload(B, jsonl(dns("evil.example")), name=name)
        assert response.status_code == 202, response.text
        queued = response.json()
        (shown,) = queued["files"]
        # The run names the upload by the client's name, reduced to one safe file name.
        assert "/" not in shown, name
        assert "\\" not in shown, name
        assert not shown.startswith("."), name
        run = site.finished(B, queued["id"])
        assert run["status"] == "done", run
        assert run["hits"] == 1, name
        (hit,) = site.hits(B, f"/api/v1/sweeps/{run['id']}/hits")
        assert hit["event"]["file"] == shown, name
    assert not any(site.uploads.iterdir())
    data_dir = site.node.instance.settings.data_dir
    assert sorted(p.name for p in data_dir.parent.iterdir()) == [data_dir.name]


def test_a_bad_cursor_is_400(site: Site) -> None:
    run = site.sweep(B, jsonl(dns("clean.example")))
    cursors = [
        "not a cursor!",
        _cursor({"id": 1}),
        _cursor(["1"]),
        _cursor([1, "x", 3]),
        "W10",
        _cursor([True]),
        _cursor([True, "x"]),
        base64.urlsafe_b64encode(b"[18446744073709551615]").decode(),
        base64.urlsafe_b64encode(b'[18446744073709551615, "x"]').decode(),
    ]
    for path in (f"/api/v1/sweeps/{run['id']}/hits", "/api/v1/detections", "/api/v1/sweeps"):
        for cursor in cursors:
            body = assert_problem(site.get(path, cursor=cursor), 400, "invalid_input")
            assert body["field"] == "cursor", (path, cursor)
    body = assert_problem(site.get("/api/v1/sweeps", status="finished"), 400, "invalid_input")
    assert body["field"] == "status"


def test_every_detection_endpoint_needs_a_key(site: Site) -> None:
    run = site.sweep(B, jsonl(dns("clean.example")))
    for headers in ({}, {"Authorization": "Bearer qk_not_a_real_key"}):
        answers = [
            site.client.post(
                "/api/v1/sweeps",
                content=jsonl(dns("x.example")),
                params={"format": "jsonl"},
                headers=headers,
            ),
            site.client.get("/api/v1/sweeps", headers=headers),
            site.client.get(f"/api/v1/sweeps/{run['id']}", headers=headers),
            site.client.get(f"/api/v1/sweeps/{run['id']}/hits", headers=headers),
            site.client.get("/api/v1/detections", headers=headers),
        ]
        for answer in answers:
            assert_problem(answer, 401, "unauthorized")
    assert not any(site.uploads.iterdir())
    assert len(site.ok("/api/v1/sweeps")["items"]) == 1


# --- the background runner -------------------------------------------------------------------


def test_a_sweep_that_cannot_start_is_failed_not_left_queued(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("the database is not reachable")

    monkeypatch.setattr(sweep, "load_plan", unavailable)
    response = site.upload(B, jsonl(dns("evil.example")))
    assert response.status_code == 202, response.text
    run = site.finished(B, response.json()["id"])
    assert run["status"] == "failed"
    assert run["error"] == "the database is not reachable"
    assert run["finished"] is not None
    assert not any(site.uploads.iterdir())


def test_shutdown_finishes_the_sweeps_under_way_and_takes_no_more(site: Site) -> None:
    instance = site.node.instance
    site.submit(A, indicator("evil.example", kind="domain-name"))
    with TestClient(create_app(instance)) as client:
        other = Site(site.node, client)
        submitted = [other.upload(B, jsonl(dns(f"{i}.evil.example"))) for i in range(3)]
        assert [r.status_code for r in submitted] == [202, 202, 202]
        jobs = client.app.state.sweep_jobs  # type: ignore[attr-defined]
    # Leaving the client shut the app down: every accepted sweep ran to its end.
    for response in submitted:
        run = site.ok(f"/api/v1/sweeps/{response.json()['id']}")
        assert (run["status"], run["hits"]) == ("done", 1)

    run_id, upload = jobs.new_upload("late.log")
    upload.write_bytes(jsonl(dns("evil.example")))
    options = SweepOptions(paths=[str(upload)], format="jsonl", fields={"query": "domain"})
    with pytest.raises(QalqanError, match="shutting down"):
        jobs.submit(run_id, site.node.principals[ADMIN_A], options, upload)
    assert not upload.exists()
    with instance.begin() as conn:
        assert detections_store.get_run(conn, site.node.principals[ADMIN_A], run_id) is None
