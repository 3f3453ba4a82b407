"""Scheduled feed runs: in a thread of ``qalqan serve`` (embedded mode) or in ``qalqan worker``
processes (production). Several workers may poll at once: a feed's lease, taken in one UPDATE,
makes sure only one of them runs it. Now and then the same loop refreshes the stored confidence
scores of indicators (``intel.scoring.refresh``), tells requesters about requests for
assistance past their deadline (``assistance.service.notify_overdue``) and assignees about tasks
coming due (``notify.events.tasks_coming_due``); every round it delivers new notifications to
webhooks and e-mail (``notify.dispatch.deliver``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from qalqan.assistance import service as rfa_service
from qalqan.errors import Conflict, QalqanError
from qalqan.feeds import subscriptions
from qalqan.feeds.pipeline import RunReport
from qalqan.instance import Instance
from qalqan.intel import scoring
from qalqan.intel.custom_warninglists import index_for
from qalqan.notify import dispatch
from qalqan.notify import events as case_events
from qalqan.store import feeds as store
from qalqan.store.clock import now_us

__all__ = ["SCORE_REFRESH_SECONDS", "Scheduler", "refresh_scores", "run_due", "work"]

log = logging.getLogger("qalqan.feeds")

OnReport = Callable[[RunReport], None]
SCORE_REFRESH_SECONDS = 600.0


def run_due(
    instance: Instance, worker: str, stop: threading.Event | None = None
) -> list[RunReport]:
    """Run every feed that is due and not running elsewhere; returns the reports."""
    with instance.begin() as conn:
        due = store.due_feed_ids(conn, now_us())
    if not due:
        return []
    index = index_for(instance)
    reports = []
    for feed_id in due:
        if stop is not None and stop.is_set():
            break
        try:
            reports.append(
                subscriptions.run_now(
                    instance, None, feed_id, index, trigger="schedule", worker=worker
                )
            )
        except Conflict:
            continue  # another worker took it first
    return reports


def refresh_scores(instance: Instance) -> scoring.RefreshReport:
    """Recompute the stored scores of every indicator as of now, in one transaction."""
    with instance.begin() as conn:
        return scoring.refresh(conn, now=now_us(), config=scoring.config_from(instance.settings))


def work(
    instance: Instance,
    worker: str,
    stop: threading.Event,
    *,
    interval: float,
    once: bool = False,
    on_report: OnReport | None = None,
    score_every: float | None = None,
) -> None:
    """Poll for due feeds every ``interval`` seconds until ``stop`` is set; refresh the
    stored scores and send overdue notices every ``score_every`` seconds too, when given."""
    scored_at: float | None = None
    while not stop.is_set():
        try:
            for report in run_due(instance, worker, stop):
                log.info("feed %s: %s %s", report.feed, report.status, report.counts)
                if on_report is not None:
                    on_report(report)
        except QalqanError as exc:
            log.error("scheduled feeds: %s", exc.detail)
        if score_every is not None and (
            scored_at is None or time.monotonic() - scored_at >= score_every
        ):
            scored_at = time.monotonic()
            try:
                done = refresh_scores(instance)
                log.info("scores: %s of %s changed", done.changed, done.rows)
                with instance.begin() as conn:
                    overdue = rfa_service.notify_overdue(conn)
                    due = case_events.tasks_coming_due(
                        conn, hours=instance.settings.task_due_notice_hours
                    )
                if overdue:
                    log.info("requests for assistance: %s newly overdue", overdue)
                if due:
                    log.info("tasks: %s coming due", due)
            except QalqanError as exc:
                log.error("score refresh: %s", exc.detail)
            except SQLAlchemyError as exc:  # e.g. a busy database: try again next time
                log.error("score refresh: %s", exc)
        try:
            sent = dispatch.deliver(instance)
            if sent.fanned_out or sent.delivered or sent.retrying or sent.failed:
                log.info("notifications: %s", sent.to_dict())
        except QalqanError as exc:
            log.error("notification delivery: %s", exc.detail)
        except SQLAlchemyError as exc:  # e.g. a busy database: try again next time
            log.error("notification delivery: %s", exc)
        if once:
            return
        stop.wait(interval)


class Scheduler:
    """A background thread running due feeds, for ``qalqan serve`` in embedded mode."""

    def __init__(self, instance: Instance, *, interval: float = 30.0, name: str = "embedded"):
        self.instance = instance
        self.interval = interval
        self.worker = f"{name}-{threading.get_native_id()}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="qalqan-feeds", daemon=True)

    def _loop(self) -> None:
        try:
            work(
                self.instance,
                self.worker,
                self._stop,
                interval=self.interval,
                score_every=SCORE_REFRESH_SECONDS,
            )
        except Exception:
            log.exception("the feed scheduler stopped")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
