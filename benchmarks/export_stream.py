"""Detection exports of a million active indicators: ``qalqan export --format suricata`` and
``--format zeek``, each in a process of its own that reports its peak resident memory.

The node holds 1,000,000 indicators an org may export (addresses, networks, domains, URLs,
MD5 and SHA-256 hashes, at TLP:CLEAR and GREEN) and 100,000 it may not: expired, revoked,
warninglisted, not for detection, below the confidence floor, at AMBER or RED, or of another
org's ``organization`` distribution. Rows are bulk-inserted in the shape the importer writes
them, from a fixed seed.

The baseline is the naive export: read every latest indicator's stored JSON, parse it, parse
its pattern with the reference STIX pattern parser and take the compared values; it runs on a
sample and its rate is extrapolated.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from typing import Any

import orjson
from sqlalchemy import select
from stix2patterns.v21.pattern import Pattern

from benchmarks._common import Context, Row, seeded_uuid
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.observables import Observable, normalize
from qalqan.store.clock import now_us, reserve_date_added
from qalqan.store.objects import insert_observables, insert_versions
from qalqan.store.tables import object_versions as ov
from qalqan.testing import TestNode, fresh_instance

__all__ = ["run"]

NAME = "export_stream"
SEED = 20_261_128
TARGET_SECONDS = 10.0
TARGET_MEMORY_MB = 500
_CHUNK = 50_000
_SAMPLE = 20_000
_KINDS = (("ip", 35), ("cidr", 5), ("domain", 30), ("url", 10), ("sha256", 10), ("md5", 10))
_PATHS = {
    "ip": "ipv4-addr:value",
    "cidr": "ipv4-addr:value",
    "domain": "domain-name:value",
    "url": "url:value",
    "sha256": "file:hashes.'SHA-256'",
    "md5": "file:hashes.MD5",
}
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_TLDS = ("com", "net", "org", "info", "kz", "uz", "kg", "tj", "io")
_STAMP = "2026-01-01T00:00:00.000Z"
_YEAR_US = 365 * 86_400_000_000


def _value(rng: random.Random, kind: str) -> Observable:
    if kind in ("ip", "cidr"):
        address = ".".join(str(rng.randrange(1, 224 if i == 0 else 256)) for i in range(4))
        return normalize(kind, address if kind == "ip" else f"{address}/{rng.choice((16, 24))}")
    if kind in ("domain", "url"):
        name = "".join(rng.choices(_LETTERS, k=rng.randint(6, 14)))
        domain = f"{name}.{rng.choice(_TLDS)}"
        if kind == "domain":
            return normalize("domain", domain)
        return normalize("url", f"http://{domain}/{rng.randrange(1 << 30):x}/index.php?id=7")
    digits = 64 if kind == "sha256" else 32
    return normalize(kind, f"{rng.getrandbits(digits * 4):0{digits}x}")


def _build(ctx: Context, active: int) -> tuple[Any, dict[str, str]]:
    data_dir = ctx.work_dir / "export-instance"
    instance = ctx.resources.enter_context(fresh_instance(data_dir))
    node = TestNode.create(instance, "CERT-A")
    node.add_org("CERT-B")
    owners = list(node.org_ids.values())
    rng = random.Random(SEED)
    kinds, weights = zip(*_KINDS, strict=True)
    later = now_us() + _YEAR_US
    total = active + active // 10
    print(f"  building {total:,} indicators ({active:,} exportable, seed {SEED}) ...", flush=True)
    started = time.perf_counter()
    for start in range(0, total, _CHUNK):
        size = min(_CHUNK, total - start)
        with instance.begin() as conn:
            first = reserve_date_added(conn, size)
            versions = []
            observables = []
            for i in range(size):
                kind = rng.choices(kinds, weights)[0]
                found = _value(rng, kind)
                obj = {
                    "type": "indicator",
                    "spec_version": "2.1",
                    "id": f"indicator--{seeded_uuid(rng)}",
                    "created": _STAMP,
                    "modified": _STAMP,
                    "name": f"{kind} seen in campaign {rng.randrange(500)}",
                    "pattern": f"[{_PATHS[kind]} = '{found.value}']",
                    "pattern_type": "stix",
                    "valid_from": _STAMP,
                }
                # Every tenth row (after the first `active`) is not exportable, for a reason.
                tlp, distribution, owner = TLP.GREEN, Distribution.NODE, owners[0]
                confidence, until, detect, revoked, listed = 80, later, True, False, None
                if start + i >= active:
                    reason = (start + i) % 7
                    if reason == 0:
                        until = now_us() - _YEAR_US
                    elif reason == 1:
                        revoked = True
                    elif reason == 2:
                        listed = "benchmark list"
                    elif reason == 3:
                        detect = False
                    elif reason == 4:
                        confidence = 10
                    elif reason == 5:
                        tlp = rng.choice((TLP.AMBER, TLP.RED))
                        distribution = Distribution.ORGANIZATION
                    else:
                        owner, distribution = owners[1], Distribution.ORGANIZATION
                elif rng.random() < 0.3:
                    tlp = TLP.CLEAR
                date_added = first + i
                versions.append(
                    (date_added, obj["id"], "indicator", "2.1", 0, 0, True, revoked, False,
                     obj["name"], orjson.dumps(obj).decode(), owner, int(tlp), distribution.value,
                     None, "user:benchmark", confidence, until, detect)
                )  # fmt: skip
                observables.append(
                    (date_added, found.kind, found.value, found.ip_start, found.ip_end, listed)
                )
            insert_versions(conn, versions)
            insert_observables(conn, observables)
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    return instance, node.keys


_CHILD = (
    "import sys\n"
    "def hwm():\n"
    "    with open('/proc/self/status') as f:\n"
    "        return next(int(l.split()[1]) for l in f if l.startswith('VmHWM'))\n"
    "from qalqan.cli.main import app\n"
    "try:\n"
    "    app(sys.argv[1:], standalone_mode=False)\n"
    "finally:\n"
    "    print('peak', hwm(), file=sys.stderr)\n"
)


def _export(ctx: Context, fmt: str) -> tuple[float, int, dict[str, Any]]:
    """Seconds, peak RSS in kB and the summary of one export command in its own process."""
    out = ctx.work_dir / f"bench.{fmt}"
    env = {**os.environ, "QALQAN_DATA_DIR": str(ctx.work_dir / "export-instance")}
    env.pop("QALQAN_DATABASE_URL", None)
    args = ["export", "--format", fmt, "-o", str(out), "--json"]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], env=env, check=True, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    peak = next(
        int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("peak")
    )
    return elapsed, peak, orjson.loads(done.stdout)


def _naive_rate(instance: Any, sample: int) -> float:
    """Indicators per second of the naive export: content parsed, pattern parsed, per row."""
    stmt = (
        select(ov.c.content)
        .where(ov.c.type == "indicator", ov.c.is_latest.is_(True))
        .order_by(ov.c.date_added)
        .limit(sample)
    )
    start = time.perf_counter()
    values = []
    with instance.begin() as conn:
        for (content,) in conn.execute(stmt):
            obj = orjson.loads(content)
            for comparison in Pattern(obj["pattern"]).inspect().comparisons.values():
                values.extend(str(c[2]).strip("'") for c in comparison)
    elapsed = time.perf_counter() - start
    if len(values) < sample:
        raise RuntimeError("the naive export found fewer values than indicators")
    return sample / elapsed


def run(ctx: Context) -> list[Row]:
    """Export the million as Suricata rules and as a Zeek intel file; the naive baseline."""
    active = ctx.size(1_000_000, 50_000)
    instance, _ = _build(ctx, active)
    naive = _naive_rate(instance, ctx.size(_SAMPLE, 5_000))
    rows = []
    for fmt in ("suricata", "zeek"):
        seconds, peak_kb, summary = _export(ctx, fmt)
        if summary["written"] + sum(summary["skipped"].values()) != active - summary["duplicates"]:
            raise RuntimeError(f"{fmt}: expected {active:,} values, the export says {summary}")
        rate = active / seconds
        ratio = rate / naive
        peak_mb = peak_kb / 1024
        print(
            f"  {fmt:8}: {active:,} indicators in {seconds:.1f} s ({rate:,.0f}/s), "
            f"peak RSS {peak_mb:.0f} MB; {summary['written']:,} written, "
            f"{summary['duplicates']:,} duplicates, skipped {summary['skipped']}"
        )
        print(
            f"  {fmt:8}: naive {naive:,.0f}/s (extrapolated {active / naive:,.0f} s); {ratio:.1f}x"
        )
        rows.append(
            Row(
                NAME,
                f"{fmt} 1M",
                f"{seconds:.1f} s, {peak_mb:.0f} MB",
                f"{active / naive:,.0f} s (naive)",
                ratio,
                f"<= {TARGET_SECONDS:.0f} s, < {TARGET_MEMORY_MB} MB",
                seconds <= TARGET_SECONDS and peak_mb < TARGET_MEMORY_MB,
            )
        )
    return rows
