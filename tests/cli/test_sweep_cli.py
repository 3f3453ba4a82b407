"""``qalqan sweep`` and ``qalqan watch``: exactly the planted hits, from files, directories,
globs, gzip and stdin; summaries for scripts; sightings shared back on request; one clear line
for every bad option; and a followed log reported on within a second of each line.

The commands run in process through the console script's entry point (a new interpreter costs
seconds), on the test's instance (SQLite, or PostgreSQL when QALQAN_TEST_DATABASE_URL is set);
one test runs ``qalqan watch -`` for real as a subprocess.
"""

from __future__ import annotations

import gzip
import io
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
import pytest

from qalqan.accounts import system_principal
from qalqan.cli.main import run
from qalqan.detect.follow import follow
from qalqan.detect.readers import known_formats
from qalqan.detect.sweep import SweepOptions, SweepSummary
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal
from qalqan.instance import Instance
from qalqan.intel import reading
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.store import accounts as accounts_store
from qalqan.store import detections as detections_store
from qalqan.store.objects import ObjectFilter
from qalqan.testing import TEST_DATABASE_ENV, TestNode, indicator

QALQAN = Path(sys.executable).parent / "qalqan"
DNS_MAP = ("--map", "query=domain-name", "--map", "answer=ipv4-addr")
# What the planted log holds: (line, field, indicator value) of every hit it must give.
PLANTED = [
    {"ts": "2026-02-01T00:00:01Z", "query": "cdn1.evil.example", "answer": "192.0.2.1"},
    {"ts": "2026-02-01T00:00:02Z", "query": "notevil.example", "answer": "192.0.2.2"},
    {"ts": "2026-02-01T00:00:03Z", "query": "clean.example", "answer": "198.51.100.7"},
    {"ts": "2026-02-01T00:00:04Z", "query": "clean.example", "answer": "203.0.113.99"},
    {"ts": "2026-02-01T00:00:05Z", "query": "EVIL.example.", "answer": "198.51.100.70"},
    {"ts": "2026-02-01T00:00:06Z", "query": "evil.example.net", "answer": "203.0.114.1"},
    {"ts": "2026-02-01T00:00:07Z", "query": "xevil.example", "answer": "198.51.100.77"},
    {"ts": "2026-02-01T00:00:08Z", "query": "clean.example", "answer": "10.0.0.1"},
]
EXPECTED = {
    (1, "query", "evil.example"),
    (3, "answer", "198.51.100.7"),
    (4, "answer", "203.0.113.0/24"),
    (5, "query", "evil.example"),
}
FOLLOW_WAIT = 10.0  # seconds a follow-mode test waits for anything at most


def jsonl(*events: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Qalqan:
    """Runs ``qalqan`` in process on the test's instance, from a working directory of its own."""

    node: TestNode
    workdir: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    indicators: dict[str, str] = field(default_factory=dict)

    @property
    def instance(self) -> Instance:
        return self.node.instance

    def __call__(self, *args: str, stdin: bytes | None = None) -> Result:
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "argv", ["qalqan", *args])
        if stdin is not None:
            self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        with pytest.raises(SystemExit) as exit_info:
            run()
        out, err = self.capsys.readouterr()
        code = exit_info.value.code
        return Result(code if isinstance(code, int) else 0, out, err)

    def ok(self, *args: str, stdin: bytes | None = None) -> Result:
        result = self(*args, stdin=stdin)
        assert result.code == 0, result.err
        assert "Traceback" not in result.err
        return result

    def json(self, *args: str) -> Any:
        return orjson.loads(self.ok(*args, "--json").out)

    def fails(self, *args: str) -> str:
        """Run a command that must fail with one clear line on stderr; return that line."""
        result = self(*args)
        assert result.code == 1, (result.out, result.err)
        assert "Traceback" not in result.err
        lines = result.err.strip().splitlines()
        assert len(lines) == 1, result.err
        assert lines[0].startswith("error: ")
        return lines[0]

    def principal(self, org: str) -> Principal:
        """The node admin console's principal of ``org`` (as the CLI acts)."""
        with self.instance.begin() as conn:
            return system_principal(accounts_store.get_org(conn, self.node.org_ids[org]), conn)

    def plant(self, org: str, *objects: dict[str, Any]) -> None:
        """Store indicators of ``org`` that every org on the node receives."""
        principal = self.principal(org)
        with self.instance.begin() as conn:
            report = import_objects(
                conn,
                principal,
                list(objects),
                HandlingRequest(tlp=TLP.GREEN, distribution=Distribution.NODE),
            )
        assert len(report.accepted) == len(objects)
        for obj in objects:
            self.indicators[obj["name"]] = obj["id"]

    def sightings(self, org: str) -> list[dict[str, Any]]:
        """The sightings ``org`` may read."""
        principal = self.principal(org)
        with self.instance.begin() as conn:
            page = reading.list_objects(
                conn, principal, ObjectFilter(types=["sighting"]), None, 1000
            )
        return [orjson.loads(v.content) for v in page.items]

    def write(self, name: str, data: bytes) -> Path:
        path = self.workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


def environment(instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the commands at ``instance`` and at nothing else of the caller's environment."""
    for name in list(os.environ):
        if name.startswith("QALQAN_") and name not in (
            TEST_DATABASE_ENV,
            "QALQAN_WARNINGLIST_CACHE",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QALQAN_DATA_DIR", str(instance.settings.data_dir))
    assert instance.settings.database_url
    monkeypatch.setenv("QALQAN_DATABASE_URL", instance.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def qalqan(
    instance: Instance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Qalqan:
    """A node of CERT-A (its first org), CERT-B and CERT-C; CERT-A's indicators go to all."""
    node = TestNode.create(instance, "CERT-A", "KZ")
    node.add_org("CERT-B", "UZ")
    node.add_org("CERT-C", "KG")
    environment(instance, monkeypatch)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    cli = Qalqan(node, workdir, monkeypatch, capsys)
    cli.plant(
        "CERT-A",
        indicator("evil.example", kind="domain-name"),
        indicator("198.51.100.7"),
        indicator("203.0.113.0/24"),
    )
    return cli


def _hit_keys(hits: list[dict[str, Any]]) -> set[tuple[int, str, str]]:
    return {(h["event"]["line"], h["field"], h["indicator"]["value"]) for h in hits}


def _lines(data: bytes | str) -> list[dict[str, Any]]:
    text = data.encode() if isinstance(data, str) else data
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


# --- qalqan sweep ---------------------------------------------------------------------------


def test_sweep_finds_exactly_the_planted_hits(qalqan: Qalqan) -> None:
    qalqan.write("dns.jsonl", jsonl(*PLANTED))
    summary = qalqan.json(
        "sweep", "dns.jsonl", "--format", "jsonl", *DNS_MAP, "--out", "hits.jsonl"
    )
    hits = _lines((qalqan.workdir / "hits.jsonl").read_bytes())
    assert len(hits) == len(EXPECTED)
    assert _hit_keys(hits) == EXPECTED
    assert {h["run"] for h in hits} == {summary["run"]}
    assert all(h["indicator"]["owner_org"] == qalqan.node.org_ids["CERT-A"] for h in hits)
    assert hits[0]["fields"]["query"] == "cdn1.evil.example"
    assert hits[0]["event"]["time"] == "2026-02-01T00:00:01Z"

    assert summary["events"] == len(PLANTED)
    assert summary["hits"] == summary["indicator_hits"] == len(EXPECTED)
    assert (summary["rules_loaded"], summary["rules_skipped"], summary["malformed"]) == (0, 0, 0)
    assert summary["files"] == ["dns.jsonl"]
    assert summary["formats"] == {"dns.jsonl": "jsonl"}
    assert summary["by_indicator"][qalqan.indicators["evil.example"]] == 2

    text = qalqan.ok("sweep", "dns.jsonl", "--format", "jsonl", *DNS_MAP).out
    assert f"swept {len(PLANTED)} events from 1 file(s)" in text
    assert f"{len(EXPECTED)} hits ({len(EXPECTED)} on indicators, 0 on rules)" in text
    assert "evil.example" in text


def test_the_summary_counts_malformed_lines(qalqan: Qalqan) -> None:
    log = b"".join(
        [
            jsonl({"query": "a.evil.example"}),
            b'{"query": "broken.evil.example"\n',
            jsonl({"query": "clean.example"}),
            b"not json\n",
            jsonl({"query": "b.evil.example"}),
        ]
    )
    qalqan.write("dns.jsonl", log)
    summary = qalqan.json("sweep", "dns.jsonl", "--format", "jsonl", *DNS_MAP)
    assert summary["malformed"] == 2
    assert [p["line"] for p in summary["problems"]] == [2, 4]
    assert (summary["events"], summary["hits"]) == (3, 2)
    text = qalqan.ok("sweep", "dns.jsonl", "--format", "jsonl", *DNS_MAP).out
    assert "2 record(s) could not be read" in text
    assert "dns.jsonl:2:" in text


def test_directories_globs_and_gzip(qalqan: Qalqan) -> None:
    qalqan.write("logs/a.jsonl", jsonl({"query": "a.evil.example"}))
    qalqan.write("logs/deep/b.jsonl.gz", gzip.compress(jsonl({"answer": "198.51.100.7"})))
    qalqan.write("logs/c.json", jsonl({"answer": "203.0.113.5"}, {"query": "clean.example"}))
    every = ["logs/a.jsonl", "logs/c.json", "logs/deep/b.jsonl.gz"]

    whole = qalqan.json("sweep", "logs", *DNS_MAP, "--out", "all.jsonl")
    assert sorted(whole["files"]) == every
    assert whole["formats"] == dict.fromkeys(every, "jsonl")
    assert (whole["events"], whole["hits"]) == (4, 3)
    by_file = {
        h["event"]["file"]: h["indicator"]["value"]
        for h in _lines((qalqan.workdir / "all.jsonl").read_bytes())
    }
    assert by_file == {
        "logs/a.jsonl": "evil.example",
        "logs/deep/b.jsonl.gz": "198.51.100.7",
        "logs/c.json": "203.0.113.0/24",
    }

    flat = qalqan.json("sweep", "logs/*.jsonl", "--format", "jsonl", *DNS_MAP)
    assert (flat["files"], flat["hits"]) == (["logs/a.jsonl"], 1)
    deep = qalqan.json("sweep", "logs/**/*.gz", "--format", "jsonl", *DNS_MAP)
    assert (deep["files"], deep["hits"]) == (["logs/deep/b.jsonl.gz"], 1)
    both = qalqan.json("sweep", "logs/c.json", "logs/*.jsonl", "logs/c.json", *DNS_MAP)
    assert both["files"] == ["logs/c.json", "logs/a.jsonl"]
    assert both["hits"] == 2

    assert "no log file matches 'logs/*.csv'" in qalqan.fails(
        "sweep", "logs/*.csv", "--format", "jsonl", *DNS_MAP
    )


def test_stdin_is_swept_and_hits_go_to_stdout(qalqan: Qalqan) -> None:
    log = jsonl(*PLANTED)
    result = qalqan.ok("sweep", "-", "--format", "jsonl", *DNS_MAP, "--out", "-", stdin=log)
    hits = _lines(result.out)
    assert _hit_keys(hits) == EXPECTED
    assert {h["event"]["file"] for h in hits} == {"-"}

    summary = orjson.loads(qalqan.ok("sweep", "-", *DNS_MAP, "--json", stdin=log).out)
    assert summary["files"] == ["-"]
    assert summary["hits"] == len(EXPECTED)


def test_since_drops_older_events(qalqan: Qalqan) -> None:
    qalqan.write(
        "dns.jsonl",
        jsonl(
            {"ts": "2026-01-10T00:00:00Z", "query": "old.evil.example"},
            {"ts": "2026-02-10T00:00:00Z", "query": "new.evil.example"},
            {"query": "timeless.evil.example"},
        ),
    )
    summary = qalqan.json(
        "sweep",
        "dns.jsonl",
        "--format",
        "jsonl",
        *DNS_MAP,
        "--since",
        "2026-02-01T00:00:00Z",
        "--out",
        "hits.jsonl",
    )
    assert (summary["skipped_by_time"], summary["events"], summary["hits"]) == (1, 2, 2)
    queries = [h["fields"]["query"] for h in _lines((qalqan.workdir / "hits.jsonl").read_bytes())]
    assert queries == ["new.evil.example", "timeless.evil.example"]

    now = datetime.now(UTC)
    qalqan.write(
        "recent.jsonl",
        jsonl(
            {"ts": (now - timedelta(days=3)).isoformat(), "query": "stale.evil.example"},
            {"ts": (now - timedelta(hours=1)).isoformat(), "query": "fresh.evil.example"},
        ),
    )
    recent = qalqan.json("sweep", "recent.jsonl", "--format", "jsonl", *DNS_MAP, "--since", "24h")
    assert (recent["skipped_by_time"], recent["hits"]) == (1, 1)
    assert list(recent["labels"].values()) == ["evil.example"]


def test_bad_options_fail_with_one_line(qalqan: Qalqan) -> None:
    qalqan.write("dns.jsonl", jsonl(*PLANTED))
    line = qalqan.fails("sweep", "dns.jsonl", "--format", "excel", *DNS_MAP)
    assert "unknown log format 'excel'" in line
    assert all(name in line for name in known_formats())
    cases = [
        (("sweep", "dns.jsonl", "--map", "foo"), "map 'foo': write FIELD=KIND"),
        (("sweep", "dns.jsonl", "--map", "query=planet"), "unknown field kind 'planet'"),
        (("sweep", "no-such.log", *DNS_MAP), "no log file matches 'no-such.log'"),
        (("sweep", "dns.jsonl", "--since", "last tuesday"), "--since 'last tuesday'"),
        (("sweep", "dns.jsonl", "--org", "CERT-Nowhere"), "CERT-Nowhere"),
        (("sweep", "dns.jsonl", *DNS_MAP, "--out", "no/such/dir/h.jsonl"), "--out no/such/dir"),
        (("sweep", "dns.jsonl", *DNS_MAP, "--out", "."), "--out ."),
        (("watch", "no-such.log", "--format", "jsonl"), "no-such.log: no such file"),
        (("watch", "dns.jsonl", "--format", "excel"), "unknown log format 'excel'"),
        (("watch", "dns.jsonl", "--map", "foo"), "map 'foo'"),
    ]
    for args, message in cases:
        assert message in qalqan.fails(*args), args


def test_help_of_sweep_and_watch(qalqan: Qalqan) -> None:
    sweep_help = qalqan.ok("sweep", "--help").out
    for option in ("--format", "--map", "--rules", "--since", "--out", "--share", "--json"):
        assert option in sweep_help
    assert "FIELD=KIND" in sweep_help
    watch_help = qalqan.ok("watch", "--help").out
    for option in ("--format", "--map", "--from-start", "--share"):
        assert option in watch_help


def test_share_releases_sightings_to_the_indicators_owner(qalqan: Qalqan) -> None:
    qalqan.plant("CERT-C", indicator("c.example", kind="domain-name"))
    qalqan.write(
        "dns.jsonl",
        jsonl(
            {"ts": "2026-02-01T10:00:00Z", "query": "a.evil.example"},
            {"ts": "2026-02-01T08:00:00Z", "query": "b.evil.example"},
            {"ts": "2026-02-01T09:00:00Z", "query": "www.c.example"},
        ),
    )
    shared = qalqan.json("sweep", "dns.jsonl", *DNS_MAP, "--org", "CERT-B", "--share")
    assert (shared["sightings"], shared["sightings_shared"]) == (2, 2)
    (to_a,) = qalqan.sightings("CERT-A")
    assert to_a["sighting_of_ref"] == qalqan.indicators["evil.example"]
    assert (to_a["count"], to_a["first_seen"], to_a["last_seen"]) == (
        2,
        "2026-02-01T08:00:00.000Z",
        "2026-02-01T10:00:00.000Z",
    )
    assert to_a["where_sighted_refs"] == [f"identity--{qalqan.node.org_ids['CERT-B']}"]
    (to_c,) = qalqan.sightings("CERT-C")
    assert to_c["sighting_of_ref"] == qalqan.indicators["c.example"]

    kept = qalqan.json("sweep", "dns.jsonl", *DNS_MAP, "--org", "CERT-B")
    assert (kept["sightings"], kept["sightings_shared"]) == (2, 0)
    assert [s["id"] for s in qalqan.sightings("CERT-A")] == [to_a["id"]]
    assert len(qalqan.sightings("CERT-B")) == 4


# --- qalqan watch ---------------------------------------------------------------------------


@dataclass
class Watch:
    """A follow run in a thread: each hit with the moment the sink received it."""

    hits: queue.Queue[tuple[float, dict[str, Any]]]
    stop: threading.Event
    outcome: dict[str, Any]

    def next_hit(self) -> tuple[float, dict[str, Any]]:
        return self.hits.get(timeout=FOLLOW_WAIT)

    def quiet(self, seconds: float) -> bool:
        """True if no hit arrives within ``seconds``."""
        try:
            self.hits.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    @property
    def summary(self) -> SweepSummary:
        summary: SweepSummary = self.outcome["summary"]
        return summary


@contextmanager
def watching(qalqan: Qalqan, path: Path, *, from_start: bool = False) -> Iterator[Watch]:
    """Follow ``path`` as CERT-B until the block ends; the run's summary is in ``outcome``."""
    principal = qalqan.principal("CERT-B")
    options = SweepOptions(
        paths=[str(path)], format="jsonl", fields={"query": "domain"}, origin="watch"
    )
    watch = Watch(queue.Queue(), threading.Event(), {})

    def sink(records: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for record in records:
            watch.hits.put((now, record))

    def target() -> None:
        try:
            watch.outcome["summary"] = follow(
                qalqan.instance.engine,
                principal,
                options,
                sink=sink,
                from_start=from_start,
                stop=watch.stop,
            )
        except BaseException as exc:  # handed to the test below
            watch.outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        # The run is recorded once the file is open at its end: lines written from now on are
        # new to the watch.
        deadline = time.monotonic() + FOLLOW_WAIT
        while not _watch_running(qalqan, principal):
            assert thread.is_alive(), watch.outcome
            assert time.monotonic() < deadline, "the watch did not start"
            time.sleep(0.02)
        yield watch
    finally:
        watch.stop.set()
        thread.join(timeout=FOLLOW_WAIT)
    assert not thread.is_alive()
    if "error" in watch.outcome:
        raise watch.outcome["error"]


def _watch_running(qalqan: Qalqan, principal: Principal) -> bool:
    with qalqan.instance.begin() as conn:
        runs = detections_store.list_runs(conn, principal, limit=10, status="running")
    return any(r.origin == "watch" for r in runs)


def _append(path: Path, *events: dict[str, Any]) -> float:
    """Append whole lines; when they were written."""
    with path.open("ab") as handle:
        handle.write(jsonl(*events))
    return time.monotonic()


def test_watch_reports_a_new_line_within_a_second(qalqan: Qalqan) -> None:
    log = qalqan.write("live.jsonl", jsonl({"query": "before.evil.example"}))
    started = time.monotonic()
    with watching(qalqan, log) as watch:
        _append(log, {"query": "clean.example"})
        written = _append(log, {"query": "now.evil.example"})
        received, hit = watch.next_hit()
        assert received - written < 1.0
        assert hit["fields"]["query"] == "now.evil.example"
        assert hit["indicator"]["value"] == "evil.example"
        assert hit["event"]["file"] == str(log)
        # The line that was there before the watch began is not reported.
        assert watch.quiet(0.3)
        written = _append(log, {"query": "again.evil.example"})
        received, hit = watch.next_hit()
        assert received - written < 1.0
        assert hit["fields"]["query"] == "again.evil.example"
    summary = watch.summary
    assert (summary.events, summary.hits, summary.sightings) == (3, 2, 1)
    assert time.monotonic() - started < 3 * FOLLOW_WAIT


def test_watch_from_start_reports_what_is_already_there(qalqan: Qalqan) -> None:
    log = qalqan.write(
        "live.jsonl", jsonl({"query": "one.evil.example"}, {"query": "two.evil.example"})
    )
    with watching(qalqan, log, from_start=True) as watch:
        first, second = watch.next_hit()[1], watch.next_hit()[1]
        assert [first["fields"]["query"], second["fields"]["query"]] == [
            "one.evil.example",
            "two.evil.example",
        ]
        assert [first["event"]["line"], second["event"]["line"]] == [1, 2]
        assert watch.quiet(0.3)
    assert watch.summary.hits == 2


def test_watch_follows_truncation_and_rotation(qalqan: Qalqan) -> None:
    padding = "x" * 4096
    log = qalqan.write("live.jsonl", jsonl({"query": "clean.example", "pad": padding}))
    with watching(qalqan, log) as watch:
        # Truncated in place (copytruncate), then a short line written.
        log.write_bytes(jsonl({"query": "truncated.evil.example"}))
        written = time.monotonic()
        received, hit = watch.next_hit()
        assert hit["fields"]["query"] == "truncated.evil.example"
        assert received - written < 1.0
        # Lines and offsets are those of the file as it is now.
        assert (hit["event"]["line"], hit["event"]["offset"]) == (1, 0)
        # Renamed away and a new file started in its place.
        log.rename(log.with_suffix(".jsonl.1"))
        time.sleep(0.25)
        log.write_bytes(jsonl({"query": "rotated.evil.example"}))
        written = time.monotonic()
        received, hit = watch.next_hit()
        assert hit["fields"]["query"] == "rotated.evil.example"
        assert received - written < 1.0
        assert (hit["event"]["line"], hit["event"]["offset"]) == (1, 0)
        # The old file is no longer followed.
        _append(log.with_suffix(".jsonl.1"), {"query": "stale.evil.example"})
        written = _append(log, {"query": "after.evil.example"})
        received, hit = watch.next_hit()
        assert hit["fields"]["query"] == "after.evil.example"
        assert hit["event"]["line"] == 2
        assert watch.quiet(0.3)
    assert watch.summary.hits == 3


def _pump(stream: IO[bytes], lines: queue.Queue[bytes]) -> None:
    for line in iter(stream.readline, b""):
        lines.put(line)


def test_watch_reads_stdin_in_a_subprocess(qalqan: Qalqan) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", TEST_DATABASE_ENV)
    }
    lines: queue.Queue[bytes] = queue.Queue()
    with subprocess.Popen(
        [str(QALQAN), "watch", "-", "--format", "jsonl", "--map", "query=domain"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=qalqan.workdir,
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        # Read in a thread, so that waiting for a line has a bound.
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            process.stdin.write(jsonl({"query": "clean.example"}, {"query": "x.evil.example"}))
            process.stdin.flush()
            # The bound covers starting an interpreter on a busy machine.
            hit = orjson.loads(lines.get(timeout=90))
            assert hit["fields"]["query"] == "x.evil.example"
            assert hit["indicator"]["value"] == "evil.example"
            assert hit["event"]["file"] == "-"
            process.stdin.close()
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        reader.join(timeout=FOLLOW_WAIT)
        assert process.stderr is not None
        err = process.stderr.read().decode()
    assert "Traceback" not in err
    assert "watched 2 events: 1 hits, 1 sighting(s) recorded" in err
    assert lines.empty()
