"""Decay refresh: the scores of 1,000,000 indicators recomputed as of a later moment.

The store holds ``indicator_scores`` rows generated from a fixed seed (every observable kind,
bases from 10 to 100, a few false positives and expirations, decay started over the last 400
days), their scores last written 30 days ago. Timed on SQLite: ``intel.scoring.refresh`` as of
now (most scores change: the full case), then again ten minutes later (few change: the
incremental case the scheduler runs) and, for information, after the threshold changed (every
row's decay moment moves). Baseline, in the same run: the naive refresh — read each
row, compute its score and decay moment in Python, one UPDATE per row — on a 20,000-row sample,
time extrapolated.
"""

from __future__ import annotations

import math
import random
import time

from sqlalchemy import select, text

from benchmarks._common import Context, Row, seeded_uuid
from qalqan.domain.decay import DAY_US, KINDS, OTHER, DecayConfig
from qalqan.instance import Instance
from qalqan.intel import scoring
from qalqan.settings import Settings
from qalqan.store import migrate
from qalqan.store.tables import indicator_scores

NAME = "decay_refresh"
_NOW = 1_795_000_000 * 1_000_000  # a fixed "now" (µs): the figures do not depend on the day
_MINUTE = 60 * 1_000_000
_COLUMNS = (
    "stix_id",
    "kind",
    "base",
    "false_positives",
    "reset_at",
    "expired_at",
    "decays_at",
    "score",
    "refreshed_at",
)


def _rows(count: int, rnd: random.Random, config: DecayConfig) -> list[tuple[object, ...]]:
    """Score rows as the indexer would have written them 30 days before :data:`_NOW`."""
    kinds = (*KINDS, OTHER)
    written = _NOW - 30 * DAY_US
    rows: list[tuple[object, ...]] = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        base = rnd.randrange(10, 101)
        fp = 1 if rnd.random() < 0.02 else 0
        reset = written - rnd.randrange(0, 400 * DAY_US)
        expired = reset + DAY_US if rnd.random() < 0.005 else None
        rows.append(
            (
                f"indicator--{seeded_uuid(rnd)}",
                kind,
                base,
                fp,
                reset,
                expired,
                _naive_decays_at(base, fp, reset, expired, kind, config),
                _naive_score(base, fp, reset, expired, kind, config, written),
                written,
            )
        )
    return rows


def _naive_score(
    base: int,
    fp: int,
    reset: int,
    expired: int | None,
    kind: str,
    config: DecayConfig,
    now: int,
) -> int:
    model = config.model(kind)
    if expired is not None and expired <= now:
        return 0
    start: float = base * 0.5**fp
    ratio = min(max((now - reset) / model.tau_us, 0.0), 1.0)
    fallen: float = ratio ** (1 / model.delta)
    return math.floor(start * (1 - fallen) + 0.5)


def _naive_decays_at(
    base: int, fp: int, reset: int, expired: int | None, kind: str, config: DecayConfig
) -> int | None:
    model = config.model(kind)
    start: float = base * 0.5**fp
    cut = min(config.threshold, base / 2)
    if cut <= 0:
        moment = None
    elif start <= cut:
        moment = reset
    else:
        moment = reset + round(model.tau_us * (1 - cut / start) ** model.delta)
    if expired is not None:
        return expired if moment is None else min(moment, expired)
    return moment


def _naive_refresh(instance: Instance, sample: int, config: DecayConfig, now: int) -> float:
    """The baseline: one row at a time, one UPDATE each; seconds for ``sample`` rows."""
    t = indicator_scores.c
    started = time.perf_counter()
    with instance.begin() as conn:
        rows = conn.execute(
            select(t.stix_id, t.kind, t.base, t.false_positives, t.reset_at, t.expired_at)
            .order_by(t.stix_id)
            .limit(sample)
        ).all()
        update = text(
            "UPDATE indicator_scores SET score = :score, decays_at = :decays, "
            "refreshed_at = :now WHERE stix_id = :id"
        )
        for key, kind, base, fp, reset, expired in rows:
            conn.execute(
                update,
                {
                    "score": _naive_score(base, fp, reset, expired, kind, config, now),
                    "decays": _naive_decays_at(base, fp, reset, expired, kind, config),
                    "now": now,
                    "id": key,
                },
            )
    return time.perf_counter() - started


def run(ctx: Context) -> list[Row]:
    count = ctx.size(1_000_000, 20_000)
    sample = ctx.size(20_000, 2_000)
    config = scoring.config_from(Settings())
    data_dir = ctx.work_dir / "decay-node"
    data_dir.mkdir(parents=True, exist_ok=True)
    instance = Instance(Settings(data_dir=data_dir))
    ctx.resources.callback(instance.close)
    migrate.upgrade(instance.engine)

    started = time.perf_counter()
    rows = _rows(count, random.Random(20261128), config)
    marks = ", ".join("?" * len(_COLUMNS))
    with instance.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO indicator_scores ({', '.join(_COLUMNS)}) VALUES ({marks})",  # noqa: S608
            rows,
        )
    del rows
    print(f"{NAME}: {count:,} score rows stored in {time.perf_counter() - started:.1f} s")

    with instance.begin() as conn:
        full = scoring.refresh(conn, now=_NOW, config=config)
    print(
        f"  full refresh: {full.seconds:.2f} s, {full.changed:,} of {full.rows:,} rows written "
        f"({full.rows / full.seconds:,.0f} rows/s)"
    )
    with instance.begin() as conn:
        again = scoring.refresh(conn, now=_NOW + 10 * _MINUTE, config=config)
    print(
        f"  incremental refresh (10 minutes later): {again.seconds:.2f} s, "
        f"{again.changed:,} rows written"
    )

    stricter = DecayConfig(config.threshold + 10, config.models)
    with instance.begin() as conn:
        moved = scoring.refresh(conn, now=_NOW + 10 * _MINUTE, config=stricter)
    with instance.begin() as conn:
        scoring.refresh(conn, now=_NOW + 10 * _MINUTE, config=config)
    print(
        f"  after a threshold change (for information): {moved.seconds:.2f} s, "
        f"{moved.decays_changed:,} decay moments and {moved.changed:,} rows written"
    )

    naive_s = _naive_refresh(instance, sample, config, _NOW + 20 * _MINUTE)
    naive_total = naive_s * count / sample
    print(
        f"  naive per-row refresh: {naive_s:.2f} s for {sample:,} rows, "
        f"{naive_total:.1f} s extrapolated to {count:,}"
    )
    sample_rows = (
        select(indicator_scores.c.score, indicator_scores.c.decays_at)
        .order_by(indicator_scores.c.stix_id)
        .limit(sample)
    )
    with instance.begin() as conn:
        naive_rows = conn.execute(sample_rows).all()
        scoring.refresh(conn, now=_NOW + 20 * _MINUTE, config=config)
        ours = conn.execute(sample_rows).all()
    differ = sum(a != b for a, b in zip(naive_rows, ours, strict=True))
    print(f"  the sample as the naive loop and the refresh write it: {differ:,} rows differ")

    return [
        Row(
            NAME,
            f"full refresh of {count:,}",
            f"{full.seconds:.2f} s",
            f"{naive_total:.1f} s",
            naive_total / full.seconds,
            "≤ 10 s",
            full.seconds <= 10 and differ == 0,
        ),
        Row(
            NAME,
            "incremental refresh",
            f"{again.seconds:.2f} s",
            f"{naive_total:.1f} s",
            naive_total / again.seconds,
            "≤ 10 s",
            again.seconds <= 10,
        ),
    ]
