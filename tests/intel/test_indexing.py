"""The analysis index follows every write, once, and indexes what a node already held."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update

from qalqan.domain.handling import TLP, Distribution
from qalqan.instance import Instance
from qalqan.intel import indexing
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.store.tables import (
    TEXT_INDEX,
    index_cursors,
    object_labels,
    object_links,
    observables,
    sightings,
)
from qalqan.testing import TestNode, indicator, stix_id

STAMP = "2026-01-01T00:00:00.000Z"


def _sdo(type_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": type_name,
        "spec_version": "2.1",
        "id": stix_id(type_name),
        "created": STAMP,
        "modified": STAMP,
        **extra,
    }


def _objects() -> list[dict[str, Any]]:
    ioc = indicator("login.evil.example", "domain-name", labels=["phishing", "bank"])
    technique = _sdo(
        "attack-pattern",
        name="Spearphishing Attachment",
        external_references=[{"source_name": "mitre-attack", "external_id": "T1566.001"}],
    )
    uses = _sdo(
        "relationship",
        relationship_type="indicates",
        source_ref=ioc["id"],
        target_ref=technique["id"],
    )
    seen = _sdo(
        "sighting",
        sighting_of_ref=ioc["id"],
        count=4,
        first_seen="2026-01-02T00:00:00Z",
        last_seen="2026-01-03T00:00:00Z",
        x_qalqan_sighting_kind="false-positive",
    )
    report = _sdo(
        "report",
        name="Фишинг против банков",
        description="Кампания против национальных банков",
        published=STAMP,
        object_refs=[ioc["id"], technique["id"]],
    )
    return [ioc, technique, uses, seen, report]


def _import(node: TestNode, objects: list[dict[str, Any]]) -> None:
    with node.instance.begin() as conn:
        report = import_objects(
            conn,
            node.principals["admin@a.test"],
            objects,
            HandlingRequest(TLP.GREEN, Distribution.NODE),
        )
    assert not report.rejected, report.rejected


def _counts(instance: Instance) -> dict[str, int]:
    with instance.begin() as conn:
        text = conn.exec_driver_sql(f"SELECT count(*) FROM {TEXT_INDEX}").scalar()  # noqa: S608
        return {
            "links": conn.execute(select(func.count()).select_from(object_links)).scalar() or 0,
            "sightings": conn.execute(select(func.count()).select_from(sightings)).scalar() or 0,
            "labels": conn.execute(select(func.count()).select_from(object_labels)).scalar() or 0,
            "text": int(text or 0),
            "reversed": conn.execute(
                select(func.count()).where(observables.c.rvalue == "elpmaxe.live.nigol")
            ).scalar()
            or 0,
        }


def test_an_import_is_indexed_once(instance: Instance) -> None:
    node = TestNode.create(instance)
    before = _counts(instance)  # the node's own objects (org identities) are indexed too
    objects = _objects()
    _import(node, objects)
    added = {"links": 4, "sightings": 1, "labels": 2, "text": 3, "reversed": 1}
    expected = {key: before[key] + n for key, n in added.items()}
    assert _counts(instance) == expected
    with instance.begin() as conn:
        assert indexing.catch_up(conn) == 0
        links = {
            (row.link_type, row.target_ref == objects[1]["id"])
            for row in conn.execute(select(object_links))
        }
        kind, count = conn.execute(select(sightings.c.kind, sightings.c.count)).one()
    assert links == {("indicates", True), ("sighting-of", False), ("object-ref", True),
                     ("object-ref", False)}  # fmt: skip
    assert (kind, count) == ("false-positive", 4)
    _import(node, objects)  # the same objects again: nothing new to index
    assert _counts(instance) == expected


def test_an_upgraded_node_indexes_what_it_holds(instance: Instance) -> None:
    node = TestNode.create(instance)
    _import(node, _objects())
    expected = _counts(instance)
    with instance.begin() as conn:
        for table in (object_links, sightings, object_labels):
            conn.execute(delete(table))
        conn.exec_driver_sql(f"DELETE FROM {TEXT_INDEX}")  # noqa: S608
        conn.execute(update(observables).values(rvalue=None))
        conn.execute(delete(index_cursors))
    assert _counts(instance) == dict.fromkeys(
        ("links", "sightings", "labels", "text", "reversed"), 0
    )
    with instance.begin() as conn:
        assert indexing.catch_up(conn, limit=1) > 0
        assert indexing.catch_up(conn) > 0
    assert _counts(instance) == expected


def test_text_of_takes_names_descriptions_labels_and_external_ids() -> None:
    text = indexing.text_of(
        {
            "name": "APT\x00 X",
            "description": "<b>bold</b>",
            "labels": ["a", 3],
            "aliases": ["Fancy"],
            "external_references": [{"external_id": "T0800"}, "junk"],
        }
    )
    assert text.split("\n") == ["APT X", "<b>bold</b>", "a", "Fancy", "T0800"]
