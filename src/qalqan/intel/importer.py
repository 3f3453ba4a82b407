"""Ingest STIX 2.1 objects: validate each, apply handling, version, index observables, store.

The importer collects findings instead of stopping at the first: every object is accepted or
rejected on its own (index, id, field, reason) and the accepted ones are written in one
transaction, so a batch is never half-written.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection

from qalqan.audit import record
from qalqan.domain import patterns
from qalqan.domain.handling import OFFICIAL_MARKING_IDS, TLP, Distribution, tlp_from_marking_id
from qalqan.domain.observables import Observable, from_sco
from qalqan.domain.principal import Principal
from qalqan.domain.stix import (
    check_bundle,
    check_object,
    detection_columns,
    object_kind,
    parse_timestamp,
    references,
)
from qalqan.errors import Forbidden, InvalidInput
from qalqan.intel import indexing
from qalqan.policy import handling_problem, may_write
from qalqan.store import accounts as accounts_store
from qalqan.store import objects as objects_store
from qalqan.store.clock import lock_writes, reserve_date_added

if TYPE_CHECKING:
    from qalqan.intel.warninglists import WarninglistIndex

__all__ = [
    "Acceptance",
    "HandlingRequest",
    "ImportReport",
    "Rejection",
    "collector_paused",
    "import_objects",
    "load_document",
    "objects_of",
]

_WRITE_CHUNK = 5000

Progress = Callable[[int], None]
_Stored = dict[str, list[objects_store.ExistingVersion]]  # stored versions by STIX id


@dataclass(frozen=True, slots=True)
class Rejection:
    """An object the importer refused, and why."""

    index: int
    id: str | None
    field: str | None
    reason: str
    code: str = "invalid_input"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.id,
            "field": self.field,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass(frozen=True, slots=True)
class Acceptance:
    """An object the importer stored (``created``) or already had (``unchanged``)."""

    index: int
    id: str
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "status": self.status}


@dataclass(slots=True)
class ImportReport:
    """What happened to each object of a batch."""

    accepted: list[Acceptance] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    warninglisted: int = 0  # observables of stored objects that are on a warninglist

    @property
    def created(self) -> int:
        return sum(1 for a in self.accepted if a.status == "created")

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": len(self.accepted),
            "created": self.created,
            "unchanged": len(self.accepted) - self.created,
            "rejected": len(self.rejected),
            "warninglisted": self.warninglisted,
            "objects": [a.to_dict() for a in self.accepted],
            "errors": [r.to_dict() for r in self.rejected],
        }


@dataclass(frozen=True, slots=True)
class HandlingRequest:
    """Handling the submitter asks for; what is None comes from the org's defaults."""

    tlp: TLP | None = None
    distribution: Distribution | None = None
    sharing_group: str | None = None


@dataclass(slots=True)
class _Candidate:
    index: int
    obj: dict[str, Any]
    stix_id: str
    type: str
    created: int | None
    modified: int
    tlp: TLP
    content: bytes
    refs: list[tuple[str, str]]
    observables: tuple[Observable, ...] = ()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cycle collector for the length of a batch (imports, feed batches).

    A batch allocates several objects per STIX object and makes no reference cycles; the
    collector would otherwise walk the whole growing heap again and again (about a sixth of the
    time of a large import).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_document(data: bytes | str, source: str = "the document") -> Any:
    """Parse JSON text; InvalidInput naming ``source`` if it is not JSON."""
    with collector_paused():
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"{source} is not valid JSON: {exc}") from None


def objects_of(document: Any) -> list[Any]:
    """The objects of a bundle, a JSON list of objects, or a single object."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if document.get("type") == "bundle":
            problems = check_bundle(document)
            if problems:
                p = problems[0]
                raise InvalidInput(f"not a STIX 2.1 bundle: {p.field} {p.reason}", field=p.field)
            objects = document.get("objects", [])
            assert isinstance(objects, list)
            return objects
        if "type" in document:
            return [document]
    raise InvalidInput(
        "expected a STIX 2.1 bundle, a list of STIX objects or one STIX object", field="type"
    )


def _same_content(stored: str | bytes | None, obj: dict[str, Any]) -> bool:
    """Equal as JSON values, whatever the key order or spacing."""
    return stored is not None and bool(orjson.loads(stored) == obj)


class _Batch:
    """The state of one import: candidates still in the running and the findings so far."""

    def __init__(
        self, principal: Principal, tlp: TLP, distribution: Distribution, group: str | None
    ):
        self.principal = principal
        self.tlp = tlp
        self.distribution = distribution
        self.group = group
        self.report = ImportReport()
        self.candidates: list[_Candidate] = []

    def reject(
        self,
        index: int,
        stix_id: str | None,
        fld: str | None,
        reason: str,
        code: str = "invalid_input",
    ) -> None:
        self.report.rejected.append(Rejection(index, stix_id, fld, reason, code))

    def examine(self, index: int, obj: Any) -> None:
        """Structural, pattern and handling checks of one object, in memory."""
        stix_id = obj.get("id") if isinstance(obj, dict) else None
        stix_id = stix_id if isinstance(stix_id, str) else None
        problems = check_object(obj)
        if problems:
            first = problems[0]
            reason = "; ".join(f"{p.field}: {p.reason}" for p in problems[1:4])
            self.reject(
                index, stix_id, first.field, first.reason + (f" (also {reason})" if reason else "")
            )
            return
        assert isinstance(obj, dict)
        assert stix_id is not None
        type_name: str = obj["type"]
        found: tuple[Observable, ...] = ()
        if type_name == "indicator" and obj.get("pattern_type") == "stix":
            why = patterns.validate(obj["pattern"])
            if why is not None:
                self.reject(index, stix_id, "pattern", why)
                return
            found = patterns.analyze(obj["pattern"]).observables
        elif object_kind(type_name) == "sco":
            found = tuple(from_sco(obj))
        tlp = self.tlp
        for ref in obj.get("object_marking_refs", ()):
            own = tlp_from_marking_id(ref)
            if own is not None and own > tlp:
                tlp = own
        why = handling_problem(tlp, self.distribution, self.group)
        if why is not None:
            self.reject(index, stix_id, "object_marking_refs", why, "policy_violation")
            return
        created = obj.get("created")
        created_us = parse_timestamp(created) if created else None
        modified = obj.get("modified")
        content = orjson.dumps(obj)
        self.candidates.append(
            _Candidate(
                index=index,
                obj=obj,
                stix_id=stix_id,
                type=type_name,
                created=created_us,
                modified=parse_timestamp(modified) if modified else (created_us or 0),
                tlp=tlp,
                content=content,
                refs=references(obj),
                observables=found,
            )
        )

    def drop_dangling(self, conn: Connection) -> None:
        """Refuse objects whose references resolve neither in the batch nor in the store."""
        in_batch = {c.stix_id for c in self.candidates}
        wanted = (
            {ref for c in self.candidates for _, ref in c.refs} - in_batch - OFFICIAL_MARKING_IDS
        )
        # Official TLP markings (2.0, and the 1.0 ones STIX 2.1 predefines) always resolve.
        known = objects_store.visible_existing_ids(conn, self.principal, wanted)
        known |= OFFICIAL_MARKING_IDS
        while True:
            alive = {c.stix_id for c in self.candidates}
            kept: list[_Candidate] = []
            for c in self.candidates:
                missing = next(
                    ((f, r) for f, r in c.refs if r not in alive and r not in known), None
                )
                if missing is None:
                    kept.append(c)
                else:
                    self.reject(
                        c.index,
                        c.stix_id,
                        missing[0],
                        f"refers to {missing[1]}, which is neither in this batch nor stored",
                    )
            if len(kept) == len(self.candidates):
                return
            self.candidates = kept

    def sort_out_versions(self, conn: Connection) -> tuple[list[_Candidate], _Stored]:
        """Split candidates into new versions and ones already stored; refuse conflicts.

        A version already stored (or earlier in the batch) counts as unchanged when its content
        is the same JSON value, whatever the key order; otherwise it is a conflict.
        """
        existing = objects_store.existing_versions(
            conn, sorted({c.stix_id for c in self.candidates})
        )
        stored = {(v.stix_id, v.modified) for vs in existing.values() for v in vs}
        foreign = {
            stix_id
            for stix_id, versions in existing.items()
            if any(v.owner_org_id != self.principal.org_id for v in versions)
        }
        foreign_visible = objects_store.visible_existing_ids(conn, self.principal, foreign)
        resubmitted = objects_store.stored_contents(
            conn, [key for c in self.candidates if (key := (c.stix_id, c.modified)) in stored]
        )
        in_batch: dict[tuple[str, int], bytes] = {}
        fresh: list[_Candidate] = []
        for c in self.candidates:
            key = (c.stix_id, c.modified)
            if key in in_batch:
                same = in_batch[key] == c.content or _same_content(in_batch[key], c.obj)
            elif key in stored:
                same = _same_content(resubmitted.get(key), c.obj)
            elif c.stix_id in foreign:
                same = False
            else:
                in_batch[key] = c.content
                fresh.append(c)
                continue
            if c.stix_id in foreign and not (same and c.stix_id in foreign_visible):
                # Another org's object: identical content already shared with the submitter is
                # nothing to store; anything else would be a version only its owner may add.
                self.reject(
                    c.index,
                    c.stix_id,
                    "id",
                    "the object belongs to another organization; only its owner may add versions",
                    "forbidden",
                )
            elif same:
                self.report.accepted.append(Acceptance(c.index, c.stix_id, "unchanged"))
            else:
                self.reject(
                    c.index,
                    c.stix_id,
                    "modified",
                    "a version with this id and modified timestamp exists with different content",
                    "conflict",
                )
        return fresh, existing

    @staticmethod
    def _latest_marks(
        fresh: list[_Candidate], existing: _Stored
    ) -> tuple[set[tuple[str, int]], list[int]]:
        """The new versions that become the latest of their object, and the stored versions
        (by ``date_added``) that stop being it. An older version arriving late changes nothing."""
        newest: dict[str, int] = {}
        for c in fresh:
            newest[c.stix_id] = max(c.modified, newest.get(c.stix_id, -1))
        becomes_latest: set[tuple[str, int]] = set()
        superseded: list[int] = []
        for stix_id, modified in newest.items():
            stored = existing.get(stix_id)
            if not stored:
                becomes_latest.add((stix_id, modified))
            elif all(modified > v.modified for v in stored):
                becomes_latest.add((stix_id, modified))
                superseded.extend(v.date_added for v in stored if v.is_latest)
        return becomes_latest, superseded

    def _flag(
        self, warninglists: WarninglistIndex, observables: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """The observable rows with the warninglist each value is on, if any."""
        hits = warninglists.check_many([o[1] for o in observables], [o[2] for o in observables])
        flagged = [
            (*o[:5], hit.list_name) if hit else o for o, hit in zip(observables, hits, strict=True)
        ]
        self.report.warninglisted += sum(1 for hit in hits if hit is not None)
        return flagged

    def write(
        self,
        conn: Connection,
        fresh: list[_Candidate],
        existing: _Stored,
        source: str,
        progress: Progress | None,
        warninglists: WarninglistIndex | None = None,
    ) -> None:
        """Store the new versions and their observables, and move the ``latest`` marks."""
        if not fresh:
            return
        becomes_latest, superseded = self._latest_marks(fresh, existing)
        first = reserve_date_added(conn, len(fresh))
        objects_store.supersede(conn, superseded)
        owner, dist, group = self.principal.org_id, self.distribution.value, self.group
        for start in range(0, len(fresh), _WRITE_CHUNK):
            chunk = fresh[start : start + _WRITE_CHUNK]
            rows: list[tuple[Any, ...]] = []
            observables: list[tuple[Any, ...]] = []
            for offset, c in enumerate(chunk, start):
                date_added = first + offset
                obj = c.obj
                name = obj.get("name")
                if isinstance(name, str):
                    # The column only serves the name search and PostgreSQL text cannot hold
                    # NUL; the content keeps the object exactly as sent.
                    name = name.replace("\x00", "")
                # Column order of objects_store.VERSION_COLUMNS.
                rows.append(
                    (
                        date_added,
                        c.stix_id,
                        c.type,
                        obj.get("spec_version"),
                        c.created,
                        c.modified,
                        (c.stix_id, c.modified) in becomes_latest,
                        obj.get("revoked") is True,
                        False,
                        name if isinstance(name, str) else None,
                        c.content.decode(),
                        owner,
                        int(c.tlp),
                        dist,
                        group,
                        source,
                        *detection_columns(obj),
                    )
                )
                observables.extend(
                    (date_added, o.kind, o.value, o.ip_start, o.ip_end, None) for o in c.observables
                )
                self.report.accepted.append(Acceptance(c.index, c.stix_id, "created"))
            objects_store.insert_versions(conn, rows)
            if warninglists is not None and observables:
                observables = self._flag(warninglists, observables)
            objects_store.insert_observables(conn, observables)
            if progress is not None:
                progress(len(chunk))


def import_objects(
    conn: Connection,
    principal: Principal,
    objects: Sequence[Any],
    handling: HandlingRequest | None = None,
    *,
    source: str | None = None,
    progress: Progress | None = None,
    warninglists: WarninglistIndex | None = None,
) -> ImportReport:
    """Validate and store ``objects`` for the principal's org, inside the caller's transaction.

    With ``warninglists``, the observables of stored objects that are on one are flagged in the
    observable index (and counted in the report).

    Each object is accepted or rejected on its own; ``progress`` is called with the number of
    objects handled as the work advances. Raises ``Forbidden`` if the principal may not write and
    ``InvalidInput`` if the requested handling itself is wrong (unknown sharing group, ...).
    """
    if not may_write(principal, None):
        raise Forbidden(f"role {principal.role} may not submit intelligence")
    handling = handling or HandlingRequest()
    org = accounts_store.get_org(conn, principal.org_id)
    tlp = handling.tlp if handling.tlp is not None else TLP(org.default_tlp)
    distribution = handling.distribution or Distribution(org.default_distribution)
    wants_group = distribution is Distribution.SHARING_GROUP
    found = accounts_store.resolve_sharing_group(
        conn,
        org,
        wants_group,
        (handling.sharing_group or org.default_sharing_group_id)
        if wants_group
        else handling.sharing_group,
        not_member=Forbidden,
    )
    group = found.id if found else None

    batch = _Batch(principal, tlp, distribution, group)
    with collector_paused():
        for index, obj in enumerate(objects):
            batch.examine(index, obj)
        examined = len(objects) - len(batch.candidates)
        # From here on writers take turns, so what is read next is what the write will meet.
        lock_writes(conn)
        batch.drop_dangling(conn)
        fresh, existing = batch.sort_out_versions(conn)
        if progress is not None:
            progress(examined + len(batch.candidates) - len(fresh))
        batch.write(
            conn, fresh, existing, source or f"user:{principal.user_id}", progress, warninglists
        )
        if fresh:
            indexing.catch_up(conn)
    batch.report.accepted.sort(key=lambda a: a.index)
    batch.report.rejected.sort(key=lambda r: r.index)
    record(
        conn,
        principal,
        "objects.import",
        target=None,
        detail={
            "accepted": len(batch.report.accepted),
            "created": batch.report.created,
            "rejected": len(batch.report.rejected),
            "tlp": tlp.label,
            "distribution": distribution.value,
        },
    )
    return batch.report
