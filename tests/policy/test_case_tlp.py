"""TLP:RED cases as a table: who, inside and outside the participating orgs, sees a RED case
through every read path (list, page, tasks, timeline, comments), against an AMBER case of the
same participants that every user of those orgs sees.

| viewer                          | RED case | AMBER case |
|---------------------------------|----------|------------|
| its creator                     | yes      | yes        |
| a case assignee                 | yes      | yes        |
| a task assignee                 | yes      | yes        |
| an org admin of a participant   | yes      | yes        |
| a plain analyst of a participant| no (404) | yes        |
| a reader of a participant       | no (404) | yes        |
| an analyst of another org       | no (404) | no (404)   |
| the node admin of another org   | no (404) | no (404)   |
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from qalqan.api import create_app
from qalqan.cases import activity, service, tasks
from qalqan.cases.service import CaseChanges, CaseSpec
from qalqan.cases.tasks import TaskChanges, TaskSpec
from qalqan.domain.principal import Principal, Role
from qalqan.errors import NotFound
from qalqan.store import cases as store
from qalqan.testing import TestNode, fresh_instance

CREATOR = "creator@b.test"
ASSIGNEE = "assignee@c.test"
TASKER = "tasker@c.test"
ORG_ADMIN = "admin@c.test"
PLAIN_B = "plain@b.test"
PLAIN_C = "plain@c.test"
READER = "reader@c.test"
OUTSIDER = "analyst@e.test"
NODE_ADMIN = "admin@a.test"  # the node's admin, of CERT-A, which takes no part

USERS = {
    CREATOR: ("CERT-B", Role.ANALYST),
    ASSIGNEE: ("CERT-C", Role.ANALYST),
    TASKER: ("CERT-C", Role.ANALYST),
    ORG_ADMIN: ("CERT-C", Role.ORG_ADMIN),
    PLAIN_B: ("CERT-B", Role.ANALYST),
    PLAIN_C: ("CERT-C", Role.ANALYST),
    READER: ("CERT-C", Role.READER),
    OUTSIDER: ("CERT-E", Role.ANALYST),
}
SEES_RED = {CREATOR, ASSIGNEE, TASKER, ORG_ADMIN}
SEES_AMBER = SEES_RED | {PLAIN_B, PLAIN_C, READER}
VIEWERS = sorted([*USERS, NODE_ADMIN])


@dataclass
class World:
    node: TestNode
    client: TestClient
    red: store.CaseRow
    amber: store.CaseRow
    red_task: str

    def principal(self, email: str) -> Principal:
        return self.node.principals[email]

    def auth(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.keys[email]}"}


def _open(conn: Connection, world_node: TestNode, tlp: str) -> tuple[store.CaseRow, str]:
    """A case of CERT-B with CERT-C taking part, an assignee, a task assignee, a comment."""
    creator = world_node.principals[CREATOR]
    row = service.create_case(conn, creator, CaseSpec(title=f"{tlp} case", tlp=tlp))
    service.add_participant(conn, creator, row.id, "CERT-C", "contributor")
    service.update_case(conn, creator, row.id, CaseChanges(assignees=[ASSIGNEE]))
    task = tasks.add_task(conn, creator, row.id, TaskSpec(title="look", assignee=TASKER))
    tasks.log_work(conn, creator, task.id, "looked")
    activity.add_comment(conn, creator, row.id, "see @CERT-C")
    return row, task.id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with fresh_instance(tmp_path_factory.mktemp("case-tlp")) as inst:
        node = TestNode.create(inst, "CERT-A", "KZ")
        for org in ("CERT-B", "CERT-C", "CERT-E"):
            node.add_org(org)
        for email, (org, role) in USERS.items():
            node.add_user(email, org, role)
        with inst.begin() as conn:
            red, red_task = _open(conn, node, "red")
            amber, _ = _open(conn, node, "amber")
        with TestClient(create_app(inst)) as client:
            yield World(node, client, red, amber, red_task)


@pytest.mark.parametrize("viewer", VIEWERS)
def test_lists_keep_exactly_the_cases_the_viewer_may_see(world: World, viewer: str) -> None:
    expected = {
        c.id for c, sees in ((world.red, SEES_RED), (world.amber, SEES_AMBER)) if viewer in sees
    }
    r = world.client.get("/api/v1/cases", headers=world.auth(viewer))
    assert r.status_code == 200, r.text
    assert {c["id"] for c in r.json()["items"]} == expected
    r = world.client.get("/api/v1/tasks", headers=world.auth(viewer))
    assert r.status_code == 200, r.text
    assert {t["case_id"] for t in r.json()["items"]} == expected
    with world.node.instance.begin() as conn:
        listed = service.list_cases(conn, world.principal(viewer), store.CaseFilter(), limit=10)
        assert {s.row.id for s in listed} == expected


@pytest.mark.parametrize("viewer", VIEWERS)
@pytest.mark.parametrize(
    "path", ["", "/timeline", "/comments", "/observables", "/tasks-of", "/task-log"]
)
def test_every_path_to_one_case_answers_alike(world: World, viewer: str, path: str) -> None:
    for case, sees in ((world.red, SEES_RED), (world.amber, SEES_AMBER)):
        for ref in (case.id, str(case.number)):
            if path == "/tasks-of":
                r = world.client.get(
                    "/api/v1/tasks", params={"case": ref}, headers=world.auth(viewer)
                )
            elif path == "/task-log":
                if case is not world.red:
                    continue
                r = world.client.get(
                    f"/api/v1/tasks/{world.red_task}/log", headers=world.auth(viewer)
                )
            else:
                r = world.client.get(f"/api/v1/cases/{ref}{path}", headers=world.auth(viewer))
            if viewer in sees:
                assert r.status_code == 200, (viewer, path, r.text)
            else:
                # Exactly what a case that does not exist gets: nothing to tell them apart.
                assert r.status_code == 404, (viewer, path, r.text)
                assert r.json()["code"] == "not_found"


@pytest.mark.parametrize("viewer", VIEWERS)
def test_the_role_other_paths_ask_for_follows_the_same_rule(world: World, viewer: str) -> None:
    with world.node.instance.begin() as conn:
        role = store.visible_role(conn, world.principal(viewer), world.red.id)
        amber_role = store.visible_role(conn, world.principal(viewer), world.amber.id)
    org = USERS.get(viewer, ("CERT-A", Role.NODE_ADMIN))[0]
    own_role = {"CERT-B": "lead", "CERT-C": "contributor"}.get(org)
    assert role == (own_role if viewer in SEES_RED else None)
    assert amber_role == (own_role if viewer in SEES_AMBER else None)


def test_writes_to_a_red_case_by_the_unnamed_are_not_found(world: World) -> None:
    plain = world.principal(PLAIN_C)
    with world.node.instance.begin() as conn:
        with pytest.raises(NotFound):
            activity.add_comment(conn, plain, world.red.id, "hello")
        with pytest.raises(NotFound):
            tasks.update_task(conn, plain, world.red_task, TaskChanges(status="done"))
        with pytest.raises(NotFound):
            service.update_case(conn, plain, world.red.id, CaseChanges(tlp="amber"))


def test_the_named_and_the_unnamed_follow_the_case_through_changes(
    world: World,
) -> None:
    creator, plain = world.principal(CREATOR), world.principal(PLAIN_C)
    inst = world.node.instance
    with inst.begin() as conn:
        row = service.create_case(conn, creator, CaseSpec(title="moving", tlp="amber"))
        service.add_participant(conn, creator, row.id, "CERT-C", "contributor")
    with inst.begin() as conn:
        assert activity.case_page(conn, plain, row.id).case.tlp == 2
        # Raising the case to RED takes it out of the plain analyst's sight at once; the write
        # still answers with what was written.
        changed = service.update_case(conn, plain, row.id, CaseChanges(tlp="red"))
        assert changed.tlp == 4
        with pytest.raises(NotFound):
            activity.case_page(conn, plain, row.id)
        # Naming them in a task brings it back; unassigning them takes it away again.
        task = tasks.add_task(conn, creator, row.id, TaskSpec(title="t", assignee=PLAIN_C))
        assert activity.case_page(conn, plain, row.id).role == "contributor"
        done = tasks.update_task(conn, plain, task.id, TaskChanges(assignee=""))
        assert done.assignee_user_id is None
        with pytest.raises(NotFound):
            tasks.task_log(conn, plain, task.id)
        # Back to AMBER: every user of the participating orgs again.
        service.update_case(conn, creator, row.id, CaseChanges(tlp="amber"))
        assert activity.case_page(conn, plain, row.id).case.tlp == 2


def test_lists_are_filtered_before_paging(world: World) -> None:
    """Pages of one never come back empty or short while visible cases remain."""
    creator, plain = world.principal(CREATOR), world.principal(PLAIN_B)
    inst = world.node.instance
    with inst.begin() as conn:
        made = [
            service.create_case(conn, creator, CaseSpec(title=f"p{i}", tlp=tlp)).id
            for i, tlp in enumerate(["red", "amber", "red", "red", "green", "red"])
        ]
    visible = {made[1], made[4]}
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 1, "text": "p"}
        if cursor:
            params["cursor"] = cursor
        r = world.client.get("/api/v1/cases", params=params, headers=world.auth(PLAIN_B))
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) == 1 or body["next"] is None
        seen.extend(c["id"] for c in body["items"] if c["id"] in made)
        cursor = body["next"]
        if cursor is None:
            break
    assert set(seen) == visible
    with inst.begin() as conn:
        first = service.list_cases(conn, plain, store.CaseFilter(text="p"), limit=1)
    assert first[0].row.id == made[4]
