"""The TAXII server at the HTTP level: media types, authentication, bad filters, version and
spec-version matching, paging headers, paging while others write, and collection admin."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from qalqan.api import create_app
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Role
from qalqan.domain.stix import parse_timestamp
from qalqan.instance import Instance
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.settings import Settings
from qalqan.testing import TestNode, fresh_instance, indicator, stix_id

TAXII = "application/taxii+json;version=2.1"
ROOT = "/taxii2/api"


@dataclass
class Site:
    node: TestNode
    client: TestClient

    def headers(self, email: str = "analyst@a.test", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.keys[email]}", "Accept": TAXII, **extra}

    def get(self, path: str, email: str = "analyst@a.test", **params: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers(email), params=params)

    def collection_id(self, alias: str, email: str = "analyst@a.test") -> str:
        found = self.get(f"{ROOT}/collections/", email).json()["collections"]
        return next(c["id"] for c in found if c.get("alias") == alias)

    def objects_url(self, alias: str = "all", email: str = "analyst@a.test") -> str:
        return f"{ROOT}/collections/{self.collection_id(alias, email)}/objects/"

    def post(self, url: str, body: Any, email: str = "analyst@a.test") -> httpx.Response:
        headers = self.headers(email, **{"Content-Type": TAXII})
        return self.client.post(url, content=orjson.dumps(body), headers=headers)

    def store(self, objects: list[dict[str, Any]], email: str = "analyst@a.test", **h: str) -> None:
        handling = HandlingRequest(
            TLP.parse(h.get("tlp", "green")), Distribution.parse(h.get("distribution", "node"))
        )
        with self.node.instance.begin() as conn:
            report = import_objects(conn, self.node.principals[email], objects, handling)
        assert not report.rejected, report.rejected


@contextmanager
def _site(instance: Instance) -> Iterator[Site]:
    node = TestNode.create(instance)
    node.add_org("CERT-B")
    node.add_user("analyst@a.test", "CERT-A")
    node.add_user("analyst@b.test", "CERT-B")
    node.add_user("reader@b.test", "CERT-B", Role.READER)
    with TestClient(create_app(instance)) as client:
        yield Site(node, client)


@pytest.fixture
def site(instance: Instance) -> Iterator[Site]:
    with _site(instance) as s:
        yield s


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/taxii+json")
    body: dict[str, Any] = response.json()
    assert body["http_status"] == str(status)
    assert body["title"]
    assert body["description"]
    return body


def test_discovery_and_root(site: Site) -> None:
    found = site.get("/taxii2/").json()
    assert found["api_roots"] == [f"{ROOT}/"]
    assert found["default"] == f"{ROOT}/"
    root = site.get(f"{ROOT}/")
    assert root.headers["content-type"] == TAXII
    assert root.json()["versions"] == [TAXII]


@pytest.mark.parametrize(
    "accept",
    ["text/html", "application/json", "application/taxii+json;version=2.0", TAXII + ";q=0"],
)
def test_wrong_accept_is_406(site: Site, accept: str) -> None:
    for path in ("/taxii2/", f"{ROOT}/", f"{ROOT}/collections/", site.objects_url()):
        headers = {**site.headers(), "Accept": accept}
        _error(site.client.get(path, headers=headers), 406)


@pytest.mark.parametrize("accept", ["*/*", "application/*", "application/taxii+json", TAXII])
def test_acceptable_accept_headers(site: Site, accept: str) -> None:
    headers = {**site.headers(), "Accept": accept}
    assert site.client.get("/taxii2/", headers=headers).status_code == 200


def test_wrong_content_type_is_415(site: Site) -> None:
    url = site.objects_url()
    for content_type in ("application/json", "application/stix+json;version=2.1", "text/plain"):
        headers = site.headers(**{"Content-Type": content_type})
        response = site.client.post(url, content=b'{"objects": []}', headers=headers)
        _error(response, 415)


def test_authentication(site: Site) -> None:
    missing = site.client.get("/taxii2/", headers={"Accept": TAXII})
    _error(missing, 401)
    assert "Basic" in missing.headers["www-authenticate"]
    _error(site.client.get("/taxii2/", headers={"Authorization": "Bearer qk_nope"}), 401)
    _error(site.client.get("/taxii2/", headers={"Authorization": "Basic !!!"}), 401)
    _error(site.client.get("/taxii2/", headers={"Authorization": "Digest x"}), 401)
    key = site.node.keys["analyst@b.test"]
    token = base64.b64encode(f"analyst@b.test:{key}".encode()).decode()
    ok = site.client.get("/taxii2/", headers={"Authorization": f"Basic {token}", "Accept": TAXII})
    assert ok.status_code == 200
    wrong = base64.b64encode(b"analyst@b.test:not the password").decode()
    _error(site.client.get("/taxii2/", headers={"Authorization": f"Basic {wrong}"}), 401)


def test_basic_auth_with_a_password(instance: Instance) -> None:
    from qalqan import accounts

    node = TestNode.create(instance)
    with instance.begin() as conn:
        accounts.add_user(
            conn, None, "pw@a.test", node.org_ids["CERT-A"], Role.ANALYST, "a long passphrase!"
        )
    with TestClient(create_app(instance)) as client:
        good = base64.b64encode(b"pw@a.test:a long passphrase!").decode()
        response = client.get("/taxii2/", headers={"Authorization": f"Basic {good}"})
        assert response.status_code == 200
        bad = base64.b64encode(b"nobody@a.test:a long passphrase!").decode()
        _error(client.get("/taxii2/", headers={"Authorization": f"Basic {bad}"}), 401)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "-1"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"added_after": "yesterday"}, "added_after"),
        ({"added_after": "2026-13-01T00:00:00Z"}, "added_after"),
        ({"match[version]": "newest"}, "match[version]"),
        ({"match[version]": "last,"}, "match[version]"),
        ({"match[spec_version]": "3.0"}, "match[spec_version]"),
        ({"next": "%%%"}, "next"),
    ],
)
def test_bad_filters_are_400(site: Site, params: dict[str, str], field: str) -> None:
    url = site.objects_url()
    for path in (url, url.replace("/objects/", "/manifest/")):
        body = _error(site.get(path, **params), 400)
        assert field in body["description"]


def test_unknown_things_are_404(site: Site) -> None:
    _error(site.get("/taxii2/nope/"), 404)
    _error(site.get("/taxii2/nope/collections/"), 404)
    _error(site.get(f"{ROOT}/collections/{stix_id('x')[3:]}/"), 404)
    _error(site.get(f"{ROOT}/collections/no-such/objects/"), 404)
    url = site.objects_url()
    _error(site.get(url + stix_id("indicator") + "/"), 404)
    _error(site.get(url + "not-an-id/"), 404)
    _error(site.get(url + stix_id("indicator") + "/versions/"), 404)
    _error(site.get(f"{ROOT}/status/not-a-uuid/"), 404)
    _error(site.get(f"{ROOT}/status/{stix_id('x')[3:]}/"), 404)


def test_post_with_some_bad_objects_keeps_the_good(site: Site) -> None:
    good = [indicator("192.0.2.10"), indicator("192.0.2.11")]
    broken = [
        {"type": "indicator", "id": "indicator--bad"},
        "not an object",
        {**indicator("192.0.2.12"), "pattern": "[ipv4-addr:value = "},
    ]
    response = site.post(site.objects_url(), {"objects": [good[0], *broken, good[1]]})
    assert response.status_code == 202
    status = response.json()
    assert status["status"] == "complete"
    assert (status["total_count"], status["success_count"], status["failure_count"]) == (5, 2, 3)
    assert status["pending_count"] == 0
    assert all(f["message"] for f in status["failures"])
    stored = site.get(site.objects_url(), **{"match[type]": "indicator"}).json()["objects"]
    assert {o["id"] for o in stored} == {g["id"] for g in good}
    # The status resource can be fetched again by its org, not by another.
    again = site.get(f"{ROOT}/status/{status['id']}/").json()
    assert again["success_count"] == 2
    _error(site.get(f"{ROOT}/status/{status['id']}/", "analyst@b.test"), 404)


def test_post_that_is_not_an_envelope_is_400(site: Site) -> None:
    url = site.objects_url()
    headers = site.headers(**{"Content-Type": TAXII})
    _error(site.client.post(url, content=b"{not json", headers=headers), 400)
    _error(site.post(url, {"type": "bundle"}), 400)
    _error(site.post(url, [indicator("192.0.2.1")]), 400)


def test_reader_may_not_write(site: Site) -> None:
    _error(
        site.post(site.objects_url(), {"objects": [indicator("192.0.2.1")]}, "reader@b.test"), 403
    )


def test_body_over_the_limit_is_413(tmp_path: Any) -> None:
    with fresh_instance(tmp_path / "small") as inst:
        settings = inst.settings
        small = Instance(
            Settings(
                data_dir=settings.data_dir, database_url=settings.database_url, max_body_bytes=4096
            )
        )
        node = TestNode.create(small)
        with TestClient(create_app(small)) as client:
            headers = {"Authorization": f"Bearer {node.keys['admin@a.test']}", "Accept": TAXII,
                       "Content-Type": TAXII}  # fmt: skip
            root = client.get(f"{ROOT}/", headers=headers).json()
            assert root["max_content_length"] == 4096
            found = client.get(f"{ROOT}/collections/", headers=headers).json()["collections"]
            url = f"{ROOT}/collections/{found[0]['id']}/objects/"
            body = orjson.dumps({"objects": [indicator(f"10.1.{i // 250}.{i % 250}")
                                             for i in range(100)]})  # fmt: skip
            _error(client.post(url, content=body, headers=headers), 413)
        small.close()


def test_versions_and_version_matching(site: Site) -> None:
    first = indicator("192.0.2.50", created="2026-01-01T00:00:00.000Z",
                      modified="2026-01-01T00:00:00.000Z")  # fmt: skip
    second = {**first, "modified": "2026-02-01T00:00:00.000Z"}
    third = {**first, "modified": "2026-03-01T00:00:00.000Z"}
    site.store([first])
    site.store([second])
    site.store([third])
    url = site.objects_url()

    def modified(**params: str) -> list[str]:
        body = site.get(url + first["id"] + "/", **params).json()
        return [o["modified"] for o in body.get("objects", [])]

    assert modified() == [third["modified"]]
    assert modified(**{"match[version]": "first"}) == [first["modified"]]
    assert modified(**{"match[version]": "all"}) == [o["modified"] for o in (first, second, third)]
    assert modified(**{"match[version]": "first,last"}) == [first["modified"], third["modified"]]
    assert modified(**{"match[version]": second["modified"]}) == [second["modified"]]
    assert modified(**{"match[version]": "2020-01-01T00:00:00Z"}) == []
    assert modified(**{"match[spec_version]": "2.0"}) == []
    assert modified(**{"match[spec_version]": "2.0,2.1"}) == [third["modified"]]

    versions = site.get(url + first["id"] + "/versions/").json()
    assert [parse_timestamp(v) for v in versions["versions"]] == [
        parse_timestamp(o["modified"]) for o in (first, second, third)
    ]
    limited = site.get(url + first["id"] + "/versions/", limit="2").json()
    assert limited["more"] is True
    assert len(limited["versions"]) == 2
    rest = site.get(url + first["id"] + "/versions/", next=limited["next"]).json()
    assert len(rest["versions"]) == 1
    assert rest["more"] is False

    manifest = site.get(url.replace("/objects/", "/manifest/"),
                        **{"match[id]": first["id"], "match[version]": "all"}).json()  # fmt: skip
    assert [m["version"] for m in manifest["objects"]] == versions["versions"]


def test_date_added_headers_and_added_after(site: Site) -> None:
    site.store([indicator(f"192.0.2.{i}") for i in range(1, 6)])
    url = site.objects_url()
    page = site.get(url, **{"match[type]": "indicator", "limit": "2"})
    first = page.headers["X-TAXII-Date-Added-First"]
    last = page.headers["X-TAXII-Date-Added-Last"]
    assert parse_timestamp(first) < parse_timestamp(last)
    after = site.get(url, **{"match[type]": "indicator", "added_after": last}).json()
    assert len(after["objects"]) == 3
    manifest = site.get(url.replace("/objects/", "/manifest/"), **{"match[type]": "indicator"})
    dates = [m["date_added"] for m in manifest.json()["objects"]]
    assert dates == sorted(dates)
    assert manifest.headers["X-TAXII-Date-Added-Last"] == dates[-1]
    empty = site.get(url, added_after="2999-01-01T00:00:00Z")
    assert empty.json() == {"more": False}
    assert "X-TAXII-Date-Added-First" not in empty.headers


def test_collection_filters_narrow_what_is_visible(site: Site) -> None:
    site.store([indicator("192.0.2.90")], tlp="amber")
    site.store([indicator("192.0.2.91")], tlp="green")
    site.store([{"type": "malware", "spec_version": "2.1", "id": stix_id("malware"),
                 "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                 "name": "x", "is_family": True}])  # fmt: skip
    body = site.get(site.objects_url("indicators-green", "analyst@b.test"), "analyst@b.test")
    values = {o["pattern"] for o in body.json()["objects"]}
    assert values == {"[ipv4-addr:value = '192.0.2.91']"}


def test_collection_admin_rest_and_access(site: Site) -> None:
    admin = site.headers("admin@a.test")
    created = site.client.post(
        "/api/v1/taxii/collections",
        json={"title": "Malware up to AMBER", "alias": "malware-amber", "types": ["malware"],
              "max_tlp": "amber"},
        headers=admin,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["max_tlp"] == "AMBER"
    listed = site.client.get("/api/v1/taxii/collections", headers=admin).json()
    assert "malware-amber" in {c["alias"] for c in listed}
    assert site.collection_id("malware-amber", "analyst@b.test")
    duplicate = site.client.post(
        "/api/v1/taxii/collections", json={"title": "again", "alias": "malware-amber"},
        headers=admin,
    )  # fmt: skip
    assert duplicate.status_code == 409
    for body in ({"title": "x", "alias": "Bad Alias"}, {"title": "x", "types": ["NOT A TYPE"]},
                 {"title": "x", "max_tlp": "purple"}):  # fmt: skip
        assert (
            site.client.post("/api/v1/taxii/collections", json=body, headers=admin).status_code
            == 400
        )
    analyst = site.headers("analyst@a.test")
    assert site.client.get("/api/v1/taxii/collections", headers=analyst).status_code == 403
    new = {"title": "mine"}
    assert (
        site.client.post("/api/v1/taxii/collections", json=new, headers=analyst).status_code == 403
    )
    gone = site.client.delete("/api/v1/taxii/collections/malware-amber", headers=admin)
    assert gone.status_code == 204
    assert (
        site.client.delete("/api/v1/taxii/collections/malware-amber", headers=admin).status_code
        == 404
    )


def test_paging_while_others_write_never_repeats_or_skips(site: Site) -> None:
    site.store([indicator(f"10.20.{i // 250}.{i % 250}") for i in range(300)])
    url = site.objects_url("all", "analyst@b.test")
    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:
        n = 0
        while not stop.is_set() and n < 200:
            obj = indicator(f"10.30.{n // 250}.{n % 250}")
            site.store([obj])
            written.append(obj["id"])
            n += 1

    def page_all(params: dict[str, str]) -> tuple[list[str], str | None]:
        seen: list[str] = []
        last = None
        while True:
            response = site.get(url, "analyst@b.test", **params)
            seen.extend(o["id"] for o in response.json().get("objects", []))
            last = response.headers.get("X-TAXII-Date-Added-Last", last)
            if not response.json()["more"]:
                return seen, last
            params = {**params, "next": response.json()["next"]}

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen, last = page_all({"limit": "25", "match[type]": "indicator"})
    finally:
        stop.set()
        thread.join()
    assert len(seen) == len(set(seen))
    # Everything stored before paging began is there, once.
    assert len(set(seen) - set(written)) == 300
    # Paging on from the last date added picks up exactly what was written after it.
    assert last is not None
    rest, _ = page_all({"limit": "25", "match[type]": "indicator", "added_after": last})
    everything = site.get(url, "analyst@b.test", limit="10000", **{"match[type]": "indicator"})
    assert not set(seen) & set(rest)
    assert seen + rest == [o["id"] for o in everything.json()["objects"]]
    assert len(seen) + len(rest) == 300 + len(written)


def test_delete_needs_the_owner_and_write_access(site: Site) -> None:
    obj = indicator("192.0.2.200")
    site.store([obj])
    url = site.objects_url() + obj["id"] + "/"
    _error(site.client.delete(url, headers=site.headers("analyst@b.test")), 403)
    _error(site.client.delete(url, headers=site.headers("reader@b.test")), 403)
    green = site.objects_url("indicators-green") + obj["id"] + "/"
    _error(site.client.delete(green, headers=site.headers()), 403)
    assert site.client.delete(url, headers=site.headers()).status_code == 200
    _error(site.get(url), 404)
    _error(site.client.delete(url, headers=site.headers()), 404)


def test_pages_read_ahead_for_one_caller_never_reach_another(site: Site) -> None:
    private = [indicator(f"10.77.0.{i}") for i in range(1, 21)]
    site.store(private, tlp="amber", distribution="organization")
    site.store([indicator(f"10.78.0.{i}") for i in range(1, 21)])
    params = {"limit": "5", "match[type]": "indicator"}
    url_a = site.objects_url("all", "analyst@a.test")
    first = site.get(url_a, "analyst@a.test", **params).json()
    assert first["more"] is True
    # CERT-A's next page is being prepared; CERT-B asks with the same token.
    for _ in range(3):
        other = site.get(url_a, "analyst@b.test", **params, next=first["next"]).json()
        ids = {o["id"] for o in other.get("objects", [])}
        assert not ids & {o["id"] for o in private}
    mine = site.get(url_a, "analyst@a.test", **params, next=first["next"]).json()
    assert len(mine["objects"]) == 5


def test_pages_prepared_ahead_stop_with_the_app(instance: Instance) -> None:
    node = TestNode.create(instance)
    node.add_user("analyst@a.test", "CERT-A")
    app = create_app(instance)
    with TestClient(app) as client:
        site = Site(node, client)
        site.store([indicator(f"10.79.0.{i}") for i in range(1, 11)])
        first = site.get(site.objects_url(), limit="3").json()
        assert first["more"] is True
    # Stopping the app waited for the page being prepared and dropped it: no render touches
    # the database after the app is gone.
    pages = app.state.taxii_read_ahead
    pages.prepare("late", lambda: pytest.fail("rendered after the app stopped"))
    assert pages.take("late") is None
