"""An org's webhooks: add, change, remove, rotate the secret, test; and the delivery log.

The shared secret a receiver checks signatures with is never stored: it is derived from the
node's private key and the webhook's random salt, shown once when the webhook is made or its
secret rotated, and derived again at each send. A copy of the database alone cannot forge
deliveries. Every change is audited; another org's webhook is NotFound.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection

from qalqan import __version__
from qalqan.audit import node_key, record
from qalqan.domain.principal import Principal
from qalqan.domain.stix import format_timestamp
from qalqan.errors import Conflict, Forbidden, InvalidInput, NotFound
from qalqan.intel.reading import decode_cursor, encode_cursor
from qalqan.notify.channels import Outcome, check_url, post_webhook
from qalqan.notify.kinds import parse_kinds
from qalqan.policy.notify import may_manage_webhooks
from qalqan.settings import Settings
from qalqan.store import deliveries as store
from qalqan.store.clock import now_us
from qalqan.store.deliveries import DeliveryRow, WebhookRow

__all__ = [
    "MAX_WEBHOOKS",
    "CreatedWebhook",
    "WebhookChanges",
    "create_webhook",
    "delete_webhook",
    "delivery_log",
    "describe",
    "describe_delivery",
    "envelope",
    "get_webhook",
    "list_webhooks",
    "retry_delivery",
    "rotate_secret",
    "test_webhook",
    "update_webhook",
    "webhook_secret",
]

MAX_WEBHOOKS: Final = 20  # per org
_MAX_DESCRIPTION: Final = 300
_USER_AGENT: Final = f"Qalqan/{__version__}"


@dataclass(frozen=True, slots=True)
class CreatedWebhook:
    """A webhook just made (or its secret just rotated): ``secret`` is shown this once."""

    webhook: WebhookRow
    secret: str


@dataclass(frozen=True, slots=True)
class WebhookChanges:
    """None leaves a field as it is."""

    url: str | None = None
    kinds: Sequence[str] | None = None
    description: str | None = None
    active: bool | None = None


def webhook_secret(data_dir: Path, webhook: WebhookRow) -> str:
    """The webhook's shared secret, derived from the node key and the webhook's salt."""
    raw = node_key(data_dir).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    message = b"qalqan webhook\x00" + webhook.id.encode() + b"\x00" + webhook.salt.encode()
    digest = hmac.new(raw, message, hashlib.sha256).digest()
    return "whsec_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def describe(row: WebhookRow) -> dict[str, Any]:
    """A webhook as the API and CLI show it (never its secret)."""
    return {
        "id": row.id,
        "url": row.url,
        "description": row.description,
        "kinds": orjson.loads(row.kinds),
        "active": row.active,
        "created_by": row.created_by,
        "created": format_timestamp(row.created_at),
        "updated": format_timestamp(row.updated_at),
    }


def describe_delivery(row: DeliveryRow, kind: str) -> dict[str, Any]:
    """An entry of the delivery log."""

    def at(value: int | None) -> str | None:
        return None if value is None else format_timestamp(value)

    return {
        "id": row.id,
        "notification": row.notification_id,
        "kind": kind,
        "channel": row.channel,
        "webhook": row.webhook_id,
        "user": row.user_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt": at(row.next_attempt_at) if row.status == "pending" else None,
        "last_attempt": at(row.last_attempt_at),
        "last_code": row.last_code,
        "last_error": row.last_error,
        "created": format_timestamp(row.created_at),
        "delivered": at(row.delivered_at),
    }


def _admin(principal: Principal) -> None:
    if not may_manage_webhooks(principal):
        raise Forbidden("only org admins manage their org's webhooks and read its delivery log")


def _description(value: str) -> str:
    if len(value) > _MAX_DESCRIPTION:
        raise InvalidInput(
            f"description is longer than {_MAX_DESCRIPTION} characters", field="description"
        )
    return value.replace("\x00", "")


def _kinds_json(kinds: Sequence[str]) -> str:
    if isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds):
        raise InvalidInput("kinds: give a list of notification kinds", field="kinds")
    return orjson.dumps(parse_kinds(list(kinds))).decode()


def create_webhook(
    conn: Connection,
    principal: Principal,
    settings: Settings,
    *,
    url: str,
    kinds: Sequence[str] = ("*",),
    description: str = "",
    active: bool = True,
) -> CreatedWebhook:
    """Add a webhook of the principal's org; its secret is in the result and nowhere else."""
    _admin(principal)
    if len(store.list_webhooks(conn, principal.org_id)) >= MAX_WEBHOOKS:
        raise InvalidInput(f"an org has at most {MAX_WEBHOOKS} webhooks", field="url")
    now = now_us()
    row = WebhookRow(
        id=str(uuid.uuid4()),
        org_id=principal.org_id,
        url=check_url(url, allow_private=settings.webhook_allow_private),
        description=_description(description),
        kinds=_kinds_json(kinds),
        active=active,
        salt=secrets.token_hex(16),
        created_by=principal.user_id,
        created_at=now,
        updated_at=now,
    )
    store.insert_webhook(conn, row)
    record(conn, principal, "webhook.create", target=row.id,
           detail={"url": row.url, "kinds": orjson.loads(row.kinds)})  # fmt: skip
    return CreatedWebhook(row, webhook_secret(settings.data_dir, row))


def get_webhook(conn: Connection, principal: Principal, webhook_id: str) -> WebhookRow:
    """The org's webhook; NotFound for other orgs' and unknown ones alike."""
    _admin(principal)
    row = store.get_webhook(conn, webhook_id)
    if row is None or row.org_id != principal.org_id:
        raise NotFound(f"no webhook {webhook_id}")
    return row


def list_webhooks(conn: Connection, principal: Principal) -> list[WebhookRow]:
    _admin(principal)
    return store.list_webhooks(conn, principal.org_id)


def update_webhook(
    conn: Connection,
    principal: Principal,
    settings: Settings,
    webhook_id: str,
    changes: WebhookChanges,
) -> WebhookRow:
    row = get_webhook(conn, principal, webhook_id)
    values: dict[str, Any] = {}
    if changes.url is not None:
        values["url"] = check_url(changes.url, allow_private=settings.webhook_allow_private)
    if changes.kinds is not None:
        values["kinds"] = _kinds_json(changes.kinds)
    if changes.description is not None:
        values["description"] = _description(changes.description)
    if changes.active is not None:
        values["active"] = changes.active
    if values:
        values["updated_at"] = now_us()
        store.update_webhook(conn, row.id, values)
        shown = {k: orjson.loads(v) if k == "kinds" else v for k, v in values.items()}
        shown.pop("updated_at")
        record(conn, principal, "webhook.update", target=row.id, detail=shown)
    return get_webhook(conn, principal, webhook_id)


def delete_webhook(conn: Connection, principal: Principal, webhook_id: str) -> None:
    row = get_webhook(conn, principal, webhook_id)
    store.delete_webhook(conn, row.id)
    record(conn, principal, "webhook.delete", target=row.id, detail={"url": row.url})


def rotate_secret(
    conn: Connection, principal: Principal, settings: Settings, webhook_id: str
) -> CreatedWebhook:
    """Give the webhook a new secret (the old one stops verifying at once)."""
    row = get_webhook(conn, principal, webhook_id)
    store.update_webhook(conn, row.id, {"salt": secrets.token_hex(16), "updated_at": now_us()})
    record(conn, principal, "webhook.rotate_secret", target=row.id)
    fresh = get_webhook(conn, principal, webhook_id)
    return CreatedWebhook(fresh, webhook_secret(settings.data_dir, fresh))


def envelope(
    delivery_id: int | str, notification: dict[str, Any], detail: Any
) -> tuple[bytes, dict[str, str]]:
    """A webhook's JSON body and headers (before signing) for a notification."""
    body = orjson.dumps(
        {
            "delivery": delivery_id,
            "notification": notification["id"],
            "kind": notification["kind"],
            "subject": notification["subject"],
            "org": {"id": notification["org_id"], "name": notification["org_name"]},
            "user": notification.get("user_id"),
            "created": format_timestamp(notification["created_at"]),
            "detail": detail,
        }
    )
    headers = {
        "User-Agent": _USER_AGENT,
        "X-Qalqan-Event": str(notification["kind"]),
        "X-Qalqan-Delivery": str(delivery_id),
    }
    return body, headers


def test_webhook(
    conn: Connection, principal: Principal, settings: Settings, webhook_id: str
) -> Outcome:
    """Send a ``ping`` to the webhook now and say how it went (nothing is stored)."""
    row = get_webhook(conn, principal, webhook_id)
    ping = {
        "id": None,
        "kind": "ping",
        "subject": row.id,
        "org_id": row.org_id,
        "org_name": None,
        "created_at": now_us(),
    }
    body, headers = envelope(f"ping-{uuid.uuid4()}", ping, {"webhook": row.id})
    outcome = post_webhook(
        row.url,
        webhook_secret(settings.data_dir, row),
        body,
        headers,
        timestamp=int(time.time()),
        timeout=settings.notify_timeout,
        allow_private=settings.webhook_allow_private,
    )
    record(conn, principal, "webhook.test", target=row.id,
           detail={"delivered": outcome.delivered, "code": outcome.code})  # fmt: skip
    return outcome


def delivery_log(
    conn: Connection,
    principal: Principal,
    *,
    webhook_id: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[tuple[DeliveryRow, str]], str | None]:
    """One page of the org's delivery log, newest first, and the next page's cursor."""
    _admin(principal)
    if webhook_id is not None:
        get_webhook(conn, principal, webhook_id)
    before = None
    if cursor:
        before = decode_cursor(cursor)
        if not 0 < before < 2**63:
            raise InvalidInput(f"{cursor!r} is not a valid page cursor", field="cursor")
    rows = store.delivery_page(conn, principal.org_id, webhook_id=webhook_id, channel=channel,
                               status=status, before=before, limit=limit + 1)  # fmt: skip
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1][0].id) if more else None


def retry_delivery(
    conn: Connection, principal: Principal, delivery_id: int
) -> tuple[DeliveryRow, str]:
    """Send a given-up delivery again at the next round; the delivery and its kind."""
    _admin(principal)
    found = store.get_delivery(conn, delivery_id)
    if found is None or found[0].org_id != principal.org_id:
        raise NotFound(f"no delivery {delivery_id}")
    if found[0].status != "failed":
        raise Conflict(f"delivery {delivery_id} is {found[0].status}; only failed ones are retried")
    store.requeue(conn, delivery_id, now_us())
    record(conn, principal, "delivery.retry", target=str(delivery_id))
    again = store.get_delivery(conn, delivery_id)
    assert again is not None
    return again
