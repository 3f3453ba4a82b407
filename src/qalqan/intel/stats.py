"""Statistics for dashboards: new objects and sightings per day, org, country, type, TLP or
kind; the values named by the most objects; the health of feeds. Everything counts only what
the caller may see, over a bounded period (default the last 30 days, at most 366).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection

from qalqan.domain.handling import TLP
from qalqan.domain.observables import KINDS
from qalqan.domain.principal import Principal
from qalqan.errors import InvalidInput
from qalqan.intel.periods import DAY_US, Period
from qalqan.policy import may_run_feed
from qalqan.store import attack as attack_store
from qalqan.store import feeds as feeds_store
from qalqan.store import stats as store
from qalqan.store.feeds import FeedRecord
from qalqan.store.stats import OBJECT_DIMENSIONS, SIGHTING_DIMENSIONS, FeedRunState

__all__ = [
    "MAX_MIN_OBJECTS",
    "MAX_TOP_VALUES",
    "OBJECT_DIMENSIONS",
    "SIGHTING_DIMENSIONS",
    "STALE_AFTER_RUNS",
    "Counts",
    "FeedHealth",
    "TopValue",
    "feed_health",
    "object_stats",
    "parse_dimensions",
    "sighting_stats",
    "top_values",
]

MAX_TOP_VALUES: Final = 1000
MAX_MIN_OBJECTS: Final = 1_000_000
# A scheduled feed is stale when its last good run is older than this many of its intervals.
STALE_AFTER_RUNS: Final = 3
_SECOND_US: Final = 1_000_000


def parse_dimensions(text: str | Sequence[str] | None, allowed: Sequence[str]) -> list[str]:
    """``'day,org'`` (or a list of such) → the dimensions, in the order given, each once;
    InvalidInput naming ``by`` for an unknown one."""
    if text is None:
        return []
    parts = [text] if isinstance(text, str) else list(text)
    dims: list[str] = []
    for part in parts:
        for name in (p.strip().lower() for p in part.split(",")):
            if not name:
                continue
            if name not in allowed:
                raise InvalidInput(
                    f"by: unknown dimension {name!r}; use any of {', '.join(allowed)}",
                    field="by",
                )
            if name not in dims:
                dims.append(name)
    return dims


@dataclass(frozen=True, slots=True)
class Counts:
    """Rows of a grouped count: each row has the dimensions asked for (``day`` as an ISO
    date, ``org`` as id/name/country, ``tlp`` as its label) and the measures; and the totals
    over the whole period."""

    period: Period
    by: list[str]
    rows: list[dict[str, Any]]
    totals: dict[str, int]


def _day(number: Any) -> str:
    return datetime.fromtimestamp(int(number) * DAY_US / 1_000_000, UTC).date().isoformat()


def _rows(
    conn: Connection, by: Sequence[str], raw: Sequence[tuple[Any, ...]], measures: Sequence[str]
) -> list[dict[str, Any]]:
    org_ids = sorted({row[by.index("org")] for row in raw}) if "org" in by else []
    names = attack_store.org_names(conn, org_ids)
    rows = []
    for row in raw:
        out: dict[str, Any] = {}
        for name, value in zip(by, row, strict=False):
            if name == "day":
                out[name] = _day(value)
            elif name == "org":
                org_name, country = names.get(value, (value, ""))
                out[name] = {"id": value, "name": org_name, "country": country}
            elif name == "tlp":
                out[name] = TLP(int(value)).label
            else:
                out[name] = value
        for name, value in zip(measures, row[len(by) :], strict=True):
            out[name] = int(value)
        rows.append(out)
    return rows


def object_stats(
    conn: Connection, principal: Principal, period: Period, by: Sequence[str]
) -> Counts:
    """Objects (distinct) and versions added in the period that the principal may see, grouped
    by any of ``day``, ``org`` (the owner), ``country`` (the owner's), ``type`` and ``tlp``."""
    assert period.since is not None
    measures = ("objects", "versions")
    raw = store.object_counts(conn, principal, period.since, period.until, by)
    totals = store.object_counts(conn, principal, period.since, period.until, ())
    return Counts(
        period,
        list(by),
        _rows(conn, by, raw, measures),
        dict(zip(measures, (int(v) for v in totals[0]), strict=True)),
    )


def sighting_stats(
    conn: Connection, principal: Principal, period: Period, by: Sequence[str]
) -> Counts:
    """Sightings the principal may see (their number and the sum of their counts), seen in the
    period, grouped by any of ``day``, ``org`` (who reported it), ``country`` and ``kind``
    (sighting, false-positive, expiration)."""
    assert period.since is not None
    measures = ("sightings", "count")
    raw = store.sighting_counts(conn, principal, period.since, period.until, by)
    totals = store.sighting_counts(conn, principal, period.since, period.until, ())
    return Counts(
        period,
        list(by),
        _rows(conn, by, raw, measures),
        dict(zip(measures, (int(v) for v in totals[0]), strict=True)),
    )


@dataclass(frozen=True, slots=True)
class TopValue:
    kind: str
    value: str
    objects: int
    orgs: int


def top_values(
    conn: Connection,
    principal: Principal,
    period: Period,
    *,
    kinds: Sequence[str] = (),
    limit: int = 20,
    min_objects: int = 2,
    include_warninglisted: bool = False,
) -> list[TopValue]:
    """The values of the observable index named by the most distinct objects the principal may
    see among those added in the period (at least ``min_objects`` each); values on a
    warninglist are left out unless asked for."""
    assert period.since is not None
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InvalidInput(
            f"kind: unknown observable kind {unknown[0]!r}; use any of {', '.join(KINDS)}",
            field="kind",
        )
    if not 1 <= limit <= MAX_TOP_VALUES:
        raise InvalidInput(f"limit: between 1 and {MAX_TOP_VALUES}", field="limit")
    if not 1 <= min_objects <= MAX_MIN_OBJECTS:
        raise InvalidInput(f"min_objects: between 1 and {MAX_MIN_OBJECTS}", field="min_objects")
    rows = store.top_values(
        conn,
        principal,
        period.since,
        period.until,
        kinds=list(kinds) or None,
        min_objects=min_objects,
        include_warninglisted=include_warninglisted,
        limit=limit,
    )
    return [TopValue(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """A feed and how its runs go: ``stale`` when a scheduled feed has had no good run for
    :data:`STALE_AFTER_RUNS` intervals; ``healthy`` when it is enabled, has run, its last run
    did not fail and it is not stale."""

    feed: FeedRecord
    state: FeedRunState | None
    stale: bool
    healthy: bool

    @property
    def status(self) -> str:
        """``healthy``, ``disabled``, ``never-run``, ``failing`` or ``stale``."""
        if not self.feed.enabled:
            return "disabled"
        if self.state is None:
            return "stale" if self.stale else "never-run"
        if self.state.last_status == "failed":
            return "failing"
        return "stale" if self.stale else "healthy"


def _is_stale(feed: FeedRecord, state: FeedRunState | None, now: int) -> bool:
    if not feed.enabled or feed.schedule_seconds is None:
        return False
    window = STALE_AFTER_RUNS * feed.schedule_seconds * _SECOND_US
    since = state.last_success_at if state is not None else None
    return (since if since is not None else feed.created_at) < now - window


def feed_health(conn: Connection, principal: Principal, *, now: int) -> list[FeedHealth]:
    """The feeds the principal may see (its org's; every feed for node admins), by name, with
    the state of their runs."""
    feeds = [f for f in feeds_store.list_feeds(conn) if may_run_feed(principal, f.owner_org_id)]
    states = store.feed_run_states(conn, [f.id for f in feeds])
    health = []
    for feed in feeds:
        state = states.get(feed.id)
        stale = _is_stale(feed, state, now)
        healthy = (
            feed.enabled
            and state is not None
            and state.last_status != "failed"
            and state.last_success_at is not None
            and not stale
        )
        health.append(FeedHealth(feed, state, stale, healthy))
    return health
