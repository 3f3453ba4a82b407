"""Confidence scores of indicators and their decay.

Every indicator has a row in ``indicator_scores``: the state its score follows from (its kind,
base, false-positive reports, when the decay last started, when it was reported expired), the
moment it leaves detection (``decays_at``) and its integer score as last written. The rules
are those of :mod:`qalqan.domain.decay`; here they meet the store:

- :func:`index_scores` (an indexer of ``intel.indexing``, run after every write) derives the
  state of each indicator the new versions touch — a new latest version of it, or a sighting
  of it — from its latest version and all current sightings of it, so the result does not
  depend on the order things arrived in. The decay starts when the node stored the indicator's
  latest version (a new version re-asserts it) or when a sighting last saw it, whichever is
  later: the timestamps inside the content are its producer's and may be years old.
- :func:`refresh` recomputes every stored score (and ``decays_at``, which changes only with
  the settings) as of a moment, vectorized, writing only rows that changed. Detection does not
  wait for it: exports and sweeps compare ``decays_at`` with their own "now"
  (``policy.sweep_predicate``); the stored score is for sorting and filtering.
- :func:`score_of` and :func:`list_scores` read scores as an org may see them.

The indexer runs without settings in hand (``catch_up`` is called by every writer), so it
reads the threshold and the models from :class:`~qalqan.settings.Settings` once per process
(:func:`default_config`); everything else takes a :class:`~qalqan.domain.decay.DecayConfig`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Final

import numpy as np
from sqlalchemy import Connection

from qalqan.domain import decay
from qalqan.domain.decay import NEVER, DecayConfig, DecayModel
from qalqan.domain.principal import Principal
from qalqan.domain.stix import ID_RE, detection_columns
from qalqan.errors import InvalidInput, NotFound
from qalqan.intel.reading import decode_key_cursor, encode_key_cursor
from qalqan.settings import Settings
from qalqan.store import scores as store
from qalqan.store.clock import lock_writes, now_us
from qalqan.store.scores import IndicatorHead, ScoreFilter, VisibleScore

if TYPE_CHECKING:
    from qalqan.intel.indexing import IndexBatch

__all__ = [
    "REFRESH_CHUNK",
    "RefreshReport",
    "ScorePage",
    "ScoreView",
    "config_from",
    "default_config",
    "index_scores",
    "keep_listed",
    "list_scores",
    "refresh",
    "rescore",
    "score_of",
]

REFRESH_CHUNK: Final = 100_000

Progress = Callable[[int, int], None]


def config_from(settings: Settings) -> DecayConfig:
    """The decay configuration in ``settings``; InvalidInput names a bad model."""
    try:
        return DecayConfig.from_pairs(settings.decay_threshold, settings.decay_models)
    except ValueError as exc:
        raise InvalidInput(f"decay_models: {exc}", field="decay_models") from exc


@lru_cache(maxsize=1)
def default_config() -> DecayConfig:
    """The configuration the indexer uses: read from the environment once per process."""
    return config_from(Settings())


def _optional(values: Sequence[int | None]) -> np.ndarray:
    return np.array([NEVER if v is None else v for v in values], dtype=np.int64)


def _nullable(values: np.ndarray) -> list[int | None]:
    return [None if v == NEVER else v for v in values.tolist()]


def rescore(
    conn: Connection,
    stix_ids: Sequence[str],
    *,
    now: int,
    config: DecayConfig,
    known: Sequence[IndicatorHead] = (),
    kinds: Mapping[int, str] | None = None,
) -> int:
    """Derive and store the score state of ``stix_ids`` (those that are indicators) from
    their latest versions and their sightings; returns how many were stored.

    ``known`` are latest versions the caller has in hand (they are not read again), and
    ``kinds`` the first observable kind of versions, where the caller read them already."""
    have = {h.stix_id for h in known}
    heads = [*known, *store.latest_indicators(conn, [i for i in stix_ids if i not in have])]
    if not heads:
        return 0
    found = dict(kinds or {})
    missing = [h.date_added for h in heads if h.date_added not in found]
    if missing:
        found.update(store.first_kinds(conn, missing))
    totals = store.sighting_totals(conn, [h.stix_id for h in heads])
    listed = store.listed_times(conn, [h.stix_id for h in heads])
    none = store.SightingTotals()
    rows_kind: list[str] = []
    base: list[int] = []
    false_positives: list[int] = []
    reset_at: list[int] = []
    expired_at: list[int | None] = []
    for head in heads:
        seen = totals.get(head.stix_id, none)
        rows_kind.append(found.get(head.date_added, decay.OTHER))
        base.append(decay.raised_base(head.confidence, seen.sightings))
        false_positives.append(seen.false_positives)
        reset_at.append(max(head.date_added, seen.last_seen or 0, listed.get(head.stix_id, 0)))
        expired_at.append(seen.expired_at)
    tau, delta = config.arrays(np.array(rows_kind, dtype=object))
    reset = np.array(reset_at, dtype=np.int64)
    expired = _optional(expired_at)
    base_a = np.array(base, dtype=np.int64)
    fp = np.array(false_positives, dtype=np.int64)
    until = decay.decays_at(reset, expired, base_a, fp, tau, delta, config.threshold)
    live = decay.score_at(now, reset, expired, base_a, fp, tau, delta)
    store.upsert_scores(
        conn,
        list(
            zip(
                [h.stix_id for h in heads],
                rows_kind,
                base,
                false_positives,
                reset_at,
                expired_at,
                _nullable(until),
                live.tolist(),
                [now] * len(heads),
                strict=True,
            )
        ),
    )
    return len(heads)


def keep_listed(conn: Connection, feed_id: str, since: int, now: int) -> int:
    """A feed run that started at ``since`` still lists these values: their indicators start
    decaying again at ``now`` (a blocklist's address stays live while the list names it);
    returns how many."""
    return store.keep_listed(conn, feed_id, since, now)


def index_scores(conn: Connection, batch: IndexBatch) -> None:
    """Start or update the scores of the indicators in ``batch``, and of the indicators the
    sightings in it are about (their ``sightings`` rows are written by then)."""
    known = {
        v.stix_id: IndicatorHead(v.stix_id, v.date_added, detection_columns(v.obj)[0])
        for v in batch.versions
        if v.type == "indicator" and v.is_latest
    }
    sighted: set[str] = set()
    if any(v.type == "sighting" for v in batch.versions):
        sighted.update(
            ref
            for ref in store.sighted_between(conn, batch.first, batch.last)
            if ref.startswith("indicator--") and ref not in known
        )
    if known or sighted:
        rescore(
            conn,
            sorted(sighted),
            now=now_us(),
            config=default_config(),
            known=list(known.values()),
            kinds=store.first_kinds_between(conn, batch.first, batch.last) if known else None,
        )


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What a refresh did: rows read, scores (or decay moments) changed, seconds taken."""

    rows: int
    changed: int
    decays_changed: int
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "rows": self.rows,
            "changed": self.changed,
            "decays_changed": self.decays_changed,
            "seconds": round(self.seconds, 3),
        }


def refresh(
    conn: Connection,
    *,
    now: int,
    config: DecayConfig,
    chunk: int = REFRESH_CHUNK,
    progress: Progress | None = None,
) -> RefreshReport:
    """Recompute every stored score as of ``now`` and ``decays_at`` under ``config``, in
    keyset chunks, writing only the rows where either changed. Holds the node's write turn,
    so no indexer changes a row between its read and its update."""
    started = time.perf_counter()
    lock_writes(conn)
    total = store.count_scores(conn)
    kinds = (*decay.KINDS, decay.OTHER)
    models = [config.model(kind) for kind in kinds]
    # Indexed by kind code; the last entry is for kinds not in the list.
    tau_of = np.array([m.tau_us for m in (*models, config.model(None))])
    delta_of = np.array([m.delta for m in (*models, config.model(None))])
    rows = changed = decays_changed = 0
    for part in store.iter_score_chunks(conn, kinds, chunk):
        code, base, fp, reset, expired, old_until, old_score = part.values.T
        tau, delta = tau_of[code], delta_of[code]
        until = decay.decays_at(reset, expired, base, fp, tau, delta, config.threshold)
        live = decay.score_at(now, reset, expired, base, fp, tau, delta)
        moved = until != old_until
        dirty = np.flatnonzero((live != old_score) | moved)
        if len(dirty):
            store.update_scores(
                conn,
                [part.keys[i] for i in dirty.tolist()],
                live[dirty].tolist(),
                _nullable(until[dirty]),
                now,
            )
        rows += len(part.keys)
        changed += len(dirty)
        decays_changed += int(moved.sum())
        if progress is not None:
            progress(rows, total)
    return RefreshReport(rows, changed, decays_changed, time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class ScoreView:
    """One indicator's score as a reader sees it: the stored state, its score now, its model
    and whether it takes part in detection."""

    row: VisibleScore
    score: int
    model: DecayModel
    threshold: int
    cutoff: float


def _view(row: VisibleScore, now: int, config: DecayConfig) -> ScoreView:
    model = config.model(row.kind)
    live = decay.score_at(
        now,
        np.array([row.reset_at], dtype=np.int64),
        _optional([row.expired_at]),
        np.array([row.base], dtype=np.int64),
        np.array([row.false_positives], dtype=np.int64),
        np.array([model.tau_us]),
        np.array([model.delta]),
    )
    cut = float(decay.cutoff(np.array([row.base]), config.threshold)[0])
    return ScoreView(row, int(live[0]), model, config.threshold, cut)


def score_of(
    conn: Connection, principal: Principal, stix_id: str, *, now: int, config: DecayConfig
) -> ScoreView:
    """The score of an indicator the principal may see, as of ``now``. NotFound when it is
    not visible, not an indicator, or not scored yet: an org cannot tell an invisible
    indicator from a missing one. The visibility rule is that of ``reading.get_versions``: the
    latest version's handling governs."""
    if not ID_RE.match(stix_id):
        raise InvalidInput(f"{stix_id!r} is not a STIX identifier (type--uuid)", field="id")
    row = store.get_visible_score(conn, principal, stix_id, now)
    if row is None:
        raise NotFound(f"{stix_id} is not an indicator with a score")
    return _view(row, now, config)


@dataclass(frozen=True, slots=True)
class ScorePage:
    """One page of a score listing; ``next_cursor`` is None on the last page."""

    items: list[ScoreView]
    next_cursor: str | None


def list_scores(
    conn: Connection,
    principal: Principal,
    f: ScoreFilter,
    cursor: str | None,
    limit: int,
    *,
    now: int,
    config: DecayConfig,
) -> ScorePage:
    """One page of the scores of the latest indicators the principal may see, by stored
    score (then id), filtered on the stored score; each item also has its score now."""
    if f.min_score is not None and f.max_score is not None and f.min_score > f.max_score:
        raise InvalidInput("min must not be greater than max", field="min")
    unknown = sorted(set(f.kinds or ()) - {*decay.KINDS, decay.OTHER})
    if unknown:
        raise InvalidInput(
            f"unknown kind {unknown[0]!r}; use one of {', '.join((*decay.KINDS, decay.OTHER))}",
            field="kind",
        )
    after: tuple[int, str] | None = None
    if cursor:
        score, stix_id = decode_key_cursor(cursor, (int, str))
        after = (score, stix_id)
    rows = store.list_visible_scores(conn, principal, f, now=now, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_key_cursor((rows[-1].score, rows[-1].stix_id)) if more else None
    return ScorePage([_view(r, now, config) for r in rows], next_cursor)
