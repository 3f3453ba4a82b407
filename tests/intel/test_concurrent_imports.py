"""Writers importing at the same time: no errors, no duplicate versions, one clock."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select

from qalqan.intel.importer import ImportReport, import_objects
from qalqan.store.tables import object_versions
from qalqan.testing import TestNode, indicator

WRITERS = 4


def test_concurrent_imports_of_overlapping_bundles(node: TestNode) -> None:
    principal = node.principals["admin@a.test"]
    shared = [indicator(f"198.51.100.{i}") for i in range(1, 151)]
    own = [
        [indicator(f"203.0.113.{i}", name=f"w{w}") for i in range(1, 51)] for w in range(WRITERS)
    ]
    reports: list[ImportReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def write(objects: list[dict[str, Any]]) -> None:
        try:
            start.wait(10)
            with node.instance.begin() as conn:
                reports.append(import_objects(conn, principal, objects))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(shared + own[w],)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert all(not r.rejected for r in reports)
    assert sum(r.created for r in reports) == len(shared) + WRITERS * 50
    with node.instance.begin() as conn:
        stored_ids = (
            conn.execute(
                select(object_versions.c.stix_id).where(object_versions.c.type == "indicator")
            )
            .scalars()
            .all()
        )
        distinct = conn.execute(
            select(func.count(func.distinct(object_versions.c.date_added)))
        ).scalar_one()
        total = conn.execute(select(func.count()).select_from(object_versions)).scalar_one()
    assert sorted(stored_ids) == sorted(
        {o["id"] for o in shared} | {o["id"] for w in own for o in w}
    )
    assert distinct == total
