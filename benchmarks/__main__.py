"""``python -m benchmarks [--quick] [name ...]``: run benchmarks and print the final table."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    audit_chain,
    case_pages,
    correlation,
    decay_refresh,
    export_stream,
    feed_ingest,
    import_bulk,
    ioc_sweep,
    objects_page,
    observable_lookup,
    sigma_sweep,
    sweep_memory,
    taxii_paging,
    warninglist_check,
)
from benchmarks._common import Context, Row

Benchmark = Callable[[Context], list[Row]]

BENCHMARKS: dict[str, Benchmark] = {
    import_bulk.NAME: import_bulk.run,
    objects_page.NAME: objects_page.run,
    observable_lookup.NAME: observable_lookup.run,
    feed_ingest.NAME: feed_ingest.run,
    feed_ingest.MEMORY_NAME: feed_ingest.run_memory,
    warninglist_check.NAME: warninglist_check.run,
    export_stream.NAME: export_stream.run,
    taxii_paging.NAME: taxii_paging.run,
    ioc_sweep.NAME: ioc_sweep.run,
    sigma_sweep.NAME: sigma_sweep.run,
    sweep_memory.NAME: sweep_memory.run,
    correlation.NAME: correlation.run,
    audit_chain.NAME: audit_chain.run,
    case_pages.NAME: case_pages.run,
    decay_refresh.NAME: decay_refresh.run,
}


def _table(rows: list[Row]) -> str:
    header = ("benchmark", "metric", "qalqan", "baseline", "ratio", "target", "met")
    cells = [
        (
            r.benchmark,
            r.metric,
            r.qalqan,
            r.baseline,
            f"{r.ratio:,.1f}x" if r.ratio is not None else "-",
            r.target,
            "yes" if r.met else "NO",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="name", help=f"benchmarks to run: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)

    work_dir = Path(tempfile.mkdtemp(prefix="qalqan-bench-"))
    ctx = Context(quick=args.quick, work_dir=work_dir)
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        with ctx.resources:
            for name in names:
                print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
                begun = time.perf_counter()
                rows.extend(BENCHMARKS[name](ctx))
                print(f"  [{time.perf_counter() - begun:.0f} s]", flush=True)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print()
    print(_table(rows))
    print(f"\ntotal {time.perf_counter() - started:.0f} s{' (quick sizes)' if args.quick else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
