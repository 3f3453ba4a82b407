"""Dashboard statistics: what each org may see is all it counts, grouped any way it asks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal
from qalqan.errors import InvalidInput
from qalqan.intel import stats
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.intel.periods import DAY_US, Period, parse_period
from qalqan.store import feeds as feeds_store
from qalqan.store.clock import now_us
from qalqan.testing import STAMP, TestNode, indicator, stix_id

USERS = {"A": "analyst@a.test", "B": "analyst@b.test", "C": "analyst@c.test"}


def sighting(of: str, count: int, kind: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": stix_id("sighting"),
        "created": STAMP,
        "modified": STAMP,
        "sighting_of_ref": of,
        "count": count,
    }
    if kind:
        obj["x_qalqan_sighting_kind"] = kind
    return obj


@dataclass
class World:
    node: TestNode

    def who(self, org: str) -> Principal:
        return self.node.principals[USERS[org]]

    def submit(
        self,
        org: str,
        *objects: dict[str, Any],
        tlp: TLP = TLP.GREEN,
        distribution: Distribution = Distribution.NODE,
        group: str | None = None,
    ) -> None:
        with self.node.instance.begin() as conn:
            report = import_objects(
                conn, self.who(org), list(objects), HandlingRequest(tlp, distribution, group)
            )
        assert not report.rejected, report.rejected

    def period(self) -> Period:
        return parse_period(None, None, now=now_us() + 1)

    def objects(self, org: str, by: list[str]) -> stats.Counts:
        with self.node.instance.begin() as conn:
            return stats.object_stats(conn, self.who(org), self.period(), by)

    def sightings(self, org: str, by: list[str]) -> stats.Counts:
        with self.node.instance.begin() as conn:
            return stats.sighting_stats(conn, self.who(org), self.period(), by)

    def top(self, org: str, **options: Any) -> list[stats.TopValue]:
        with self.node.instance.begin() as conn:
            return stats.top_values(conn, self.who(org), self.period(), **options)


@pytest.fixture
def world(node: TestNode) -> World:
    node.add_org("CERT-B", "UZ")
    node.add_org("CERT-C", "KG")
    for org, email in USERS.items():
        node.add_user(email, f"CERT-{org}")
    w = World(node)
    group = node.add_group("pair", "CERT-B", ["CERT-B", "CERT-C"])
    w.submit("B", indicator("192.0.2.1"), indicator("192.0.2.2"))
    w.submit("B", indicator("192.0.2.1"), tlp=TLP.AMBER, distribution=Distribution.ORGANIZATION)
    w.submit(
        "B",
        indicator("192.0.2.1"),
        tlp=TLP.RED,
        distribution=Distribution.SHARING_GROUP,
        group=group,
    )
    w.submit("C", indicator("192.0.2.1"), tlp=TLP.CLEAR)
    return w


def _indicators(counts: stats.Counts) -> dict[tuple[Any, ...], int]:
    return {
        tuple(v["name"] if isinstance(v, dict) else v for k, v in row.items() if k in counts.by): (
            row["objects"]
        )
        for row in counts.rows
        if row.get("type", "indicator") == "indicator"
    }


def test_objects_count_only_what_each_org_may_see(world: World) -> None:
    by = ["org", "type", "tlp"]
    assert _indicators(world.objects("A", by)) == {
        ("CERT-B", "indicator", "GREEN"): 2,
        ("CERT-C", "indicator", "CLEAR"): 1,
    }
    assert _indicators(world.objects("B", by)) == {
        ("CERT-B", "indicator", "GREEN"): 2,
        ("CERT-B", "indicator", "AMBER"): 1,
        ("CERT-B", "indicator", "RED"): 1,
        ("CERT-C", "indicator", "CLEAR"): 1,
    }
    assert _indicators(world.objects("C", by))[("CERT-B", "indicator", "RED")] == 1
    assert ("CERT-B", "indicator", "AMBER") not in _indicators(world.objects("C", by))


def test_objects_group_by_day_and_country(world: World) -> None:
    counts = world.objects("A", ["day", "country", "type"])
    today = counts.rows[0]["day"]
    assert len(today) == 10
    rows = {(r["day"], r["country"], r["type"]): r["versions"] for r in counts.rows}
    assert rows[(today, "UZ", "indicator")] == 2
    assert rows[(today, "KG", "indicator")] == 1
    assert counts.totals["versions"] == sum(r["versions"] for r in counts.rows)
    assert world.objects("A", []).rows == [counts.totals]


def test_sightings_count_what_each_org_may_see_by_kind(world: World) -> None:
    shared = indicator("198.51.100.1")
    world.submit("B", shared)
    world.submit("C", sighting(shared["id"], 4), sighting(shared["id"], 1, "false-positive"))
    world.submit("C", sighting(shared["id"], 6), distribution=Distribution.ORGANIZATION)
    seen_a = world.sightings("A", ["org", "kind"])
    assert [(r["org"]["name"], r["kind"], r["sightings"], r["count"]) for r in seen_a.rows] == [
        ("CERT-C", "false-positive", 1, 1),
        ("CERT-C", "sighting", 1, 4),
    ]
    seen_c = world.sightings("C", ["country"])
    assert seen_c.rows == [{"country": "KG", "sightings": 3, "count": 11}]
    assert seen_c.totals == {"sightings": 3, "count": 11}
    day = world.sightings("B", ["day"]).rows
    assert len(day) == 1
    assert day[0]["count"] == 5


def test_top_values_count_distinct_visible_objects(world: World) -> None:
    assert [(v.value, v.objects, v.orgs) for v in world.top("A")] == [("192.0.2.1", 2, 2)]
    assert [(v.value, v.objects) for v in world.top("B")] == [("192.0.2.1", 4)]
    assert [(v.value, v.objects) for v in world.top("C")] == [("192.0.2.1", 3)]
    singles = world.top("A", min_objects=1)
    assert [v.value for v in singles] == ["192.0.2.1", "192.0.2.2"]
    assert world.top("A", kinds=["domain"]) == []
    with pytest.raises(InvalidInput) as bad:
        world.top("A", kinds=["ipv5"])
    assert bad.value.field == "kind"


def test_period_bounds_what_is_counted(world: World) -> None:
    with world.node.instance.begin() as conn:
        later = Period(now_us() + 1, now_us() + DAY_US)
        empty = stats.object_stats(conn, world.who("A"), later, ["type"])
    assert empty.rows == []
    assert empty.totals == {"objects": 0, "versions": 0}


def test_dimensions_and_periods_are_checked() -> None:
    assert stats.parse_dimensions("day, ORG,day", stats.OBJECT_DIMENSIONS) == ["day", "org"]
    assert stats.parse_dimensions(["type", "tlp"], stats.OBJECT_DIMENSIONS) == ["type", "tlp"]
    with pytest.raises(InvalidInput) as bad:
        stats.parse_dimensions("kind", stats.OBJECT_DIMENSIONS)
    assert bad.value.field == "by"
    now = 1_800_000_000_000_000
    assert parse_period("7d", None, now=now) == Period(now - 7 * DAY_US, now)
    assert (
        parse_period("2027-01-01", "2027-01-02T00:00:00Z", now=now).until
        - (parse_period("2027-01-01", "2027-01-02T00:00:00Z", now=now).since or 0)
        == DAY_US
    )
    for since, until, field in (
        ("yesterday", None, "since"),
        (None, "soon", "until"),
        ("400d", None, "since"),
        ("1d", "2d", "since"),
    ):
        with pytest.raises(InvalidInput) as refused:
            parse_period(since, until, now=now)
        assert refused.value.field == field


def _feed(owner: str, name: str, schedule: int | None, created_at: int) -> feeds_store.FeedRecord:
    return feeds_store.FeedRecord(
        id=str(uuid.uuid4()),
        name=name,
        source="text",
        url="https://feeds.example/list.txt",
        options={},
        owner_org_id=owner,
        tlp=int(TLP.GREEN),
        distribution="node",
        sharing_group_id=None,
        confidence=None,
        schedule_seconds=schedule,
        expire_after_seconds=None,
        on_warninglist="flag",
        enabled=True,
        state={},
        created_at=created_at,
        created_by=None,
        next_run_at=None,
    )


def test_feed_health(world: World) -> None:
    now = now_us()
    hour = 3_600_000_000
    a, b = world.node.org_ids["CERT-A"], world.node.org_ids["CERT-B"]
    with world.node.instance.begin() as conn:
        failing = _feed(a, "failing", 3600, now - 10 * hour)
        stale = _feed(a, "stale", 3600, now - 10 * hour)
        fresh = _feed(a, "fresh", 3600, now - 10 * hour)
        manual = _feed(a, "manual", None, now - 10 * hour)
        other = _feed(b, "theirs", 3600, now)
        for feed in (failing, stale, fresh, manual, other):
            feeds_store.insert_feed(conn, feed)
        runs = [
            (failing, "ok", now - 3 * hour),
            (failing, "failed", now - 2 * hour),
            (failing, "failed", now - hour),
            (stale, "ok", now - 5 * hour),
            (fresh, "failed", now - 2 * hour),
            (fresh, "ok", now - hour),
        ]
        for feed, status, at in runs:
            run = feeds_store.start_run(conn, feed.id, "schedule", at)
            feeds_store.finish_run(
                conn, run, at=at + 1, status=status, counts={"new": 3}, errors=[], error=None
            )
        health = {h.feed.name: h for h in stats.feed_health(conn, world.who("A"), now=now)}
    assert sorted(health) == ["failing", "fresh", "manual", "stale"]  # not CERT-B's feed
    assert (health["failing"].status, health["failing"].state.failures_in_a_row) == (  # type: ignore[union-attr]
        "failing",
        2,
    )
    assert health["stale"].stale
    assert not health["stale"].healthy
    assert health["fresh"].healthy
    assert health["fresh"].state.failures_in_a_row == 0  # type: ignore[union-attr]
    assert health["fresh"].state.last_counts["new"] == 3  # type: ignore[union-attr]
    assert health["manual"].status == "never-run"
    assert not health["manual"].healthy
