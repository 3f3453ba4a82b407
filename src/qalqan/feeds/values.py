"""Values of a feed run, batch by batch: prepared in the run's process, written in another.

Preparing a batch is Python work: normalize each value, check the batch against the
warninglists, look its keys up in the feed's value list, tell new values from changed and
unchanged ones and build the new indicators. Writing is database work: reserve ``date_added``
values, bulk-insert the versions, the observable index and the feed values, commit. A run of
several batches writes them in a child process, so on a machine with two cores the next batch
is prepared while the last one is written.

A value can appear in a batch that is prepared before an earlier batch holding it is committed;
the keys of the batches still in flight are kept so it is still counted as a duplicate.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection

from qalqan.domain.handling import TLP, Distribution, marking_object
from qalqan.domain.observables import InvalidObservable, Observable, parse_value
from qalqan.domain.patterns import pattern_of
from qalqan.domain.stix import detection_columns, format_timestamp, random_ids
from qalqan.feeds.items import NO_CONTEXT, Context, Value
from qalqan.instance import Instance
from qalqan.intel.warninglists import WarninglistHit, WarninglistIndex
from qalqan.policy import handling_problem
from qalqan.store import feeds as feeds_store
from qalqan.store import objects as objects_store
from qalqan.store.clock import lock_writes, reserve_date_added

__all__ = ["Counts", "InlineWriter", "PreparedBatch", "ValueBatches"]

_IN_FLIGHT = 3  # batches whose keys are remembered: one written, one queued, one prepared


class Counts:
    """The counts of a run (``values``), added to from the run's thread and the writer's."""

    def __init__(self, values: dict[str, int]):
        self.values = values
        self._lock = threading.Lock()

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self.values[name] += delta


@dataclass(slots=True)
class _Changed:
    """A stored value whose indicator gets a new version (changed context, or revived)."""

    observable: Observable
    value: Value
    tlp: TLP
    hit: WarninglistHit | None
    digest: str
    stored: feeds_store.FeedValue


@dataclass(slots=True)
class PreparedBatch:
    """A batch ready to write. Version and observable rows lack their first column, the
    ``date_added``, which the write reserves."""

    versions: list[tuple[str, str, str, int, int | None, int | None, bool]] = field(
        default_factory=list
    )
    observables: list[tuple[str, str, str | None, str | None, str | None]] = field(
        default_factory=list
    )
    values: list[tuple[int, str, str, str, str | None, str, str | None]] = field(
        default_factory=list
    )
    changed: list[_Changed] = field(default_factory=list)
    touched: list[int] = field(default_factory=list)


def _context_digest(context: Context, tlp: TLP, hit: WarninglistHit | None) -> str:
    material = orjson.dumps(
        [
            context.labels,
            context.description,
            context.first_seen,
            context.confidence,
            int(tlp),
            context.detect,
            context.extra,
            hit.list_name if hit else None,
        ]
    )
    return hashlib.blake2b(material, digest_size=16).hexdigest()


class ValueBatches:
    """Prepares and writes the value batches of one run of one feed."""

    def __init__(
        self,
        instance: Instance,
        feed: feeds_store.FeedRecord,
        identity: str,
        now: int,
        warninglists: WarninglistIndex | None,
        counts: Counts,
        reject: Callable[[int, str, str | None, str | None], None],
    ):
        self.instance = instance
        self.feed = feed
        self.identity = identity
        self.now = now
        self.warninglists = warninglists
        self.counts = counts
        self.reject = reject
        self.stamp = format_timestamp(now)
        self.source_tag = f"feed:{feed.id}"
        self.distribution = Distribution(feed.distribution)
        self.tlp = TLP(feed.tlp)
        self.markings = {level: [marking_object(level)["id"]] for level in TLP}
        self._stamps: dict[int, str] = {}
        self._plain_digests: dict[tuple[TLP, str | None], str] = {}
        self._in_flight: deque[set[int]] = deque(maxlen=_IN_FLIGHT)
        self.shared = objects_store.SharedColumns(
            type="indicator",
            spec_version="2.1",
            created=now,
            modified=now,
            owner_org_id=feed.owner_org_id,
            distribution=feed.distribution,
            sharing_group_id=feed.sharing_group_id,
            source=self.source_tag,
        )
        self._id_prefix = os.urandom(4)
        self._batches = 0

    # -- preparing (the run's thread) ------------------------------------------------------

    def _digest(self, context: Context, tlp: TLP, hit: WarninglistHit | None) -> str:
        if context is not NO_CONTEXT:
            return _context_digest(context, tlp, hit)
        key = (tlp, hit.list_name if hit else None)
        digest = self._plain_digests.get(key)
        if digest is None:
            digest = self._plain_digests[key] = _context_digest(context, tlp, hit)
        return digest

    def _timestamp(self, micros: int) -> str:
        text = self._stamps.get(micros)
        if text is None:
            if len(self._stamps) > 10_000:
                self._stamps.clear()
            text = self._stamps[micros] = format_timestamp(micros)
        return text

    def indicator(
        self,
        observable: Observable,
        context: Context,
        tlp: TLP,
        hit: WarninglistHit | None,
        stix_id: str,
        created: int,
    ) -> dict[str, Any]:
        """The STIX indicator of a feed value."""
        value = observable.value
        valid_from = context.first_seen or self.now
        obj: dict[str, Any] = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": stix_id,
            "created": self._timestamp(created),
            "modified": self.stamp,
            "created_by_ref": self.identity,
            "name": value if len(value) <= 200 else value[:197] + "...",
            "indicator_types": ["malicious-activity"],
            "pattern": pattern_of(observable),
            "pattern_type": "stix",
            "valid_from": self._timestamp(valid_from if valid_from < self.now else self.now),
            "object_marking_refs": self.markings[tlp],
        }
        confidence = context.confidence if context.confidence is not None else self.feed.confidence
        if confidence is not None:
            obj["confidence"] = confidence
        if context.labels:
            obj["labels"] = list(context.labels)
        if context.description:
            obj["description"] = context.description
        if context.extra:
            obj["x_qalqan_context"] = dict(context.extra)
        if not context.detect:
            obj["x_qalqan_detect"] = False
        if hit is not None:
            obj["x_qalqan_warninglist"] = {"list": hit.list_name, "reason": hit.reason}
        return obj

    def prepare(self, batch: list[Value]) -> PreparedBatch:
        """Normalize, check and classify a batch, and build its new indicators."""
        reject, feed = self.reject, self.feed
        duplicates = warninglisted = dropped = unchanged = 0
        found: dict[tuple[str, str], tuple[Observable, Value]] = {}
        for item in batch:
            try:
                observable = parse_value(item.raw, item.kind)
            except InvalidObservable as exc:
                reject(item.line, str(exc), "value", item.raw)
                continue
            pair = (observable.kind, observable.value)
            if pair in found:
                duplicates += 1
            else:
                found[pair] = (observable, item)
        pairs = list(found)
        assert self.warninglists is not None
        hits = self.warninglists.check_many([k for k, _ in pairs], [v for _, v in pairs])
        value_key, feed_id = feeds_store.value_key, feed.id
        keys = [value_key(feed_id, kind, value) for kind, value in pairs]
        with self.instance.begin() as conn:
            stored = feeds_store.lookup_values(conn, keys)
        in_flight = set().union(*self._in_flight) if self._in_flight else set()
        prepared = PreparedBatch()
        fresh: list[tuple[Observable, Value, int, TLP, WarninglistHit | None, str]] = []
        drop = feed.on_warninglist == "drop"
        for pair, key, hit in zip(pairs, keys, hits, strict=True):
            observable, item = found[pair]
            context = item.context
            if hit is not None:
                warninglisted += 1
                if drop:
                    dropped += 1
                    continue
            tlp = self.tlp
            if context.tlp is not None and context.tlp > tlp:
                tlp = context.tlp
                why = handling_problem(tlp, self.distribution, feed.sharing_group_id)
                if why is not None:
                    reject(item.line, why, "tlp", item.raw)
                    continue
            known = stored.get(key)
            if key in in_flight or (known is not None and known.last_seen == self.now):
                duplicates += 1
                continue
            digest = self._digest(context, tlp, hit)
            if known is None:
                fresh.append((observable, item, key, tlp, hit, digest))
            elif (known.kind, known.value) != pair:
                reject(item.line, "its storage key collides with another value", None, None)
            elif known.expired or known.digest != digest:
                prepared.changed.append(_Changed(observable, item, tlp, hit, digest, known))
            else:
                unchanged += 1
                prepared.touched.append(key)
        self._in_flight.append(set(keys))
        self._build_new(prepared, fresh)
        self.counts.add(
            duplicates=duplicates,
            warninglisted=warninglisted,
            dropped=dropped,
            unchanged=unchanged,
        )
        return prepared

    def _next_prefix(self) -> bytes:
        """The id prefix of the next batch: the run's random bytes and the batch number, so
        each batch's ids follow the last batch's in the id index."""
        self._batches += 1
        return self._id_prefix + (self._batches % 65536).to_bytes(2, "big")

    def _build_new(
        self,
        prepared: PreparedBatch,
        fresh: list[tuple[Observable, Value, int, TLP, WarninglistHit | None, str]],
    ) -> None:
        # In value order with ids drawn in ascending order: the value, id and key indexes each
        # receive the batch as one sorted run instead of at random places.
        fresh.sort(key=lambda f: f[0].value)
        now, dump = self.now, orjson.dumps
        for (o, item, key, tlp, hit, digest), stix_id in zip(
            fresh, random_ids("indicator", len(fresh), self._next_prefix()), strict=True
        ):
            obj = self.indicator(o, item.context, tlp, hit, stix_id, now)
            listed = hit.list_name if hit else None
            # Rows without their date_added, which the write reserves.
            prepared.versions.append(
                (stix_id, obj["name"], dump(obj).decode(), int(tlp), *detection_columns(obj))
            )
            prepared.observables.append((o.kind, o.value, o.ip_start, o.ip_end, listed))
            prepared.values.append((key, o.value, o.kind, stix_id, listed, digest, item.origin))

    # -- writing (the writer process) ------------------------------------------------------

    def write(self, prepared: PreparedBatch) -> dict[str, int]:
        """Store a prepared batch in one transaction; the counts it adds."""
        with self.instance.begin() as conn:
            lock_writes(conn)
            new = len(prepared.versions)
            first = reserve_date_added(conn, new) if new else 0
            objects_store.insert_similar_versions(
                conn,
                self.shared,
                [(first + i, *row) for i, row in enumerate(prepared.versions)],
            )
            objects_store.insert_observables(
                conn, [(first + i, *row) for i, row in enumerate(prepared.observables)]
            )
            feeds_store.insert_values(conn, self.feed.id, self.now, prepared.values)
            feeds_store.touch_values(conn, prepared.touched, self.now)
            counts = self._write_changed(conn, prepared.changed)
        counts["new"] = new
        return counts

    def _write_changed(self, conn: Connection, changed: list[_Changed]) -> dict[str, int]:
        if not changed:
            return {}
        previous = objects_store.latest_versions(conn, [c.stored.stix_id for c in changed])
        live = [c for c in changed if not previous.get(c.stored.stix_id, (0, True, ""))[1]]
        # A value whose indicator its owner revoked since is not brought back by the feed.
        counts = {"unchanged": len(changed) - len(live), "updated": len(live)}
        if not live:
            return counts
        first = reserve_date_added(conn, len(live))
        objects_store.supersede(conn, [previous[c.stored.stix_id][0] for c in live])
        feed, now = self.feed, self.now
        versions, observables, rows = [], [], []
        for offset, c in enumerate(live):
            date_added, o, stored = first + offset, c.observable, c.stored
            obj = self.indicator(
                o, c.value.context, c.tlp, c.hit, stored.stix_id, stored.first_seen
            )
            listed = c.hit.list_name if c.hit else None
            versions.append(
                (
                    date_added,
                    stored.stix_id,
                    "indicator",
                    "2.1",
                    stored.first_seen,
                    now,
                    True,
                    False,
                    False,
                    obj["name"],
                    orjson.dumps(obj).decode(),
                    feed.owner_org_id,
                    int(c.tlp),
                    feed.distribution,
                    feed.sharing_group_id,
                    self.source_tag,
                    *detection_columns(obj),
                )
            )
            observables.append((date_added, o.kind, o.value, o.ip_start, o.ip_end, listed))
            rows.append(
                feeds_store.FeedValue(
                    stored.key_hash,
                    o.value,
                    o.kind,
                    stored.stix_id,
                    stored.first_seen,
                    now,
                    False,
                    listed,
                    c.digest,
                    c.value.origin,
                )
            )
        objects_store.insert_versions(conn, versions)
        objects_store.insert_observables(conn, observables)
        feeds_store.update_values(conn, rows)
        return counts


class InlineWriter:
    """Writes each batch at once, in this process (runs of one batch)."""

    def __init__(self, batches: ValueBatches):
        self.batches = batches

    def submit(self, prepared: PreparedBatch) -> None:
        """Write the batch now."""
        self.batches.counts.add(**self.batches.write(prepared))

    def drain(self) -> None:
        """Nothing is pending."""

    def close(self) -> None:
        """Nothing to stop."""
