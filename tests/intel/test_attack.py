"""ATT&CK context: importing the ICS bundle as reference data, and per technique the counts of
the intelligence and sightings each org may see."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal, Role
from qalqan.domain.stix import format_timestamp
from qalqan.errors import Forbidden, InvalidInput, NotFound
from qalqan.instance import Instance
from qalqan.intel import attack
from qalqan.intel.importer import HandlingRequest, import_objects, load_document, objects_of
from qalqan.intel.periods import Period
from qalqan.store.clock import now_us
from qalqan.testing import STAMP, TestNode, indicator, stix_id

T0800 = "attack-pattern--19a71d1e-6334-4233-8260-b749cae37953"
T0801 = "attack-pattern--2d0d40ad-22fa-4cc8-b264-072557e1364b"
T0802 = "attack-pattern--3de230d4-3e42-4041-b089-17e1128feded"
ADMIN = "admin@a.test"


def relationship(source: str, target: str, kind: str = "uses") -> dict[str, Any]:
    return {
        "type": "relationship",
        "spec_version": "2.1",
        "id": stix_id("relationship"),
        "created": STAMP,
        "modified": STAMP,
        "relationship_type": kind,
        "source_ref": source,
        "target_ref": target,
    }


def sdo(type_name: str, name: str, **extra: Any) -> dict[str, Any]:
    obj = {
        "type": type_name,
        "spec_version": "2.1",
        "id": stix_id(type_name),
        "created": STAMP,
        "modified": STAMP,
        "name": name,
    }
    if type_name == "malware":
        obj["is_family"] = True
    obj.update(extra)
    return obj


def sighting(of: str, count: int, seen: int | None = None) -> dict[str, Any]:
    at = format_timestamp(seen if seen is not None else now_us())
    return {
        "type": "sighting",
        "spec_version": "2.1",
        "id": stix_id("sighting"),
        "created": STAMP,
        "modified": STAMP,
        "sighting_of_ref": of,
        "count": count,
        "first_seen": at,
        "last_seen": at,
    }


@dataclass
class World:
    """A node with three orgs (A: KZ, holds the ATT&CK reference data; B: UZ; C: KG)."""

    node: TestNode
    objects: list[Any]

    @property
    def instance(self) -> Instance:
        return self.node.instance

    def who(self, org: str) -> Principal:
        return self.node.principals[{"A": ADMIN, "B": "analyst@b.test", "C": "analyst@c.test"}[org]]

    def submit(
        self,
        org: str,
        *objects: dict[str, Any],
        distribution: Distribution = Distribution.NODE,
        tlp: TLP = TLP.GREEN,
        group: str | None = None,
    ) -> None:
        with self.instance.begin() as conn:
            report = import_objects(
                conn, self.who(org), list(objects), HandlingRequest(tlp, distribution, group)
            )
        assert not report.rejected, report.rejected

    def techniques(self, viewer: str, **options: Any) -> dict[str, attack.TechniqueCounts]:
        with self.instance.begin() as conn:
            page = attack.list_techniques(
                conn, self.who(viewer), attack.TechniqueFilter(**options), limit=1000
            )
        return {item.technique.attack_id: item for item in page.items}


@pytest.fixture
def world(node: TestNode, attack_bundle: Path) -> World:
    node.add_org("CERT-B", "UZ")
    node.add_org("CERT-C", "KG")
    node.add_user("analyst@b.test", "CERT-B")
    node.add_user("analyst@c.test", "CERT-C")
    objects = objects_of(load_document(attack_bundle.read_bytes()))
    with node.instance.begin() as conn:
        result = attack.import_attack(conn, node.principals[ADMIN], objects, name="ics")
    assert result.report.rejected == []
    return World(node, objects)


def test_import_reports_what_the_bundle_holds_and_is_idempotent(world: World) -> None:
    with world.instance.begin() as conn:
        again = attack.import_attack(conn, world.who("A"), world.objects, name="ics").to_dict()
    assert again["created"] == 0
    assert again["unchanged"] == len(world.objects) == 1826
    assert again["rejected"] == 0
    assert again["techniques"] == 95
    assert again["tactics"] == 12
    assert again["groups"] == 16
    assert again["software"] == 30
    assert again["relationships"] == 1373
    assert again["collection"] == "ICS ATT&CK"
    assert again["version"] == "18.1"
    assert again["revoked"] == 2


def test_import_refuses_readers_other_bundles_and_private_handling(world: World) -> None:
    world.node.add_user("reader@b.test", "CERT-B", Role.READER)
    with world.instance.begin() as conn:
        with pytest.raises(Forbidden):
            attack.import_attack(conn, world.node.principals["reader@b.test"], world.objects)
        with pytest.raises(InvalidInput, match="not an ATT&CK bundle"):
            attack.import_attack(conn, world.who("A"), [indicator("10.0.0.1")])
        with pytest.raises(InvalidInput) as refused:
            attack.import_attack(
                conn, world.who("A"), world.objects, distribution=Distribution.ORGANIZATION
            )
    assert refused.value.field == "distribution"


def test_newer_release_replaces_the_older_by_stix_versioning(world: World) -> None:
    technique = next(o for o in world.objects if o["id"] == T0800)
    newer = {**technique, "modified": "2099-01-01T00:00:00.000Z", "name": "Renamed"}
    with world.instance.begin() as conn:
        result = attack.import_attack(conn, world.who("A"), [newer, *world.objects])
    assert result.report.created == 1
    catalog = world.techniques("B", include_zero=True)
    assert catalog["T0800"].technique.name == "Renamed"
    assert len(catalog) == 95 - 12  # the deprecated ones are left out


def test_reference_data_alone_counts_nothing(world: World) -> None:
    assert world.techniques("B") == {}
    catalog = world.techniques("B", include_zero=True, include_deprecated=True)
    assert len(catalog) == 95
    assert catalog["T0800"].intelligence == 0
    assert catalog["T0803"].technique.tactics == ("inhibit-response-function",)


def test_counts_follow_what_each_org_may_see(world: World) -> None:
    private = indicator("198.51.100.7")
    shared = sdo("malware", "PipeDream")
    world.submit(
        "B",
        private,
        relationship(private["id"], T0800, "indicates"),
        distribution=Distribution.ORGANIZATION,
    )
    world.submit("B", shared, relationship(shared["id"], T0800), relationship(shared["id"], T0801))
    group = world.node.add_group("ics-partners", "CERT-B", ["CERT-B", "CERT-C"])
    grouped = sdo("intrusion-set", "Grid Wolves")
    world.submit(
        "B",
        grouped,
        relationship(grouped["id"], T0801),
        distribution=Distribution.SHARING_GROUP,
        tlp=TLP.RED,
        group=group,
    )
    report = sdo("report", "Grid intrusion", published=STAMP, object_refs=[T0802, shared["id"]])
    world.submit("C", report)

    seen_b = world.techniques("B")
    assert seen_b["T0800"].intelligence == 2
    assert seen_b["T0800"].intelligence_by_type == {"indicator": 1, "malware": 1}
    assert seen_b["T0801"].intelligence == 2
    assert seen_b["T0802"].intelligence == 1
    seen_c = world.techniques("C")
    assert seen_c["T0800"].intelligence == 1  # B's org-only indicator is not C's to count
    assert seen_c["T0801"].intelligence == 2  # the sharing group includes C
    seen_a = world.techniques("A")
    assert seen_a["T0800"].intelligence == 1
    assert seen_a["T0801"].intelligence == 1  # RED in a group A is not in
    assert seen_a["T0802"].intelligence_by_type == {"report": 1}


def test_org_only_link_to_a_shared_object_does_not_count(world: World) -> None:
    shared = indicator("203.0.113.9")
    world.submit("B", shared)
    world.submit(
        "B", relationship(shared["id"], T0800, "indicates"), distribution=Distribution.ORGANIZATION
    )
    assert "T0800" not in world.techniques("C")
    assert world.techniques("B")["T0800"].intelligence == 1


def test_sightings_of_linked_indicators_per_viewer_and_org(world: World) -> None:
    ind = indicator("192.0.2.10")
    world.submit("B", ind, relationship(ind["id"], T0800, "indicates"))
    world.submit("C", sighting(ind["id"], 5))
    world.submit("C", sighting(ind["id"], 3), distribution=Distribution.ORGANIZATION)
    world.submit("B", sighting(ind["id"], 2))

    seen_c = world.techniques("C", by_org=True)["T0800"]
    assert (seen_c.sightings, seen_c.sighting_reports) == (10, 3)
    assert seen_c.orgs is not None
    per_org = {o.name: o for o in seen_c.orgs}
    assert (per_org["CERT-C"].sightings, per_org["CERT-C"].sighting_reports) == (8, 2)
    assert (per_org["CERT-B"].sightings, per_org["CERT-B"].intelligence) == (2, 1)
    assert per_org["CERT-B"].country == "UZ"
    seen_a = world.techniques("A")["T0800"]
    assert seen_a.sightings == 7
    assert world.techniques("A", org="CERT-C")["T0800"].sightings == 5
    assert world.techniques("A", country="uz")["T0800"].sightings == 2
    top = world.techniques("C", by_org=False)
    assert list(top) == ["T0800"]


def test_period_counts_links_and_sightings_made_in_it(world: World) -> None:
    early = sdo("malware", "Early")
    world.submit("B", early, relationship(early["id"], T0801))
    ind = indicator("192.0.2.20")
    world.submit("B", ind, relationship(ind["id"], T0802, "indicates"))
    old_seen = now_us() - 40 * 86_400_000_000
    world.submit("C", sighting(ind["id"], 4, old_seen))
    time.sleep(0.002)
    middle = now_us()
    late = sdo("malware", "Late")
    world.submit("B", late, relationship(late["id"], T0800))
    world.submit("C", sighting(ind["id"], 6))

    recent = world.techniques("C", period=Period(middle, now_us() + 1))
    assert set(recent) == {"T0800", "T0802"}
    assert recent["T0802"].intelligence == 0
    assert recent["T0802"].sightings == 6
    everything = world.techniques("C")
    assert everything["T0802"].sightings == 10
    assert everything["T0801"].intelligence == 1


def test_rollup_counts_subtechniques_once_into_their_parent(world: World) -> None:
    own = sdo(
        "attack-pattern",
        "Firmware sub-technique",
        external_references=[{"source_name": "mitre-attack", "external_id": "T0800.001"}],
        x_mitre_is_subtechnique=True,
    )
    mal = sdo("malware", "Both")
    world.submit("B", own, mal, relationship(mal["id"], own["id"]), relationship(mal["id"], T0800))
    plain = world.techniques("C")
    assert plain["T0800"].intelligence == 1
    assert plain["T0800.001"].intelligence == 1
    rolled = world.techniques("C", rollup=True)
    assert rolled["T0800"].intelligence == 1
    assert "T0800.001" not in rolled


def test_sort_and_keyset_pages(world: World) -> None:
    for target, n in ((T0800, 1), (T0801, 3), (T0802, 2)):
        for i in range(n):
            mal = sdo("malware", f"m{target[-4:]}{i}")
            world.submit("B", mal, relationship(mal["id"], target))
    with world.instance.begin() as conn:
        who = world.who("C")
        first = attack.list_techniques(conn, who, attack.TechniqueFilter(), limit=2)
        assert [i.technique.attack_id for i in first.items] == ["T0801", "T0802"]
        assert first.next_cursor is not None
        second = attack.list_techniques(
            conn, who, attack.TechniqueFilter(), cursor=first.next_cursor, limit=2
        )
        assert [i.technique.attack_id for i in second.items] == ["T0800"]
        assert second.next_cursor is None
        by_id = attack.list_techniques(conn, who, attack.TechniqueFilter(), sort="attack_id")
        assert [i.technique.attack_id for i in by_id.items] == ["T0800", "T0801", "T0802"]
        with pytest.raises(InvalidInput):
            attack.list_techniques(conn, who, attack.TechniqueFilter(), sort="name")
        with pytest.raises(InvalidInput):
            attack.list_techniques(conn, who, attack.TechniqueFilter(), cursor="bm9wZQ")


def test_technique_detail_pages_linked_intelligence(world: World) -> None:
    objects = [sdo("malware", f"m{i}") for i in range(3)]
    hidden = indicator("198.51.100.77")
    world.submit("B", *objects, *(relationship(o["id"], T0800) for o in objects))
    world.submit(
        "B",
        hidden,
        relationship(hidden["id"], T0800, "indicates"),
        distribution=Distribution.ORGANIZATION,
    )
    with world.instance.begin() as conn:
        who = world.who("C")
        first = attack.show_technique(conn, who, "t0800", attack.TechniqueFilter(), limit=2)
        assert first.counts.intelligence == 3
        assert first.next_cursor is not None
        rest = attack.show_technique(
            conn, who, "T0800", attack.TechniqueFilter(), cursor=first.next_cursor, limit=2
        )
        names = [v.stix_id for v in [*first.items, *rest.items]]
        assert sorted(names) == sorted(o["id"] for o in objects)
        with pytest.raises(NotFound):
            attack.show_technique(conn, who, "T9999", attack.TechniqueFilter())


def test_attack_id_of_reads_every_attack_source() -> None:
    ref = {"source_name": "mitre-mobile-attack", "external_id": "T1422.001"}
    assert attack.attack_id_of({"external_references": [ref]}) == "T1422.001"
    assert attack.attack_id_of({"external_references": [{"source_name": "capec"}]}) is None
    assert attack.parse_domain("ICS") == "ics-attack"
    with pytest.raises(ValueError, match="enterprise"):
        attack.parse_domain("cloud")
