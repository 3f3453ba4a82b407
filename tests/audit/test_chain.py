"""The audit log is a hash chain: it verifies, a change made by hand is found with its
position, concurrent writers keep it whole, an upgraded node chains what it held, and signed
extracts verify."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, insert, select, text, update

from qalqan import audit
from qalqan.domain.audit import GENESIS, entry_hash
from qalqan.domain.principal import Role
from qalqan.instance import Instance
from qalqan.store import migrate
from qalqan.store.tables import audit_log
from qalqan.testing import TestNode


@pytest.fixture
def node(instance: Instance) -> TestNode:
    node = TestNode.create(instance)
    for i in range(5):
        node.add_org(f"CERT-{i}", "UZ")
    node.add_user("a@a.test", "CERT-0", Role.ANALYST)
    return node


def _verify(instance: Instance) -> audit.ChainReport:
    with instance.begin() as conn:
        return audit.verify(conn)


def test_a_fresh_chain_verifies(node: TestNode) -> None:
    report = _verify(node.instance)
    assert report.ok
    assert report.checked >= 8
    with node.instance.begin() as conn:
        hashes = conn.execute(select(audit_log.c.prev_hash, audit_log.c.hash)).all()
    assert all(prev and digest for prev, digest in hashes)


@pytest.mark.parametrize("column", ["action", "detail", "target", "at", "actor_org_id"])
def test_a_changed_entry_is_found_with_its_position(node: TestNode, column: str) -> None:
    with node.instance.begin() as conn:
        third = conn.execute(select(audit_log.c.id).order_by(audit_log.c.id).offset(2)).scalar()
        value = 1 if column == "at" else "x"
        conn.execute(update(audit_log).where(audit_log.c.id == third).values({column: value}))
    report = _verify(node.instance)
    assert (report.ok, report.broken_at, report.position) == (False, third, 3)
    assert report.reason is not None
    assert "hash" in report.reason


def test_removed_entries_are_found(node: TestNode) -> None:
    with node.instance.begin() as conn:
        ids = conn.execute(select(audit_log.c.id).order_by(audit_log.c.id)).scalars().all()
        conn.execute(delete(audit_log).where(audit_log.c.id == ids[3]))
    report = _verify(node.instance)
    assert (report.ok, report.broken_at) == (False, ids[4])
    assert report.reason == f"entries {ids[3]}..{ids[3]} are missing"
    with node.instance.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id >= ids[3]))
    tail = _verify(node.instance)
    assert not tail.ok
    assert tail.reason is not None
    assert "last entries are missing" in tail.reason


def test_a_rewritten_chain_does_not_verify_against_the_head(node: TestNode) -> None:
    # Someone recomputes every hash after an edit: the head still names the old last hash.
    with node.instance.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == 1).values(detail='{"x":1}'))
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id)).all()
        previous = GENESIS
        for r in rows:
            digest = entry_hash(previous, r.id, r.at, r.actor_user_id, r.actor_org_id,
                                r.action, r.target, r.detail)  # fmt: skip
            conn.execute(
                update(audit_log)
                .where(audit_log.c.id == r.id)
                .values(prev_hash=previous, hash=digest)
            )
            previous = digest
    assert not _verify(node.instance).ok


def test_concurrent_writers_keep_the_chain_whole(node: TestNode) -> None:
    principal = node.principals["a@a.test"]
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(15):
                with node.instance.begin() as conn:
                    audit.record(conn, principal, "test.write", detail={"w": worker, "i": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    report = _verify(node.instance)
    assert report.ok, report
    with node.instance.begin() as conn:
        written = conn.execute(
            select(audit_log.c.id).where(audit_log.c.action == "test.write")
        ).all()
    assert len(written) == 60


def test_a_signed_extract_verifies_and_detects_changes(node: TestNode, tmp_path: Path) -> None:
    data_dir = node.instance.settings.data_dir
    with node.instance.begin() as conn:
        lines = list(audit.signed_extract(conn, data_dir))
    assert audit.verify_extract(lines) is None
    changed = [*lines[:2], lines[2].replace(b'"action":"', b'"action":"x'), *lines[3:]]
    assert audit.verify_extract(changed) == "the signature does not match the entries"
    assert audit.verify_extract(lines[:-1]) == "the last line is not a signature"
    assert audit.verify_extract(lines, public_key=b"\x01" * 32) is not None


def test_an_upgraded_node_chains_the_entries_it_held(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0005")
    with engine.begin() as conn:
        for i in range(3):
            conn.execute(
                insert(audit_log).values(
                    at=1_700_000_000_000_000 + i, action=f"old.{i}", detail="{}"
                )
            )
    migrate.upgrade(engine)
    with engine.begin() as conn:
        report = audit.verify(conn)
        assert (report.ok, report.checked) == (True, 3)
        audit.record(conn, None, "new.entry")
        assert audit.verify(conn).ok
        assert conn.execute(text("SELECT last_id FROM audit_head")).scalar() == 4
    engine.dispose()
