"""The RFA service without HTTP: numbering, the workflow's timestamps and audit entries, the
overdue notice, and the access rules of ``qalqan.policy.rfas``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import select

from qalqan.assistance import (
    KINDS,
    RfaSpec,
    create_rfa,
    describe,
    list_rfas,
    load_rfa,
    notify_overdue,
    transition,
    update_draft,
)
from qalqan.domain.principal import Principal, Role
from qalqan.errors import Conflict, Forbidden, InvalidInput, NotFound
from qalqan.policy.rfas import TRANSITIONS, RfaSide, allowed_next, may_move_rfa, side_of
from qalqan.store.clock import now_us
from qalqan.store.tables import audit_log, notifications
from qalqan.testing import TestNode

B, C, NODE_ADMIN = "analyst@b.test", "analyst@c.test", "admin@a.test"
DAY = 86_400_000_000


@pytest.fixture
def people(node: TestNode) -> dict[str, Principal]:
    node.add_org("CERT-B")
    node.add_org("CERT-C")
    node.add_user(B, "CERT-B")
    node.add_user(C, "CERT-C")
    node.add_user("sync@c.test", "CERT-C", Role.SYNC)
    return node.principals


def _due(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def test_numbers_follow_each_other_and_each_step_is_stamped(
    node: TestNode, people: dict[str, Principal]
) -> None:
    b, c = people[B], people[C]
    with node.instance.begin() as conn:
        first = create_rfa(conn, b, RfaSpec(to="CERT-C", kind="takedown", title="one"))
        second = create_rfa(conn, b, RfaSpec(to="CERT-C", kind="blocking", title="two", send=True))
        assert second.number == first.number + 1
        assert second.sent_at is not None
        assert first.sent_at is None
        t0 = now_us()
        row = transition(conn, c, str(second.number), "acknowledged", now=t0 + 1)
        row = transition(conn, c, row.id, "in-progress", now=t0 + 2)
        row = transition(conn, c, row.id, "answered", answer="done", now=t0 + 3)
        assert (row.acknowledged_at, row.answered_at, row.closed_at) == (t0 + 1, t0 + 3, t0 + 3)
        shown = describe(conn, b, row, detail=True)
        assert [e["to"] for e in shown["events"]] == [
            "draft", "sent", "acknowledged", "in-progress", "answered"
        ]  # fmt: skip
        entries = conn.execute(
            select(audit_log.c.action, audit_log.c.detail).where(audit_log.c.target == row.id)
        ).all()
    assert [a for a, _ in entries] == ["rfa.create", *["rfa.transition"] * 4]
    assert orjson.loads(entries[-1][1]) == {
        "number": row.number, "from": "in-progress", "to": "answered"
    }  # fmt: skip


def test_the_rules(people: dict[str, Principal]) -> None:
    b, c, sync = people[B], people[C], people["sync@c.test"]
    assert side_of(b, b.org_id, c.org_id) is RfaSide.REQUESTER
    assert side_of(c, b.org_id, c.org_id) is RfaSide.RECIPIENT
    assert side_of(people[NODE_ADMIN], b.org_id, c.org_id) is None
    assert allowed_next("sent") == ["acknowledged", "declined", "withdrawn"]
    assert all(allowed_next(s) == [] for s in ("answered", "declined", "withdrawn"))
    for status, steps in TRANSITIONS.items():
        for to, side in steps.items():
            who = b if side is RfaSide.REQUESTER else c
            assert may_move_rfa(who, side, status, to)
            assert not may_move_rfa(sync, side, status, to)
    assert len(KINDS) == 6


def test_sync_accounts_and_other_orgs_see_nothing(
    node: TestNode, people: dict[str, Principal]
) -> None:
    with node.instance.begin() as conn:
        rfa = create_rfa(conn, people[B], RfaSpec(to="CERT-C", kind="other", title="t", send=True))
        for who in ("sync@c.test", NODE_ADMIN):
            with pytest.raises(NotFound):
                load_rfa(conn, people[who], rfa.id)
            assert list_rfas(conn, people[who]).items == []
        with pytest.raises(Forbidden):
            create_rfa(conn, people["sync@c.test"], RfaSpec(to="CERT-B", kind="other", title="t"))


def test_drafts_only_change_and_illegal_steps_conflict(
    node: TestNode, people: dict[str, Principal]
) -> None:
    with node.instance.begin() as conn:
        rfa = create_rfa(conn, people[B], RfaSpec(to="CERT-C", kind="other", title="t"))
        rfa = update_draft(conn, people[B], rfa.id, {"priority": "urgent", "to": "CERT-A"})
        assert rfa.priority == 4
        assert rfa.recipient_org_id == node.org_ids["CERT-A"]
        with pytest.raises(InvalidInput):
            update_draft(conn, people[B], rfa.id, {"title": None})
        with pytest.raises(Conflict) as caught:
            transition(conn, people[B], rfa.id, "answered", answer="x")
        assert caught.value.context["allowed"] == ["sent", "withdrawn"]
        transition(conn, people[B], rfa.id, "withdrawn")
        with pytest.raises(Conflict):
            update_draft(conn, people[B], rfa.id, {"title": "late"})


def test_overdue_requests_are_told_to_the_requester_once(
    node: TestNode, people: dict[str, Principal]
) -> None:
    now = now_us()
    with node.instance.begin() as conn:
        late = create_rfa(
            conn, people[B], RfaSpec(to="CERT-C", kind="other", title="t", due=_due(1), send=True)
        )
        create_rfa(conn, people[B], RfaSpec(to="CERT-C", kind="other", title="draft", due=_due(1)))
        create_rfa(conn, people[B], RfaSpec(to="CERT-C", kind="other", title="t", due=_due(9)))
        assert notify_overdue(conn, now=now) == 0
        assert notify_overdue(conn, now=now + 2 * DAY) == 1
        assert notify_overdue(conn, now=now + 3 * DAY) == 0
        told = conn.execute(
            select(notifications.c.org_id, notifications.c.subject).where(
                notifications.c.kind == "rfa.overdue"
            )
        ).all()
        assert told == [(node.org_ids["CERT-B"], late.id)]
        page = list_rfas(conn, people[B], overdue=True, now=now + 2 * DAY)
        assert [r["id"] for r in page.items] == [late.id]
