"""The handling rules as a table: every distribution x every TLP, seen by every kind of viewer,
through every read path. The expected visibility is the table in the design:

| distribution    | who on this node sees it |
|-----------------|--------------------------|
| organization    | the owner org only       |
| node            | every org on this node   |
| connected       | every org on this node   |
| all             | every org on this node   |
| sharing_group   | the group's orgs         |

TLP does not widen or narrow who on the node sees an object; it caps the distribution
(``RED`` only ``organization`` or ``sharing_group``), which the importer enforces.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qalqan.api import create_app
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal, Role
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.policy import Handling, is_visible, visible_to
from qalqan.store.tables import object_versions as ov
from qalqan.testing import TestNode, fresh_instance, indicator, stix_id

DISTRIBUTIONS = ("organization", "node", "connected", "all", "sharing_group")
TLPS = ("clear", "green", "amber", "amber+strict", "red")
REFUSED = {("node", "red"), ("connected", "red"), ("all", "red")}
CELLS = [(d, t) for d in DISTRIBUTIONS for t in TLPS if (d, t) not in REFUSED]

# Which viewers see an object of each distribution (TLP plays no part on the node itself).
# A owns the objects and the sharing group; B is a member of the group; C is not.
SEES: dict[str, frozenset[str]] = {
    "organization": frozenset({"A"}),
    "node": frozenset({"A", "B", "C"}),
    "connected": frozenset({"A", "B", "C"}),
    "all": frozenset({"A", "B", "C"}),
    "sharing_group": frozenset({"A", "B"}),
}
VIEWERS = ("A", "B", "C")
ORG_OF = {"A": "CERT-A", "B": "CERT-B", "C": "CERT-C"}
EMAIL_OF = {"A": "analyst@a.test", "B": "analyst@b.test", "C": "analyst@c.test"}


def _cell_id(cell: tuple[str, str]) -> str:
    return f"{cell[0]}-{cell[1]}"


def _ip(cell: tuple[str, str]) -> tuple[int, int]:
    return DISTRIBUTIONS.index(cell[0]) + 1, TLPS.index(cell[1]) + 1


@dataclass
class World:
    node: TestNode
    client: TestClient
    group_id: str
    ids: dict[tuple[str, str], str]

    def auth(self, viewer: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.keys[EMAIL_OF[viewer]]}"}

    def principal(self, viewer: str) -> Principal:
        return self.node.principals[EMAIL_OF[viewer]]

    def expected(self, viewer: str) -> set[str]:
        return {i for cell, i in self.ids.items() if viewer in SEES[cell[0]]}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with fresh_instance(tmp_path_factory.mktemp("matrix")) as inst:
        node = TestNode.create(inst, "CERT-A", "KZ")
        node.add_org("CERT-B", "UZ")
        node.add_org("CERT-C", "KG")
        for viewer in VIEWERS:
            node.add_user(EMAIL_OF[viewer], ORG_OF[viewer], Role.ANALYST)
        group_id = node.add_group("matrix-group", "CERT-A", ["CERT-B"])
        with TestClient(create_app(inst)) as client:
            world = World(node, client, group_id, {})
            for cell in CELLS:
                dist, tlp = cell
                d, t = _ip(cell)
                obj = indicator(
                    f"10.{d}.{t}.7",
                    pattern=f"[ipv4-addr:value = '10.{d}.{t}.7' OR "
                    f"ipv4-addr:value = '10.{d}.{t + 100}.0/24']",
                )
                params = {"tlp": tlp, "distribution": dist}
                if dist == "sharing_group":
                    params["sharing_group"] = group_id
                r = client.post("/api/v1/objects", params=params, json=obj, headers=world.auth("A"))
                assert r.status_code == 201, r.text
                world.ids[cell] = obj["id"]
            yield world


def _listed(world: World, viewer: str, **params: Any) -> set[str]:
    r = world.client.get(
        "/api/v1/objects", params={"limit": 1000, **params}, headers=world.auth(viewer)
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next"] is None
    return {item["id"] for item in body["items"]}


def test_every_allowed_cell_is_stored_with_the_handling_asked_for(world: World) -> None:
    for (dist, tlp), sid in world.ids.items():
        r = world.client.get(f"/api/v1/objects/{sid}", headers=world.auth("A"))
        assert r.status_code == 200, r.text
        handling = r.json()["handling"]
        assert handling["tlp"] == TLP.parse(tlp).label
        assert handling["distribution"] == dist
        assert handling["sharing_group"] == (world.group_id if dist == "sharing_group" else None)
        assert handling["owner_org"]["id"] == world.node.org_ids["CERT-A"]


@pytest.mark.parametrize("viewer", VIEWERS)
def test_listing_shows_exactly_what_the_table_allows(world: World, viewer: str) -> None:
    matrix = set(world.ids.values())
    assert _listed(world, viewer) & matrix == world.expected(viewer)
    assert _listed(world, viewer, type="indicator") & matrix == world.expected(viewer)
    assert _listed(world, viewer, type="indicator,malware") & matrix == world.expected(viewer)
    assert _listed(world, viewer, type="malware") & matrix == set()


@pytest.mark.parametrize("viewer", VIEWERS)
def test_listing_filters_before_paging(world: World, viewer: str) -> None:
    """Pages of one item hold only visible objects: nothing invisible is counted or skipped."""
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": 1, "type": "indicator"}
        if cursor:
            params["cursor"] = cursor
        r = world.client.get("/api/v1/objects", params=params, headers=world.auth(viewer))
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= 1
        seen.extend(item["id"] for item in body["items"])
        cursor = body["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert set(seen) & set(world.ids.values()) == world.expected(viewer)


@pytest.mark.parametrize("viewer", VIEWERS)
@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_reading_one_object(world: World, cell: tuple[str, str], viewer: str) -> None:
    sid = world.ids[cell]
    visible = viewer in SEES[cell[0]]
    headers = world.auth(viewer)
    latest = world.client.get(f"/api/v1/objects/{sid}", headers=headers)
    every = world.client.get(f"/api/v1/objects/{sid}", params={"version": "all"}, headers=headers)
    first = world.client.get(f"/api/v1/objects/{sid}", params={"version": "first"}, headers=headers)
    exact = world.client.get(
        f"/api/v1/objects/{sid}",
        params={"version": "2026-01-01T00:00:00.000Z"},
        headers=headers,
    )
    if visible:
        assert latest.status_code == 200, latest.text
        assert latest.json()["id"] == sid
        assert every.status_code == 200, every.text
        assert [v["id"] for v in every.json()["versions"]] == [sid]
        assert first.status_code == 200
        assert exact.status_code == 200
        return
    # Invisible reads exactly like missing: 404, not 403, and the same words.
    missing_id = stix_id("indicator")
    missing = world.client.get(f"/api/v1/objects/{missing_id}", headers=headers).json()
    for r in (latest, every, first, exact):
        assert r.status_code == 404, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["code"] == "not_found"
        assert body["detail"].replace(sid, "X") == missing["detail"].replace(missing_id, "X")
        assert cell[0] not in r.text
        assert "10." not in r.text


@pytest.mark.parametrize("viewer", VIEWERS)
@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_observable_lookup(world: World, cell: tuple[str, str], viewer: str) -> None:
    d, t = _ip(cell)
    expected = {world.ids[cell]} if viewer in SEES[cell[0]] else set()
    queries = (
        {"value": f"10.{d}.{t}.7"},  # the exact address
        {"value": f"10[.]{d}[.]{t}[.]7"},  # defanged
        {"value": f"10.{d}.{t}.0/24"},  # a network that contains the address
        {"value": f"10.{d}.{t + 100}.9"},  # an address inside the indicator's network
        {"value": f"10.{d}.{t + 100}.0/24", "kind": "cidr"},  # the network itself
    )
    for params in queries:
        r = world.client.get("/api/v1/observables", params=params, headers=world.auth(viewer))
        assert r.status_code == 200, r.text
        assert {item["id"] for item in r.json()["items"]} == expected, params


@pytest.mark.parametrize("viewer", VIEWERS)
def test_stix_export(world: World, viewer: str) -> None:
    r = world.client.get("/api/v1/export/stix", headers=world.auth(viewer))
    assert r.status_code == 200, r.text
    document = orjson.loads(r.content)
    assert document["type"] == "bundle"
    ids = [o["id"] for o in document["objects"]]
    assert len(ids) == len(set(ids))
    assert set(ids) & set(world.ids.values()) == world.expected(viewer)
    r = world.client.get(
        "/api/v1/export/stix", params={"type": "indicator"}, headers=world.auth(viewer)
    )
    objects = orjson.loads(r.content)["objects"]
    assert {o["type"] for o in objects} == {"indicator"}
    assert {o["id"] for o in objects} & set(world.ids.values()) == world.expected(viewer)


def _extra_principals(world: World) -> list[Principal]:
    a, b = world.node.org_ids["CERT-A"], world.node.org_ids["CERT-B"]
    return [
        Principal(None, b, Role.READER),  # B without its group
        Principal(None, "no-such-org", Role.ANALYST, frozenset({world.group_id})),
        Principal(None, "no-such-org", Role.ANALYST, frozenset({"no-such-group"})),
        Principal(None, a, Role.SYNC, frozenset()),
    ]


def test_python_predicate_agrees_with_sql(world: World) -> None:
    principals = [world.principal(v) for v in VIEWERS] + _extra_principals(world)
    with world.node.instance.begin() as conn:
        rows = conn.execute(
            select(ov.c.date_added, ov.c.owner_org_id, ov.c.tlp, ov.c.distribution)
            .add_columns(ov.c.sharing_group_id)
            .order_by(ov.c.date_added)
        ).all()
        assert len(rows) >= len(CELLS)
        for principal in principals:
            in_sql = set(
                conn.execute(select(ov.c.date_added).where(visible_to(principal, ov))).scalars()
            )
            in_python = {
                row.date_added
                for row in rows
                if is_visible(
                    principal,
                    Handling(
                        row.owner_org_id,
                        TLP(row.tlp),
                        Distribution(row.distribution),
                        row.sharing_group_id,
                    ),
                )
            }
            assert in_sql == in_python, principal


@pytest.mark.parametrize("viewer", VIEWERS)
def test_python_predicate_follows_the_table(world: World, viewer: str) -> None:
    principal = world.principal(viewer)
    owner = world.node.org_ids["CERT-A"]
    for dist, tlp in CELLS:
        group = world.group_id if dist == "sharing_group" else None
        handling = Handling(owner, TLP.parse(tlp), Distribution(dist), group)
        assert is_visible(principal, handling) is (viewer in SEES[dist]), (dist, tlp)


@pytest.mark.parametrize(("dist", "tlp"), sorted(REFUSED))
def test_importer_refuses_red_beyond_org_or_group(world: World, dist: str, tlp: str) -> None:
    obj = indicator("192.0.2.1")
    with world.node.instance.begin() as conn:
        report = import_objects(
            conn,
            world.principal("A"),
            [obj],
            HandlingRequest(TLP.parse(tlp), Distribution(dist)),
        )
    assert report.accepted == []
    assert [(r.code, r.id) for r in report.rejected] == [("policy_violation", obj["id"])]

    r = world.client.post(
        "/api/v1/objects",
        params={"tlp": tlp, "distribution": dist},
        json=obj,
        headers=world.auth("A"),
    )
    assert r.status_code == 400, r.text
    assert [e["code"] for e in r.json()["errors"]] == ["policy_violation"]
    stored = world.client.get(f"/api/v1/objects/{obj['id']}", headers=world.auth("A"))
    assert stored.status_code == 404


@pytest.mark.parametrize("dist", ["node", "connected", "all"])
def test_a_red_marking_inside_the_object_is_refused_too(world: World, dist: str) -> None:
    """The most restrictive handling wins: a RED marking on the object beats tlp=green."""
    obj = indicator("192.0.2.2", object_marking_refs=[TLP.RED.marking_id])
    r = world.client.post(
        "/api/v1/objects",
        params={"tlp": "green", "distribution": dist},
        json=obj,
        headers=world.auth("A"),
    )
    assert r.status_code == 400, r.text
    errors = r.json()["errors"]
    assert [(e["code"], e["index"], e["id"]) for e in errors] == [
        ("policy_violation", 0, obj["id"])
    ]


def test_a_stricter_marking_raises_the_stored_tlp(world: World) -> None:
    obj = indicator("192.0.2.3", object_marking_refs=[TLP.AMBER_STRICT.marking_id])
    r = world.client.post(
        "/api/v1/objects",
        params={"tlp": "green", "distribution": "node"},
        json=obj,
        headers=world.auth("A"),
    )
    assert r.status_code == 201, r.text
    got = world.client.get(f"/api/v1/objects/{obj['id']}", headers=world.auth("C"))
    assert got.json()["handling"]["tlp"] == "AMBER+STRICT"
    # The stricter request is not lowered by a looser marking either.
    obj = indicator("192.0.2.4", object_marking_refs=[TLP.CLEAR.marking_id])
    r = world.client.post(
        "/api/v1/objects",
        params={"tlp": "amber", "distribution": "node"},
        json=obj,
        headers=world.auth("A"),
    )
    assert r.status_code == 201, r.text
    got = world.client.get(f"/api/v1/objects/{obj['id']}", headers=world.auth("A"))
    assert got.json()["handling"]["tlp"] == "AMBER"


def test_sharing_group_objects_need_membership_to_submit(world: World) -> None:
    obj = indicator("192.0.2.5")
    r = world.client.post(
        "/api/v1/objects",
        params={"tlp": "amber", "distribution": "sharing_group", "sharing_group": world.group_id},
        json=obj,
        headers=world.auth("C"),
    )
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "forbidden"


@pytest.mark.parametrize("viewer", VIEWERS)
@pytest.mark.parametrize("tlp", TLPS)
def test_tlp_filter_of_the_listing(world: World, viewer: str, tlp: str) -> None:
    wanted = {i for (d, t), i in world.ids.items() if t == tlp and viewer in SEES[d]}
    assert _listed(world, viewer, tlp=tlp) & set(world.ids.values()) == wanted
    # Typed into a URL unencoded, "amber+strict" arrives as "amber strict".
    raw = world.client.get(f"/api/v1/objects?limit=1000&tlp={tlp}", headers=world.auth(viewer))
    assert raw.status_code == 200, raw.text
    assert {i["id"] for i in raw.json()["items"]} & set(world.ids.values()) == wanted
    ceiling = TLP.parse(tlp)
    capped = {i for (d, t), i in world.ids.items() if TLP.parse(t) <= ceiling and viewer in SEES[d]}
    assert _listed(world, viewer, max_tlp=tlp) & set(world.ids.values()) == capped
