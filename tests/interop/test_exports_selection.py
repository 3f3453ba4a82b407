"""What detection exports hold: only active indicators the caller may see, within the TLP
ceiling (never RED), above the confidence floor; filters by kind, feed, label and time; each
value once; every export in the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Role
from qalqan.errors import InvalidInput
from qalqan.feeds.subscriptions import FeedSpec, add_feed
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.interop.exports import formats, parse_request, prepare
from qalqan.store.tables import audit_log, object_versions, observables
from qalqan.testing import TestNode, fresh_instance, indicator

A = "analyst@a.test"
B = "analyst@b.test"
C = "analyst@c.test"


def submit(
    node: TestNode,
    email: str,
    *objects: dict[str, Any],
    tlp: TLP = TLP.GREEN,
    distribution: Distribution = Distribution.NODE,
    group: str | None = None,
    source: str | None = None,
) -> None:
    with node.instance.begin() as conn:
        report = import_objects(
            conn,
            node.principals[email],
            list(objects),
            HandlingRequest(tlp, distribution, group),
            source=source,
        )
    assert not report.rejected, report.rejected


def export(
    node: TestNode, email: str, fmt: str = "text", **options: Any
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Run an export as the user; its files (by name, "" for the main one) and summary."""
    request = parse_request(fmt, **options)
    files: dict[str, bytes] = {}
    with node.instance.begin() as conn:
        prepared = prepare(conn, node.principals[email], request, default_min_confidence=50)
        for name, data in prepared.chunks(conn):
            files[name] = files.get(name, b"") + data
        prepared.audit(conn)
    return files, prepared.summary()


def values(node: TestNode, email: str, **options: Any) -> list[str]:
    return export(node, email, "text", **options)[0].get("", b"").decode().splitlines()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNode]:
    with fresh_instance(tmp_path_factory.mktemp("exports")) as inst:
        site = TestNode.create(inst, "CERT-A", "KZ")
        site.add_org("CERT-B", "UZ")
        site.add_org("CERT-C", "KG")
        for email, org in ((A, "CERT-A"), (B, "CERT-B"), (C, "CERT-C")):
            site.add_user(email, org, Role.ANALYST)
        yield site


def test_only_active_indicators_go_out(node: TestNode) -> None:
    active = indicator("198.51.100.10", confidence=90)
    unknown_confidence = indicator("198.51.100.11")
    revoked = indicator("198.51.100.12", revoked=True)
    expired = indicator("198.51.100.13", valid_until="2026-01-02T00:00:00Z")
    not_yet_expired = indicator("198.51.100.14", valid_until="2999-01-01T00:00:00Z")
    not_for_detection = indicator("198.51.100.15", x_qalqan_detect=False)
    doubtful = indicator("198.51.100.16", confidence=20)
    listed = indicator("198.51.100.17")
    vendor = "identity--11111111-1111-4111-8111-111111111111"
    withdrawn = indicator("198.51.100.18", created_by_ref=vendor)
    identity = {
        "type": "identity",
        "spec_version": "2.1",
        "id": vendor,
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "name": "A vendor",
        "identity_class": "organization",
    }
    observed = {
        "type": "ipv4-addr",
        "spec_version": "2.1",
        "id": "ipv4-addr--22222222-2222-4222-8222-222222222222",
        "value": "198.51.100.19",
    }
    submit(node, A, active, unknown_confidence, revoked, expired, not_yet_expired)
    submit(node, A, not_for_detection, doubtful, listed, identity, withdrawn, observed)
    with node.instance.begin() as conn:
        version = select(object_versions.c.date_added).where(
            object_versions.c.stix_id == listed["id"]
        )
        conn.execute(
            update(observables)
            .where(observables.c.version_id == version.scalar_subquery())
            .values(warninglist="a test list")
        )
        conn.execute(
            update(object_versions)
            .where(object_versions.c.stix_id == withdrawn["id"])
            .values(withdrawn=True)
        )
    got = set(values(node, B, kinds=["ip"]))
    assert {"198.51.100.10", "198.51.100.11", "198.51.100.14"} <= got
    for absent in (12, 13, 15, 16, 17, 18, 19):
        assert f"198.51.100.{absent}" not in got
    # The floor is an option: the doubtful one comes with a lower floor.
    assert "198.51.100.16" in values(node, B, kinds=["ip"], min_confidence="10")


def test_red_and_other_orgs_private_objects_never_appear(node: TestNode) -> None:
    red = indicator("red-only.example", kind="domain-name")
    private = indicator("private-a.example", kind="domain-name")
    amber = indicator("amber-node.example", kind="domain-name")
    submit(node, A, red, tlp=TLP.RED, distribution=Distribution.ORGANIZATION)
    submit(node, A, private, tlp=TLP.GREEN, distribution=Distribution.ORGANIZATION)
    submit(node, A, amber, tlp=TLP.AMBER, distribution=Distribution.NODE)
    for fmt in sorted(formats()):
        for email in (B, C):
            files, _ = export(node, email, fmt, max_tlp=None if fmt == "stix" else "amber+strict")
            blob = b"".join(files.values())
            assert b"red-only" not in blob, (fmt, email)
            assert b"private-a" not in blob, (fmt, email)
            assert b"cmVkLW9ubHk" not in blob  # base64 of "red-only" (Suricata datasets)
    # Its owner exports its own private indicator, but RED never, whatever the ceiling.
    own = values(node, A, kinds=["domain"], max_tlp="amber+strict")
    assert "private-a.example" in own
    assert "amber-node.example" in own
    assert "red-only.example" not in own
    with pytest.raises(InvalidInput) as refused:
        parse_request("suricata", max_tlp="red")
    assert refused.value.field == "max_tlp"
    # The default ceiling is GREEN.
    assert "amber-node.example" not in values(node, A, kinds=["domain"])


def test_sharing_groups_decide_who_sees(node: TestNode) -> None:
    group = node.add_group("pair", "CERT-A", ["CERT-B"])
    shared = indicator("group-only.example", kind="domain-name")
    submit(node, A, shared, distribution=Distribution.SHARING_GROUP, group=group)
    assert "group-only.example" in values(node, B, kinds=["domain"])
    assert "group-only.example" not in values(node, C, kinds=["domain"])


def test_each_value_once_and_grouped_by_kind(node: TestNode) -> None:
    submit(node, A, indicator("dup.example", kind="domain-name"))
    submit(node, B, indicator("dup.example", kind="domain-name"))
    submit(node, A, indicator("203.0.113.77"))
    lines = values(node, C)
    assert lines.count("dup.example") == 1
    # Kinds in their fixed order: addresses before domains.
    assert lines.index("203.0.113.77") < lines.index("dup.example")


def test_filters_by_feed_label_and_time(node: TestNode) -> None:
    with node.instance.begin() as conn:
        feed = add_feed(
            conn,
            node.principals["admin@a.test"],
            FeedSpec(name="blocklist", source="text", url="https://feeds.example/list.txt"),
        )
    submit(node, A, indicator("from-feed.example", kind="domain-name"), source=f"feed:{feed.id}")
    submit(node, A, indicator("labelled.example", kind="domain-name", labels=["c2", "apt"]))
    assert values(node, A, feeds=["blocklist"]) == ["from-feed.example"]
    assert values(node, A, labels=["c2"]) == ["labelled.example"]
    assert values(node, A, labels=["nothing-has-this"]) == []
    # Another org cannot name CERT-A's feed: it is as unknown as a missing one.
    with pytest.raises(InvalidInput) as unknown:
        export(node, B, feeds=["blocklist"])
    assert unknown.value.field == "feed"
    with pytest.raises(InvalidInput):
        export(node, A, feeds=["no-such-feed"])
    assert values(node, A, since="2999-01-01T00:00:00Z") == []
    assert "labelled.example" in values(node, A, since="2020-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"format": "excel"}, "format"),
        ({"format": "text", "max_tlp": "purple"}, "max_tlp"),
        ({"format": "zeek", "max_tlp": "red"}, "max_tlp"),
        ({"format": "text", "min_confidence": "high"}, "min_confidence"),
        ({"format": "text", "min_confidence": "101"}, "min_confidence"),
        ({"format": "text", "min_confidence": "-1"}, "min_confidence"),
        ({"format": "text", "since": "yesterday"}, "since"),
        ({"format": "text", "kinds": ["bitcoin"]}, "kind"),
        ({"format": "rpz", "kinds": ["ip"]}, "kind"),
        ({"format": "stix", "kinds": ["ip"]}, "kind"),
        ({"format": "stix", "types": ["Not A Type"]}, "type"),
        ({"format": "text", "labels": ["a\nb"]}, "label"),
    ],
)
def test_bad_options_name_their_field(options: dict[str, Any], field: str) -> None:
    fmt = options.pop("format")
    with pytest.raises(InvalidInput) as refused:
        parse_request(fmt, **options)
    assert refused.value.field == field
    assert "\n" not in refused.value.detail


def test_every_export_is_audited(node: TestNode) -> None:
    submit(node, A, indicator("audited.example", kind="domain-name"))
    _, summary = export(node, B, "zeek", kinds=["domain"])
    with node.instance.begin() as conn:
        row = conn.execute(
            select(audit_log.c.action, audit_log.c.actor_org_id, audit_log.c.detail)
            .order_by(audit_log.c.id.desc())
            .limit(1)
        ).one()
    assert row.action == "export.zeek"
    assert row.actor_org_id == node.org_ids["CERT-B"]
    detail = orjson.loads(row.detail)
    assert detail["written"] == summary["written"] > 0
    assert detail["complete"] is True
    assert detail["filters"]["kinds"] == ["domain"]


def test_the_etag_moves_with_what_the_export_holds(node: TestNode) -> None:
    request = parse_request("text", kinds=["ip"])

    def etag(email: str) -> str:
        with node.instance.begin() as conn:
            return prepare(conn, node.principals[email], request).etag(conn)

    first = etag(B)
    assert etag(B) == first
    assert etag(C) != first  # another org: another view
    soon = indicator("198.51.100.200", valid_until="2999-01-01T00:00:00Z")
    submit(node, A, soon)
    after_write = etag(B)
    assert after_write != first
    # Withdrawing moves no clock, but the fingerprint sees it.
    with node.instance.begin() as conn:
        conn.execute(
            update(object_versions)
            .where(object_versions.c.stix_id == soon["id"])
            .values(withdrawn=True)
        )
    assert etag(B) != after_write
