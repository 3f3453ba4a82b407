"""Peak memory of ``qalqan sweep`` over a 5 GB log: the command reads bounded batches, so its
resident memory must not grow with the file.

The log is the DNS log of ``ioc_sweep`` written again and again (with its line numbers going
on) until it reaches the size; the store holds 20,000 indicators. The baseline is the same
command over a log 1/20 the size, measured in the same run: what the command needs anyway.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson

from benchmarks import ioc_sweep
from benchmarks._common import Context, Row

NAME = "sweep_memory"
_LIMIT_MB = 2048


def _grow(source: Path, target: Path, size: int) -> None:
    """``target`` made of copies of ``source`` until it holds at least ``size`` bytes."""
    chunk = source.read_bytes()
    written = 0
    with target.open("wb") as out:
        while written < size:
            out.write(chunk)
            written += len(chunk)


def _peak_rss_mb(command: list[str], env: dict[str, str]) -> tuple[float, float, dict[str, object]]:
    """Seconds, peak RSS (MB) and the ``--json`` summary of one run of ``command`` in a child
    process of its own (the peak of the children measured before and after)."""
    started = time.perf_counter()
    probe = [
        sys.executable,
        "-c",
        "import resource, subprocess, sys; "
        "done = subprocess.run(sys.argv[1:], capture_output=True); "
        "sys.stdout.buffer.write(done.stdout); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(done.returncode)",
        *command,
    ]
    done = subprocess.run(probe, env=env, capture_output=True, check=True)
    seconds = time.perf_counter() - started
    peak_kb = int(done.stderr.decode().strip().splitlines()[-1])
    return seconds, peak_kb / 1024, orjson.loads(done.stdout)


def run(ctx: Context) -> list[Row]:
    size = ctx.size(5 * 10**9, 50 * 10**6)
    rnd = random.Random(5)
    iocs = ioc_sweep._indicators(ctx.size(20_000, 2_000), rnd)
    seed_log = ctx.work_dir / "mem-seed.jsonl"
    ioc_sweep._write_events(seed_log, ctx.size(500_000, 20_000), iocs, rnd)
    small, large = ctx.work_dir / "mem-small.jsonl", ctx.work_dir / "mem-large.jsonl"
    _grow(seed_log, small, size // 20)
    _grow(seed_log, large, size)
    sizes = f"{small.stat().st_size / 1e9:.2f} GB and {large.stat().st_size / 1e9:.2f} GB"
    print(f"{NAME}: logs of {sizes}")

    data_dir = ctx.work_dir / "mem-node"
    env = {**os.environ, "QALQAN_DATA_DIR": str(data_dir)}
    qalqan = str(Path(sys.executable).with_name("qalqan"))
    subprocess.run([qalqan, "init", "--json"], env=env, check=True, capture_output=True)
    ioc_sweep._bundle(iocs, ctx.work_dir / "mem-iocs.json")
    subprocess.run(
        [qalqan, "import", str(ctx.work_dir / "mem-iocs.json"), "--tlp", "green", "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    results = {}
    for name, log in (("small", small), ("large", large)):
        command = [qalqan, "sweep", str(log), "--format", "jsonl", "--map", "query=domain"]
        command += ["--map", "answer=ip", "--out", str(ctx.work_dir / f"mem-{name}.hits"), "--json"]
        seconds, peak, summary = _peak_rss_mb(command, env)
        results[name] = (seconds, peak, summary)
        print(
            f"  {log.stat().st_size / 1e9:.2f} GB: {seconds:.1f} s, peak RSS {peak:,.0f} MB, "
            f"{summary['events']:,} events, {summary['events_hit']:,} hit"
        )
    large_peak, small_peak = results["large"][1], results["small"][1]
    for log in (small, large):
        log.unlink()
    return [
        Row(
            NAME,
            f"peak RSS, {size / 1e9:.2f} GB log",
            f"{large_peak:,.0f} MB",
            f"{small_peak:,.0f} MB (1/20 the log)",
            small_peak / large_peak,
            f"< {_LIMIT_MB:,} MB",
            large_peak < _LIMIT_MB,
        )
    ]
