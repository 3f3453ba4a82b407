"""Correlation: related lookups differ by viewer exactly as the handling rules say."""

from __future__ import annotations

from typing import Any

import pytest

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.observables import parse_value
from qalqan.errors import InvalidInput, NotFound
from qalqan.instance import Instance
from qalqan.intel import correlation
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.intel.reading import revoke_object
from qalqan.store.accounts import get_org
from qalqan.testing import TestNode, indicator, stix_id

IP = "91.215.85.99"


@pytest.fixture
def three(instance: Instance) -> TestNode:
    node = TestNode.create(instance, "CERT-A", "KZ")
    node.add_org("CERT-B", "UZ")
    node.add_org("CERT-C", "KG")
    node.add_user("a@a.test", "CERT-A")
    node.add_user("b@b.test", "CERT-B")
    node.add_user("c@c.test", "CERT-C")
    node.add_group("A+C", "CERT-A", ["CERT-A", "CERT-C"])
    return node


def _store(
    node: TestNode,
    who: str,
    objects: list[dict[str, Any]],
    dist: Distribution,
    tlp: TLP = TLP.AMBER,
    group: str | None = None,
) -> None:
    with node.instance.begin() as conn:
        report = import_objects(
            conn, node.principals[who], objects, HandlingRequest(tlp, dist, group)
        )
    assert not report.rejected, report.rejected


def _related(node: TestNode, who: str, value: str, **kw: Any) -> correlation.Related:
    kw.setdefault("list_limit", 1000)
    with node.instance.begin() as conn:
        return correlation.related(conn, node.principals[who], parse_value(value), **kw)


def _orgs(found: correlation.Related) -> dict[str, int]:
    return {o.org_name: o.objects for o in found.orgs}


def test_counts_and_lists_differ_by_viewer(three: TestNode) -> None:
    _store(three, "a@a.test", [indicator(IP)], Distribution.NODE)
    _store(three, "b@b.test", [indicator(IP)], Distribution.ORGANIZATION)
    _store(three, "a@a.test", [indicator(IP)], Distribution.ORGANIZATION, TLP.RED)
    _store(
        three,
        "c@c.test",
        [indicator("91.215.85.0/24")],
        Distribution.SHARING_GROUP,
        group="A+C",
    )
    a = _related(three, "a@a.test", IP)
    b = _related(three, "b@b.test", IP)
    c = _related(three, "c@c.test", IP)
    assert _orgs(a) == {"CERT-A": 2, "CERT-C": 1}
    assert _orgs(b) == {"CERT-A": 1, "CERT-B": 1}
    assert _orgs(c) == {"CERT-A": 1, "CERT-C": 1}
    assert (a.total, b.total, c.total) == (3, 2, 2)
    assert a.relations == {"same": 2, "contains": 1}
    assert b.relations == {"same": 2}
    assert {(x.owner_org_name, x.relation) for x in c.items} == {
        ("CERT-A", "same"),
        ("CERT-C", "contains"),
    }
    assert {x.country: x.objects for x in b.countries} == {"KZ": 1, "UZ": 1}
    # Nothing in what C gets names B, its objects or its country.
    assert "CERT-B" not in repr(c)
    assert "UZ" not in repr(c)


def test_network_lookup_finds_addresses_inside_and_networks_around(three: TestNode) -> None:
    _store(
        three,
        "a@a.test",
        [indicator(IP), indicator("91.215.0.0/16"), indicator("10.0.0.1")],
        Distribution.NODE,
    )
    found = _related(three, "b@b.test", "91.215.85.0/24")
    assert found.relations == {"inside": 1, "contains": 1}
    v6 = _related(three, "b@b.test", "::ffff:91.215.85.99")
    assert v6.relations == {"same": 1, "contains": 1}


def test_domains_relate_to_parents_children_and_urls(three: TestNode) -> None:
    objects = [
        indicator("evil.example", "domain-name"),
        indicator("cdn.login.evil.example", "domain-name"),
        indicator("notevil.example", "domain-name"),
        indicator("https://login.evil.example:8443/x", "url"),
        indicator("http://login.evil.example/a?b", "url"),
        indicator("http://login.evil.example.com/", "url"),
        indicator("x@login.evil.example", "email-addr"),
    ]
    _store(three, "a@a.test", objects, Distribution.NODE)
    found = _related(three, "b@b.test", "login.evil[.]example")
    assert found.relations == {"parent": 1, "child": 1, "url": 2}
    url = _related(three, "b@b.test", "hxxp://login.evil.example/a?b")
    assert url.relations == {"same": 1, "parent": 1, "child": 1}
    email = _related(three, "b@b.test", "x@login.evil.example")
    assert email.relations == {"same": 1, "parent": 1}


def test_over_correlating_values_are_summarized_not_listed(three: TestNode) -> None:
    _store(three, "a@a.test", [indicator(IP) for _ in range(4)], Distribution.NODE)
    _store(three, "b@b.test", [indicator(IP) for _ in range(2)], Distribution.NODE)
    found = _related(three, "c@c.test", IP, list_limit=3)
    assert found.over_correlating
    assert found.total == 6
    assert found.items == []
    assert _orgs(found) == {"CERT-A": 4, "CERT-B": 2}
    listed = _related(three, "c@c.test", IP, list_limit=6, limit=4)
    assert not listed.over_correlating
    assert len(listed.items) == 4
    assert listed.next_cursor
    rest = _related(three, "c@c.test", IP, list_limit=6, limit=4, cursor=listed.next_cursor)
    assert len(rest.items) == 2
    assert rest.next_cursor is None
    assert {x.stix_id for x in listed.items}.isdisjoint(x.stix_id for x in rest.items)


def test_revoked_objects_no_longer_correlate(three: TestNode) -> None:
    gone = indicator(IP)
    _store(three, "a@a.test", [gone, indicator(IP)], Distribution.NODE)
    with three.instance.begin() as conn:
        revoke_object(conn, three.principals["a@a.test"], gone["id"])
    assert _related(three, "b@b.test", IP).total == 1


def _sighting(of: str, org_identity: str, count: int) -> dict[str, Any]:
    return {
        "type": "sighting",
        "spec_version": "2.1",
        "id": stix_id("sighting"),
        "created": "2026-02-01T00:00:00.000Z",
        "modified": "2026-02-01T00:00:00.000Z",
        "sighting_of_ref": of,
        "count": count,
        "first_seen": "2026-01-30T00:00:00Z",
        "last_seen": "2026-01-31T00:00:00Z",
        "created_by_ref": org_identity,
    }


def test_sightings_of_related_indicators_are_summarized_by_visibility(three: TestNode) -> None:
    ioc = indicator(IP)
    _store(three, "a@a.test", [ioc], Distribution.NODE)
    with three.instance.begin() as conn:
        b_identity = get_org(conn, three.org_ids["CERT-B"]).identity_id
    _store(three, "b@b.test", [_sighting(ioc["id"], b_identity, 7)], Distribution.NODE)
    _store(three, "b@b.test", [_sighting(ioc["id"], b_identity, 5)], Distribution.ORGANIZATION)
    seen_by_a = _related(three, "a@a.test", IP).sightings
    assert [(s.org_name, s.sightings, s.count) for s in seen_by_a] == [("CERT-B", 1, 7)]
    seen_by_b = _related(three, "b@b.test", IP).sightings
    assert [(s.org_name, s.sightings, s.count) for s in seen_by_b] == [("CERT-B", 2, 12)]


def test_object_related_leaves_the_object_out(three: TestNode) -> None:
    mine = indicator(IP)
    _store(three, "a@a.test", [mine], Distribution.NODE)
    _store(three, "b@b.test", [indicator(IP)], Distribution.NODE)
    with three.instance.begin() as conn:
        found = correlation.object_related(
            conn, three.principals["c@c.test"], mine["id"], list_limit=10
        )
        assert [_orgs(r) for r in found] == [{"CERT-B": 1}]
        private = indicator(IP)
    _store(three, "b@b.test", [private], Distribution.ORGANIZATION)
    with three.instance.begin() as conn, pytest.raises(NotFound):
        correlation.object_related(conn, three.principals["c@c.test"], private["id"], list_limit=1)


@pytest.mark.parametrize(
    ("type_name", "value", "field"),
    [
        ("bogus", IP, "type"),
        ("domain-name", IP, "value"),
        ("ipv4-addr", "evil.example", "value"),
        ("file", "abc", "value"),
        ("url", "<script>alert(1)</script>", "value"),
        ("ip", "x" * 10_000, "value"),
    ],
)
def test_bad_lookups_name_the_field(type_name: str, value: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        correlation.parse_lookup(type_name, value)
    assert caught.value.context.get("field") == field
