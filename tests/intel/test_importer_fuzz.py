"""Hostile input: whatever JSON arrives, the importer answers per item and never crashes."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from qalqan.intel.importer import import_objects
from qalqan.store.tables import object_versions
from qalqan.testing import TestNode, indicator

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

# Objects that look like STIX, with one property replaced by something arbitrary.
_KEYS = [
    "type",
    "id",
    "spec_version",
    "created",
    "modified",
    "pattern",
    "pattern_type",
    "valid_from",
    "object_marking_refs",
    "created_by_ref",
    "labels",
    "confidence",
]
mutated = st.builds(
    lambda key, value: {**indicator("198.51.100.1"), key: value},
    st.sampled_from(_KEYS),
    json_values,
)


def _count(node: TestNode) -> int:
    with node.instance.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(object_versions)).scalar_one())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(json_values | mutated, min_size=1, max_size=5))
def test_any_json_gets_a_verdict_per_item(node: TestNode, items: list[Any]) -> None:
    good = indicator("203.0.113.9")
    before = _count(node)
    with node.instance.begin() as conn:
        report = import_objects(conn, node.principals["admin@a.test"], [*items, good])
    verdicts = {a.index for a in report.accepted} | {r.index for r in report.rejected}
    assert verdicts == set(range(len(items) + 1))
    assert len(report.accepted) + len(report.rejected) == len(items) + 1
    assert len(items) in {a.index for a in report.accepted}, report.rejected
    for rejection in report.rejected:
        assert rejection.reason
    assert _count(node) - before == report.created


def test_html_in_values_is_stored_verbatim(node: TestNode) -> None:
    hostile = indicator(
        "198.51.100.2", name="<script>alert(1)</script>", description="=cmd|' /C calc'!A0"
    )
    with node.instance.begin() as conn:
        report = import_objects(conn, node.principals["admin@a.test"], [hostile])
    assert report.created == 1
