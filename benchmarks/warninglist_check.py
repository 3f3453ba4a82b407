"""Warninglist checks of a million observables against every MISP warninglist, in one batch.

The values are IPv4 and IPv6 addresses, networks, domains, URLs, emails and MD5/SHA-1/SHA-256/
SHA-512 hashes in canonical form; 1% of them are on a list (built from the lists' entries), the
others are random values the index does not flag. Qalqan's figure is
``WarninglistIndex.check_many`` over the whole batch, the median of three runs. The baseline is
the naive check: for each value, every applicable list in turn (``ipaddress`` containment for
network lists, a set per list with a walk up the domain's parents for hostnames, a loop over the
entries for substrings, ``re`` for regexes), timed on a sample and extrapolated; its answers are
compared with Qalqan's.

Also measured: compiling the index from the JSON files (``load_index`` with an empty cache),
loading it from the cache, and the memory a fresh interpreter needs for the loaded index.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import statistics
import string
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import Context, Row
from qalqan.domain.observables import InvalidObservable, normalize
from qalqan.intel.warninglists import Warninglist, WarninglistIndex, load_index, misp_lists

__all__ = ["run"]

NAME = "warninglist_check"
SEED = 31_337
TARGET_RATE = 500_000
TARGET_LOAD_S = 2.0
TARGET_RSS_MB = 300.0
LISTED_SHARE = 0.01
RUNS = 3
# Kinds of the generated values and their shares.
MIX = (
    ("ip", 0.17),
    ("ip6", 0.03),
    ("cidr", 0.05),
    ("domain", 0.25),
    ("url", 0.15),
    ("email", 0.10),
    ("md5", 0.08),
    ("sha1", 0.05),
    ("sha256", 0.10),
    ("sha512", 0.02),
)
_HASH_BITS = {"md5": 128, "sha1": 160, "sha256": 256, "sha512": 512}
_TLDS = ("com", "net", "org", "info", "kz", "uz", "kg", "tj", "io")
# Run in a fresh interpreter: the memory of the index alone, loaded from the cache.
_RSS_PROBE = """
import json, os, sys, time
from pathlib import Path
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
from qalqan.intel.warninglists import load_index
before = rss()
start = time.perf_counter()
index = load_index(Path(sys.argv[1]))
seconds = time.perf_counter() - start
print(json.dumps({"rss_bytes": rss() - before, "seconds": seconds, "lists": len(index)}))
"""


def _label(rng: random.Random) -> str:
    letters = string.ascii_lowercase
    return rng.choice(letters) + "".join(rng.choices(letters + string.digits, k=rng.randint(4, 11)))


def _domain(rng: random.Random) -> str:
    return f"{_label(rng)}.{_label(rng)}.{rng.choice(_TLDS)}"


def _random_value(rng: random.Random, kind: str) -> tuple[str, str]:
    """A random value of a generated kind, as (Qalqan kind, text)."""
    if kind == "ip":
        return "ip", ".".join(str(rng.randint(1, 254)) for _ in range(4))
    if kind == "ip6":
        return "ip", str(
            ipaddress.IPv6Address((0x2A00 + rng.randrange(0x400)) << 112 | rng.getrandbits(100))
        )
    if kind == "cidr":
        return "cidr", ".".join(str(rng.randint(1, 254)) for _ in range(3)) + ".0/24"
    if kind == "domain":
        return "domain", _domain(rng)
    if kind == "url":
        return (
            "url",
            f"https://{_domain(rng)}/{_label(rng)}/{_label(rng)}.php?id={rng.randrange(10**6)}",
        )
    if kind == "email":
        return "email", f"{_label(rng)}@{_domain(rng)}"
    return kind, f"{rng.getrandbits(_HASH_BITS[kind]):0{_HASH_BITS[kind] // 4}x}"


def _listed_value(
    rng: random.Random, kind: str, lists: Sequence[Warninglist]
) -> tuple[str, str] | None:
    """A value built from an entry of a list that applies to ``kind``, or None."""
    qalqan_kind = "ip" if kind == "ip6" else kind
    candidates = [wl for wl in lists if qalqan_kind in wl.kinds and wl.entries]
    wl = rng.choice(candidates)
    entry = rng.choice(wl.entries).strip().lstrip("*.").rstrip(".")
    if wl.type == "cidr":
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return None
        if (network.version == 6) != (kind == "ip6"):
            return None
        if kind == "cidr":
            prefix = min(network.prefixlen + 2, network.max_prefixlen)
            return "cidr", str(next(network.subnets(new_prefix=prefix)))
        return "ip", str(network[rng.randrange(min(network.num_addresses, 1 << 16))])
    if kind == "url":
        return "url", f"https://www.{entry}/{_label(rng)}"
    if kind == "email":
        return "email", f"{_label(rng)}@{entry}"
    if kind == "domain" and wl.type == "hostname":
        return "domain", f"{_label(rng)}.{entry}"
    return qalqan_kind, entry


def _canonical(kind: str, text: str) -> str | None:
    try:
        observable = normalize(kind, text)
    except InvalidObservable:
        return None
    return observable.value if observable.kind == kind else None


def make_values(
    count: int, index: WarninglistIndex, lists: Sequence[Warninglist], seed: int = SEED
) -> tuple[list[str], list[str]]:
    """``count`` canonical (kinds, values), the same for the same seed and lists: 1% built from
    list entries and flagged by the index, the rest random and not flagged."""
    rng = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    for kind, share in MIX:
        wanted = round(count * share)
        listed = round(wanted * LISTED_SHARE)
        chosen: list[tuple[str, str]] = []
        while len(chosen) < listed:
            made = _listed_value(rng, kind, lists)
            value = _canonical(*made) if made is not None else None
            if made is not None and value is not None and index.check(made[0], value):
                chosen.append((made[0], value))
        while len(chosen) < wanted:
            batch = [_random_value(rng, kind) for _ in range(wanted - len(chosen))]
            batch = [(k, v) for k, text in batch if (v := _canonical(k, text)) is not None]
            flags = index.check_many([k for k, _ in batch], [v for _, v in batch])
            chosen.extend(pair for pair, flag in zip(batch, flags, strict=True) if flag is None)
        pairs.extend(chosen[:wanted])
    rng.shuffle(pairs)
    return [k for k, _ in pairs], [v for _, v in pairs]


@dataclass
class NaiveChecker:
    """The straightforward check: every applicable list in turn, for every value."""

    lists: Sequence[Warninglist]
    data: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        for wl in self.lists:
            entries = [e.strip() for e in wl.entries]
            if wl.type == "cidr":
                networks = []
                for entry in entries:
                    try:
                        networks.append(ipaddress.ip_network(entry, strict=False))
                    except ValueError:
                        continue
                self.data.append(networks)
            elif wl.type == "string":
                by_kind = {
                    kind: {_canonical(kind, e) for e in entries} - {None} for kind in wl.kinds
                }
                self.data.append(by_kind)
            elif wl.type == "hostname":
                self.data.append({e.lower().removeprefix("*.").strip(".") for e in entries})
            elif wl.type == "substring":
                self.data.append([e.lower() for e in entries if e])
            else:
                self.data.append([r for e in entries if (r := _naive_regex(e)) is not None])

    def check(self, kind: str, value: str) -> str | None:
        """The name of the first list holding the value, or None."""
        for wl, data in zip(self.lists, self.data, strict=True):
            if kind in wl.kinds and _naive_match(wl.type, data, kind, value):
                return wl.name
        return None


def _naive_regex(entry: str) -> re.Pattern[str] | None:
    match = re.fullmatch(r"/(.*)/([a-z]*)", entry, re.DOTALL)
    if match is None or set(match.group(2)) - set("imsxgu"):
        return None
    flags = re.IGNORECASE if "i" in match.group(2) else 0
    try:
        return re.compile(match.group(1), flags)
    except re.error:
        return None


def _naive_match(list_type: str, data: Any, kind: str, value: str) -> bool:
    if list_type == "cidr":
        if kind == "ip":
            address = ipaddress.ip_address(value)
            return any(address in network for network in data)
        block = ipaddress.ip_network(value)
        return any(block.version == n.version and block.subnet_of(n) for n in data)
    if list_type == "string":
        return value in data[kind]
    if list_type == "hostname":
        if kind == "url":
            host = value.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1].split(":")[0]
        elif kind == "email":
            host = value.rsplit("@", 1)[1]
        elif kind == "domain":
            host = value
        else:
            return value in data
        labels = host.split(".")
        return any(".".join(labels[i:]) in data for i in range(len(labels)))
    if list_type == "substring":
        lowered = value.lower()
        return any(pattern in lowered for pattern in data)
    return any(pattern.search(value) for pattern in data)


def _rss_probe(cache_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(cache_dir)],
        capture_output=True,
        check=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run(ctx: Context) -> list[Row]:
    """Compile, load and probe the index; check a generated batch with it and naively."""
    count = ctx.size(1_000_000, 100_000)
    sample = ctx.size(3_000, 300)
    cache_dir = ctx.work_dir / "warninglists"

    start = time.perf_counter()
    index = load_index(cache_dir)
    compile_s = time.perf_counter() - start
    print(f"  compile: {len(index)} MISP lists from JSON to a cached index in {compile_s:.1f} s")
    start = time.perf_counter()
    index = load_index(cache_dir)
    load_s = time.perf_counter() - start
    probe = _rss_probe(cache_dir)
    rss_mb = probe["rss_bytes"] / 1e6
    print(f"  load from cache: {load_s:.2f} s here, {probe['seconds']:.2f} s in a fresh process")
    print(f"  memory of the loaded index (fresh process, RSS delta): {rss_mb:.0f} MB")

    lists = misp_lists()
    kinds, values = make_values(count, index, lists)
    print(f"  batch: {count:,} values, {LISTED_SHARE:.0%} listed (seed {SEED})")
    timings = []
    for _ in range(RUNS):
        start = time.perf_counter()
        hits = index.check_many(kinds, values)
        timings.append(time.perf_counter() - start)
    check_s = statistics.median(timings)
    rate = count / check_s
    print(f"  check_many runs: {', '.join(f'{t:.2f} s' for t in timings)} (median counts)")
    flagged = sum(hit is not None for hit in hits)
    print(
        f"  qalqan check_many: {check_s:6.2f} s  {rate:>11,.0f} values/s  "
        f"({flagged / count:.2%} flagged)"
    )

    naive = NaiveChecker(lists)
    rng = random.Random(SEED)
    picked = rng.sample(range(count), sample)
    names = [None if hit is None else hit.list_name for hit in hits]
    listed = [p for p, name in enumerate(names) if name is not None][: max(1, sample // 100)]
    picked = sorted(set(picked) | set(listed))
    start = time.perf_counter()
    naive_names = [naive.check(kinds[p], values[p]) for p in picked]
    naive_s = time.perf_counter() - start
    naive_rate = len(picked) / naive_s
    disagree = sum(names[p] != name for p, name in zip(picked, naive_names, strict=True))
    print(
        f"  naive check of a {len(picked):,}-value sample: {naive_s:6.2f} s  "
        f"{naive_rate:>11,.0f} values/s  ({count / naive_rate / 60:.0f} min extrapolated)"
    )
    print(f"  answers that differ from the naive check: {disagree} of {len(picked):,}")
    ratio = rate / naive_rate
    print(f"  ratio qalqan / naive: {ratio:,.0f}x")
    return [
        Row(
            NAME,
            "values/s",
            f"{rate:,.0f}",
            f"{naive_rate:,.0f}",
            ratio,
            f">= {TARGET_RATE:,}/s, same answers",
            rate >= TARGET_RATE and disagree == 0,
        ),
        Row(
            NAME,
            "load from cache (s)",
            f"{load_s:.2f}",
            f"{compile_s:.1f} (compile)",
            compile_s / load_s,
            f"< {TARGET_LOAD_S:.0f} s",
            load_s < TARGET_LOAD_S,
        ),
        Row(
            NAME,
            "index RSS (MB)",
            f"{rss_mb:.0f}",
            "-",
            None,
            f"< {TARGET_RSS_MB:.0f} MB",
            rss_mb < TARGET_RSS_MB,
        ),
    ]
