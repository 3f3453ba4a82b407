"""The STIX importer: per-object findings, references, versions, handling, observables, audit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from stix2validator import ValidationOptions, validate_instance

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.observables import normalize, parse_value
from qalqan.domain.principal import Role
from qalqan.errors import Forbidden, InvalidInput, NotFound
from qalqan.intel import reading
from qalqan.intel.importer import HandlingRequest, ImportReport, import_objects, objects_of
from qalqan.store import objects as objects_store
from qalqan.store.clock import local_clock
from qalqan.store.objects import ObjectFilter
from qalqan.store.tables import audit_log, object_versions, observables
from qalqan.testing import TestNode, indicator, stix_id

ADMIN = "admin@a.test"
T1 = "2026-01-01T00:00:00.000Z"
T2 = "2026-02-01T00:00:00.000Z"
T3 = "2026-03-01T00:00:00.000Z"

TLP1_IDS = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": TLP.CLEAR,
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": TLP.GREEN,
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": TLP.AMBER,
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": TLP.RED,
}


# --- helpers --------------------------------------------------------------------------------


def sdo(type_name: str, **properties: Any) -> dict[str, Any]:
    """A domain object with a new id and the common properties filled in."""
    return {
        "type": type_name,
        "spec_version": "2.1",
        "id": stix_id(type_name),
        "created": T1,
        "modified": T1,
        **properties,
    }


def malware(**properties: Any) -> dict[str, Any]:
    return sdo("malware", **{"name": "Mirai", "is_family": True, **properties})


def relationship(source: str, target: str, **properties: Any) -> dict[str, Any]:
    return sdo(
        "relationship", relationship_type="indicates", source_ref=source, target_ref=target,
        **properties,
    )  # fmt: skip


def run_import(
    node: TestNode,
    objects: Sequence[Any],
    handling: HandlingRequest | None = None,
    who: str = ADMIN,
) -> ImportReport:
    with node.instance.begin() as conn:
        return import_objects(conn, node.principals[who], objects, handling)


def count(node: TestNode, table: Any, *where: Any) -> int:
    with node.instance.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar())


def stored(node: TestNode, stix: str) -> list[dict[str, Any]]:
    """Stored rows of one object, oldest ``modified`` first."""
    with node.instance.begin() as conn:
        rows = conn.execute(
            select(object_versions)
            .where(object_versions.c.stix_id == stix)
            .order_by(object_versions.c.modified)
        )
        return [dict(r._mapping) for r in rows]


def statuses(report: ImportReport) -> dict[int, str]:
    return {a.index: a.status for a in report.accepted}


def only_rejection(report: ImportReport) -> Any:
    assert len(report.rejected) == 1, report.rejected
    return report.rejected[0]


# --- one object at a time -------------------------------------------------------------------


def _wrong_type_prefix() -> dict[str, Any]:
    obj = indicator("198.51.100.1")
    return {**obj, "id": "malware--" + obj["id"].partition("--")[2]}


def _dangling_target() -> dict[str, Any]:
    return relationship(stix_id("indicator"), stix_id("malware"))


BAD_OBJECTS = [
    pytest.param(lambda: "not an object", "", "must be a JSON object", id="non-dict"),
    pytest.param(lambda: ["a", "list"], "", "must be a JSON object", id="list-item"),
    pytest.param(
        lambda: {k: v for k, v in indicator("198.51.100.1").items() if k != "type"},
        "type",
        "is required",
        id="missing-type",
    ),
    pytest.param(
        lambda: indicator("198.51.100.1", spec_version="2.0"),
        "spec_version",
        "must be '2.1'",
        id="spec-version",
    ),
    pytest.param(
        lambda: indicator("198.51.100.1", id="indicator--not-a-uuid"),
        "id",
        "identifier",
        id="bad-id",
    ),
    pytest.param(_wrong_type_prefix, "id", "must start with the object's type", id="id-prefix"),
    pytest.param(
        lambda: indicator("198.51.100.1", created="2026-01-01 00:00:00"),
        "created",
        "RFC 3339",
        id="bad-timestamp",
    ),
    pytest.param(
        lambda: indicator("198.51.100.1", modified="2026-13-01T00:00:00Z"),
        "modified",
        "calendar",
        id="impossible-date",
    ),
    pytest.param(
        lambda: indicator("198.51.100.1", modified="2025-12-31T23:59:59Z"),
        "modified",
        "earlier than created",
        id="modified-before-created",
    ),
    pytest.param(
        lambda: indicator("198.51.100.1", pattern="[ipv4-addr:value = '198.51.100.1'"),
        "pattern",
        "",
        id="pattern-syntax",
    ),
    pytest.param(
        lambda: indicator("198.51.100.1", pattern="[ipv4-addr:value = '198.51.100.300']"),
        "pattern",
        "is not an IP address",
        id="pattern-bad-ip",
    ),
    pytest.param(
        lambda: indicator("198.51.100.1", object_marking_refs=[stix_id("marking-definition")]),
        "object_marking_refs[0]",
        "neither in this batch nor stored",
        id="unknown-marking",
    ),
    pytest.param(
        lambda: indicator("198.51.100.1", created_by_ref=stix_id("identity")),
        "created_by_ref",
        "neither in this batch nor stored",
        id="dangling-created-by",
    ),
    pytest.param(
        _dangling_target,
        "source_ref",
        "neither in this batch nor stored",
        id="dangling-relationship",
    ),
]


@pytest.mark.parametrize(("make", "field", "reason"), BAD_OBJECTS)
def test_a_bad_object_is_rejected_alone_with_index_id_field_and_reason(
    node: TestNode, make: Callable[[], Any], field: str, reason: str
) -> None:
    first, last = indicator("198.51.100.1"), indicator("198.51.100.2")
    bad = make()
    report = run_import(node, [first, bad, last])

    assert statuses(report) == {0: "created", 2: "created"}
    rejection = only_rejection(report)
    assert rejection.index == 1
    assert rejection.id == (bad.get("id") if isinstance(bad, dict) else None)
    assert rejection.field == field
    assert reason in rejection.reason
    assert rejection.code == "invalid_input"
    assert report.to_dict()["errors"] == [rejection.to_dict()]


def test_every_rejection_of_a_mixed_batch_is_reported_in_index_order(node: TestNode) -> None:
    objects: list[Any] = []
    for make, *_ in (p.values for p in BAD_OBJECTS):
        objects += [indicator("198.51.100.9"), make()]
    report = run_import(node, objects)
    assert [a.index for a in report.accepted] == list(range(0, len(objects), 2))
    assert [r.index for r in report.rejected] == list(range(1, len(objects), 2))
    assert report.created == len(objects) // 2


def test_objects_of_reads_bundles_lists_and_single_objects() -> None:
    obj = indicator("198.51.100.1")
    bundle = {"type": "bundle", "id": stix_id("bundle"), "objects": [obj]}
    assert objects_of(bundle) == [obj]
    assert objects_of([obj, 1]) == [obj, 1]
    assert objects_of(obj) == [obj]
    for not_stix in ({"hello": "world"}, "text", 42, None):
        with pytest.raises(InvalidInput):
            objects_of(not_stix)
    with pytest.raises(InvalidInput, match="bundle"):
        objects_of({"type": "bundle", "id": stix_id("bundle"), "objects": "nope"})


# --- references -----------------------------------------------------------------------------


def test_forward_references_inside_one_bundle_resolve(node: TestNode) -> None:
    identity = sdo("identity", name="CERT-X", identity_class="organization")
    marking = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": stix_id("marking-definition"),
        "created": T1,
        "definition_type": "statement",
        "definition": {"statement": "Copyright CERT-X"},
    }
    ind = indicator("198.51.100.1", created_by_ref=identity["id"])
    mal = malware(created_by_ref=identity["id"], object_marking_refs=[marking["id"]])
    rel = relationship(ind["id"], mal["id"], created_by_ref=identity["id"])
    # The relationship comes first and everything it points at later.
    report = run_import(node, [rel, mal, ind, marking, identity])
    assert not report.rejected
    assert report.created == 5


def test_references_resolve_against_the_store_across_batches(node: TestNode) -> None:
    mal = malware()
    assert run_import(node, [mal]).created == 1
    ind = indicator("198.51.100.1")
    report = run_import(node, [ind, relationship(ind["id"], mal["id"])])
    assert not report.rejected


def test_a_relationship_to_a_missing_target_is_rejected(node: TestNode) -> None:
    ind = indicator("198.51.100.1")
    missing = stix_id("malware")
    report = run_import(node, [ind, relationship(ind["id"], missing)])
    assert statuses(report) == {0: "created"}
    rejection = only_rejection(report)
    assert (rejection.index, rejection.field) == (1, "target_ref")
    assert missing in rejection.reason


def test_a_relationship_to_a_rejected_object_is_rejected_too(node: TestNode) -> None:
    ind = indicator("198.51.100.1")
    bad_malware = malware(is_family="yes")
    rel = relationship(ind["id"], bad_malware["id"])
    note = sdo("note", content="see the relationship", object_refs=[rel["id"]])
    report = run_import(node, [note, rel, ind, bad_malware])

    assert statuses(report) == {2: "created"}
    by_index = {r.index: r for r in report.rejected}
    assert set(by_index) == {0, 1, 3}
    assert by_index[3].field == "is_family"
    assert by_index[1].field == "target_ref"
    assert bad_malware["id"] in by_index[1].reason
    assert by_index[0].field == "object_refs[0]"
    assert rel["id"] in by_index[0].reason


def test_a_reference_to_an_object_the_org_cannot_see_is_dangling(node: TestNode) -> None:
    node.add_org("CERT-B")
    node.add_user("analyst@b.test", "CERT-B")
    private = malware()
    report = run_import(
        node, [private], HandlingRequest(TLP.AMBER, Distribution.ORGANIZATION), who="analyst@b.test"
    )
    assert report.created == 1
    ind = indicator("198.51.100.1")
    rejection = only_rejection(run_import(node, [ind, relationship(ind["id"], private["id"])]))
    assert rejection.field == "target_ref"


# --- versions -------------------------------------------------------------------------------


def test_reimporting_the_same_objects_is_unchanged_and_writes_nothing(node: TestNode) -> None:
    objects = [indicator("198.51.100.1"), malware()]
    assert run_import(node, objects).created == 2
    before = count(node, object_versions)

    # Same content with the properties in another order is the same version.
    again = run_import(node, [dict(reversed(o.items())) for o in objects])
    assert statuses(again) == {0: "unchanged", 1: "unchanged"}
    assert again.created == 0
    assert not again.rejected
    assert count(node, object_versions) == before


def test_same_id_and_modified_with_other_content_is_a_conflict(node: TestNode) -> None:
    original = malware()
    run_import(node, [original])
    rejection = only_rejection(run_import(node, [{**original, "name": "Not Mirai"}]))
    assert rejection.code == "conflict"
    assert rejection.field == "modified"
    assert rejection.id == original["id"]
    (row,) = stored(node, original["id"])
    assert orjson.loads(row["content"]) == original


def test_a_conflict_inside_one_batch_keeps_the_first(node: TestNode) -> None:
    original = malware()
    report = run_import(node, [original, {**original, "name": "Other"}, original])
    assert statuses(report) == {0: "created", 2: "unchanged"}
    assert only_rejection(report).code == "conflict"


def test_a_later_version_becomes_latest(node: TestNode) -> None:
    v1 = indicator("198.51.100.1")
    v2 = {**v1, "modified": T2, "pattern": "[ipv4-addr:value = '198.51.100.2']"}
    run_import(node, [v1])
    report = run_import(node, [v2])
    assert statuses(report) == {0: "created"}

    rows = stored(node, v1["id"])
    assert [r["is_latest"] for r in rows] == [False, True]
    assert orjson.loads(rows[1]["content"]) == v2
    with node.instance.begin() as conn:
        principal = node.principals[ADMIN]
        (latest,) = reading.get_versions(conn, principal, v1["id"])
        assert orjson.loads(latest.content) == v2
        assert len(reading.get_versions(conn, principal, v1["id"], "all")) == 2
        # The observable index follows the latest version.
        assert not objects_store.find_observables(conn, principal, normalize("ip", "198.51.100.1"))
        assert objects_store.find_observables(conn, principal, normalize("ip", "198.51.100.2"))


def test_an_older_version_arriving_later_does_not_become_latest(node: TestNode) -> None:
    v2 = malware(modified=T2, name="Mirai v2")
    v1 = {**v2, "modified": T1, "name": "Mirai v1"}
    run_import(node, [v2])
    assert statuses(run_import(node, [v1])) == {0: "created"}

    rows = stored(node, v2["id"])
    assert [(r["name"], r["is_latest"]) for r in rows] == [("Mirai v1", False), ("Mirai v2", True)]


def test_only_the_newest_version_of_a_batch_is_latest(node: TestNode) -> None:
    v1 = malware(name="one")
    v3 = {**v1, "modified": T3, "name": "three"}
    v2 = {**v1, "modified": T2, "name": "two"}
    assert run_import(node, [v1, v3, v2]).created == 3
    rows = stored(node, v1["id"])
    assert [(r["name"], r["is_latest"]) for r in rows] == [
        ("one", False),
        ("two", False),
        ("three", True),
    ]


def test_another_org_cannot_add_a_version_of_an_object(node: TestNode) -> None:
    node.add_org("CERT-B")
    node.add_user("analyst@b.test", "CERT-B")
    original = malware()
    run_import(node, [original])

    newer = {**original, "modified": T2, "name": "Hijacked"}
    rejection = only_rejection(run_import(node, [newer], who="analyst@b.test"))
    assert rejection.code == "forbidden"
    assert rejection.field == "id"
    assert [r["name"] for r in stored(node, original["id"])] == ["Mirai"]


def test_a_reader_may_not_import(node: TestNode) -> None:
    node.add_user("reader@a.test", "CERT-A", Role.READER)
    with pytest.raises(Forbidden):
        run_import(node, [malware()], who="reader@a.test")


# --- handling -------------------------------------------------------------------------------


def test_tlp_red_marking_with_node_distribution_is_a_policy_violation(node: TestNode) -> None:
    red = indicator("198.51.100.1", object_marking_refs=[TLP.RED.marking_id])
    fine = indicator("198.51.100.2")
    report = run_import(node, [red, fine], HandlingRequest(TLP.GREEN, Distribution.NODE))
    rejection = only_rejection(report)
    assert (rejection.index, rejection.code) == (0, "policy_violation")
    assert rejection.field == "object_marking_refs"
    assert "TLP:RED" in rejection.reason

    allowed = run_import(node, [red], HandlingRequest(TLP.GREEN, Distribution.ORGANIZATION))
    assert allowed.created == 1
    assert stored(node, red["id"])[0]["tlp"] == TLP.RED


@pytest.mark.parametrize(
    ("requested", "marked", "expected"),
    [
        (TLP.GREEN, TLP.AMBER, TLP.AMBER),
        (TLP.CLEAR, TLP.AMBER_STRICT, TLP.AMBER_STRICT),
        (TLP.AMBER, TLP.CLEAR, TLP.AMBER),
        (TLP.AMBER, None, TLP.AMBER),
    ],
)
def test_an_objects_own_tlp_marking_only_raises_the_stored_tlp(
    node: TestNode, requested: TLP, marked: TLP | None, expected: TLP
) -> None:
    extra = {"object_marking_refs": [marked.marking_id]} if marked is not None else {}
    obj = indicator("198.51.100.1", **extra)
    assert run_import(node, [obj], HandlingRequest(requested, Distribution.NODE)).created == 1
    (row,) = stored(node, obj["id"])
    assert row["tlp"] == expected
    assert row["distribution"] == "node"


def test_the_orgs_default_handling_applies_when_none_is_asked(node: TestNode) -> None:
    obj = indicator("198.51.100.1")
    run_import(node, [obj])
    (row,) = stored(node, obj["id"])
    assert (row["tlp"], row["distribution"]) == (TLP.AMBER, "node")


@pytest.mark.parametrize(("marking_id", "level"), list(TLP1_IDS.items()))
def test_tlp_1_markings_are_read_as_tlp_2(node: TestNode, marking_id: str, level: TLP) -> None:
    obj = indicator("198.51.100.1", object_marking_refs=[marking_id])
    report = run_import(node, [obj], HandlingRequest(TLP.CLEAR, Distribution.ORGANIZATION))
    assert not report.rejected
    (row,) = stored(node, obj["id"])
    assert row["tlp"] == level
    assert orjson.loads(row["content"])["object_marking_refs"] == [marking_id]


def test_sharing_group_handling_is_stored(node: TestNode) -> None:
    node.add_org("CERT-B")
    group = node.add_group("Energy", "CERT-A", ["CERT-B"])
    obj = indicator("198.51.100.1", object_marking_refs=[TLP.RED.marking_id])
    report = run_import(
        node, [obj], HandlingRequest(TLP.AMBER, Distribution.SHARING_GROUP, "Energy")
    )
    assert report.created == 1
    (row,) = stored(node, obj["id"])
    assert (row["tlp"], row["distribution"], row["sharing_group_id"]) == (
        TLP.RED,
        "sharing_group",
        group,
    )


# --- content is kept ------------------------------------------------------------------------


def test_custom_objects_and_properties_are_kept_verbatim(node: TestNode) -> None:
    custom = sdo(
        "x-foo-bar",
        name="custom thing",
        x_foo_nested={"list": [1, 2.5, None, True], "text": "Qalqan — қалқан"},
        x_foo_ref="not checked",
    )
    ind = indicator(
        "198.51.100.1",
        x_mitre_version="1.2",
        x_acme_score=97.25,
        external_references=[{"source_name": "acme", "external_id": "A-1", "x_acme_tag": "t"}],
    )
    report = run_import(node, [custom, ind])
    assert report.created == 2
    for obj in (custom, ind):
        (row,) = stored(node, obj["id"])
        assert orjson.loads(row["content"]) == obj
    with node.instance.begin() as conn:
        exported = orjson.loads(
            b"".join(reading.stream_bundle(conn, node.principals[ADMIN], ObjectFilter()))
        )
    assert custom in exported["objects"]
    assert ind in exported["objects"]


def test_date_added_is_strictly_increasing_across_batches(node: TestNode) -> None:
    batches = [[indicator(f"198.51.100.{10 * b + i}") for i in range(5)] for b in range(3)]
    for objects in batches:
        run_import(node, objects)
    with node.instance.begin() as conn:
        added = dict(
            conn.execute(select(object_versions.c.stix_id, object_versions.c.date_added)).all()
        )
    ordered = [added[obj["id"]] for objects in batches for obj in objects]
    assert ordered == sorted(set(ordered))  # strictly increasing


# --- nothing is half-written ----------------------------------------------------------------


def _totals(node: TestNode) -> tuple[int, int, int, int]:
    with node.instance.begin() as conn:
        clock = local_clock(conn)
    return (
        count(node, object_versions),
        count(node, observables),
        count(node, audit_log),
        clock,
    )


@pytest.mark.parametrize(
    ("handling", "error"),
    [
        (HandlingRequest(TLP.AMBER, Distribution.SHARING_GROUP, "no-such-group"), NotFound),
        (HandlingRequest(TLP.AMBER, Distribution.SHARING_GROUP, None), InvalidInput),
        (HandlingRequest(TLP.AMBER, Distribution.NODE, "Energy"), InvalidInput),
        (HandlingRequest(TLP.AMBER, Distribution.SHARING_GROUP, "Energy"), Forbidden),
    ],
    ids=["unknown-group", "no-group", "group-without-group-distribution", "not-a-member"],
)
def test_wrong_handling_raises_and_writes_nothing(
    node: TestNode, handling: HandlingRequest, error: type[Exception]
) -> None:
    node.add_org("CERT-B")
    node.add_org("CERT-C")
    node.add_group("Energy", "CERT-B", ["CERT-C"])
    before = _totals(node)
    with pytest.raises(error):
        run_import(node, [indicator("198.51.100.1"), malware()], handling)
    assert _totals(node) == before


def test_a_failing_database_write_leaves_nothing_behind(
    node: TestNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: Any) -> None:
        raise RuntimeError("disk full")

    before = _totals(node)
    # The versions are inserted, then the observable index fails: the transaction rolls back.
    monkeypatch.setattr(objects_store, "insert_observables", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        run_import(node, [indicator("198.51.100.1"), malware()])
    assert _totals(node) == before


# --- observables ----------------------------------------------------------------------------

SHA256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"


def test_observables_of_patterns_and_scos_are_indexed_in_canonical_form(node: TestNode) -> None:
    objects = [
        indicator("198.51.100.7"),
        indicator("2001:DB8:0:0:0:0:0:1", kind="ipv6-addr"),
        indicator("Evil.Example.COM", kind="domain-name"),
        indicator("HTTP://Phish.Example.com:80/login?x=1", kind="url"),
        indicator(SHA256, kind="SHA-256"),
        {"type": "ipv4-addr", "spec_version": "2.1", "id": stix_id("ipv4-addr"),
         "value": "203.0.113.9/24"},
        {"type": "domain-name", "spec_version": "2.1", "id": stix_id("domain-name"),
         "value": "Mixed.Example.ORG."},
        {"type": "file", "spec_version": "2.1", "id": stix_id("file"),
         "hashes": {"MD5": "D41D8CD98F00B204E9800998ECF8427E"}},
        {"type": "email-addr", "spec_version": "2.1", "id": stix_id("email-addr"),
         "value": "Bob@Example.COM"},
    ]  # fmt: skip
    report = run_import(node, objects)
    assert report.created == len(objects), report.rejected

    with node.instance.begin() as conn:
        indexed = set(conn.execute(select(observables.c.kind, observables.c.value)).all())
    assert indexed == {
        ("ip", "198.51.100.7"),
        ("ip", "2001:db8::1"),
        ("domain", "evil.example.com"),
        ("url", "http://phish.example.com/login?x=1"),
        ("sha256", SHA256.lower()),
        ("cidr", "203.0.113.0/24"),
        ("domain", "mixed.example.org"),
        ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
        ("email", "Bob@example.com"),
    }

    principal = node.principals[ADMIN]
    with node.instance.begin() as conn:
        for index, (kind, value) in enumerate(
            [
                ("ip", "198.51.100.7"),
                ("ip", "2001:db8::1"),
                ("domain", "EVIL.example.com"),
                ("url", "http://phish.example.com/login?x=1"),
                ("sha256", SHA256),
            ]
        ):
            hits = objects_store.find_observables(conn, principal, normalize(kind, value))
            assert [h.version.stix_id for h in hits] == [objects[index]["id"]]


def test_patterns_are_taken_exactly_and_defanged_values_are_refused(node: TestNode) -> None:
    defanged = indicator("198[.]51[.]100[.]7")
    rejection = only_rejection(run_import(node, [defanged]))
    assert rejection.field == "pattern"


def test_a_pasted_defanged_value_finds_the_indicator(node: TestNode) -> None:
    obj = indicator("http://evil.example.com/a", kind="url")
    run_import(node, [obj])
    with node.instance.begin() as conn:
        page = reading.search_observables(
            conn, node.principals[ADMIN], "hxxp://evil[.]example[.]com/a"
        )
    assert [h.version.stix_id for h in page.hits] == [obj["id"]]


def test_ip_and_cidr_lookups_match_by_containment(node: TestNode) -> None:
    address = indicator("198.51.100.7")
    network = indicator("203.0.113.0/24")
    v6 = indicator("2001:db8:1::/48", kind="ipv6-addr")
    run_import(node, [address, network, v6])
    principal = node.principals[ADMIN]

    def hits(value: str) -> set[str]:
        with node.instance.begin() as conn:
            found = objects_store.find_observables(conn, principal, parse_value(value))
        return {h.version.stix_id for h in found}

    assert hits("203.0.113.77") == {network["id"]}
    assert hits("203.0.113.0/28") == {network["id"]}
    assert hits("198.51.100.0/24") == {address["id"]}
    assert hits("198.0.0.0/8") == {address["id"]}
    assert hits("0.0.0.0/0") == {address["id"], network["id"]}
    assert hits("2001:db8:1:2::5") == {v6["id"]}
    assert hits("198.51.101.1") == set()
    assert hits("203.0.114.1") == set()
    assert hits("2001:db8:2::1") == set()


def test_observables_of_objects_an_org_cannot_see_are_not_found(node: TestNode) -> None:
    node.add_org("CERT-B")
    node.add_user("analyst@b.test", "CERT-B")
    run_import(
        node, [indicator("198.51.100.7")], HandlingRequest(TLP.AMBER, Distribution.ORGANIZATION)
    )
    with node.instance.begin() as conn:
        wanted = normalize("ip", "198.51.100.7")
        assert objects_store.find_observables(conn, node.principals[ADMIN], wanted)
        assert not objects_store.find_observables(conn, node.principals["analyst@b.test"], wanted)


# --- audit ----------------------------------------------------------------------------------


def test_each_batch_leaves_one_audit_entry(node: TestNode) -> None:
    is_import = audit_log.c.action == "objects.import"
    before = count(node, audit_log, is_import)
    run_import(node, [indicator("198.51.100.1"), malware()])
    run_import(node, ["bad", indicator("198.51.100.2")], HandlingRequest(TLP.GREEN))
    assert count(node, audit_log, is_import) == before + 2

    with node.instance.begin() as conn:
        last = conn.execute(
            select(audit_log).where(is_import).order_by(audit_log.c.id.desc()).limit(1)
        ).one()
    assert last.actor_org_id == node.org_ids["CERT-A"]
    assert last.actor_user_id == node.principals[ADMIN].user_id
    assert orjson.loads(last.detail) == {
        "accepted": 1,
        "created": 1,
        "rejected": 1,
        "tlp": "GREEN",
        "distribution": "node",
    }


# --- a real bundle: MITRE ATT&CK for ICS ----------------------------------------------------


def _attack_objects(path: Path) -> list[dict[str, Any]]:
    return objects_of(orjson.loads(path.read_bytes()))


def _export(node: TestNode) -> list[dict[str, Any]]:
    everything = ObjectFilter(include_revoked=True, include_withdrawn=True)
    with node.instance.begin() as conn:
        data = b"".join(reading.stream_bundle(conn, node.principals[ADMIN], everything))
    document = orjson.loads(data)
    assert document["type"] == "bundle"
    objects: list[dict[str, Any]] = document["objects"]
    return objects


def test_attack_bundle_imports_whole_and_round_trips(node: TestNode, attack_bundle: Path) -> None:
    objects = _attack_objects(attack_bundle)
    assert len(objects) == 1826
    report = run_import(node, objects)
    assert report.rejected == []
    assert report.created == len(objects) == 1826

    again = run_import(node, objects)
    assert (again.created, len(again.accepted), len(again.rejected)) == (0, 1826, 0)

    exported = {o["id"]: o for o in _export(node)}
    assert {o["id"] for o in objects} <= exported.keys()
    changed = [o["id"] for o in objects if exported[o["id"]] != o]
    assert changed == []


def test_exported_standard_objects_pass_the_stix_validator(
    node: TestNode, attack_bundle: Path
) -> None:
    run_import(node, _attack_objects(attack_bundle))
    run_import(
        node,
        [
            indicator("198.51.100.7", indicator_types=["malicious-activity"]),
            indicator("evil.example.com", kind="domain-name"),
        ],
    )
    options = ValidationOptions(version="2.1", strict=False)
    # The validator does find faults: an indicator without valid_from is one.
    broken = {k: v for k, v in indicator("198.51.100.8").items() if k != "valid_from"}
    assert validate_instance(broken, options).errors
    failures = {}
    checked = 0
    for obj in _export(node):
        if obj["type"].startswith("x-"):
            continue
        checked += 1
        result = validate_instance(obj, options)
        if result.errors:
            failures[obj["id"]] = [str(e) for e in result.errors]
    assert checked > 1500
    assert failures == {}
