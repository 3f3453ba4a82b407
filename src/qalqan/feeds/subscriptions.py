"""Feed subscriptions: add, list, show, change, remove, and run one now.

Who may do what is asked of ``policy``: an org's admins manage its feeds, its analysts see and
run them, node admins everything; only node admins may point a feed at a file of the server.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from qalqan.audit import record
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal
from qalqan.errors import Conflict, Forbidden, InvalidInput, NotFound
from qalqan.feeds.fetch import FetchLimits, local_path
from qalqan.feeds.pipeline import Progress, RunReport, run_feed
from qalqan.feeds.sources import make_source
from qalqan.instance import Instance
from qalqan.intel import indexing, scoring
from qalqan.intel.warninglists import WarninglistIndex
from qalqan.policy import (
    handling_problem,
    may_manage_feed,
    may_read_server_files,
    may_run_feed,
)
from qalqan.store import accounts as accounts_store
from qalqan.store import feeds as store
from qalqan.store.clock import now_us

__all__ = [
    "FeedChanges",
    "FeedSpec",
    "add_feed",
    "change_feed",
    "feed_for",
    "feeds_for",
    "remove_feed",
    "run_now",
    "runs_of",
]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_LEASE_SECONDS = 600
_ACTIONS = ("flag", "drop")


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """A feed as its subscriber describes it; None means the owner org's default."""

    name: str
    source: str
    url: str
    owner_org: str | None = None
    options: Mapping[str, Any] | None = None
    tlp: TLP | None = None
    distribution: Distribution | None = None
    sharing_group: str | None = None
    confidence: int | None = None
    schedule_seconds: int | None = None
    expire_after_seconds: int | None = None
    on_warninglist: str = "flag"
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class FeedChanges:
    """Changes to a feed; None leaves a setting as it is."""

    url: str | None = None
    options: Mapping[str, Any] | None = None
    tlp: TLP | None = None
    distribution: Distribution | None = None
    sharing_group: str | None = None
    confidence: int | None = None
    schedule_seconds: int | None = None
    expire_after_seconds: int | None = None
    on_warninglist: str | None = None
    enabled: bool | None = None
    clear_schedule: bool = False
    clear_expiry: bool = False


def _check_url(principal: Principal | None, url: str) -> None:
    if len(url) > 4000:
        raise InvalidInput("the URL is longer than 4000 characters", field="url")
    path = local_path(url)
    if path is not None:
        if principal is not None and not may_read_server_files(principal):
            raise Forbidden("only node administrators may subscribe to files of the server")
        if not path.is_absolute():
            raise InvalidInput(f"file URL {url!r} must name an absolute path", field="url")
    elif not url.lower().startswith(("http://", "https://")):
        raise InvalidInput(f"URL {url!r} must start with http://, https:// or file://", field="url")


def _check_settings(
    conn: Connection,
    org: accounts_store.OrgRecord,
    tlp: TLP,
    distribution: Distribution,
    group_ref: str | None,
    confidence: int | None,
    schedule: int | None,
    expire_after: int | None,
    on_warninglist: str,
) -> str | None:
    """Check a feed's handling and numbers; returns the sharing group id."""
    group = accounts_store.resolve_sharing_group(
        conn, org, distribution is Distribution.SHARING_GROUP, group_ref
    )
    group_id = group.id if group else None
    why = handling_problem(tlp, distribution, group_id)
    if why:
        raise InvalidInput(f"feed handling refused: {why}", field="distribution")
    if confidence is not None and not 0 <= confidence <= 100:
        raise InvalidInput("confidence is a number from 0 to 100", field="confidence")
    if schedule is not None and not 10 <= schedule <= 366 * 86400:
        raise InvalidInput("the schedule is between 10 s and a year", field="schedule")
    if expire_after is not None and not 0 <= expire_after <= 10 * 366 * 86400:
        raise InvalidInput("expire-after is between 0 s and ten years", field="expire_after")
    if on_warninglist not in _ACTIONS:
        raise InvalidInput("on-warninglist is 'flag' or 'drop'", field="on_warninglist")
    return group_id


def add_feed(conn: Connection, principal: Principal, spec: FeedSpec) -> store.FeedRecord:
    """Subscribe an org to a feed; the first run happens on schedule or when asked."""
    if not _NAME_RE.fullmatch(spec.name):
        raise InvalidInput(
            "a feed name is 1-100 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit",
            field="name",
        )
    org = accounts_store.get_org(conn, spec.owner_org or principal.org_id)
    if not may_manage_feed(principal, org.id):
        raise Forbidden(f"you may not manage the feeds of {org.name!r}")
    _check_url(principal, spec.url)
    options = dict(spec.options or {})
    source = make_source(spec.source, options)
    tlp = spec.tlp if spec.tlp is not None else TLP(org.default_tlp)
    distribution = spec.distribution or Distribution(org.default_distribution)
    group_ref = spec.sharing_group
    if distribution is Distribution.SHARING_GROUP and group_ref is None:
        group_ref = org.default_sharing_group_id
    group_id = _check_settings(
        conn,
        org,
        tlp,
        distribution,
        group_ref,
        spec.confidence,
        spec.schedule_seconds,
        spec.expire_after_seconds,
        spec.on_warninglist,
    )
    now = now_us()
    feed = store.FeedRecord(
        id=str(uuid.uuid4()),
        name=spec.name,
        source=spec.source,
        url=spec.url,
        options=source.options.model_dump(mode="json", exclude_defaults=True),
        owner_org_id=org.id,
        tlp=int(tlp),
        distribution=distribution.value,
        sharing_group_id=group_id,
        confidence=spec.confidence,
        schedule_seconds=spec.schedule_seconds,
        expire_after_seconds=spec.expire_after_seconds,
        on_warninglist=spec.on_warninglist,
        enabled=spec.enabled,
        state={},
        created_at=now,
        created_by=principal.user_id,
        next_run_at=now if spec.schedule_seconds else None,
    )
    store.insert_feed(conn, feed)
    record(
        conn,
        principal,
        "feed.add",
        target=feed.id,
        detail={"name": feed.name, "source": feed.source, "org": org.name},
    )
    return feed


def feeds_for(conn: Connection, principal: Principal) -> list[store.FeedRecord]:
    """The feeds the principal may see: all for node admins, else its org's."""
    if may_read_server_files(principal):
        return store.list_feeds(conn)
    if not may_run_feed(principal, principal.org_id):
        return []
    return store.list_feeds(conn, principal.org_id)


def feed_for(conn: Connection, principal: Principal, ref: str) -> store.FeedRecord:
    """One feed the principal may see; NotFound for others, as if they did not exist."""
    feed = store.get_feed(conn, ref)
    if not may_run_feed(principal, feed.owner_org_id):
        raise NotFound(f"no feed {ref!r}")
    return feed


def change_feed(
    conn: Connection, principal: Principal, ref: str, changes: FeedChanges
) -> store.FeedRecord:
    """Change a feed's settings, or enable/disable it."""
    feed = feed_for(conn, principal, ref)
    if not may_manage_feed(principal, feed.owner_org_id):
        raise Forbidden(f"you may not change feed {feed.name!r}")
    org = accounts_store.get_org(conn, feed.owner_org_id)
    values: dict[str, Any] = {}
    if changes.url is not None:
        _check_url(principal, changes.url)
        values["url"] = changes.url
    if changes.options is not None:
        merged = {**feed.options, **changes.options}
        source = make_source(feed.source, merged)
        values["options"] = source.options.model_dump(mode="json", exclude_defaults=True)
    tlp = changes.tlp if changes.tlp is not None else TLP(feed.tlp)
    distribution = changes.distribution or Distribution(feed.distribution)
    group_ref = changes.sharing_group
    if group_ref is None and distribution is Distribution.SHARING_GROUP:
        group_ref = feed.sharing_group_id
    schedule = None if changes.clear_schedule else changes.schedule_seconds
    if schedule is None and not changes.clear_schedule:
        schedule = feed.schedule_seconds
    expire_after = None if changes.clear_expiry else changes.expire_after_seconds
    if expire_after is None and not changes.clear_expiry:
        expire_after = feed.expire_after_seconds
    confidence = changes.confidence if changes.confidence is not None else feed.confidence
    action = changes.on_warninglist or feed.on_warninglist
    group_id = _check_settings(
        conn, org, tlp, distribution, group_ref, confidence, schedule, expire_after, action
    )
    values.update(
        tlp=int(tlp),
        distribution=distribution.value,
        sharing_group_id=group_id,
        confidence=confidence,
        schedule_seconds=schedule,
        expire_after_seconds=expire_after,
        on_warninglist=action,
    )
    if changes.enabled is not None:
        values["enabled"] = changes.enabled
    if schedule != feed.schedule_seconds or changes.enabled:
        values["next_run_at"] = now_us() if schedule else None
    store.update_feed(conn, feed.id, **values)
    shown = {k: v for k, v in values.items() if k != "options"}
    record(conn, principal, "feed.change", target=feed.id, detail={"name": feed.name, **shown})
    return store.get_feed(conn, feed.id)


def remove_feed(conn: Connection, principal: Principal, ref: str) -> store.FeedRecord:
    """Unsubscribe: the feed, its runs and its value list go; the indicators it stored stay."""
    feed = feed_for(conn, principal, ref)
    if not may_manage_feed(principal, feed.owner_org_id):
        raise Forbidden(f"you may not remove feed {feed.name!r}")
    store.delete_feed(conn, feed.id)
    record(conn, principal, "feed.remove", target=feed.id, detail={"name": feed.name})
    return feed


def runs_of(
    conn: Connection, principal: Principal, ref: str, limit: int = 10
) -> tuple[store.FeedRecord, list[store.RunRecord]]:
    """A feed and its latest runs, newest first."""
    feed = feed_for(conn, principal, ref)
    return feed, store.list_runs(conn, feed.id, limit)


def run_now(
    instance: Instance,
    principal: Principal | None,
    ref: str,
    warninglists: WarninglistIndex,
    *,
    trigger: str,
    worker: str | None = None,
    progress: Progress | None = None,
    limits: FetchLimits | None = None,
) -> RunReport:
    """Run a feed now (``principal`` None: the scheduler). Conflict if it is running already:
    a feed's lease makes sure two workers never run it at once."""
    worker = worker or f"{trigger}-{uuid.uuid4()}"
    with instance.begin() as conn:
        feed = store.get_feed(conn, ref) if principal is None else feed_for(conn, principal, ref)
        now = now_us()
        if not store.claim(conn, feed.id, worker, now, now + _LEASE_SECONDS * 1_000_000):
            raise Conflict(f"feed {feed.name!r} is running already")
    renewed = [now]

    def advance(count: int) -> None:
        current = now_us()
        if current - renewed[0] > _LEASE_SECONDS * 1_000_000 // 4:
            with instance.begin() as conn:
                store.claim_renew(conn, feed.id, worker, current + _LEASE_SECONDS * 1_000_000)
            renewed[0] = current
        if progress is not None:
            progress(count)

    try:
        report = run_feed(
            instance, feed, warninglists, trigger=trigger, limits=limits, progress=advance
        )
    finally:
        with instance.begin() as conn:
            later = store.get_feed(conn, feed.id)
            schedule = later.schedule_seconds
            next_run = now_us() + schedule * 1_000_000 if schedule and later.enabled else None
            store.release(conn, feed.id, worker, next_run)
    with instance.begin() as conn:
        indexing.catch_up(conn)
        if report.status == "ok":
            scoring.keep_listed(conn, feed.id, report.started_at, now_us())
        record(
            conn,
            principal,
            "feed.run",
            target=feed.id,
            detail={"name": feed.name, "status": report.status, **report.counts},
        )
    return report
