"""A mixed blocklist feed end to end, against storing it the naive way, one row per insert.

Qalqan's figure covers one ``feed run``: reading the file, parsing and normalizing each line,
the warninglist check of every value against all of MISP's lists, deduplication against what the
feed already holds, the STIX indicators, the observable index and the commits, on SQLite. The
feed already holds 10% of the values (an earlier run) and 1% are on a warninglist.

The baseline stores the same values with the same normalization but no warninglist check, one
statement per row: look the value up, insert the indicator version, its index entry and the feed
value. It runs on a sample and its rate is extrapolated.

A second run of the unchanged file must be at least 3x faster than the first: the content has
the SHA-256 of the last complete run, so only ``last_seen`` moves. A third figure shows a rerun
whose file differs by one comment line, which goes through every value again (information only).

``feed_memory`` runs a 5M-line feed through the ``qalqan feed run`` command and reads the peak
resident memory of that process.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
from sqlalchemy import insert, select

from benchmarks._common import Context, Row
from qalqan.domain.observables import parse_value
from qalqan.domain.patterns import pattern_of
from qalqan.domain.stix import format_timestamp
from qalqan.feeds import subscriptions
from qalqan.intel.custom_warninglists import index_for
from qalqan.intel.warninglists import WarninglistIndex, load_index
from qalqan.store.clock import now_us, reserve_date_added
from qalqan.store.feeds import value_key
from qalqan.store.tables import feed_values, object_versions, observables
from qalqan.testing import TestNode, fresh_instance

__all__ = ["make_feed", "run", "run_memory"]

NAME = "feed_ingest"
MEMORY_NAME = "feed_memory"
SEED = 20_261_127
TARGET_RATE = 50_000
TARGET_RERUN = 3.0
TARGET_MEMORY_MB = 1024

_TLDS = ("com", "net", "org", "info", "kz", "uz", "kg", "tj", "io", "ru", "cn")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
# Sites MISP's warninglists hold: their subdomains are known-benign values.
_BENIGN = ("google.com", "microsoft.com", "facebook.com", "amazon.com", "wikipedia.org")


def _label(rng: random.Random) -> str:
    return "".join(rng.choices(_LETTERS, k=rng.randint(5, 12)))


def _value(rng: random.Random, i: int) -> str:
    roll = rng.random()
    if roll < 0.30:
        return f"{rng.randint(11, 222)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{i % 250 + 1}"
    if roll < 0.40:
        return f"{rng.randint(11, 222)}.{rng.randint(0, 255)}.{i % 256}.0/24"
    if roll < 0.70:
        return f"{_label(rng)}{i}.{_label(rng)}.{rng.choice(_TLDS)}"
    if roll < 0.85:
        return f"http://{_label(rng)}{i}.{rng.choice(_TLDS)}/{_label(rng)}/{_label(rng)}.php"
    return f"{rng.getrandbits(256):064x}"


def make_feed(path: Path, lines: int, index: WarninglistIndex, seed: int = SEED) -> list[str]:
    """Write a blocklist of ``lines`` lines, one value each, a third with a comment; exactly
    every hundredth value is on a warninglist (random values that happen to be on one, such as
    addresses of cloud providers, are drawn again). Returns the lines. The same seed and the
    same lists give the same file."""
    rng = random.Random(seed)
    written: list[str] = []
    with path.open("w") as out:
        out.write("; generated blocklist for the feed benchmark\n")
        for start in range(0, lines, 10_000):
            chunk = [_value(rng, i) for i in range(start, min(start + 10_000, lines))]
            while True:
                observables = [parse_value(v) for v in chunk]
                hits = index.check_many(
                    [o.kind for o in observables], [o.value for o in observables]
                )
                listed = [n for n, hit in enumerate(hits) if hit is not None]
                if not listed:
                    break
                for n in listed:
                    chunk[n] = _value(rng, start + n)
            for n, value in enumerate(chunk):
                i = start + n
                if i % 100 == 50:
                    value = f"cdn{i}.{_BENIGN[i // 100 % len(_BENIGN)]}"
                line = f"{value} ; ref{i}" if i % 3 == 0 else value
                written.append(line)
                out.write(line + "\n")
    return written


def _naive(ctx: Context, values: list[str], sample: int) -> float:
    """Seconds to store ``sample`` values one statement per row (lookup, 3 inserts each)."""
    with fresh_instance(ctx.work_dir / "naive-instance") as instance:
        node = TestNode.create(instance)
        with instance.begin() as conn:
            feed = subscriptions.add_feed(
                conn,
                node.principals["admin@a.test"],
                subscriptions.FeedSpec("naive", "text", "https://feeds.example/naive.txt"),
            )
            org = feed.owner_org_id
        start = time.perf_counter()
        with instance.begin() as conn:
            for raw in values[:sample]:
                o = parse_value(raw)
                key = value_key(feed.id, o.kind, o.value)
                found = conn.execute(
                    select(feed_values.c.stix_id).where(feed_values.c.key_hash == key)
                ).first()
                if found is not None:
                    continue
                now = now_us()
                stix_id = f"indicator--{uuid.uuid4()}"
                stamp = format_timestamp(now)
                content = {
                    "type": "indicator",
                    "spec_version": "2.1",
                    "id": stix_id,
                    "created": stamp,
                    "modified": stamp,
                    "pattern": pattern_of(o),
                    "pattern_type": "stix",
                    "valid_from": stamp,
                }
                date_added = reserve_date_added(conn, 1)
                conn.execute(
                    insert(object_versions).values(
                        date_added=date_added,
                        stix_id=stix_id,
                        type="indicator",
                        spec_version="2.1",
                        created=now,
                        modified=now,
                        is_latest=True,
                        revoked=False,
                        withdrawn=False,
                        name=o.value,
                        content=orjson.dumps(content).decode(),
                        owner_org_id=org,
                        tlp=2,
                        distribution="node",
                        source=f"feed:{feed.id}",
                    )
                )
                conn.execute(
                    insert(observables).values(
                        version_id=date_added,
                        kind=o.kind,
                        value=o.value,
                        ip_start=o.ip_start,
                        ip_end=o.ip_end,
                    )
                )
                conn.execute(
                    insert(feed_values).values(
                        key_hash=key,
                        feed_id=feed.id,
                        value=o.value,
                        kind=o.kind,
                        stix_id=stix_id,
                        first_seen=now,
                        last_seen=now,
                        expired=False,
                        digest="",
                        origin=None,
                    )
                )
        return time.perf_counter() - start


def run(ctx: Context) -> list[Row]:
    """Two runs of a generated blocklist through a feed, and the naive baseline."""
    lines = ctx.size(1_000_000, 50_000)
    sample = ctx.size(50_000, 5_000)
    feed_file = ctx.work_dir / "blocklist.txt"
    with fresh_instance(ctx.work_dir / "feed-instance") as instance:
        node = TestNode.create(instance)
        principal = node.principals["admin@a.test"]
        started = time.perf_counter()
        index = index_for(instance)
        print(f"  warninglists ready in {time.perf_counter() - started:.1f} s ({len(index)} lists)")
        lines_written = make_feed(feed_file, lines, index)
        size_mb = feed_file.stat().st_size / 1e6
        print(f"  blocklist: {lines:,} lines, {size_mb:.1f} MB (seed {SEED})")
        # The feed already holds every tenth line from an earlier run.
        known_file = ctx.work_dir / "known.txt"
        known_file.write_text("".join(f"{line}\n" for line in lines_written[::10]))
        values = [line.split(" ; ")[0] for line in lines_written]
        with instance.begin() as conn:
            subscriptions.add_feed(
                conn,
                principal,
                subscriptions.FeedSpec(
                    "blocklist", "text", known_file.as_uri(), expire_after_seconds=7 * 86400
                ),
            )
        subscriptions.run_now(instance, principal, "blocklist", index, trigger="cli")
        with instance.begin() as conn:
            subscriptions.change_feed(
                conn, principal, "blocklist", subscriptions.FeedChanges(url=feed_file.as_uri())
            )

        def timed_run() -> tuple[float, dict[str, int]]:
            start = time.perf_counter()
            report = subscriptions.run_now(instance, principal, "blocklist", index, trigger="cli")
            elapsed = time.perf_counter() - start
            if report.status != "ok":
                raise RuntimeError(f"feed run failed: {report.error}")
            return elapsed, report.counts

        first_s, first = timed_run()
        rate = lines / first_s
        print(f"  first run:  {first_s:6.2f} s  {rate:>9,.0f} values/s  {first}")
        second_s, _ = timed_run()
        print(f"  second run (same file): {second_s:6.2f} s  {lines / second_s:>9,.0f} values/s")
        with feed_file.open("a") as out:
            out.write("; one more comment line\n")
        third_s, third = timed_run()
        print(
            f"  rerun of a file changed by one comment (every value again): {third_s:6.2f} s  "
            f"{lines / third_s:>9,.0f} values/s  new={third['new']} unchanged={third['unchanged']}"
        )
    naive_s = _naive(ctx, values, sample)
    naive_rate = sample / naive_s
    print(f"  naive one-row-per-insert on a {sample:,}-value sample: {naive_rate:>9,.0f} values/s")
    ratio = rate / naive_rate
    rerun_ratio = first_s / second_s
    print(f"  ratio feed run / naive: {ratio:.1f}x; first / second run: {rerun_ratio:.1f}x")
    return [
        Row(
            NAME,
            "values/s",
            f"{rate:,.0f}",
            f"{naive_rate:,.0f}",
            ratio,
            f">= {TARGET_RATE:,}/s",
            rate >= TARGET_RATE,
        ),
        Row(
            NAME,
            "rerun, same file (s)",
            f"{second_s:.2f}",
            f"{first_s:.2f} (first run)",
            rerun_ratio,
            f">= {TARGET_RERUN:.0f}x faster",
            rerun_ratio >= TARGET_RERUN,
        ),
    ]


def run_memory(ctx: Context) -> list[Row]:
    """Peak memory of ``qalqan feed run`` on a 5M-line feed, in its own process."""
    lines = ctx.size(5_000_000, 100_000)
    feed_file = ctx.work_dir / "big-blocklist.txt"
    cache = ctx.work_dir / "warninglists"
    make_feed(feed_file, lines, load_index(cache), seed=SEED + 1)
    data_dir = ctx.work_dir / "memory-node"
    env = {**os.environ, "QALQAN_DATA_DIR": str(data_dir), "QALQAN_WARNINGLIST_CACHE": str(cache)}
    qalqan = str(Path(sys.executable).parent / "qalqan")

    def cli(*args: str) -> None:
        subprocess.run([qalqan, *args], env=env, check=True, capture_output=True)

    cli("init", "--json")
    cli("warninglist", "check", "8.8.8.8")  # compile the warninglists outside the measurement
    cli("feed", "add", "big", "--source", "text", "--url", feed_file.as_uri())
    # The run in a process of its own that reports the peak resident memory (VmHWM) of itself
    # and of the writer process it starts. Not ru_maxrss: Linux carries it across exec, so a
    # process started from this large one would report this one's size.
    script = (
        "import os, sys, threading, time\n"
        "def hwm(pid):\n"
        "    try:\n"
        "        with open(f'/proc/{pid}/status') as f:\n"
        "            return next(int(l.split()[1]) for l in f if l.startswith('VmHWM'))\n"
        "    except (OSError, StopIteration):\n"
        "        return 0\n"
        "writer = [0]\n"
        "def watch():\n"
        "    while True:\n"
        "        for task in os.listdir('/proc/self/task'):\n"
        "            with open(f'/proc/self/task/{task}/children') as f:\n"
        "                for pid in f.read().split():\n"
        "                    writer[0] = max(writer[0], hwm(pid))\n"
        "        time.sleep(0.2)\n"
        "threading.Thread(target=watch, daemon=True).start()\n"
        "from qalqan.cli.main import app\n"
        "try:\n"
        "    app(['feed', 'run', 'big', '--json'], standalone_mode=False)\n"
        "finally:\n"
        "    print('peak', hwm('self'), writer[0], file=sys.stderr)\n"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    own_kb, writer_kb = next(
        (int(line.split()[1]), int(line.split()[2]))
        for line in done.stderr.splitlines()
        if line.startswith("peak")
    )
    peak_mb = (own_kb + writer_kb) / 1024
    print(
        f"  run process peak {own_kb / 1024:,.0f} MB, "
        f"writer process peak {writer_kb / 1024:,.0f} MB"
    )
    print(f"  {lines:,} lines in {elapsed:.0f} s; both peaks together {peak_mb:,.0f} MB")
    return [
        Row(
            MEMORY_NAME,
            "peak RSS, run + writer (MB)",
            f"{peak_mb:,.0f}",
            "-",
            None,
            f"< {TARGET_MEMORY_MB:,} MB for {lines:,} lines",
            peak_mb < TARGET_MEMORY_MB,
        )
    ]
