"""``GET /api/v1/export/{format}``: streamed exports, stable URLs that answer 304 while nothing
changed, archives for Suricata, and one clear 400 for each bad option."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qalqan.api import create_app
from qalqan.domain.principal import Role
from qalqan.interop.exports import formats
from qalqan.store.tables import audit_log
from qalqan.testing import TestNode, assert_problem, bundle, fresh_instance, indicator

A = "analyst@a.test"
B = "analyst@b.test"


@dataclass
class Site:
    node: TestNode
    client: TestClient

    def get(
        self, path: str, email: str = B, headers: dict[str, str] | None = None, **params: Any
    ) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.node.keys[email]}", **(headers or {})}
        return self.client.get(path, params=params, headers=auth)

    def submit(self, email: str, *objects: dict[str, Any], **params: str) -> None:
        r = self.client.post(
            "/api/v1/objects",
            json=bundle(*objects),
            params=params,
            headers={"Authorization": f"Bearer {self.node.keys[email]}"},
        )
        assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with fresh_instance(tmp_path_factory.mktemp("exports-api")) as inst:
        node = TestNode.create(inst, "CERT-A", "KZ")
        node.add_org("CERT-B", "UZ")
        node.add_user(A, "CERT-A", Role.ANALYST)
        node.add_user(B, "CERT-B", Role.READER)
        with TestClient(create_app(inst)) as client:
            s = Site(node, client)
            s.submit(
                A,
                indicator("shared.example", kind="domain-name"),
                indicator("198.51.100.1"),
                indicator("44d88612fea8a8f36de82e1278abb02f", kind="MD5"),
                tlp="green",
                distribution="node",
            )
            s.submit(
                A,
                indicator("secret-red.example", kind="domain-name"),
                tlp="red",
                distribution="organization",
            )
            s.submit(
                A,
                indicator("own-org-only.example", kind="domain-name"),
                tlp="green",
                distribution="organization",
            )
            yield s


def test_zeek_over_http_with_etag_and_304(site: Site) -> None:
    first = site.get("/api/v1/export/zeek")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("text/plain")
    assert first.text.startswith("#fields\tindicator\tindicator_type\tmeta.source")
    assert "shared.example\tIntel::DOMAIN\tCERT-A" in first.text
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    assert "no-cache" in first.headers["cache-control"]

    again = site.get("/api/v1/export/zeek", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    # Another filter, another export: another ETag.
    other = site.get("/api/v1/export/zeek", kind="ip")
    assert other.headers["etag"] != etag
    assert "shared.example" not in other.text

    site.submit(A, indicator("new.example", kind="domain-name"), tlp="clear", distribution="all")
    changed = site.get("/api/v1/export/zeek", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert "new.example" in changed.text
    assert changed.headers["etag"] != etag


def test_suricata_comes_as_an_archive_of_rules_and_datasets(site: Site) -> None:
    r = site.get("/api/v1/export/suricata")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/gzip"
    assert "qalqan-suricata.tar.gz" in r.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        names = tar.getnames()
        rules = tar.extractfile("qalqan.rules")
        assert rules is not None
        text = rules.read().decode()
    assert {"qalqan.rules", "qalqan-domains.lst", "qalqan-md5.txt"} <= set(names)
    assert "load qalqan-domains.lst" in text
    assert "filemd5:qalqan-md5.txt" in text


@pytest.mark.parametrize("fmt", sorted(formats()))
def test_no_format_leaks_red_or_another_orgs_objects(site: Site, fmt: str) -> None:
    options = {} if fmt == "stix" else {"max_tlp": "amber+strict"}
    r = site.get(f"/api/v1/export/{fmt}", **options)
    assert r.status_code == 200, r.text
    body = r.content
    if fmt == "suricata":
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            body = b"".join((tar.extractfile(m) or io.BytesIO()).read() for m in tar.getmembers())
    for secret in (b"secret-red", b"own-org-only", b"c2VjcmV0LXJlZC", b"b3duLW9yZy1vbmx5"):
        assert secret not in body, (fmt, secret)


def test_stix_bundle_and_misp_event(site: Site) -> None:
    stix = site.get("/api/v1/export/stix", type="indicator")
    assert stix.headers["content-type"].startswith("application/stix+json")
    objects = orjson.loads(stix.content)["objects"]
    assert objects
    assert {o["type"] for o in objects} == {"indicator"}
    misp = site.get("/api/v1/export/misp")
    assert misp.headers["content-type"].startswith("application/json")
    assert {a["value"] for a in misp.json()["Event"]["Attribute"]} >= {"shared.example"}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/export/excel", {}, "format"),
        ("/api/v1/export/zeek", {"max_tlp": "purple"}, "max_tlp"),
        ("/api/v1/export/suricata", {"max_tlp": "red"}, "max_tlp"),
        ("/api/v1/export/csv", {"min_confidence": "very"}, "min_confidence"),
        ("/api/v1/export/csv", {"min_confidence": "200"}, "min_confidence"),
        ("/api/v1/export/text", {"feed": "no-such-feed"}, "feed"),
        ("/api/v1/export/text", {"since": "yesterday"}, "since"),
        ("/api/v1/export/stix", {"added_after": "yesterday"}, "since"),
        ("/api/v1/export/rpz", {"kind": "md5"}, "kind"),
    ],
)
def test_bad_options_are_400_naming_the_field(
    site: Site, path: str, params: dict[str, str], field: str
) -> None:
    body = assert_problem(site.get(path, **params), 400, "invalid_input")
    assert body["field"] == field


def test_exports_need_a_key_and_are_audited(site: Site) -> None:
    assert_problem(site.client.get("/api/v1/export/text"), 401, "unauthorized")
    assert site.get("/api/v1/export/csv", kind="domain").status_code == 200
    with site.node.instance.begin() as conn:
        entry = conn.execute(
            select(audit_log.c.action, audit_log.c.actor_org_id, audit_log.c.detail)
            .order_by(audit_log.c.id.desc())
            .limit(1)
        ).one()
    assert entry.action == "export.csv"
    assert entry.actor_org_id == site.node.org_ids["CERT-B"]
    detail = orjson.loads(entry.detail)
    assert detail["complete"] is True
    assert detail["written"] >= 1
    assert detail["filters"]["kinds"] == ["domain"]
