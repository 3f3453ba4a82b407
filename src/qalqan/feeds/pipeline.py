"""One run of a feed: fetch → parse → normalize → warninglists → deduplicate → store → expire.

Values travel in batches: each batch is normalized, checked against the warninglists in one
call, looked up in the feed's value list in one query and written in one transaction with bulk
inserts. A value the feed already holds costs an index lookup and a ``last_seen`` update; only
new values, changed ones and revived ones become (versions of) STIX indicators.

A run that cannot read its source fails before it changes anything that was there: values are
expired only at the end of a complete run, and the source's state (cursors, validators, digests)
is saved only then.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection

from qalqan.domain.handling import TLP, Distribution, marking_object, tlp_from_marking_id
from qalqan.domain.principal import Principal, Role
from qalqan.domain.stix import detection_columns, format_timestamp
from qalqan.errors import QalqanError
from qalqan.feeds.fetch import FetchLimits
from qalqan.feeds.items import Document, Reject, StixObject, Unchanged, Value
from qalqan.feeds.sources import Job, make_source
from qalqan.feeds.values import Counts, InlineWriter, ValueBatches
from qalqan.feeds.writer import ProcessWriter
from qalqan.instance import Instance
from qalqan.intel.importer import HandlingRequest, collector_paused, import_objects
from qalqan.intel.warninglists import WarninglistIndex
from qalqan.store import accounts as accounts_store
from qalqan.store import feeds as feeds_store
from qalqan.store import objects as objects_store
from qalqan.store.clock import lock_writes, now_us, reserve_date_added

__all__ = ["RunReport", "run_feed"]

VALUE_BATCH = 50_000
OBJECT_BATCH = 2_000
MAX_ERRORS_KEPT = 1000

Progress = Callable[[int], None]


@dataclass(slots=True)
class RunReport:
    """What one run did."""

    feed: str
    feed_id: str
    run_id: int
    status: str = "running"
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(feeds_store.COUNTS, 0))
    errors: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    started_at: int = 0
    finished_at: int | None = None

    def reject(
        self, line: int, reason: str, fld: str | None = None, raw: str | None = None
    ) -> None:
        self.counts["rejected"] += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            entry: dict[str, Any] = {"line": line, "field": fld, "reason": reason}
            if raw is not None:
                entry["value"] = raw[:200]
            self.errors.append(entry)

    def to_dict(self) -> dict[str, Any]:
        duration = ((self.finished_at or now_us()) - self.started_at) / 1e6
        return {
            "feed": self.feed,
            "run": self.run_id,
            "status": self.status,
            **self.counts,
            "duration_s": round(duration, 3),
            "started_at": format_timestamp(self.started_at),
            "finished_at": format_timestamp(self.finished_at) if self.finished_at else None,
            "error": self.error,
            "errors": self.errors,
        }


class _Run:
    """The state of one run of one feed."""

    def __init__(
        self,
        instance: Instance,
        feed: feeds_store.FeedRecord,
        report: RunReport,
        warninglists: WarninglistIndex,
        progress: Progress | None,
    ):
        self.instance = instance
        self.feed = feed
        self.report = report
        self.warninglists = warninglists
        self.progress = progress
        self.now = report.started_at
        self.stamp = format_timestamp(self.now)
        self.source_tag = f"feed:{feed.id}"
        self.distribution = Distribution(feed.distribution)
        with instance.begin() as conn:
            org = accounts_store.get_org(conn, feed.owner_org_id)
            self.principal = Principal(
                user_id=None,
                org_id=org.id,
                role=Role.ANALYST,
                group_ids=accounts_store.group_ids_of_org(conn, org.id),
            )
        self.identity = org.identity_id
        self.documents: list[Document] = []
        self.values = ValueBatches(
            instance,
            feed,
            self.identity,
            self.now,
            warninglists,
            Counts(report.counts),
            report.reject,
        )
        self.writer: InlineWriter | ProcessWriter | None = None

    # -- values ---------------------------------------------------------------------------

    def store_values(self, batch: list[Value], *, more: bool) -> None:
        """Prepare a batch here and hand it to the writer; ``more`` says whether other batches
        follow (a run of several batches writes them in a process of its own)."""
        prepared = self.values.prepare(batch)
        if self.writer is None:
            self.writer = ProcessWriter(self.values) if more else InlineWriter(self.values)
        self.writer.submit(prepared)
        if self.progress is not None:
            self.progress(len(batch))

    def settle(self) -> None:
        """Wait for the writer: what comes next reads or writes what it wrote."""
        if self.writer is not None:
            self.writer.drain()

    def close(self) -> None:
        """Stop the writer thread."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    # -- STIX objects ---------------------------------------------------------------------

    def store_objects(self, batch: list[StixObject]) -> None:
        """Import STIX objects as they are, under the feed's handling."""
        handling = HandlingRequest(
            tlp=TLP(self.feed.tlp),
            distribution=self.distribution,
            sharing_group=self.feed.sharing_group_id,
        )
        with self.instance.begin() as conn:
            result = import_objects(
                conn,
                self.principal,
                [item.obj for item in batch],
                handling,
                source=self.source_tag,
                warninglists=self.warninglists,
            )
        counts = self.report.counts
        counts["new"] += result.created
        counts["warninglisted"] += result.warninglisted
        counts["unchanged"] += len(result.accepted) - result.created
        for rejection in result.rejected:
            reason = rejection.reason if not rejection.id else f"{rejection.id}: {rejection.reason}"
            self.report.reject(batch[rejection.index].line, reason, rejection.field)
        if self.progress is not None:
            self.progress(len(batch))

    # -- unchanged parts, documents, expiry -----------------------------------------------

    def keep(self, origins: list[str | None]) -> None:
        """Parts of the feed the source did not read again (``None``: all of it): their values
        are still there. One statement for all of them, not one per part."""
        if not origins:
            return
        with self.instance.begin() as conn:
            if None in origins:
                touched = feeds_store.touch_all(conn, self.feed.id, self.now)
            else:
                named = [o for o in origins if o is not None]
                touched = feeds_store.touch_origins(conn, self.feed.id, named, self.now)
        self.report.counts["unchanged"] += touched

    def store_documents(self) -> None:
        """A STIX report per document, referring to the indicators of its values."""
        for document in self.documents:
            with self.instance.begin() as conn:
                refs = feeds_store.values_of_origin(conn, self.feed.id, document.origin)
                if not refs:
                    continue
                report: dict[str, Any] = {
                    "type": "report",
                    "spec_version": "2.1",
                    "id": f"report--{uuid.uuid5(uuid.UUID(self.feed.id), document.origin)}",
                    "created": self.stamp,
                    "modified": self.stamp,
                    "created_by_ref": self.identity,
                    "name": document.name[:300] or document.origin,
                    "published": format_timestamp(document.published or self.now),
                    "report_types": ["threat-report"],
                    "object_refs": refs,
                    "object_marking_refs": [marking_object(TLP(self.feed.tlp))["id"]],
                }
                if document.description:
                    report["description"] = document.description
                if document.labels:
                    report["labels"] = list(document.labels)
                if document.url:
                    report["external_references"] = [
                        {"source_name": self.feed.name, "url": document.url}
                    ]
                handling = HandlingRequest(
                    tlp=TLP(self.feed.tlp),
                    distribution=self.distribution,
                    sharing_group=self.feed.sharing_group_id,
                )
                result = import_objects(
                    conn, self.principal, [report], handling, source=self.source_tag
                )
                for rejection in result.rejected:
                    self.report.reject(0, f"report {document.name!r}: {rejection.reason}")

    def expire(self) -> None:
        """Expire the values not seen for the feed's ``expire_after``: a new version of each
        indicator with ``valid_until`` set. Nothing is deleted."""
        if self.feed.expire_after_seconds is None:
            return
        cutoff = self.now - self.feed.expire_after_seconds * 1_000_000
        while True:
            with self.instance.begin() as conn:
                lock_writes(conn)
                due = feeds_store.expired_candidates(conn, self.feed.id, cutoff, 5000)
                if not due:
                    return
                self._expire(conn, due)

    def _expire(self, conn: Connection, due: list[feeds_store.FeedValue]) -> None:
        previous = objects_store.latest_versions(conn, [v.stix_id for v in due])
        live = [(v, previous[v.stix_id]) for v in due if v.stix_id in previous]
        index = objects_store.observables_of(conn, [p[0] for _, p in live])
        first = reserve_date_added(conn, len(live)) if live else 0
        versions: list[tuple[Any, ...]] = []
        observables: list[tuple[Any, ...]] = []
        stamp = self.stamp
        for offset, (value, (old_date_added, revoked, content)) in enumerate(live):
            date_added = first + offset
            obj = orjson.loads(content)
            obj["modified"] = stamp
            obj["valid_until"] = stamp if obj.get("valid_from", "") < stamp else None
            if obj["valid_until"] is None:
                del obj["valid_until"]
            versions.append(
                (
                    date_added,
                    value.stix_id,
                    "indicator",
                    "2.1",
                    value.first_seen,
                    self.now,
                    True,
                    revoked,
                    False,
                    obj.get("name"),
                    orjson.dumps(obj).decode(),
                    self.feed.owner_org_id,
                    _tlp_of(obj, self.feed.tlp),
                    self.feed.distribution,
                    self.feed.sharing_group_id,
                    self.source_tag,
                    *detection_columns(obj),
                )
            )
            observables.extend((date_added, *row) for row in index.get(old_date_added, ()))
        objects_store.supersede(conn, [p[0] for _, p in live])
        objects_store.insert_versions(conn, versions)
        objects_store.insert_observables(conn, observables)
        feeds_store.mark_expired(conn, [v.key_hash for v in due])
        self.report.counts["expired"] += len(live)


def _tlp_of(obj: dict[str, Any], default: int) -> int:
    levels = [tlp_from_marking_id(ref) for ref in obj.get("object_marking_refs", ())]
    return max([int(level) for level in levels if level is not None] or [default])


def _batches(items: Iterable[Any], run: _Run, batch_size: int) -> Iterator[None]:
    """Feed the source's items to ``run`` in batches; yields after each batch."""
    values: list[Value] = []
    objects: list[StixObject] = []
    unchanged: list[str | None] = []
    for item in items:
        if isinstance(item, Value):
            values.append(item)
            if len(values) >= batch_size:
                run.store_values(values, more=True)
                values = []
                yield
        elif isinstance(item, Reject):
            run.report.reject(item.line, item.reason, item.field, item.raw)
        elif isinstance(item, StixObject):
            objects.append(item)
            if len(objects) >= OBJECT_BATCH:
                run.settle()
                run.store_objects(objects)
                objects = []
                yield
        elif isinstance(item, Unchanged):
            unchanged.append(item.origin)
        elif isinstance(item, Document):
            run.documents.append(item)
    if values:
        run.store_values(values, more=False)
    run.settle()
    if objects:
        run.store_objects(objects)
    run.keep(unchanged)
    yield


def basis_of(feed: feeds_store.FeedRecord, warninglists: WarninglistIndex) -> str:
    """What the stored values of a feed were derived from besides its input: when any of it
    changes, the next run reads everything again instead of trusting validators and digests."""
    material = orjson.dumps(
        [
            feed.source,
            feed.url,
            feed.options,
            feed.tlp,
            feed.distribution,
            feed.sharing_group_id,
            feed.confidence,
            feed.on_warninglist,
            warninglists.revision,
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(material).hexdigest()


def run_feed(
    instance: Instance,
    feed: feeds_store.FeedRecord,
    warninglists: WarninglistIndex,
    *,
    trigger: str = "cli",
    limits: FetchLimits | None = None,
    progress: Progress | None = None,
    batch_size: int = VALUE_BATCH,
) -> RunReport:
    """Run ``feed`` once and record the run. Never raises for a source's failure: the report
    says ``failed`` with the reason, and nothing the feed held before is expired."""
    started = now_us()
    with instance.begin() as conn:
        run_id = feeds_store.start_run(conn, feed.id, trigger, started)
    report = RunReport(feed=feed.name, feed_id=feed.id, run_id=run_id, started_at=started)
    basis = basis_of(feed, warninglists)
    state = orjson.loads(orjson.dumps(feed.state))
    if state.get("basis") != basis:
        state = {"basis": basis}
    try:
        source = make_source(feed.source, feed.options)
        limits = limits or FetchLimits(
            timeout=instance.settings.feed_timeout, max_bytes=instance.settings.feed_max_bytes
        )
        job = Job(url=feed.url, feed_name=feed.name, limits=limits, state=state)
        run = _Run(instance, feed, report, warninglists, progress)
        # A run allocates millions of short-lived objects and makes no reference cycles.
        try:
            with collector_paused():
                for _ in _batches(source.read(job), run, batch_size):
                    pass
        finally:
            run.close()
        run.store_documents()
        if source.expires_missing:
            run.expire()
    except QalqanError as exc:
        report.status = "failed"
        report.error = exc.detail
    except Exception as exc:
        # Recorded so the run does not stay "running" forever, then raised: it is a bug.
        _finish(instance, report, "failed", f"internal error: {type(exc).__name__}", None)
        raise
    else:
        report.status = "ok"
    _finish(instance, report, report.status, report.error, state)
    return report


def _finish(
    instance: Instance,
    report: RunReport,
    status: str,
    error: str | None,
    state: dict[str, Any] | None,
) -> None:
    report.status, report.error, report.finished_at = status, error, now_us()
    report.errors.sort(key=lambda e: int(e["line"]))
    with instance.begin() as conn:
        feeds_store.finish_run(
            conn,
            report.run_id,
            at=report.finished_at,
            status=status,
            counts=report.counts,
            errors=report.errors,
            error=error,
        )
        if status == "ok" and state is not None:
            feeds_store.update_feed(conn, report.feed_id, state=state)
