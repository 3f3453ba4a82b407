"""Objects made with the OASIS ``stix2`` library go in through the API and come back out in a
form the library parses to the same objects."""

from __future__ import annotations

from typing import Any

import orjson
import stix2
from fastapi.testclient import TestClient

from qalqan.testing import TestNode


def _objects() -> list[Any]:
    identity = stix2.Identity(name="CERT-A", identity_class="organization")
    malware = stix2.Malware(name="Lumma Stealer", is_family=True, created_by_ref=identity)
    indicator = stix2.Indicator(
        name="C2 address",
        pattern="[ipv4-addr:value = '198.51.100.70'] OR [domain-name:value = 'c2.evil.example']",
        pattern_type="stix",
        valid_from="2026-01-01T00:00:00Z",
        created_by_ref=identity,
        object_marking_refs=[stix2.TLP_GREEN],
        labels=["malicious-activity"],
    )
    relationship = stix2.Relationship(indicator, "indicates", malware)
    address = stix2.IPv4Address(value="198.51.100.71")
    report = stix2.Report(
        name="Stealer campaign",
        published="2026-01-02T00:00:00Z",
        object_refs=[indicator, malware, relationship],
        created_by_ref=identity,
        custom_properties={"x_qalqan_case": "case-17"},
    )
    return [identity, malware, indicator, relationship, address, report]


def test_stix2_objects_round_trip_through_the_api(node: TestNode, client: TestClient) -> None:
    objects = _objects()
    bundle = stix2.Bundle(*objects, allow_custom=True)
    auth = {"Authorization": f"Bearer {node.keys['admin@a.test']}"}
    r = client.post(
        "/api/v1/objects?tlp=green&distribution=node",
        content=bundle.serialize(),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["rejected"] == 0
    exported = client.get("/api/v1/export/stix", headers=auth)
    parsed = stix2.parse(exported.content.decode(), allow_custom=True)
    by_id = {o.id: o for o in parsed.objects}
    for original in objects:
        back = by_id[original.id]
        assert orjson.loads(back.serialize()) == orjson.loads(original.serialize())
    found = client.get(
        "/api/v1/observables", params={"value": "c2.evil.example"}, headers=auth
    ).json()
    assert [item["id"] for item in found["items"]] == [objects[2].id]
    found = client.get("/api/v1/observables", params={"value": "198.51.100.71"}, headers=auth)
    assert [item["id"] for item in found.json()["items"]] == [objects[4].id]
