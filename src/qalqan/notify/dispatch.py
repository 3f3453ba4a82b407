"""Delivering notifications: fan each new one out to its webhooks and e-mail recipients, then
send what is due, retrying failures with growing waits.

Both steps run in the background worker (and in ``qalqan serve``'s scheduler) every round, and
by hand with ``qalqan notify deliver``. Fan-out happens once per notification, in one
transaction with marking it dispatched; sending leases a few deliveries at a time, sends them
outside any transaction (a slow receiver holds no lock), then writes each outcome. A failed
attempt that may succeed later is tried again after ``notify_retry_seconds`` times 4^n (at most six
hours) until ``notify_max_attempts``; then, or at once for a final refusal, it is ``failed``
and stays in the delivery log, where an org admin can send it again.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import Connection, select

from qalqan.domain.principal import Role
from qalqan.domain.stix import format_timestamp
from qalqan.instance import Instance
from qalqan.notify.channels import Outcome, post_webhook, send_email
from qalqan.notify.kinds import ALL, KINDS
from qalqan.notify.preferences import email_wanted
from qalqan.notify.webhooks import envelope, webhook_secret
from qalqan.settings import Settings
from qalqan.store import deliveries as store
from qalqan.store.clock import now_us
from qalqan.store.deliveries import DeliveryRow, WebhookRow
from qalqan.store.tables import users

__all__ = ["DeliveryReport", "deliver", "email_text", "fan_out", "retry_delay", "send_due"]

_SECOND: Final = 1_000_000
_MAX_WAIT: Final = 6 * 3600 * _SECOND
_BATCH: Final = 20
_MAIL_ROLES: Final = (Role.NODE_ADMIN, Role.ORG_ADMIN, Role.ANALYST, Role.READER)


@dataclass(slots=True)
class DeliveryReport:
    """What one round did."""

    fanned_out: int = 0  # notifications
    queued: int = 0  # deliveries made from them
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fanned_out": self.fanned_out,
            "queued": self.queued,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
            "errors": self.errors[:20],
        }


def retry_delay(settings: Settings, attempts: int) -> int:
    """Microseconds to wait after the ``attempts``-th failed attempt."""
    wait = settings.notify_retry_seconds * _SECOND * 4 ** max(attempts - 1, 0)
    return int(min(wait, _MAX_WAIT))


def fan_out(
    conn: Connection, settings: Settings, *, now: int, limit: int = 1000
) -> tuple[int, int]:
    """Make the deliveries of up to ``limit`` new notifications; (notifications, deliveries).
    E-mail deliveries are made only when an SMTP server is configured."""
    pending = store.undispatched(conn, limit)
    if not pending:
        return 0, 0
    org_ids = sorted({n.org_id for n in pending})
    # Each webhook's kinds are read once per round, not once per notification.
    hooks: dict[str, list[tuple[WebhookRow, frozenset[str]]]] = defaultdict(list)
    for hook in store.webhooks_of_orgs(conn, org_ids):
        hooks[hook.org_id].append((hook, frozenset(orjson.loads(hook.kinds))))
    people: dict[str, list[str]] = defaultdict(list)
    chosen: dict[str, dict[str, bool]] = {}
    if settings.smtp_host:
        found = store.org_recipients(conn, org_ids, [r.value for r in _MAIL_ROLES])
        for user_id, org_id, _email in found:
            people[org_id].append(user_id)
        chosen = store.preferences_of(conn, [u for u, _, _ in found])
    rows: list[dict[str, Any]] = []
    for n in pending:
        base = {"notification_id": n.id, "org_id": n.org_id, "created_at": now}
        rows.extend({**base, "channel": "webhook", "webhook_id": h.id, "user_id": None}
                    for h, kinds in hooks[n.org_id] if ALL in kinds or n.kind in kinds)  # fmt: skip
        for user_id in people[n.org_id]:
            if n.user_id is not None and user_id != n.user_id:
                continue
            if email_wanted(n.kind, chosen.get(user_id, {})):
                rows.append({**base, "channel": "email", "webhook_id": None, "user_id": user_id})
    store.insert_deliveries(conn, rows)
    store.mark_dispatched(conn, [n.id for n in pending], now)
    return len(pending), len(rows)


def email_text(notification: dict[str, Any], detail: Any) -> tuple[str, str]:
    """Subject and plain-text body of a notification's e-mail. Values are text: nothing in
    them is markup or a header."""
    kind = KINDS.get(str(notification["kind"]))
    summary = kind.summary if kind else str(notification["kind"])
    title = detail.get("title") if isinstance(detail, dict) else None
    subject = f"[Qalqan] {summary}" + (f": {title}" if isinstance(title, str) and title else "")
    lines = [summary + ".", ""]
    if isinstance(detail, dict):
        for key, value in detail.items():
            if value is None or value == "" or value == []:
                continue
            shown = value if isinstance(value, str) else orjson.dumps(value).decode()
            lines.append(f"{key}: {shown}")
    lines += [
        "",
        f"Org: {notification['org_name']}",
        f"Created: {format_timestamp(notification['created_at'])}",
        f"Notification: {notification['id']} ({notification['kind']})",
        "",
        "You get this because of your e-mail choices in Qalqan; change them under "
        "notifications/preferences.",
    ]
    return subject, "\n".join(lines) + "\n"


def _email_of(conn: Connection, user_id: str | None) -> str | None:
    if user_id is None:
        return None
    found = conn.execute(
        select(users.c.email).where(users.c.id == user_id, users.c.disabled.is_(False))
    ).scalar_one_or_none()
    return None if found is None else str(found)


def _send_one(instance: Instance, row: DeliveryRow, secrets: dict[str, str]) -> Outcome:
    settings = instance.settings
    with instance.begin() as conn:
        notification = store.notification_for(conn, row.notification_id)
        hook = store.get_webhook(conn, row.webhook_id) if row.webhook_id else None
        address = _email_of(conn, row.user_id) if row.channel == "email" else None
    if notification is None:
        return Outcome(False, error="the notification no longer exists")
    detail = orjson.loads(notification["detail"])
    if row.channel == "webhook":
        if hook is None or not hook.active:
            return Outcome(False, error="the webhook was removed or switched off")
        if hook.id not in secrets:
            secrets[hook.id] = webhook_secret(settings.data_dir, hook)
        body, headers = envelope(row.id, notification, detail)
        return post_webhook(hook.url, secrets[hook.id], body, headers,
                            timestamp=int(time.time()), timeout=settings.notify_timeout,
                            allow_private=settings.webhook_allow_private)  # fmt: skip
    if address is None:
        return Outcome(False, error="the user no longer exists or is disabled")
    subject, text = email_text(notification, detail)
    return send_email(settings, address, subject, text)


def send_due(
    instance: Instance,
    *,
    now: Callable[[], int] = now_us,
    limit: int = 1000,
    report: DeliveryReport | None = None,
) -> DeliveryReport:
    """Send up to ``limit`` due deliveries, a batch at a time, and record each outcome."""
    settings = instance.settings
    report = report or DeliveryReport()
    secrets: dict[str, str] = {}
    lease = int(_BATCH * (settings.notify_timeout + 5) * _SECOND)
    done = 0
    due_by = now()  # what falls due during the round (a quick retry) waits for the next
    while done < limit:
        at = max(now(), due_by)
        with instance.begin() as conn:
            batch = store.claim_due(conn, due_by, at + lease, min(_BATCH, limit - done))
        if not batch:
            break
        for row in batch:
            outcome = _send_one(instance, row, secrets)
            attempts = row.attempts + 1
            at = now()
            if outcome.delivered:
                status, next_at = "delivered", None
                report.delivered += 1
            elif outcome.retry and attempts < settings.notify_max_attempts:
                status, next_at = "pending", at + retry_delay(settings, attempts)
                report.retrying += 1
            else:
                status, next_at = "failed", None
                report.failed += 1
            if not outcome.delivered and outcome.error:
                report.errors.append(f"delivery {row.id} ({row.channel}): {outcome.error}")
            with instance.begin() as conn:
                store.record_attempt(conn, row.id, at=at, status=status, code=outcome.code,
                                     error=outcome.error, next_attempt_at=next_at)  # fmt: skip
        done += len(batch)
    return report


def deliver(instance: Instance, *, now: Callable[[], int] = now_us) -> DeliveryReport:
    """One round: fan out what is new, then send what is due."""
    report = DeliveryReport()
    while True:
        with instance.begin() as conn:
            notes, rows = fan_out(conn, instance.settings, now=now())
        report.fanned_out += notes
        report.queued += rows
        if notes == 0:
            break
    return send_due(instance, now=now, report=report)
