"""Request and response bodies of ``/api/v1/webhooks``, ``/api/v1/deliveries`` and
``/api/v1/notifications/preferences``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qalqan.notify.kinds import ALL, KINDS

__all__ = [
    "DeliveryPage",
    "DeliveryPublic",
    "PreferencePublic",
    "PreferencesUpdate",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookPublic",
    "WebhookTest",
    "WebhookUpdate",
]

_KINDS_DOC = f"notification kinds to send, or [{ALL!r}] for all: {', '.join(KINDS)}"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookCreate(_Body):
    url: str = Field(max_length=2000, description="https:// address the node POSTs to")
    kinds: list[str] = Field(default=[ALL], max_length=50, description=_KINDS_DOC)
    description: str = Field(default="", max_length=300)
    active: bool = True


class WebhookUpdate(_Body):
    url: str | None = Field(default=None, max_length=2000)
    kinds: list[str] | None = Field(default=None, max_length=50, description=_KINDS_DOC)
    description: str | None = Field(default=None, max_length=300)
    active: bool | None = None


class WebhookPublic(BaseModel):
    id: str
    url: str
    description: str
    kinds: list[str]
    active: bool
    created_by: str | None
    created: str
    updated: str


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="verifies X-Qalqan-Signature; shown only now: store it with the receiver"
    )


class WebhookTest(BaseModel):
    delivered: bool
    code: int | None = Field(description="the receiver's HTTP status, if it answered")
    error: str | None


class DeliveryPublic(BaseModel):
    id: int
    notification: int
    kind: str
    channel: str = Field(description="webhook or email")
    webhook: str | None
    user: str | None
    status: str = Field(description="pending, delivered or failed (given up)")
    attempts: int
    next_attempt: str | None
    last_attempt: str | None
    last_code: int | None = Field(description="HTTP status or SMTP reply code")
    last_error: str | None
    created: str
    delivered: str | None


class DeliveryPage(BaseModel):
    items: list[DeliveryPublic]
    next: str | None


class PreferencePublic(BaseModel):
    kind: str
    summary: str
    personal: bool = Field(description="addressed to one user (true) or to the whole org")
    email: bool = Field(description="whether you get it by e-mail")
    default: bool = Field(description="true: you made no choice, this is the default")


class PreferencesUpdate(_Body):
    email: dict[str, bool] = Field(
        description="kind → whether to get it by e-mail; kinds not named keep their setting"
    )
