"""A sweep: read logs, match them against the org's indicators and Sigma rules, report hits,
record the run, and turn indicator hits into sightings.

:func:`run_sweep` is the one use case the CLI (``qalqan sweep``), the API (``POST
/api/v1/sweeps``) and the follow mode (``qalqan watch``) share. What takes part is decided by
the handling policy in SQL (:mod:`qalqan.store.detections`); matching is vectorized
(:mod:`.matcher`, :mod:`.sigma`); hits stream to a JSON-lines sink as batches are matched, so
memory stays bounded whatever the size of the logs.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import orjson
import polars as pl
from sqlalchemy import Connection, Engine

from qalqan.audit import record
from qalqan.detect.events import FILE, LINE, OFFSET, RESERVED, TIME, EventBatch
from qalqan.detect.matcher import match_iocs
from qalqan.detect.plan import (
    IndicatorValue,
    SearchPattern,
    SweepPlan,
    build_plan,
    search_patterns,
    tlp_label,
)
from qalqan.detect.readers import READERS, expand_paths, read_events
from qalqan.detect.sightings import SightingTally, record_sightings
from qalqan.domain.durations import parse_duration
from qalqan.domain.handling import TLP
from qalqan.domain.principal import Principal
from qalqan.store import detections as store
from qalqan.store.clock import now_us

if TYPE_CHECKING:
    # Imported when rules are asked for: pySigma takes a second to import.
    from qalqan.detect.sigma import SigmaEngine

__all__ = [
    "HitSink",
    "SweepOptions",
    "SweepSummary",
    "Sweeper",
    "close_run",
    "fail_run",
    "keep_hits",
    "load_plan",
    "new_sweeper",
    "open_run",
    "parse_since",
    "read_ahead",
    "run_sweep",
    "write_jsonl",
]

_SHOWN_PROBLEMS = 50
_EVENT_TEXT_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class SweepOptions:
    """What a sweep reads and how.

    ``fields`` maps event fields to field kinds (``--map``); None uses each log format's
    presets. ``rules`` are Sigma rule files or directories. ``since`` drops events older than
    it (events without a time are kept). ``share`` releases the resulting sightings to the
    indicators' owners.
    """

    paths: Sequence[str]
    format: str = "auto"
    fields: Mapping[str, str] | None = None
    rules: Sequence[str] = ()
    since: datetime | None = None
    share: bool = False
    min_confidence: int | None = None
    origin: str = "cli"
    names: Mapping[str, str] | None = None

    def shown(self, path: str) -> str:
        """How hits and summaries name a file: as given, or by the name in ``names`` (an
        upload is named by what the client called it, not by where the server keeps it)."""
        return self.names.get(path, path) if self.names else path

    def to_dict(self) -> dict[str, Any]:
        """The options as stored with the run."""
        return {
            "format": self.format,
            "map": dict(self.fields) if self.fields is not None else None,
            "rules": list(self.rules),
            "since": self.since.isoformat() if self.since else None,
            "share": self.share,
            "min_confidence": self.min_confidence,
        }


@dataclass(slots=True)
class SweepSummary:
    """What a run read and found."""

    run_id: str
    files: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    events: int = 0
    bytes_read: int = 0
    skipped_by_time: int = 0
    malformed: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    indicators: int = 0
    indicator_hits: int = 0
    rule_hits: int = 0
    events_hit: int = 0
    rules_loaded: int = 0
    rules_skipped: list[dict[str, Any]] = field(default_factory=list)
    patterns_skipped: list[str] = field(default_factory=list)
    missing_fields: dict[str, list[str]] = field(default_factory=dict)
    by_indicator: dict[str, int] = field(default_factory=dict)
    by_rule: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    hits_stored: int = 0
    sightings: int = 0
    sightings_shared: int = 0
    sightings_note: str | None = None
    seconds: float = 0.0

    @property
    def hits(self) -> int:
        """Indicator and rule hits together."""
        return self.indicator_hits + self.rule_hits

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-able data (``--json`` prints it; the run stores it)."""
        return {
            "run": self.run_id,
            "files": self.files,
            "formats": self.formats,
            "events": self.events,
            "bytes": self.bytes_read,
            "skipped_by_time": self.skipped_by_time,
            "malformed": self.malformed,
            "problems": self.problems,
            "indicators": self.indicators,
            "hits": self.hits,
            "indicator_hits": self.indicator_hits,
            "rule_hits": self.rule_hits,
            "events_hit": self.events_hit,
            "rules_loaded": self.rules_loaded,
            "rules_skipped": len(self.rules_skipped),
            "skipped_rules": self.rules_skipped,
            "skipped_patterns": self.patterns_skipped,
            "missing_fields": self.missing_fields,
            "by_indicator": self.by_indicator,
            "by_rule": self.by_rule,
            "labels": self.labels,
            "hits_stored": self.hits_stored,
            "sightings": self.sightings,
            "sightings_shared": self.sightings_shared,
            "sightings_note": self.sightings_note,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds) if self.seconds else None,
        }


HitSink = Callable[[list[dict[str, Any]]], None]

# Fields of a batch are matched side by side (their string kernels release the interpreter).
_FIELD_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sweep-field")
_DONE = object()


def read_ahead(batches: Iterator[EventBatch], depth: int = 1) -> Iterator[EventBatch]:
    """``batches``, read by a background thread ``depth`` batches ahead of the consumer, so
    the next batch is parsed while this one is matched. Memory holds at most ``depth + 1``
    batches besides the one in hand; an error of the reader is raised here, in order."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        ready.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            item: Any = _DONE
        except BaseException as exc:
            item = exc
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=produce, name="sweep-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


Progress = Callable[[int, int], None]


def load_plan(
    conn: Connection, principal: Principal, *, now: int, min_confidence: int | None = None
) -> SweepPlan:
    """The plan of a sweep by ``principal`` at ``now``: the active indicators it may see."""
    values = [
        IndicatorValue(*row)
        for batch in store.iter_sweep_values(
            conn, principal, now=now, min_confidence=min_confidence
        )
        for row in batch
    ]
    patterns: list[SearchPattern] = []
    skipped: list[str] = []
    for stix_id, name, confidence, tlp, owner, content in store.iter_search_indicators(
        conn, principal, now=now, min_confidence=min_confidence
    ):
        pattern = orjson.loads(content).get("pattern")
        if not isinstance(pattern, str):
            continue
        indicator = IndicatorValue("pattern", pattern, stix_id, name, confidence, tlp, owner)
        found, why = search_patterns(pattern, indicator)
        patterns.extend(found)
        skipped.extend(why)
    return build_plan(values, patterns, skipped)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _event_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The event's own fields (no reserved columns, no nulls), long values cut short."""
    fields: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or key in RESERVED:
            continue
        if isinstance(value, str) and len(value) > _EVENT_TEXT_LIMIT:
            value = value[:_EVENT_TEXT_LIMIT] + "…"
        fields[key] = value
    return fields


class Sweeper:
    """Matches batches for one run and keeps its tallies. Used by :func:`run_sweep` over files
    and by the follow mode over lines as they are written."""

    def __init__(
        self,
        run_id: str,
        plan: SweepPlan,
        options: SweepOptions,
        sigma: SigmaEngine | None = None,
    ) -> None:
        self.run_id = run_id
        self.plan = plan
        self.options = options
        self.sigma = sigma
        self.summary = SweepSummary(run_id=run_id, indicators=plan.size)
        self.tally = SightingTally()
        self._since = options.since

    def fields_for(self, batch: EventBatch) -> Mapping[str, str]:
        """The field kinds to match in this batch: the ``--map`` given, else the presets of
        the batch's format."""
        if self.options.fields is not None:
            return self.options.fields
        reader = READERS.get(batch.format)
        return dict(reader.default_fields) if reader is not None else {}

    def match(self, batch: EventBatch) -> list[dict[str, Any]]:
        """Match one batch; returns its hits as records (also counted in the summary)."""
        summary = self.summary
        frame = batch.frame
        summary.malformed += len(batch.problems)
        for problem in batch.problems:
            if len(summary.problems) < _SHOWN_PROBLEMS:
                summary.problems.append(
                    {
                        "file": self.options.shown(problem.file),
                        "line": problem.line,
                        "reason": problem.reason,
                    }
                )
        if self._since is not None and frame.height:
            kept = frame.filter(pl.col(TIME).is_null() | (pl.col(TIME) >= self._since))
            summary.skipped_by_time += frame.height - kept.height
            frame = kept
        summary.events += frame.height
        if frame.height == 0:
            return []
        fields = self.fields_for(batch)
        missing = [f for f in fields if f not in frame.columns]
        if missing and fields:
            known = summary.missing_fields.setdefault(self.options.shown(batch.file or "-"), [])
            known.extend(f for f in missing if f not in known)
        records: list[dict[str, Any]] = []
        rows_hit: set[int] = set()
        if fields:
            records.extend(self._indicator_hits(frame, fields, rows_hit))
        if self.sigma is not None:
            records.extend(self._rule_hits(frame, rows_hit))
        summary.events_hit += len(rows_hit)
        return records

    def _event(self, frame: pl.DataFrame, rows: list[int]) -> dict[int, dict[str, Any]]:
        picked = frame[rows].to_dicts()
        events: dict[int, dict[str, Any]] = {}
        for row, data in zip(rows, picked, strict=True):
            events[row] = {
                "event": {
                    "file": self.options.shown(data[FILE]),
                    "line": data[LINE],
                    "offset": data[OFFSET],
                    "time": _iso(data[TIME]),
                },
                "fields": _event_fields(data),
            }
        return events

    def _indicator_hits(
        self, frame: pl.DataFrame, fields: Mapping[str, str], rows_hit: set[int]
    ) -> list[dict[str, Any]]:
        hits = match_iocs(self.plan, frame, fields, _FIELD_POOL)
        if hits.height == 0:
            return []
        joined = hits.join(self.plan.refs, on="ref", how="left")
        times = frame[TIME].gather(joined["row"])
        self.tally.add(joined["stix_id"], joined["tlp"], joined["owner_org_id"], times)
        events = self._event(frame, sorted(set(joined["row"].to_list())))
        records: list[dict[str, Any]] = []
        for hit in joined.iter_rows(named=True):
            row = int(hit["row"])
            rows_hit.add(row)
            event = events[row]
            stix_id = hit["stix_id"]
            self.summary.by_indicator[stix_id] = self.summary.by_indicator.get(stix_id, 0) + 1
            self.summary.labels[stix_id] = hit["name"] or hit["value"]
            records.append(
                {
                    "run": self.run_id,
                    "kind": "indicator",
                    "event": event["event"],
                    "field": hit["field"],
                    "matched": event["fields"].get(hit["field"]),
                    "indicator": {
                        "id": stix_id,
                        "kind": hit["kind"],
                        "value": hit["value"],
                        "name": hit["name"],
                        "owner_org": hit["owner_org_id"],
                        "tlp": tlp_label(int(hit["tlp"])),
                        "confidence": hit["confidence"],
                    },
                    "fields": event["fields"],
                }
            )
        self.summary.indicator_hits += len(records)
        return records

    def _rule_hits(self, frame: pl.DataFrame, rows_hit: set[int]) -> list[dict[str, Any]]:
        assert self.sigma is not None
        hits = self.sigma.match(frame)
        if hits.height == 0:
            return []
        events = self._event(frame, sorted(set(hits["row"].to_list())))
        records: list[dict[str, Any]] = []
        for row, rule_id in hits.select("row", "rule").iter_rows():
            rows_hit.add(int(row))
            info = self.sigma.rules[rule_id]
            event = events[int(row)]
            self.summary.by_rule[rule_id] = self.summary.by_rule.get(rule_id, 0) + 1
            self.summary.labels[rule_id] = info.title
            records.append(
                {
                    "run": self.run_id,
                    "kind": "rule",
                    "event": event["event"],
                    "rule": {
                        "id": rule_id,
                        "title": info.title,
                        "level": info.level,
                        "status": info.status,
                        "tags": list(info.tags),
                        "path": str(info.path),
                    },
                    "fields": event["fields"],
                }
            )
        self.summary.rule_hits += len(records)
        return records


def _hit_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored hit rows (columns of ``store.detections.HIT_COLUMNS``)."""
    rows: list[dict[str, Any]] = []
    for r in records:
        event = r["event"]
        at = event["time"]
        row: dict[str, Any] = {
            "run_id": r["run"],
            "kind": r["kind"],
            "file": event["file"],
            "line": event["line"],
            "offset": event["offset"],
            "event_time": (
                int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1_000_000)
                if at
                else None
            ),
            "event": orjson.dumps(r["fields"]).decode(),
        }
        if r["kind"] == "indicator":
            indicator = r["indicator"]
            row.update(
                match_id=indicator["id"],
                value=indicator["value"],
                field=r["field"],
                title=indicator["name"],
                owner_org_id=indicator["owner_org"],
                tlp=_tlp_level(indicator["tlp"]),
                confidence=indicator["confidence"],
            )
        else:
            rule = r["rule"]
            row.update(
                match_id=rule["id"],
                title=rule["title"],
                level=rule["level"],
                tags=orjson.dumps(rule["tags"]).decode(),
            )
        rows.append(row)
    return rows


def _tlp_level(label: str) -> int:
    return int(TLP.parse(label))


def open_run(
    engine: Engine,
    principal: Principal,
    options: SweepOptions,
    files: Sequence[str],
    run_id: str | None = None,
) -> tuple[str, SweepPlan]:
    """Load the plan and record the run as running (a new one, or the queued ``run_id``)."""
    now = now_us()
    with engine.begin() as conn:
        plan = load_plan(conn, principal, now=now, min_confidence=options.min_confidence)
        if run_id is None:
            run_id = str(uuid.uuid4())
            store.create_run(
                conn,
                run_id=run_id,
                principal=principal,
                origin=options.origin,
                files=files,
                options=options.to_dict(),
                at=now,
            )
        else:
            store.start_run(conn, run_id)
    return run_id, plan


def load_rules(options: SweepOptions) -> SigmaEngine | None:
    """The Sigma engine of the rules the options name, or None."""
    if not options.rules:
        return None
    from qalqan.detect.sigma import SigmaEngine

    return SigmaEngine.from_paths(list(options.rules))


def keep_hits(engine: Engine, sweeper: Sweeper, records: list[dict[str, Any]], limit: int) -> None:
    """Store the first hits of a run, up to ``limit`` in all."""
    summary = sweeper.summary
    room = limit - summary.hits_stored
    if room > 0 and records:
        kept = records[:room]
        with engine.begin() as conn:
            store.insert_hits(conn, _hit_rows(kept))
        summary.hits_stored += len(kept)


def close_run(
    engine: Engine, principal: Principal, sweeper: Sweeper, started: float
) -> SweepSummary:
    """Turn the run's indicator hits into sightings and record the run as done."""
    summary = sweeper.summary
    with engine.begin() as conn:
        stored, shared, note = record_sightings(
            conn, principal, sweeper.tally, sweeper.run_id, sweeper.options.share
        )
        summary.sightings, summary.sightings_shared, summary.sightings_note = stored, shared, note
        summary.seconds = time.perf_counter() - started
        store.finish_run(
            conn,
            sweeper.run_id,
            status="done",
            at=now_us(),
            summary=summary.to_dict(),
            hit_count=summary.hits,
        )
        record(
            conn,
            principal,
            "detection.sweep",
            target=sweeper.run_id,
            detail={
                "files": len(summary.files),
                "events": summary.events,
                "hits": summary.hits,
                "sightings": summary.sightings,
                "shared": summary.sightings_shared,
            },
        )
    return summary


def fail_run(engine: Engine, run_id: str, sweeper: Sweeper | None, exc: BaseException) -> None:
    """Record the run as failed, with what it had done."""
    with engine.begin() as conn:
        store.finish_run(
            conn,
            run_id,
            status="failed",
            at=now_us(),
            summary=sweeper.summary.to_dict() if sweeper is not None else {},
            hit_count=sweeper.summary.hits if sweeper is not None else 0,
            error=str(getattr(exc, "detail", None) or exc) or type(exc).__name__,
        )


def new_sweeper(
    run_id: str, plan: SweepPlan, options: SweepOptions, files: Sequence[str]
) -> Sweeper:
    """A sweeper for the run, with the Sigma rules loaded and the summary started."""
    sigma = load_rules(options)
    sweeper = Sweeper(run_id, plan, options, sigma)
    summary = sweeper.summary
    summary.files = [options.shown(f) for f in files]
    summary.patterns_skipped = list(plan.skipped)
    if sigma is not None:
        summary.rules_loaded = len(sigma.rules)
        summary.rules_skipped = [
            {"path": str(s.path), "id": s.rule_id, "title": s.title, "reason": s.reason}
            for s in sigma.skipped
        ]
    return sweeper


def run_sweep(
    engine: Engine,
    principal: Principal,
    options: SweepOptions,
    *,
    sink: HitSink | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    stored_hits: int = 10_000,
    batch_bytes: int = 32 << 20,
) -> SweepSummary:
    """Sweep ``options.paths`` for ``principal``'s org and record the run.

    Hits go to ``sink`` batch by batch, and the first ``stored_hits`` into the database.
    ``progress(bytes_read, events)`` is called after each batch. The run is recorded as
    ``running`` first (unless ``run_id`` names one already queued) and ``done`` or ``failed``
    at the end; indicator hits become sightings owned by the org (released to the indicators'
    owners with ``options.share``). Raises ``QalqanError`` for what a person must fix
    (unknown format, nothing matches a path, unreadable rules); a run already recorded is then
    recorded as failed.
    """
    started = time.perf_counter()
    try:
        files = expand_paths(options.paths)
        run_id, plan = open_run(engine, principal, options, files, run_id)
    except BaseException as exc:
        if run_id is not None:
            # A queued run must not stay queued when its sweep cannot even start.
            fail_run(engine, run_id, None, exc)
        raise
    sweeper: Sweeper | None = None
    try:
        sweeper = new_sweeper(run_id, plan, options, files)
        summary = sweeper.summary
        wanted = options.fields is not None and sweeper.sigma is None
        columns = list(options.fields or ()) if wanted else None
        done_before, current = 0, None
        batches = read_events(files, options.format, columns=columns, batch_bytes=batch_bytes)
        for batch in read_ahead(batches):
            if batch.file and batch.file != current:
                done_before = summary.bytes_read
                current = batch.file
                summary.formats[options.shown(batch.file)] = batch.format
            summary.bytes_read = done_before + batch.bytes_read
            records = sweeper.match(batch)
            if records:
                if sink is not None:
                    sink(records)
                keep_hits(engine, sweeper, records, stored_hits)
            if progress is not None:
                progress(summary.bytes_read, summary.events)
        return close_run(engine, principal, sweeper, started)
    except BaseException as exc:
        fail_run(engine, run_id, sweeper, exc)
        raise


def write_jsonl(out: IO[bytes]) -> HitSink:
    """A sink writing each hit as one JSON line to ``out``."""

    def sink(records: list[dict[str, Any]]) -> None:
        out.write(b"".join(orjson.dumps(r) + b"\n" for r in records))

    return sink


def parse_since(text: str) -> datetime:
    """``--since``: an ISO 8601 time (UTC if no zone) or a duration back from now
    (``90m``, ``24h``, ``7d``)."""
    text = text.strip()
    try:
        seconds = parse_duration(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC).fromtimestamp(time.time() - seconds, UTC)
