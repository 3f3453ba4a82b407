"""``qalqan webhook`` and ``qalqan notify``: an org's webhooks and delivery log, users' e-mail
choices, and one delivery round by hand (the worker does it every round by itself)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import Connection

from qalqan.accounts import principal_for
from qalqan.cli.common import JsonOption, console, open_instance, org_principal, print_json
from qalqan.domain.principal import Principal
from qalqan.notify import dispatch, preferences, webhooks
from qalqan.notify.kinds import ALL
from qalqan.notify.webhooks import WebhookChanges
from qalqan.settings import Settings
from qalqan.store import accounts as accounts_store

__all__ = ["notify_app", "webhook_app"]

webhook_app = typer.Typer(
    help="An org's webhooks: notifications POSTed as signed JSON, retried, logged.",
    no_args_is_help=True,
)
notify_app = typer.Typer(
    help="Notification delivery: e-mail choices, the delivery log, a delivery round.",
    no_args_is_help=True,
)

OrgOption = typer.Option(None, "--org", "-o", help="Act as this org (default: the first).")


@contextmanager
def _acting(org: str | None) -> Iterator[tuple[Connection, Principal, Settings]]:
    """One transaction on the instance, acting as the org (default: the first)."""
    instance = open_instance()
    try:
        with instance.begin() as conn:
            yield conn, org_principal(conn, org), instance.settings
    finally:
        instance.close()


def _print_webhooks(items: list[dict[str, Any]]) -> None:
    if not items:
        console.print("no webhooks")
        return
    table = Table("id", "url", "kinds", "active", "description")
    for item in items:
        table.add_row(item["id"], item["url"], ", ".join(item["kinds"]),
                      "yes" if item["active"] else "no", item["description"])  # fmt: skip
    console.print(table)


def _show_secret(item: dict[str, Any], secret: str) -> None:
    console.print(f"webhook {item['id']} → {item['url']} ({', '.join(item['kinds'])})")
    console.print(f"secret (shown only now): {secret}", markup=False)


@webhook_app.command("add")
def webhook_add(
    url: str = typer.Argument(..., help="https:// address to POST notifications to."),
    kind: list[str] = typer.Option(
        [ALL], "--kind", "-k", help="A notification kind to send (repeat); default: all."
    ),
    description: str = typer.Option("", "--description", "-d"),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Add a webhook; its signing secret is printed once."""
    with _acting(org) as (conn, principal, settings):
        made = webhooks.create_webhook(
            conn, principal, settings, url=url, kinds=kind, description=description
        )
    item = {**webhooks.describe(made.webhook), "secret": made.secret}
    if json_out:
        print_json(item)
    else:
        _show_secret(item, made.secret)


@webhook_app.command("list")
def webhook_list(org: str | None = OrgOption, json_out: bool = JsonOption) -> None:
    """The org's webhooks."""
    with _acting(org) as (conn, principal, _settings):
        items = [webhooks.describe(w) for w in webhooks.list_webhooks(conn, principal)]
    print_json(items) if json_out else _print_webhooks(items)


@webhook_app.command("update")
def webhook_update(
    webhook_id: str = typer.Argument(..., help="The webhook's id."),
    url: str | None = typer.Option(None, "--url"),
    kind: list[str] | None = typer.Option(None, "--kind", "-k", help="Replace the kinds."),
    description: str | None = typer.Option(None, "--description", "-d"),
    active: bool | None = typer.Option(None, "--active/--inactive"),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Change a webhook's address, kinds, description or whether it is active."""
    changes = WebhookChanges(url=url, kinds=kind or None, description=description, active=active)
    with _acting(org) as (conn, principal, settings):
        row = webhooks.update_webhook(conn, principal, settings, webhook_id, changes)
    item = webhooks.describe(row)
    print_json(item) if json_out else _print_webhooks([item])


@webhook_app.command("remove")
def webhook_remove(
    webhook_id: str = typer.Argument(..., help="The webhook's id."),
    org: str | None = OrgOption,
) -> None:
    """Remove a webhook and its delivery log."""
    with _acting(org) as (conn, principal, _settings):
        webhooks.delete_webhook(conn, principal, webhook_id)
    console.print(f"removed webhook {webhook_id}")


@webhook_app.command("rotate-secret")
def webhook_rotate(
    webhook_id: str = typer.Argument(..., help="The webhook's id."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Give a webhook a new secret (printed once); the old one stops verifying at once."""
    with _acting(org) as (conn, principal, settings):
        made = webhooks.rotate_secret(conn, principal, settings, webhook_id)
    item = {**webhooks.describe(made.webhook), "secret": made.secret}
    print_json(item) if json_out else _show_secret(item, made.secret)


@webhook_app.command("test")
def webhook_test(
    webhook_id: str = typer.Argument(..., help="The webhook's id."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Send a signed ping now and show how the receiver answered (exit 1 if it did not take
    it)."""
    with _acting(org) as (conn, principal, settings):
        outcome = webhooks.test_webhook(conn, principal, settings, webhook_id)
    result = {"delivered": outcome.delivered, "code": outcome.code, "error": outcome.error}
    if json_out:
        print_json(result)
    elif outcome.delivered:
        console.print(f"delivered (HTTP {outcome.code})")
    else:
        console.print(f"not delivered: {outcome.error}", markup=False)
    if not outcome.delivered:
        raise typer.Exit(1)


@notify_app.command("log")
def notify_log(
    webhook: str | None = typer.Option(None, "--webhook", help="Only this webhook's."),
    channel: str | None = typer.Option(None, "--channel", help="webhook or email"),
    status: str | None = typer.Option(None, "--status", help="pending, delivered or failed"),
    cursor: str | None = typer.Option(None, "--cursor", help="From a previous page's next."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """The org's delivery log, newest first."""
    with _acting(org) as (conn, principal, _settings):
        rows, more = webhooks.delivery_log(conn, principal, webhook_id=webhook,
                                           channel=channel, status=status, cursor=cursor,
                                           limit=limit)  # fmt: skip
    items = [webhooks.describe_delivery(r, k) for r, k in rows]
    if json_out:
        print_json({"items": items, "next": more})
        return
    if not items:
        console.print("no deliveries")
        return
    table = Table("id", "kind", "channel", "status", "attempts", "last", "error")
    for item in items:
        table.add_row(str(item["id"]), item["kind"], item["channel"], item["status"],
                      str(item["attempts"]), item["last_attempt"] or "",
                      item["last_error"] or "")  # fmt: skip
    console.print(table)
    if more:
        console.print(f"more: --cursor {more}")


def _user(conn: Any, email: str) -> Principal:
    return principal_for(conn, accounts_store.get_user(conn, email))


@notify_app.command("preferences")
def notify_preferences(
    user: str = typer.Argument(..., help="The user (e-mail address or id)."),
    email_on: list[str] = typer.Option([], "--email", help="Get this kind by e-mail (repeat)."),
    email_off: list[str] = typer.Option(
        [], "--no-email", help="Do not get this kind by e-mail (repeat)."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Show, or change, what a user gets by e-mail."""
    choices = {**dict.fromkeys(email_on, True), **dict.fromkeys(email_off, False)}
    instance = open_instance()
    try:
        with instance.begin() as conn:
            principal = _user(conn, user)
            if choices:
                items = preferences.set_preferences(conn, principal, choices)
            else:
                items = preferences.get_preferences(conn, principal)
    finally:
        instance.close()
    if json_out:
        print_json(items)
        return
    table = Table("kind", "e-mail", "", "what")
    for item in items:
        table.add_row(item["kind"], "yes" if item["email"] else "no",
                      "(default)" if item["default"] else "", item["summary"])  # fmt: skip
    console.print(table)


@notify_app.command("deliver")
def notify_deliver(json_out: bool = JsonOption) -> None:
    """Run one delivery round now: fan out new notifications, send what is due."""
    instance = open_instance()
    try:
        report = dispatch.deliver(instance)
    finally:
        instance.close()
    if json_out:
        print_json(report.to_dict())
        return
    console.print(
        f"{report.fanned_out} notifications fanned out into {report.queued} deliveries; "
        f"{report.delivered} delivered, {report.retrying} to retry, {report.failed} failed"
    )
    for error in report.errors:
        console.print(f"  {error}", markup=False)
