"""REST: where notifications go — an org's webhooks and delivery log (org admins), and what
each user gets by e-mail."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from qalqan.api.deps import CurrentInstance, CurrentPrincipal, DbConn
from qalqan.api.notify_schemas import (
    DeliveryPage,
    DeliveryPublic,
    PreferencePublic,
    PreferencesUpdate,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhookTest,
    WebhookUpdate,
)
from qalqan.api.problems import problem_responses
from qalqan.notify import preferences, webhooks
from qalqan.notify.webhooks import WebhookChanges

__all__ = ["router"]

router = APIRouter(tags=["notifications"], responses=problem_responses(400, 401, 403, 404))

WebhookId = Annotated[str, Path(max_length=64)]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@router.get(
    "/notifications/preferences",
    response_model=list[PreferencePublic],
    summary="What you get by e-mail, per kind of notification",
)
def get_preferences(conn: DbConn, principal: CurrentPrincipal) -> Response:
    """Without a choice, what is addressed to you personally comes by e-mail and what is
    addressed to your whole org does not. In-app notifications are always kept."""
    return _json(preferences.get_preferences(conn, principal))


@router.put(
    "/notifications/preferences",
    response_model=list[PreferencePublic],
    summary="Choose, per kind, whether you get it by e-mail",
)
def set_preferences(conn: DbConn, principal: CurrentPrincipal, body: PreferencesUpdate) -> Response:
    return _json(preferences.set_preferences(conn, principal, body.email))


@router.get("/webhooks", response_model=list[WebhookPublic], summary="Your org's webhooks")
def list_webhooks(conn: DbConn, principal: CurrentPrincipal) -> Response:
    """Org admins only."""
    return _json([webhooks.describe(w) for w in webhooks.list_webhooks(conn, principal)])


@router.post(
    "/webhooks",
    response_model=WebhookCreated,
    status_code=201,
    summary="Add a webhook; its signing secret is shown once, in this answer",
)
def create_webhook(
    conn: DbConn, instance: CurrentInstance, principal: CurrentPrincipal, body: WebhookCreate
) -> Response:
    """Each notification of a kind the webhook takes is POSTed as JSON, signed:
    ``X-Qalqan-Signature: sha256=HMAC-SHA256(secret, X-Qalqan-Timestamp + "." + body)``.
    Failed deliveries are retried with growing waits and logged."""
    made = webhooks.create_webhook(conn, principal, instance.settings, url=body.url,
                                   kinds=body.kinds, description=body.description,
                                   active=body.active)  # fmt: skip
    return _json({**webhooks.describe(made.webhook), "secret": made.secret}, 201)


@router.get("/webhooks/{webhook_id}", response_model=WebhookPublic, summary="A webhook")
def get_webhook(conn: DbConn, principal: CurrentPrincipal, webhook_id: WebhookId) -> Response:
    return _json(webhooks.describe(webhooks.get_webhook(conn, principal, webhook_id)))


@router.patch("/webhooks/{webhook_id}", response_model=WebhookPublic, summary="Change a webhook")
def update_webhook(
    conn: DbConn,
    instance: CurrentInstance,
    principal: CurrentPrincipal,
    webhook_id: WebhookId,
    body: WebhookUpdate,
) -> Response:
    changes = WebhookChanges(url=body.url, kinds=body.kinds, description=body.description,
                             active=body.active)  # fmt: skip
    row = webhooks.update_webhook(conn, principal, instance.settings, webhook_id, changes)
    return _json(webhooks.describe(row))


@router.delete(
    "/webhooks/{webhook_id}", status_code=204, summary="Remove a webhook and its delivery log"
)
def delete_webhook(conn: DbConn, principal: CurrentPrincipal, webhook_id: WebhookId) -> Response:
    webhooks.delete_webhook(conn, principal, webhook_id)
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/secret",
    response_model=WebhookCreated,
    summary="Give the webhook a new secret (the old one stops verifying at once)",
)
def rotate_secret(
    conn: DbConn, instance: CurrentInstance, principal: CurrentPrincipal, webhook_id: WebhookId
) -> Response:
    made = webhooks.rotate_secret(conn, principal, instance.settings, webhook_id)
    return _json({**webhooks.describe(made.webhook), "secret": made.secret})


@router.post(
    "/webhooks/{webhook_id}/test",
    response_model=WebhookTest,
    summary="Send a signed ping now and say how the receiver answered",
)
def test_webhook(
    conn: DbConn, instance: CurrentInstance, principal: CurrentPrincipal, webhook_id: WebhookId
) -> Response:
    outcome = webhooks.test_webhook(conn, principal, instance.settings, webhook_id)
    return _json({"delivered": outcome.delivered, "code": outcome.code, "error": outcome.error})


@router.get(
    "/deliveries",
    response_model=DeliveryPage,
    summary="Your org's delivery log (webhooks and e-mail), newest first",
)
def delivery_log(
    conn: DbConn,
    principal: CurrentPrincipal,
    webhook: Annotated[str | None, Query(max_length=64)] = None,
    channel: Annotated[str | None, Query(pattern="^(webhook|email)$")] = None,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Org admins only."""
    rows, more = webhooks.delivery_log(conn, principal, webhook_id=webhook, channel=channel,
                                       status=status, cursor=cursor, limit=limit)  # fmt: skip
    return _json({"items": [webhooks.describe_delivery(r, k) for r, k in rows], "next": more})


@router.post(
    "/deliveries/{delivery_id}/retry",
    response_model=DeliveryPublic,
    summary="Send a given-up delivery again",
    responses=problem_responses(409),
)
def retry_delivery(
    conn: DbConn,
    principal: CurrentPrincipal,
    delivery_id: Annotated[int, Path(ge=1, le=2**62)],
) -> Response:
    row, kind = webhooks.retry_delivery(conn, principal, delivery_id)
    return _json(webhooks.describe_delivery(row, kind))
