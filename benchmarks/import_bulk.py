"""Bulk import of a STIX 2.1 bundle of indicators, against ``stix2.parse`` of the same bundle.

Qalqan's figure covers reading the file, ``orjson`` parsing, validation (structure, pattern,
handling), versioning, the observable index, the insert and the commit, on SQLite. The baseline
only parses and validates the bundle into ``stix2`` objects: it stores nothing.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import orjson
import stix2

from benchmarks._common import Context, Row, seeded_uuid, stix_stamp
from qalqan.intel.importer import import_objects, load_document, objects_of
from qalqan.testing import TestNode, fresh_instance

__all__ = ["make_bundle", "run"]

NAME = "import_bulk"
SEED = 20_260_101
TARGET_RATE = 20_000
TARGET_RATIO = 10.0

_TLDS = ("com", "net", "org", "info", "kz", "uz", "kg", "tj", "io")
_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def _label(rng: random.Random) -> str:
    return "".join(rng.choices(_LETTERS[:26], k=1) + rng.choices(_LETTERS, k=rng.randint(4, 11)))


def _domain(rng: random.Random) -> str:
    return f"{_label(rng)}.{_label(rng)}.{rng.choice(_TLDS)}"


def _ipv4(rng: random.Random) -> str:
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def _pattern(rng: random.Random) -> tuple[str, str]:
    """A one-comparison pattern and the indicator name, spread over five kinds of value."""
    kind = rng.randrange(5)
    if kind == 0:
        value = _ipv4(rng)
        return f"[ipv4-addr:value = '{value}']", f"IP {value}"
    if kind == 1:
        value = _domain(rng)
        return f"[domain-name:value = '{value}']", f"domain {value}"
    if kind == 2:
        value = f"http://{_domain(rng)}/{_label(rng)}/{_label(rng)}.php"
        return f"[url:value = '{value}']", "phishing URL"
    if kind == 3:
        value = f"{rng.getrandbits(256):064x}"
        return f"[file:hashes.'SHA-256' = '{value}']", "malware sample"
    value = f"{_label(rng)}@{_domain(rng)}"
    return f"[email-addr:value = '{value}']", "phishing sender"


def _indicator(rng: random.Random) -> dict[str, Any]:
    stamp = stix_stamp(rng)
    pattern, name = _pattern(rng)
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{seeded_uuid(rng)}",
        "created": stamp,
        "modified": stamp,
        "name": name,
        "indicator_types": ["malicious-activity"],
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": stamp,
    }


def make_bundle(count: int, seed: int = SEED) -> dict[str, Any]:
    """A bundle of ``count`` indicators, the same for the same seed."""
    rng = random.Random(seed)
    objects = [_indicator(rng) for _ in range(count)]
    return {"type": "bundle", "id": f"bundle--{seeded_uuid(rng)}", "objects": objects}


def _qalqan_import(ctx: Context, bundle_file: Path, count: int) -> float:
    """Seconds for file read + parse + import + commit into a fresh SQLite instance."""
    with fresh_instance(ctx.work_dir / "import-instance") as instance:
        node = TestNode.create(instance)
        principal = node.principals["admin@a.test"]
        start = time.perf_counter()
        objects = objects_of(load_document(bundle_file.read_bytes()))
        with instance.begin() as conn:
            report = import_objects(conn, principal, objects)
        elapsed = time.perf_counter() - start
    if report.created != count or report.rejected:
        first = report.rejected[0] if report.rejected else None
        raise RuntimeError(f"import created {report.created} of {count}; first refusal {first}")
    return elapsed


def _stix2_parse(bundle: dict[str, Any], sample: int) -> float:
    """Seconds for ``stix2.parse`` of a bundle of the first ``sample`` objects."""
    # A copy, so that nothing the library does to its input reaches the other measurement.
    objects = orjson.loads(orjson.dumps(bundle["objects"][:sample]))
    sample_bundle = {"type": "bundle", "id": bundle["id"], "objects": objects}
    start = time.perf_counter()
    parsed = stix2.parse(sample_bundle, allow_custom=True)
    elapsed = time.perf_counter() - start
    if len(parsed.objects) != sample:
        raise RuntimeError(f"stix2 parsed {len(parsed.objects)} of {sample} objects")
    return elapsed


def run(ctx: Context) -> list[Row]:
    """Import a generated bundle into Qalqan and parse it with ``stix2``; compare the rates."""
    count = ctx.size(100_000, 10_000)
    sample = ctx.size(10_000, 2_000)
    bundle = make_bundle(count)
    bundle_file = ctx.work_dir / "indicators.json"
    bundle_file.write_bytes(orjson.dumps(bundle))
    size_mb = bundle_file.stat().st_size / 1e6
    print(f"  bundle: {count:,} indicators, {size_mb:.1f} MB (seed {SEED})")

    qalqan_s = _qalqan_import(ctx, bundle_file, count)
    qalqan_rate = count / qalqan_s
    print(
        f"  qalqan read+parse+import+commit (SQLite): {qalqan_s:6.2f} s  {qalqan_rate:>9,.0f} obj/s"
    )

    stix2_s = _stix2_parse(bundle, sample)
    stix2_rate = sample / stix2_s
    print(
        f"  stix2.parse(allow_custom=True) of a {sample:,}-object sample: {stix2_s:6.2f} s  "
        f"{stix2_rate:>9,.0f} obj/s"
    )
    print(f"    (rate extrapolated to the whole bundle: {count / stix2_rate:.1f} s estimated)")
    ratio = qalqan_rate / stix2_rate
    print(f"  ratio qalqan / stix2.parse: {ratio:.1f}x")
    return [
        Row(
            NAME,
            "objects/s",
            f"{qalqan_rate:,.0f}",
            f"{stix2_rate:,.0f}",
            ratio,
            f">= {TARGET_RATE:,}/s, >= {TARGET_RATIO:.0f}x",
            qalqan_rate >= TARGET_RATE and ratio >= TARGET_RATIO,
        )
    ]
