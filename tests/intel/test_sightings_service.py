"""The sightings service: reports become STIX sightings with the right handling, totals count
what the caller may read, and owners are told about others' sightings however they arrive (a
report, a detection run, a peer's bundle), once, and only when they may read them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest

from qalqan.accounts import system_principal
from qalqan.detect.sightings import SightingTally, record_sightings
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal
from qalqan.errors import Forbidden, NotFound
from qalqan.intel import notifications, sighting_reports
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.intel.sighting_reports import SightingDefaults
from qalqan.intel.sightings import share_back
from qalqan.store import accounts as accounts_store
from qalqan.testing import TestNode, indicator, stix_id

SEEN = "2026-02-01T10:00:00.000Z"


class World:
    """A node of CERT-A (KZ), CERT-B (UZ) and CERT-C (KG), acting as their consoles do."""

    def __init__(self, node: TestNode) -> None:
        self.node = node
        node.add_org("CERT-B", "UZ")
        node.add_org("CERT-C", "KG")

    def org(self, name: str) -> str:
        return self.node.org_ids[name]

    def principal(self, name: str) -> Principal:
        with self.node.instance.begin() as conn:
            return system_principal(accounts_store.get_org(conn, self.org(name)), conn)

    def publish(
        self, name: str, tlp: TLP = TLP.GREEN, distribution: Distribution = Distribution.NODE
    ) -> str:
        obj = indicator("198.51.100.9")
        with self.node.instance.begin() as conn:
            report = import_objects(
                conn, self.principal(name), [obj], HandlingRequest(tlp, distribution)
            )
        assert report.created == 1
        return str(obj["id"])

    def report(
        self, name: str, *reports: Any, defaults: SightingDefaults | None = None
    ) -> sighting_reports.SightingReport:
        with self.node.instance.begin() as conn:
            return sighting_reports.submit_sightings(
                conn, self.principal(name), list(reports), defaults
            )

    def sight(self, name: str, of: str, **fields: Any) -> sighting_reports.StoredSighting:
        result = self.report(name, {"sighting_of_ref": of, "last_seen": SEEN, **fields})
        assert not result.rejected, result.rejected
        (stored,) = result.accepted
        return stored

    def totals(self, name: str, of: str) -> dict[str, Any]:
        with self.node.instance.begin() as conn:
            return sighting_reports.sighting_totals(conn, self.principal(name), of).to_dict()

    def notes(self, name: str) -> list[dict[str, Any]]:
        with self.node.instance.begin() as conn:
            page = notifications.list_notifications(conn, self.principal(name))
        items: list[dict[str, Any]] = page.to_dict()["items"]
        return items

    def peer_bundle(self, name: str, of: str, distribution: Distribution, **extra: Any) -> str:
        """A STIX sighting by ``name`` arriving through the importer (as a peer's would)."""
        sighting = {
            "type": "sighting",
            "spec_version": "2.1",
            "id": stix_id("sighting"),
            "created": SEEN,
            "modified": SEEN,
            "sighting_of_ref": of,
            "count": 2,
        }
        with self.node.instance.begin() as conn:
            report = import_objects(
                conn,
                self.principal(name),
                [sighting],
                HandlingRequest(TLP.GREEN, distribution, extra.get("group")),
                source="peer:test",
            )
        assert report.created == 1, report.rejected
        return str(sighting["id"])


@pytest.fixture
def world(node: TestNode) -> World:
    return World(node)


def test_a_report_becomes_a_stix_sighting_of_the_org(world: World) -> None:
    ioc = world.publish("CERT-A")
    stored = world.sight("CERT-B", ioc, count=3, kind="false-positive", description="fp")
    assert stored.status == "created"
    assert stored.stored is not None
    obj = orjson.loads(stored.stored.version.content)
    b_identity = f"identity--{world.org('CERT-B')}"
    assert obj["type"] == "sighting"
    assert obj["created_by_ref"] == b_identity
    assert obj["where_sighted_refs"] == [b_identity]
    assert obj["sighting_of_ref"] == ioc
    assert (obj["count"], obj["x_qalqan_sighting_kind"], obj["description"]) == (
        3,
        "false-positive",
        "fp",
    )
    assert obj["first_seen"] == obj["last_seen"] == "2026-02-01T10:00:00.000000Z"
    version = stored.stored.version
    assert (version.owner_org_id, version.distribution) == (world.org("CERT-B"), "organization")
    assert stored.stored.recipient_org_id == world.org("CERT-A")


def test_the_tlp_is_the_stricter_of_the_indicators_and_the_orgs_default(world: World) -> None:
    green = world.publish("CERT-A", TLP.GREEN)
    amber = world.publish("CERT-A", TLP.AMBER)
    for default, of, expected in (
        (TLP.CLEAR, green, TLP.GREEN),
        (TLP.CLEAR, amber, TLP.AMBER),
        (TLP.AMBER, green, TLP.AMBER),
    ):
        with world.node.instance.begin() as conn:
            accounts_store.set_org_defaults(
                conn, world.org("CERT-B"), int(default), "organization", None
            )
        stored = world.sight("CERT-B", of)
        assert stored.stored is not None
        assert stored.stored.version.tlp == int(expected)
    stored = world.sight("CERT-B", green, tlp="amber+strict")
    assert stored.stored is not None
    assert stored.stored.version.tlp == int(TLP.AMBER_STRICT)


def test_a_bad_handling_refuses_only_the_reports_asking_for_it(world: World) -> None:
    ioc = world.publish("CERT-A")
    result = world.report(
        "CERT-B",
        {"sighting_of_ref": ioc, "sharing_group": "no-such-group"},
        {"sighting_of_ref": ioc},
        {"sighting_of_ref": ioc, "tlp": "red", "distribution": "node"},
    )
    assert [a.index for a in result.accepted] == [1]
    assert [(r.index, r.field) for r in result.rejected] == [
        (0, "sharing_group"),
        (2, "object_marking_refs"),
    ]
    assert result.rejected[1].code == "policy_violation"


def test_only_writers_report_sightings(world: World) -> None:
    ioc = world.publish("CERT-A")
    reader = world.node.principals["admin@a.test"]
    reader = Principal(None, world.org("CERT-B"), reader.role.READER)
    with world.node.instance.begin() as conn, pytest.raises(Forbidden):
        sighting_reports.submit_sightings(conn, reader, [{"sighting_of_ref": ioc}])


def test_totals_count_only_the_latest_version_of_a_sighting(world: World) -> None:
    ioc = world.publish("CERT-A")
    first = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": stix_id("sighting"),
        "created": SEEN,
        "modified": SEEN,
        "sighting_of_ref": ioc,
        "count": 5,
    }
    later = {**first, "modified": "2026-02-02T00:00:00.000Z", "count": 8}
    assert not world.report("CERT-B", first, later).rejected
    totals = world.totals("CERT-A", ioc)
    assert totals["totals"]["sighting"] == {
        "reports": 1,
        "count": 8,
        "first_seen": None,
        "last_seen": None,
    }
    assert len(world.notes("CERT-A")) == 1  # told of the newest version only


def test_totals_of_an_invisible_object_are_not_found(world: World) -> None:
    hidden = world.publish("CERT-A", TLP.AMBER, Distribution.ORGANIZATION)
    with world.node.instance.begin() as conn:
        principal = world.principal("CERT-B")
        for of in (hidden, stix_id("indicator")):
            with pytest.raises(NotFound) as caught:
                sighting_reports.sighting_totals(conn, principal, of)
            assert caught.value.detail == f"no object {of}"


def test_a_detection_run_notifies_the_owner_once_when_shared(world: World) -> None:
    ioc = world.publish("CERT-A")
    tally = SightingTally()
    moment = datetime(2026, 2, 1, 9, tzinfo=UTC)
    tally.add(
        pl.Series([ioc, ioc]),
        pl.Series([int(TLP.GREEN)] * 2),
        pl.Series([world.org("CERT-A")] * 2),
        pl.Series([moment, moment]),
    )
    principal = world.principal("CERT-B")
    with world.node.instance.begin() as conn:
        assert record_sightings(conn, principal, tally, "run-1", False)[:2] == (1, 0)
    assert world.notes("CERT-A") == []
    with world.node.instance.begin() as conn:
        assert record_sightings(conn, principal, tally, "run-2", True)[:2] == (1, 1)
    (note,) = world.notes("CERT-A")
    assert note["detail"]["count"] == 2
    assert note["detail"]["org"]["country"] == "UZ"


def test_sharing_an_old_unshared_sighting_later_tells_the_owner(world: World) -> None:
    ioc = world.publish("CERT-A")
    stored = world.sight("CERT-B", ioc, share=False)
    assert world.notes("CERT-A") == []
    with world.node.instance.begin() as conn:
        released = share_back(conn, world.org("CERT-B"), {stored.id: world.org("CERT-A")}, True)
        assert released == {stored.id: world.org("CERT-A")}
        assert share_back(conn, world.org("CERT-B"), {stored.id: world.org("CERT-A")}, True)
    assert len(world.notes("CERT-A")) == 1


def test_a_peers_sighting_tells_the_owner_when_the_owner_may_read_it(world: World) -> None:
    ioc = world.publish("CERT-A")
    world.peer_bundle("CERT-C", ioc, Distribution.ORGANIZATION)
    assert world.notes("CERT-A") == []
    broadcast = world.peer_bundle("CERT-C", ioc, Distribution.ALL)
    (note,) = world.notes("CERT-A")
    assert note["detail"]["sighting"] == broadcast
    assert note["detail"]["org"]["name"] == "CERT-C"


def test_a_sharing_group_sighting_tells_the_owner_only_if_the_owner_is_a_member(
    world: World,
) -> None:
    ioc = world.publish("CERT-A")
    without_a = world.node.add_group("b-and-c", "CERT-B", ["CERT-B", "CERT-C"])
    with_a = world.node.add_group("a-and-b", "CERT-B", ["CERT-A", "CERT-B"])
    world.peer_bundle("CERT-B", ioc, Distribution.SHARING_GROUP, group=without_a)
    assert world.notes("CERT-A") == []
    told = world.peer_bundle("CERT-B", ioc, Distribution.SHARING_GROUP, group=with_a)
    assert [n["detail"]["sighting"] for n in world.notes("CERT-A")] == [told]
    assert world.notes("CERT-B") == []
    assert world.notes("CERT-C") == []


def test_marking_read(world: World) -> None:
    ioc = world.publish("CERT-A")
    world.sight("CERT-B", ioc)
    world.sight("CERT-C", ioc)
    newest, oldest = world.notes("CERT-A")
    with world.node.instance.begin() as conn:
        a = world.principal("CERT-A")
        assert notifications.mark_read(conn, world.principal("CERT-B"), [newest["id"]]) == 0
        assert notifications.mark_read(conn, a, [newest["id"], newest["id"]]) == 1
        assert notifications.mark_read(conn, a, up_to=newest["id"]) == 1
        assert notifications.mark_read(conn, a, up_to=newest["id"]) == 0
        page = notifications.list_notifications(conn, a, unread=True)
    assert page.items == []
    assert all(n["read"] for n in world.notes("CERT-A"))
    assert oldest["detail"]["org"]["name"] == "CERT-B"
