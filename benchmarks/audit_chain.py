"""The audit hash chain: what appending costs a write, and how fast ``audit verify`` walks it.

Append: 3,000 small write transactions on SQLite, each recording one audit entry through
``audit.record`` (chain head taken, hash computed, entry and head written); the baseline is the
same transactions inserting the same entry without the chain, as the log was written before.
The difference per write is what the chain adds.

Verify: 1,000,000 chained entries bulk-written in the shape ``record`` writes them, then
``audit.verify`` over all of them (keyset batches, one hash per entry); entries/s. Baseline:
the naive walk, one SELECT per entry by id, on a 20,000-entry sample, rate extrapolated.
"""

from __future__ import annotations

import time

import orjson
from sqlalchemy import insert, select, update

from benchmarks._common import Context, Row
from qalqan import audit
from qalqan.domain.audit import GENESIS, entry_hash
from qalqan.store.tables import audit_head, audit_log
from qalqan.testing import TestNode, fresh_instance

__all__ = ["run"]

NAME = "audit_chain"
TARGET_APPEND_MS = 1.0
TARGET_VERIFY_RATE = 100_000
_SAMPLE = 20_000


def _append_seconds(ctx: Context, chained: bool, writes: int) -> float:
    with fresh_instance(ctx.work_dir / f"audit-append-{chained}") as instance:
        node = TestNode.create(instance)
        principal = node.principals["admin@a.test"]
        detail = orjson.dumps({"accepted": 1, "created": 1}).decode()
        start = time.perf_counter()
        for i in range(writes):
            with instance.begin() as conn:
                if chained:
                    audit.record(conn, principal, "objects.import", target=f"t{i}",
                                 detail={"accepted": 1, "created": 1})  # fmt: skip
                else:
                    conn.execute(
                        insert(audit_log).values(
                            at=time.time_ns() // 1000, actor_user_id=principal.user_id,
                            actor_org_id=principal.org_id, action="objects.import",
                            target=f"t{i}", detail=detail,
                        )
                    )  # fmt: skip
        return time.perf_counter() - start


def _chained_rows(count: int, first_id: int, previous: str) -> tuple[list[dict[str, object]], str]:
    rows = []
    for entry_id in range(first_id, first_id + count):
        at = 1_767_225_600_000_000 + entry_id
        detail = f'{{"n":{entry_id}}}'
        digest = entry_hash(previous, entry_id, at, None, "org", "bench.write", None, detail)
        rows.append(
            {"id": entry_id, "at": at, "actor_user_id": None, "actor_org_id": "org",
             "action": "bench.write", "target": None, "detail": detail,
             "prev_hash": previous, "hash": digest}
        )  # fmt: skip
        previous = digest
    return rows, previous


def run(ctx: Context) -> list[Row]:
    """Time appends with and without the chain, then verify a large chain."""
    writes = ctx.size(3_000, 300)
    plain = _append_seconds(ctx, False, writes)
    chained = _append_seconds(ctx, True, writes)
    added_ms = (chained - plain) / writes * 1000

    entries = ctx.size(1_000_000, 50_000)
    with fresh_instance(ctx.work_dir / "audit-verify") as instance:
        with instance.begin() as conn:
            conn.execute(audit_log.delete())
            previous, next_id = GENESIS, 1
            while next_id <= entries:
                rows, previous = _chained_rows(
                    min(50_000, entries - next_id + 1), next_id, previous
                )
                conn.execute(insert(audit_log), rows)
                next_id += len(rows)
            conn.execute(update(audit_head).values(last_id=entries, last_hash=previous))
        with instance.begin() as conn:
            start = time.perf_counter()
            report = audit.verify(conn)
            verify_s = time.perf_counter() - start
        if not report.ok or report.checked != entries:
            raise RuntimeError(f"the generated chain does not verify: {report}")
        sample = min(_SAMPLE, entries)
        with instance.begin() as conn:
            start = time.perf_counter()
            prev = GENESIS
            for entry_id in range(1, sample + 1):
                r = conn.execute(select(audit_log).where(audit_log.c.id == entry_id)).one()
                digest = entry_hash(prev, r.id, r.at, r.actor_user_id, r.actor_org_id,
                                    r.action, r.target, r.detail)  # fmt: skip
                assert digest == r.hash
                prev = digest
            naive_s = (time.perf_counter() - start) / sample * entries
    rate = entries / verify_s
    print(
        f"  append: {writes:,} write transactions: {plain:.2f} s without the chain, "
        f"{chained:.2f} s with it: +{added_ms:.3f} ms per write"
    )
    print(f"  verify: {entries:,} entries in {verify_s:.2f} s ({rate:,.0f} entries/s)")
    naive = f"{naive_s:.1f} s extrapolated from {sample:,} entries"
    print(f"  naive verify, one SELECT per entry: {naive}")
    return [
        Row(NAME, "append cost per write", f"+{added_ms:.3f} ms", f"{plain / writes * 1000:.2f} "
            "ms per write without", None, f"<= {TARGET_APPEND_MS:.0f} ms",
            added_ms <= TARGET_APPEND_MS),
        Row(NAME, f"verify {entries:,}", f"{rate:,.0f}/s", f"{entries / naive_s:,.0f}/s",
            naive_s / verify_s, f">= {TARGET_VERIFY_RATE:,}/s", rate >= TARGET_VERIFY_RATE),
    ]  # fmt: skip
