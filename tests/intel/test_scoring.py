"""Indicator scores: started when an indicator is stored, reset and raised by sightings,
lowered by false positives, zeroed by expirations, refreshed in bulk; a decayed indicator
leaves detection exports and sweeps but stays stored."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete, select

from qalqan.detect.sweep import load_plan
from qalqan.domain.decay import DAY_US, DecayConfig
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.stix import format_timestamp
from qalqan.intel import scoring
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.interop.exports import parse_request, prepare
from qalqan.store import clock
from qalqan.store.exports import IndicatorSelection, iter_indicator_observables
from qalqan.store.tables import indicator_scores, object_versions
from qalqan.testing import STAMP, TestNode, indicator, stix_id

ADMIN = "admin@a.test"
HOUR_US = 3600 * 1_000_000


@dataclass
class Clock:
    """Moves the node's clock (``date_added``) and the scorer's "now" forward."""

    offset: int = 0

    def now(self) -> int:
        return time.time_ns() // 1000 + self.offset

    def advance(self, days: float) -> int:
        self.offset += int(days * DAY_US)
        return self.now()


@pytest.fixture
def moving_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moving = Clock()
    monkeypatch.setattr(clock, "now_us", moving.now)
    monkeypatch.setattr(scoring, "now_us", moving.now)
    monkeypatch.setattr("qalqan.interop.exports.service.now_us", moving.now)
    return moving


def submit(node: TestNode, *objects: dict[str, Any], email: str = ADMIN) -> None:
    with node.instance.begin() as conn:
        report = import_objects(
            conn,
            node.principals[email],
            list(objects),
            HandlingRequest(TLP.GREEN, Distribution.NODE),
        )
    assert not report.rejected, report.rejected


def sighting(of: str, kind: str = "sighting", last_seen: int | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": stix_id("sighting"),
        "created": STAMP,
        "modified": STAMP,
        "sighting_of_ref": of,
        "count": 3,
        "x_qalqan_sighting_kind": kind,
    }
    if last_seen is not None:
        obj["first_seen"] = obj["last_seen"] = format_timestamp(last_seen)
    return obj


def row(node: TestNode, ref: str) -> dict[str, Any]:
    with node.instance.begin() as conn:
        found = conn.execute(
            select(indicator_scores).where(indicator_scores.c.stix_id == ref)
        ).first()
    assert found is not None, f"no score row for {ref}"
    return dict(found._mapping)


def added(node: TestNode, ref: str) -> int:
    with node.instance.begin() as conn:
        return int(
            conn.execute(
                select(object_versions.c.date_added).where(
                    object_versions.c.stix_id == ref, object_versions.c.is_latest.is_(True)
                )
            ).scalar_one()
        )


def test_a_new_indicator_starts_at_its_confidence(node: TestNode) -> None:
    address = indicator("198.51.100.1", confidence=80)
    unknown = indicator("evil.example", kind="domain-name")
    odd = indicator("x", pattern="[process:name = 'evil.exe']")
    submit(node, address, unknown, odd)
    got = row(node, address["id"])
    assert (got["kind"], got["base"], got["false_positives"], got["score"]) == ("ip", 80, 0, 80)
    assert got["reset_at"] == added(node, address["id"])
    assert got["expired_at"] is None
    # ip: tau 30 days, delta 0.5; 80 falls to 30 after 30 * (1 - 30/80)^0.5 days.
    expected = got["reset_at"] + round(30 * DAY_US * (1 - 30 / 80) ** 0.5)
    assert abs(got["decays_at"] - expected) <= 1
    medium = row(node, unknown["id"])
    assert (medium["kind"], medium["base"], medium["score"]) == ("domain", 50, 50)
    assert row(node, odd["id"])["kind"] == "other"


def test_a_sighting_resets_the_decay_and_raises_the_base(
    node: TestNode, moving_clock: Clock
) -> None:
    address = indicator("198.51.100.2", confidence=80)
    submit(node, address)
    first = row(node, address["id"])
    later = moving_clock.advance(20)
    with node.instance.begin() as conn:
        scoring.refresh(conn, now=later, config=scoring.default_config())
    decayed = row(node, address["id"])["score"]
    assert decayed == round(80 * (1 - (20 / 30) ** 2))
    seen = later - HOUR_US
    submit(node, sighting(address["id"], last_seen=seen))
    got = row(node, address["id"])
    assert got["reset_at"] == seen
    assert got["base"] == 85
    assert got["score"] == 85 > decayed
    assert got["decays_at"] > first["decays_at"]
    # A sighting that saw it before the decay last started changes the base only.
    submit(node, sighting(address["id"], last_seen=seen - 10 * DAY_US))
    again = row(node, address["id"])
    assert (again["reset_at"], again["base"]) == (seen, 90)


def test_a_sighting_from_the_future_counts_from_when_it_arrived(node: TestNode) -> None:
    address = indicator("198.51.100.3")
    submit(node, address)
    report = sighting(address["id"], last_seen=clock.now_us() + 365 * DAY_US)
    submit(node, report)
    assert row(node, address["id"])["reset_at"] == added(node, report["id"])


def test_false_positives_lower_the_score(node: TestNode) -> None:
    confident = indicator("198.51.100.4", confidence=80)
    submit(node, confident)
    before = row(node, confident["id"])
    submit(node, sighting(confident["id"], "false-positive"))
    once = row(node, confident["id"])
    assert (once["base"], once["false_positives"], once["score"]) == (80, 1, 40)
    assert once["decays_at"] < before["decays_at"]
    submit(node, sighting(confident["id"], "false-positive"))
    twice = row(node, confident["id"])
    assert (twice["false_positives"], twice["score"]) == (2, 20)
    assert twice["decays_at"] <= twice["reset_at"]


def test_only_reports_the_owner_may_read_count(node: TestNode) -> None:
    node.add_org("CERT-B", "UZ")
    node.add_user("b@b.test", "CERT-B")
    confident = indicator("198.51.100.14", confidence=80)
    submit(node, confident)
    with node.instance.begin() as conn:
        hidden = import_objects(
            conn,
            node.principals["b@b.test"],
            [sighting(confident["id"], "false-positive")],
            HandlingRequest(TLP.AMBER, Distribution.ORGANIZATION),
        )
    assert not hidden.rejected
    # B's private report cannot take A's indicator out of detection.
    assert (row(node, confident["id"])["false_positives"], row(node, confident["id"])["score"]) == (
        0,
        80,
    )
    submit(node, sighting(confident["id"], "false-positive"), email="b@b.test")
    assert row(node, confident["id"])["false_positives"] == 1


def test_an_expiration_sets_the_score_to_zero(node: TestNode) -> None:
    address = indicator("198.51.100.5", confidence=100)
    submit(node, address)
    report = sighting(address["id"], "expiration")
    submit(node, report)
    got = row(node, address["id"])
    assert got["score"] == 0
    assert got["expired_at"] == got["decays_at"] == added(node, report["id"])


def test_a_new_version_keeps_the_reports_and_takes_the_new_confidence(node: TestNode) -> None:
    address = indicator("198.51.100.6", confidence=90)
    submit(node, address)
    submit(node, sighting(address["id"], "false-positive"), sighting(address["id"]))
    assert row(node, address["id"])["base"] == 95
    submit(node, {**address, "modified": "2026-02-01T00:00:00.000Z", "confidence": 61})
    got = row(node, address["id"])
    assert (got["base"], got["false_positives"], got["score"]) == (66, 1, 33)
    assert got["reset_at"] == added(node, address["id"])


def test_reports_listed_before_their_indicator_count(node: TestNode) -> None:
    address = indicator("198.51.100.7", confidence=90)
    submit(node, sighting(address["id"], "false-positive"), address)
    assert row(node, address["id"])["false_positives"] == 1


def test_a_revoked_report_no_longer_counts(node: TestNode) -> None:
    address = indicator("198.51.100.8", confidence=90)
    report = sighting(address["id"], "false-positive")
    submit(node, address, report)
    assert row(node, address["id"])["false_positives"] == 1
    submit(node, {**report, "modified": "2026-02-01T00:00:00.000Z", "revoked": True})
    assert row(node, address["id"])["false_positives"] == 0


def test_a_refresh_writes_only_what_changed(node: TestNode, moving_clock: Clock) -> None:
    address = indicator("198.51.100.9", confidence=80)
    digest = indicator("a" * 64, kind="SHA-256", confidence=80)
    submit(node, address, digest)
    config = scoring.default_config()
    with node.instance.begin() as conn:
        unchanged = scoring.refresh(conn, now=moving_clock.now(), config=config)
    assert (unchanged.rows, unchanged.changed, unchanged.decays_changed) == (2, 0, 0)
    steps: list[tuple[int, int]] = []
    with node.instance.begin() as conn:
        later = scoring.refresh(
            conn,
            now=moving_clock.advance(10),
            config=config,
            chunk=1,
            progress=lambda done, total: steps.append((done, total)),
        )
    assert (later.rows, later.changed, later.decays_changed) == (2, 1, 0)
    assert steps == [(1, 2), (2, 2)]
    assert row(node, address["id"])["score"] == round(80 * (1 - (10 / 30) ** 2))
    assert row(node, digest["id"])["score"] == 80
    # New settings move the moment each indicator leaves detection.
    keep_all = DecayConfig.from_pairs(0, {"other": (365, 1.0)})
    with node.instance.begin() as conn:
        changed = scoring.refresh(conn, now=moving_clock.now(), config=keep_all)
    assert changed.decays_changed == 2
    assert row(node, address["id"])["decays_at"] is None


def _exported(node: TestNode, now: int) -> set[str]:
    principal = node.principals[ADMIN]
    selection = IndicatorSelection(now=now, ceiling=TLP.GREEN)
    with node.instance.begin() as conn:
        return {
            r[1] for batch in iter_indicator_observables(conn, principal, selection) for r in batch
        }


def _swept(node: TestNode, now: int) -> set[str]:
    with node.instance.begin() as conn:
        plan = load_plan(conn, node.principals[ADMIN], now=now)
    return set(plan.refs["value"].to_list())


def _text_export(node: TestNode) -> set[str]:
    with node.instance.begin() as conn:
        prepared = prepare(conn, node.principals[ADMIN], parse_request("text"))
        body = b"".join(data for _, data in prepared.chunks(conn))
    return set(body.decode().split())


def test_a_decayed_indicator_leaves_exports_and_sweeps_but_stays(node: TestNode) -> None:
    address = indicator("198.51.100.10")
    digest = indicator("b" * 64, kind="SHA-256")
    submit(node, address, digest)
    now = clock.now_us()
    assert {"198.51.100.10", "b" * 64} <= _exported(node, now)
    assert {"198.51.100.10", "b" * 64} <= _swept(node, now)
    # ip at 50: below 30 after 30 * 0.4^0.5 = 19 days; sha256 lasts much longer.
    later = now + 25 * DAY_US
    assert _exported(node, later) == {"b" * 64}
    assert _swept(node, later) == {"b" * 64}
    assert row(node, address["id"])["decays_at"] <= later
    with node.instance.begin() as conn:
        kept = conn.execute(
            select(object_versions.c.stix_id).where(object_versions.c.stix_id == address["id"])
        ).all()
    assert kept


def test_a_false_positive_takes_an_indicator_out_of_detection_exports_now(
    node: TestNode,
) -> None:
    doubted = indicator("198.51.100.11")
    trusted = indicator("198.51.100.12", confidence=90)
    submit(node, doubted, trusted)
    assert {"198.51.100.11", "198.51.100.12"} <= _text_export(node)
    submit(
        node, sighting(doubted["id"], "false-positive"), sighting(trusted["id"], "false-positive")
    )
    got = _text_export(node)
    assert "198.51.100.11" not in got
    assert "198.51.100.12" in got
    assert "198.51.100.11" not in _swept(node, clock.now_us())


def test_an_expired_indicator_leaves_at_once(node: TestNode) -> None:
    address = indicator("198.51.100.13", confidence=100)
    submit(node, address)
    submit(node, sighting(address["id"], "expiration"))
    assert "198.51.100.13" not in _text_export(node)
    assert "198.51.100.13" not in _swept(node, clock.now_us())


def test_an_indicator_without_a_score_takes_part(node: TestNode) -> None:
    address = indicator("198.51.100.14")
    submit(node, address)
    with node.instance.begin() as conn:
        conn.execute(delete(indicator_scores))
    assert "198.51.100.14" in _exported(node, clock.now_us() + 365 * DAY_US)


def test_a_decaying_indicator_changes_the_export_etag(node: TestNode, moving_clock: Clock) -> None:
    submit(node, indicator("198.51.100.15"))
    with node.instance.begin() as conn:
        first = prepare(conn, node.principals[ADMIN], parse_request("text")).etag(conn)
        assert prepare(conn, node.principals[ADMIN], parse_request("text")).etag(conn) == first
    moving_clock.advance(25)
    with node.instance.begin() as conn:
        assert prepare(conn, node.principals[ADMIN], parse_request("text")).etag(conn) != first
