"""Server time and the node's strictly increasing ``date_added`` clock."""

from __future__ import annotations

import time

from sqlalchemy import Connection, case, select, update

from qalqan.errors import ConfigurationError
from qalqan.store.tables import nodes

__all__ = ["local_clock", "lock_writes", "now_us", "reserve_date_added"]


def now_us() -> int:
    """Wall-clock time in microseconds since the Unix epoch."""
    return time.time_ns() // 1000


def lock_writes(conn: Connection) -> None:
    """Wait for, then hold until the transaction ends, the node's write turn.

    Intelligence writers (imports, revocations) call this before reading what their write
    depends on (stored versions, references): concurrent writers then cannot both decide to
    store the same version. On SQLite the statement also opens the write transaction, so later
    reads in it see every earlier writer's commit.
    """
    conn.execute(update(nodes).where(nodes.c.is_local).values(clock=nodes.c.clock))


def reserve_date_added(conn: Connection, count: int) -> int:
    """Reserve ``count`` consecutive ``date_added`` values; returns the first.

    The update locks the local node's row until the transaction ends, so writers take turns and
    values become visible in the order they were issued: a reader paging by ``date_added`` never
    skips a version that commits later with a smaller value.
    """
    now = now_us()
    new_clock = case((nodes.c.clock >= now, nodes.c.clock), else_=now) + count
    row = conn.execute(
        update(nodes).where(nodes.c.is_local).values(clock=new_clock).returning(nodes.c.clock)
    ).first()
    if row is None:
        raise ConfigurationError("this node is not initialised; run `qalqan init`")
    return int(row[0]) - count + 1


def local_clock(conn: Connection) -> int:
    """The last ``date_added`` issued by this node (0 on a new node)."""
    return int(conn.execute(select(nodes.c.clock).where(nodes.c.is_local)).scalar() or 0)
