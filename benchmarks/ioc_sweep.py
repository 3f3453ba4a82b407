"""IOC sweep: 2,000,000 JSON-lines DNS events against 200,000 indicators.

The engine is the JSON-lines reader and the vectorized matcher, as ``qalqan sweep`` runs them
(the indicators' plan built beforehand). Measured against, in the same run: the same reader
alone (how long parsing takes), and ``grep -F -c -f iocs.txt`` over the same file (which is
not even field-aware). Then the whole ``qalqan sweep`` command, start-up, reading the
indicators from the store and writing hits included.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from benchmarks._common import Context, Row, seeded_uuid
from qalqan.detect.matcher import match_iocs
from qalqan.detect.plan import IndicatorValue, build_plan
from qalqan.detect.readers import read_events
from qalqan.detect.sweep import read_ahead
from qalqan.domain.observables import normalize

NAME = "ioc_sweep"
_POOL = ThreadPoolExecutor(max_workers=2)
FIELDS = {"query": "domain", "answer": "ip"}
_TLDS = ("com", "net", "org", "info", "ru", "cn", "kz", "io")


def _indicators(count: int, rnd: random.Random) -> list[tuple[str, str]]:
    """(kind, value): half domains, a quarter addresses, a tenth networks, the rest URLs."""
    out: list[tuple[str, str]] = []
    for i in range(count):
        share = i / count
        if share < 0.5:
            out.append(("domain", f"c2-{i}.{rnd.choice(_TLDS)}"))
        elif share < 0.75:
            out.append(("ip", str(ipaddress.IPv4Address(rnd.randrange(1 << 24, 224 << 24)))))
        elif share < 0.85:
            prefix = rnd.choice((22, 24, 24, 24, 26, 28))
            network = ipaddress.IPv4Network(
                (rnd.randrange(1 << 24, 224 << 24) >> (32 - prefix) << (32 - prefix), prefix)
            )
            out.append(("cidr", str(network)))
        else:
            out.append(("url", f"http://dl-{i}.{rnd.choice(_TLDS)}/payload/{i}.bin"))
    return out


def _write_events(path: Path, count: int, iocs: list[tuple[str, str]], rnd: random.Random) -> int:
    """The DNS log; about 0.1% of events touch an indicator (a subdomain of an indicator
    domain, an indicator address, or an address inside an indicator network)."""
    domains = [v for k, v in iocs if k == "domain"]
    addresses = [v for k, v in iocs if k == "ip"]
    networks = [ipaddress.IPv4Network(v) for k, v in iocs if k == "cidr"]
    planted = 0
    with path.open("wb") as out:
        lines: list[bytes] = []
        for i in range(count):
            query = f"host{rnd.randrange(10**7)}.site{rnd.randrange(50_000)}.{rnd.choice(_TLDS)}"
            answer = str(ipaddress.IPv4Address(rnd.randrange(1 << 24, 224 << 24)))
            pick = rnd.random()
            if pick < 0.0004:
                query = f"cdn{i}.{rnd.choice(domains)}"
            elif pick < 0.0007:
                answer = rnd.choice(addresses)
            elif pick < 0.001:
                net = rnd.choice(networks)
                answer = str(net[rnd.randrange(net.num_addresses)])
            planted += pick < 0.001
            lines.append(
                orjson.dumps(
                    {
                        "ts": 1_767_225_600 + i,
                        "client": f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{i % 250 + 1}",
                        "query": query,
                        "qtype": "A",
                        "answer": answer,
                        "rcode": "NOERROR",
                    }
                )
            )
            if len(lines) == 50_000:
                out.write(b"\n".join(lines) + b"\n")
                lines = []
        if lines:
            out.write(b"\n".join(lines) + b"\n")
    return planted


def _plan_values(iocs: list[tuple[str, str]]) -> list[IndicatorValue]:
    values = []
    for n, (kind, raw) in enumerate(iocs):
        o = normalize(kind, raw)
        values.append(
            IndicatorValue(
                o.kind, o.value, f"indicator--{n}", None, 80, 1, "org", o.ip_start, o.ip_end
            )
        )
    return values


def _best(runs: int, work: object) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best, result


def _parse_only(path: Path) -> int:
    return sum(b.frame.height for b in read_events([str(path)], "jsonl", columns=list(FIELDS)))


def _sweep(path: Path, plan: object) -> tuple[int, int]:
    """As ``run_sweep`` reads and matches: the next batch parsed while this one is matched,
    fields matched side by side."""
    events = hits = 0
    for batch in read_ahead(read_events([str(path)], "jsonl", columns=list(FIELDS))):
        events += batch.frame.height
        found = match_iocs(plan, batch.frame, FIELDS, _POOL)  # type: ignore[arg-type]
        hits += found["row"].n_unique()
    return events, hits


def _bundle(iocs: list[tuple[str, str]], path: Path) -> None:
    rng = random.Random(7)
    paths = {
        "ip": "ipv4-addr:value",
        "cidr": "ipv4-addr:value",
        "domain": "domain-name:value",
        "url": "url:value",
    }
    objects = [
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--{seeded_uuid(rng)}",
            "created": "2026-01-01T00:00:00.000Z",
            "modified": "2026-01-01T00:00:00.000Z",
            "pattern": f"[{paths[kind]} = '{value}']",
            "pattern_type": "stix",
            "valid_from": "2026-01-01T00:00:00Z",
        }
        for kind, value in iocs
    ]
    path.write_bytes(
        orjson.dumps({"type": "bundle", "id": f"bundle--{seeded_uuid(rng)}", "objects": objects})
    )


def run(ctx: Context) -> list[Row]:
    events = ctx.size(2_000_000, 20_000)
    indicators = ctx.size(200_000, 2_000)
    rnd = random.Random(20261127)
    iocs = _indicators(indicators, rnd)
    log = ctx.work_dir / "dns.jsonl"
    planted = _write_events(log, events, iocs, rnd)
    (ctx.work_dir / "iocs.txt").write_text("\n".join(v for _, v in iocs) + "\n")
    size_mb = log.stat().st_size / 1e6
    print(f"{NAME}: {events:,} events ({size_mb:.0f} MB), {indicators:,} indicators")
    print(f"  {planted:,} events planted to hit")

    started = time.perf_counter()
    plan = build_plan(_plan_values(iocs))
    print(f"  plan of {plan.size:,} values built in {time.perf_counter() - started:.2f} s")
    runs = 1 if ctx.quick else 3
    parse_s, parsed = _best(runs, lambda: _parse_only(log))
    sweep_s, (swept, hit_events) = _best(runs, lambda: _sweep(log, plan))  # type: ignore[misc]
    assert parsed == swept == events
    print(f"  parse only: {parse_s:.2f} s ({events / parse_s:,.0f} events/s)")
    rate = events / sweep_s
    print(f"  sweep:      {sweep_s:.2f} s ({rate:,.0f} events/s), {hit_events:,} events hit")

    grep = shutil.which("grep")
    grep_s = None
    if grep is not None:
        started = time.perf_counter()
        done = subprocess.run(
            [grep, "-F", "-c", "-f", str(ctx.work_dir / "iocs.txt"), str(log)],
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
        grep_s = time.perf_counter() - started
        print(f"  grep -F -c -f iocs.txt: {grep_s:.2f} s, {done.stdout.strip()} lines")

    # The whole command: a store holding the indicators, `qalqan sweep` as users run it.
    data_dir = ctx.work_dir / "ioc-node"
    env = {**os.environ, "QALQAN_DATA_DIR": str(data_dir)}
    qalqan = str(Path(sys.executable).with_name("qalqan"))
    subprocess.run([qalqan, "init", "--json"], env=env, check=True, capture_output=True)
    _bundle(iocs, ctx.work_dir / "iocs.json")
    subprocess.run(
        [
            qalqan,
            "import",
            str(ctx.work_dir / "iocs.json"),
            "--tlp",
            "green",
            "--distribution",
            "node",
            "--json",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    started = time.perf_counter()
    command = [
        qalqan,
        "sweep",
        str(log),
        "--format",
        "jsonl",
        "--map",
        "query=domain",
        "--map",
        "answer=ip",
    ]
    done = subprocess.run(
        [*command, "--out", str(ctx.work_dir / "hits.jsonl"), "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    command_s = time.perf_counter() - started
    summary = orjson.loads(done.stdout)
    print(
        f"  qalqan sweep (whole command): {command_s:.2f} s, {summary['events_hit']:,} events hit"
    )

    rows = [
        Row(
            NAME,
            "events/s (read + match)",
            f"{rate:,.0f}",
            "—",
            None,
            "≥ 1,500,000",
            rate >= 1_500_000,
        ),
        Row(
            NAME,
            "time vs parsing alone",
            f"{sweep_s:.2f} s",
            f"{parse_s:.2f} s",
            parse_s / sweep_s,
            "≤ 1.5x parse",
            sweep_s <= 1.5 * parse_s,
        ),
        Row(
            NAME,
            "whole qalqan sweep",
            f"{command_s:.2f} s",
            "—",
            None,
            "—",
            summary["events_hit"] == hit_events,
        ),
    ]
    if grep_s is not None:
        rows.append(
            Row(
                NAME,
                "vs grep -F -c -f",
                f"{sweep_s:.2f} s",
                f"{grep_s:.2f} s",
                grep_s / sweep_s,
                "≥ 20x",
                grep_s >= 20 * sweep_s,
            )
        )
    return rows
