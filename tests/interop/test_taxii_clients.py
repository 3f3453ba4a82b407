"""The TAXII server driven by real clients over real HTTP: OASIS ``taxii2-client`` and the
``stix2`` library's TAXII data source and sink."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import stix2
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Role
from qalqan.instance import Instance
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.testing import TestNode, indicator, serving_app, stix_id


class _Bearer(requests.auth.AuthBase):
    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.key}"
        return r


@dataclass
class Live:
    node: TestNode
    base: str

    def server(self, email: str) -> Server:
        return Server(f"{self.base}/taxii2/", auth=_Bearer(self.node.keys[email]))

    def root(self, email: str) -> ApiRoot:
        roots = self.server(email).api_roots
        assert len(roots) == 1
        return roots[0]

    def collection(self, email: str, alias: str) -> Collection:
        for c in self.root(email).collections:
            if c._raw.get("alias") == alias:
                return c
        raise AssertionError(f"{email} has no collection {alias}")


@pytest.fixture
def live(instance: Instance) -> Iterator[Live]:
    node = TestNode.create(instance)
    node.add_org("CERT-B")
    node.add_user("analyst@a.test", "CERT-A")
    node.add_user("analyst@b.test", "CERT-B")
    node.add_user("reader@b.test", "CERT-B", Role.READER)
    with serving_app(instance) as base:
        yield Live(node, base)


def _store(live: Live, email: str, objects: list[dict[str, Any]], **handling: Any) -> None:
    request = HandlingRequest(
        TLP.parse(handling.get("tlp", "green")),
        Distribution.parse(handling.get("distribution", "node")),
        handling.get("sharing_group"),
    )
    with live.node.instance.begin() as conn:
        report = import_objects(conn, live.node.principals[email], objects, request)
    assert not report.rejected, report.rejected


def test_taxii2_client_reads_every_endpoint(live: Live) -> None:
    objects = [indicator(f"198.51.100.{i}") for i in range(25)]
    _store(live, "analyst@a.test", objects)
    server = live.server("analyst@b.test")
    assert server.title.startswith("Qalqan")
    assert server.default is not None
    assert server.default.url.endswith("/taxii2/api/")
    root = live.root("analyst@b.test")
    assert root.versions == ["application/taxii+json;version=2.1"]
    assert root.max_content_length > 0
    everything = live.collection("analyst@b.test", "all")
    assert everything.can_read
    assert everything.can_write

    pages = list(as_pages(everything.get_objects, per_request=10))
    ids = [o["id"] for env in pages for o in env.get("objects", [])]
    assert len(ids) == len(set(ids))
    assert {o["id"] for o in objects} <= set(ids)
    assert all(env["more"] for env in pages[:-1])
    assert not pages[-1]["more"]

    manifest = list(as_pages(everything.get_manifest, per_request=7))
    entries = [e for env in manifest for e in env.get("objects", [])]
    assert [e["id"] for e in entries] == ids
    assert all(e["media_type"] == "application/stix+json;version=2.1" for e in entries)

    one = objects[3]
    got = everything.get_object(one["id"])
    assert got["objects"] == [one]
    versions = everything.object_versions(one["id"])
    assert versions["versions"] == ["2026-01-01T00:00:00.000000Z"]

    typed = everything.get_objects(type="indicator", limit=1000)
    assert {o["type"] for o in typed["objects"]} == {"indicator"}
    by_id = everything.get_objects(id=f"{objects[0]['id']},{objects[1]['id']}")
    assert {o["id"] for o in by_id["objects"]} == {objects[0]["id"], objects[1]["id"]}


def test_taxii2_client_adds_waits_and_deletes(live: Live) -> None:
    everything = live.collection("analyst@a.test", "all")
    good = [indicator("203.0.113.5"), indicator("evil.example", "domain-name")]
    bad = {"type": "indicator", "spec_version": "2.1", "id": "indicator--nope"}
    envelope = json.dumps({"objects": [good[0], bad, good[1]]})
    status = everything.add_objects(envelope, wait_for_completion=True, poll_interval=0.1)
    assert status.status == "complete"
    assert (status.total_count, status.success_count, status.failure_count) == (3, 2, 1)
    assert {s["id"] for s in status.successes} == {g["id"] for g in good}
    assert status.failures[0]["id"] == "indicator--nope"
    assert "id" in status.failures[0]["message"]
    status.refresh()
    assert status.success_count == 2

    # Another org sees what was added (distribution node by default for CERT-A)...
    other = live.collection("analyst@b.test", "all")
    assert other.get_object(good[0]["id"])["objects"][0]["id"] == good[0]["id"]
    # ...but may not delete it: only the owner org may.
    with pytest.raises(requests.HTTPError) as refused:
        other.delete_object(good[0]["id"])
    assert refused.value.response.status_code == 403

    everything.delete_object(good[0]["id"])
    with pytest.raises(requests.HTTPError) as gone:
        everything.get_object(good[0]["id"])
    assert gone.value.response.status_code == 404
    assert everything.get_object(good[1]["id"])["objects"]


def test_read_only_collection_refuses_writes(live: Live) -> None:
    green = live.collection("analyst@a.test", "indicators-green")
    assert green.can_read
    assert not green.can_write
    url = green.url + "objects/"
    response = requests.post(
        url,
        data=json.dumps({"objects": [indicator("192.0.2.1")]}),
        headers={
            "Authorization": f"Bearer {live.node.keys['analyst@a.test']}",
            "Accept": "application/taxii+json;version=2.1",
            "Content-Type": "application/taxii+json;version=2.1",
        },
        timeout=10,
    )
    assert response.status_code == 403
    assert response.json()["http_status"] == "403"
    # A reader may read the writable collection but not write to it.
    reader_view = live.collection("reader@b.test", "all")
    assert reader_view.can_read
    assert not reader_view.can_write


def test_stix2_collection_source_and_sink(live: Live) -> None:
    writer = live.collection("analyst@a.test", "all")
    sink = stix2.TAXIICollectionSink(writer)
    malware = stix2.Malware(name="QalqanTestLoader", is_family=True)
    ind = stix2.Indicator(
        name="loader c2",
        pattern="[ipv4-addr:value = '192.0.2.77']",
        pattern_type="stix",
        valid_from="2026-01-01T00:00:00Z",
    )
    sink.add([malware, ind])

    source = stix2.TAXIICollectionSource(live.collection("analyst@b.test", "all"))
    got = source.get(ind.id)
    assert got is not None
    assert got.pattern == ind.pattern
    found = source.query([stix2.Filter("type", "=", "malware")])
    assert malware.id in {m.id for m in found}
    assert source.all_versions(malware.id)[0].name == "QalqanTestLoader"


def test_red_and_organization_objects_never_reach_another_org(live: Live) -> None:
    red = indicator("10.66.0.1")
    private = indicator("10.66.0.2")
    shared = indicator("10.66.0.3")
    _store(live, "analyst@a.test", [red], tlp="red", distribution="organization")
    _store(live, "analyst@a.test", [private], tlp="amber", distribution="organization")
    _store(live, "analyst@a.test", [shared], tlp="green", distribution="node")
    hidden = {red["id"], private["id"]}

    for alias in ("all", "indicators-green"):
        c = live.collection("analyst@b.test", alias)
        seen = {o["id"] for env in as_pages(c.get_objects, per_request=50)
                for o in env.get("objects", [])}  # fmt: skip
        listed = {e["id"] for env in as_pages(c.get_manifest, per_request=50)
                  for e in env.get("objects", [])}  # fmt: skip
        everything = c.get_objects(version="all")
        all_versions = {o["id"] for o in everything.get("objects", [])}
        assert not (seen | listed | all_versions) & hidden
        for stix in hidden:
            for call in (c.get_object, c.object_versions):
                with pytest.raises(requests.HTTPError) as missing:
                    call(stix)
                assert missing.value.response.status_code == 404
    assert shared["id"] in {o["id"] for o in live.collection("analyst@b.test", "all")
                            .get_objects().get("objects", [])}  # fmt: skip
    # The owner org itself sees all three.
    own = live.collection("analyst@a.test", "all").get_objects(id=",".join(hidden))
    assert {o["id"] for o in own["objects"]} == hidden


def test_sharing_group_collection_is_for_members_only(live: Live) -> None:
    node = live.node
    node.add_org("CERT-C")
    node.add_user("analyst@c.test", "CERT-C")
    node.add_group("central", "CERT-A", ["CERT-B"])
    member = [c for c in live.root("analyst@b.test").collections if "central" in c.title]
    outsider = [c for c in live.root("analyst@c.test").collections if "central" in c.title]
    assert len(member) == 1
    assert not outsider
    writer = next(c for c in live.root("analyst@a.test").collections if "central" in c.title)
    obj = indicator("group-only.example", "domain-name")
    status = writer.add_objects(json.dumps({"objects": [obj]}))
    assert status.success_count == 1
    assert member[0].get_object(obj["id"])["objects"][0]["id"] == obj["id"]
    everything_c = live.collection("analyst@c.test", "all")
    with pytest.raises(requests.HTTPError):
        everything_c.get_object(obj["id"])
    # The group's collection id is the same every time it is listed.
    again = [c for c in live.root("analyst@b.test").collections if "central" in c.title]
    assert again[0].id == member[0].id


def test_client_sees_taxii_errors(live: Live) -> None:
    everything = live.collection("analyst@a.test", "all")
    with pytest.raises((requests.HTTPError, TAXIIServiceException)):
        everything.get_objects(limit=-1)
    with pytest.raises(requests.HTTPError) as missing:
        everything.get_object(stix_id("indicator"))
    assert missing.value.response.status_code == 404
