"""The cases service on its own: templates, the status workflow, participants, tasks, mentions,
observables, and that every write leaves an audit entry and a timeline entry."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from qalqan.cases import activity, service, tasks
from qalqan.cases.service import TRANSITIONS, CaseChanges, CaseSpec
from qalqan.cases.tasks import TaskChanges, TaskSpec
from qalqan.cases.templates import TEMPLATES
from qalqan.domain.principal import Principal, Role
from qalqan.errors import Conflict, Forbidden, InvalidInput, NotFound
from qalqan.store import cases as store
from qalqan.store.tables import audit_log, case_timeline
from qalqan.testing import TestNode

B = "analyst@b.test"
C = "analyst@c.test"
E = "analyst@e.test"


@pytest.fixture
def people(node: TestNode) -> dict[str, Principal]:
    for org in ("CERT-B", "CERT-C", "CERT-E"):
        node.add_org(org)
    node.add_user(B, "CERT-B")
    node.add_user(C, "CERT-C")
    node.add_user(E, "CERT-E")
    return {email: node.principals[email] for email in (B, C, E)}


def test_every_template_opens_a_case_with_its_tasks(
    node: TestNode, people: dict[str, Principal]
) -> None:
    with node.instance.begin() as conn:
        for name, template in TEMPLATES.items():
            row = service.create_case(conn, people[B], CaseSpec(title=name, template=name))
            page = activity.case_page(conn, people[B], str(row.number))
            assert [t.title for t in page.tasks] == list(template.tasks)
            assert page.labels == sorted(template.labels)
            assert row.severity == template.severity
            assert page.role == "lead"
        assert [
            r.number for r in store.list_cases(conn, people[B], store.CaseFilter(), limit=9)
        ] == [
            5,
            4,
            3,
            2,
            1,
        ]


def test_every_write_is_audited_and_on_the_timeline(
    node: TestNode, people: dict[str, Principal]
) -> None:
    with node.instance.begin() as conn:
        before = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
        row = service.create_case(conn, people[B], CaseSpec(title="t"))
        ref = row.id
        service.add_participant(conn, people[B], ref, "CERT-C", "contributor")
        service.update_case(conn, people[C], ref, CaseChanges(labels=["x"], assignees=[C]))
        task = tasks.add_task(conn, people[C], ref, TaskSpec(title="do it", assignee=B))
        tasks.update_task(conn, people[B], task.id, TaskChanges(status="in-progress"))
        tasks.log_work(conn, people[B], task.id, "half done")
        activity.add_comment(conn, people[C], ref, "see @CERT-B and @cert-c, not @CERT-BX")
        activity.add_observable(conn, people[C], ref, "evil[.]example")
        activity.remove_observable(conn, people[C], ref, "evil.example")
        service.change_status(conn, people[B], ref, "resolved", "done")
        audited = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
        entries = conn.execute(
            select(func.count()).select_from(case_timeline).where(case_timeline.c.case_id == ref)
        ).scalar_one()
        assert audited - before == 10
        assert entries == 10
        comment = activity.comments(conn, people[B], ref, limit=5)[0]
        assert comment["mentions"] == (f'["{node.org_ids["CERT-B"]}","{node.org_ids["CERT-C"]}"]')


@pytest.mark.parametrize("start", list(TRANSITIONS))
def test_transitions_follow_the_workflow(
    node: TestNode, people: dict[str, Principal], start: str
) -> None:
    paths = {
        "new": [],
        "in-progress": ["in-progress"],
        "on-hold": ["on-hold"],
        "resolved": ["resolved"],
        "closed": ["closed"],
    }
    with node.instance.begin() as conn:
        for target in service.STATUSES:
            row = service.create_case(conn, people[B], CaseSpec(title="t"))
            for step in paths[start]:
                service.change_status(conn, people[B], row.id, step, "because")
            if target in TRANSITIONS[start]:
                assert service.change_status(conn, people[B], row.id, target, "r").status == target
            else:
                with pytest.raises(Conflict) as caught:
                    service.change_status(conn, people[B], row.id, target, "r")
                assert caught.value.context["allowed"] == list(TRANSITIONS[start])


def test_uninvolved_orgs_and_readers(node: TestNode, people: dict[str, Principal]) -> None:
    reader = Principal(user_id=None, org_id=node.org_ids["CERT-B"], role=Role.READER)
    with node.instance.begin() as conn:
        row = service.create_case(conn, people[B], CaseSpec(title="secret"))
        with pytest.raises(NotFound):
            activity.case_page(conn, people[E], row.id)
        with pytest.raises(NotFound):
            service.add_participant(conn, people[E], row.id, "CERT-E", "lead")
        assert service.list_cases(conn, people[E], store.CaseFilter(), limit=10) == []
        with pytest.raises(Forbidden):
            service.update_case(conn, reader, row.id, CaseChanges(title="x"))
        with pytest.raises(Forbidden):
            service.create_case(conn, reader, CaseSpec(title="x"))
        with pytest.raises(InvalidInput) as caught:
            service.update_case(conn, people[B], row.id, CaseChanges(assignees=[E]))
        assert caught.value.field == "assignees"


def test_mentions_need_a_whole_org_name() -> None:
    rows = [
        store.ParticipantRow("b", "CERT-B", "lead", 0, None),
        store.ParticipantRow("bx", "CERT-BX", "observer", 0, None),
        store.ParticipantRow("n", "National Agency", "contributor", 0, None),
    ]
    assert activity.mentioned_orgs("hi @cert-bx.", rows) == ["bx"]
    assert activity.mentioned_orgs("@CERT-B, @National Agency!", rows) == ["n", "b"]
    assert activity.mentioned_orgs("email x@CERT-Bz", rows) == []
