"""Case work raises notifications: an org invited to a case, a user assigned to a case or a
task (not when assigning oneself, and not again for the same assignment), a task coming due
(once per task and assignee)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import select

from qalqan.cases import service, tasks
from qalqan.cases.service import CaseChanges, CaseSpec
from qalqan.cases.tasks import TaskChanges, TaskSpec
from qalqan.domain.principal import Role
from qalqan.notify import events
from qalqan.store.clock import now_us
from qalqan.store.tables import notifications
from qalqan.testing import TestNode

LEAD, B1, B2 = "lead@a.test", "one@b.test", "two@b.test"
HOUR = 3_600_000_000


@pytest.fixture
def site(node: TestNode) -> TestNode:
    node.add_org("CERT-B")
    node.add_user(LEAD, "CERT-A")
    node.add_user(B1, "CERT-B")
    node.add_user(B2, "CERT-B", Role.ORG_ADMIN)
    return node


def _notes(node: TestNode) -> list[dict[str, Any]]:
    with node.instance.begin() as conn:
        rows = conn.execute(select(notifications).order_by(notifications.c.id))
        return [
            {**dict(r._mapping), "detail": orjson.loads(r.detail)}
            for r in rows
            if r.kind.startswith(("case.", "task."))
        ]


def test_invitations_and_assignments_are_told_once(site: TestNode) -> None:
    lead = site.principals[LEAD]
    b1, b2 = site.principals[B1].user_id, site.principals[B2].user_id
    with site.instance.begin() as conn:
        case = service.create_case(conn, lead, CaseSpec(title="Hospitals <hit>", tlp="amber"))
        service.add_participant(conn, lead, case.id, "CERT-B", "contributor")
        service.update_case(conn, lead, case.id, CaseChanges(assignees=[B1, LEAD]))
        service.update_case(conn, lead, case.id, CaseChanges(assignees=[B1, B2, LEAD]))
        task = tasks.add_task(conn, lead, case.id, TaskSpec(title="Image the server", assignee=B2))
        tasks.add_task(conn, lead, case.id, TaskSpec(title="My own", assignee=LEAD))
        tasks.update_task(conn, lead, task.id, TaskChanges(assignee=B1))
        tasks.update_task(conn, lead, task.id, TaskChanges(title="Image both servers"))
    seen = [(n["kind"], n["org_id"], n["user_id"]) for n in _notes(site)]
    org_b = site.org_ids["CERT-B"]
    assert seen == [
        ("case.invited", org_b, None),
        ("case.assigned", org_b, b1),
        ("case.assigned", org_b, b2),
        ("task.assigned", org_b, b2),
        ("task.assigned", org_b, b1),
    ]
    invited = _notes(site)[0]
    assert invited["subject"] == case.id
    assert invited["detail"]["title"] == "Hospitals <hit>"
    assert invited["detail"]["role"] == "contributor"
    assert invited["detail"]["tlp"] == "TLP:AMBER"


def test_a_task_coming_due_is_told_once_to_its_assignee(site: TestNode) -> None:
    lead = site.principals[LEAD]
    now = now_us()
    with site.instance.begin() as conn:
        case = service.create_case(conn, lead, CaseSpec(title="Phishing"))
        service.add_participant(conn, lead, case.id, "CERT-B", "contributor")
        spec = TaskSpec(title="Soon", assignee=B1, due_at=now + 2 * HOUR)
        soon = tasks.add_task(conn, lead, case.id, spec)
        spec = TaskSpec(title="Later", assignee=B1, due_at=now + 72 * HOUR)
        tasks.add_task(conn, lead, case.id, spec)
        spec = TaskSpec(title="Done", assignee=B2, due_at=now + HOUR)
        done = tasks.add_task(conn, lead, case.id, spec)
        tasks.update_task(conn, lead, done.id, TaskChanges(status="done"))
        tasks.add_task(conn, lead, case.id, TaskSpec(title="Nobody's", due_at=now + HOUR))
        assert events.tasks_coming_due(conn, now=now, hours=24) == 1
        assert events.tasks_coming_due(conn, now=now, hours=24) == 0
        # Handed to someone else: the new assignee is told too.
        tasks.update_task(conn, lead, soon.id, TaskChanges(assignee=B2))
        assert events.tasks_coming_due(conn, now=now + HOUR, hours=24) == 1
    due = [n for n in _notes(site) if n["kind"] == "task.due"]
    assert [(n["user_id"], n["detail"]["title"]) for n in due] == [
        (site.principals[B1].user_id, "Soon"),
        (site.principals[B2].user_id, "Soon"),
    ]
    assert due[0]["detail"]["overdue"] is False


def test_a_red_case_invitation_reaches_the_invited_orgs_admins_only(site: TestNode) -> None:
    from qalqan.intel import notifications as reading

    lead = site.principals[LEAD]
    with site.instance.begin() as conn:
        case = service.create_case(conn, lead, CaseSpec(title="Informant", tlp="red"))
        service.add_participant(conn, lead, case.id, "CERT-B", "contributor")
        admin_sees = reading.list_notifications(conn, site.principals[B2]).items
        analyst_sees = reading.list_notifications(conn, site.principals[B1]).items
    assert [(n.kind, n.user_id) for n in admin_sees] == [
        ("case.invited", site.principals[B2].user_id)
    ]
    assert analyst_sees == []
