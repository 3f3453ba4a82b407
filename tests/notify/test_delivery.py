"""Notification delivery against real receivers: a local HTTP server for webhooks (signatures,
retries with backoff, final refusals, the delivery log) and a local SMTP server for e-mail
(users' choices, personal notifications, values as text)."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from qalqan.assistance import RfaSpec, create_rfa
from qalqan.domain.principal import Role
from qalqan.errors import Conflict, Forbidden, InvalidInput, NotFound
from qalqan.notify import dispatch, events, preferences, webhooks
from qalqan.notify.channels import check_url
from qalqan.notify.webhooks import WebhookChanges
from qalqan.store import notifications as notifications_store
from qalqan.store.clock import now_us
from qalqan.store.tables import notification_deliveries, notifications
from qalqan.testing import TestNode, serving

A_ADMIN, B_ADMIN, B_ANALYST, B_READER = (
    "admin@a.test",
    "admin@b.test",
    "analyst@b.test",
    "reader@b.test",
)
SECOND = 1_000_000


class Receiver:
    """What the local webhook receiver got, and the statuses it answers with, in turn."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        return Handler


class Mailbox:
    """An aiosmtpd handler keeping each message received."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message_from_bytes(envelope.content, policy=email_policy.default),
            )
        )
        return "250 OK"


@pytest.fixture
def people(node: TestNode) -> TestNode:
    node.add_org("CERT-B")
    node.add_user(B_ADMIN, "CERT-B", Role.ORG_ADMIN)
    node.add_user(B_ANALYST, "CERT-B")
    node.add_user(B_READER, "CERT-B", Role.READER)
    node.add_user("sync@b.test", "CERT-B", Role.SYNC)
    node.instance.settings = node.instance.settings.model_copy(
        update={"webhook_allow_private": True, "notify_retry_seconds": 30.0}
    )
    return node


@pytest.fixture
def mailbox(people: TestNode) -> Iterator[Mailbox]:
    box = Mailbox()
    controller = _smtp(box)
    try:
        port = controller.port
        people.instance.settings = people.instance.settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none",
                    "smtp_from": "qalqan@node.test"}
        )  # fmt: skip
        yield box
    finally:
        controller.stop()


def _smtp(handler: Mailbox) -> Controller:
    """A running aiosmtpd server on a free port of 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


def _hook(node: TestNode, url: str, kinds: tuple[str, ...] = ("*",)) -> webhooks.CreatedWebhook:
    with node.instance.begin() as conn:
        return webhooks.create_webhook(
            conn, node.principals[B_ADMIN], node.instance.settings, url=url, kinds=kinds
        )


def _send_rfa_to_b(node: TestNode, title: str = "Preserve logs") -> None:
    with node.instance.begin() as conn:
        create_rfa(
            conn,
            node.principals[A_ADMIN],
            RfaSpec(to="CERT-B", kind="data-preservation", title=title, send=True),
        )


def _deliveries(node: TestNode) -> list[dict[str, Any]]:
    with node.instance.begin() as conn:
        rows = conn.execute(select(notification_deliveries).order_by(notification_deliveries.c.id))
        return [dict(r._mapping) for r in rows]


def test_a_webhook_gets_each_notification_signed_once(people: TestNode) -> None:
    receiver = Receiver()
    with serving(receiver.handler()) as url:
        made = _hook(people, url + "hook")
        _send_rfa_to_b(people, "Preserve <b>logs</b>")
        report = dispatch.deliver(people.instance)
        assert (report.fanned_out, report.queued, report.delivered) == (1, 1, 1)
        assert dispatch.deliver(people.instance).delivered == 0  # nothing twice
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    timestamp = headers["X-Qalqan-Timestamp"]
    expected = hmac.new(made.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert headers["X-Qalqan-Signature"] == "sha256=" + expected.hexdigest()
    assert headers["X-Qalqan-Event"] == "rfa.received"
    payload = orjson.loads(body)
    assert payload["kind"] == "rfa.received"
    assert payload["org"]["name"] == "CERT-B"
    assert payload["detail"]["title"] == "Preserve <b>logs</b>"  # text, as it was written
    assert str(payload["delivery"]) == headers["X-Qalqan-Delivery"]
    [row] = _deliveries(people)
    assert (row["status"], row["attempts"], row["last_code"]) == ("delivered", 1, 200)
    # A forged body does not verify under the secret.
    forged = hmac.new(made.secret.encode(), f"{timestamp}.".encode() + body + b" ", hashlib.sha256)
    assert headers["X-Qalqan-Signature"] != "sha256=" + forged.hexdigest()


def test_kinds_filter_what_a_webhook_gets(people: TestNode) -> None:
    receiver = Receiver()
    with serving(receiver.handler()) as url:
        _hook(people, url, kinds=("sighting",))
        _send_rfa_to_b(people)
        report = dispatch.deliver(people.instance)
    assert (report.fanned_out, report.queued) == (1, 0)
    assert receiver.requests == []


def test_failures_are_retried_with_growing_waits_then_delivered(people: TestNode) -> None:
    receiver = Receiver([503, 500, 200])
    clock = [now_us()]
    with serving(receiver.handler()) as url:
        _hook(people, url)
        _send_rfa_to_b(people)
        first = dispatch.deliver(people.instance, now=lambda: clock[0])
        assert (first.retrying, first.delivered) == (1, 0)
        [row] = _deliveries(people)
        assert row["status"] == "pending"
        assert row["next_attempt_at"] - row["last_attempt_at"] == 30 * SECOND
        assert row["last_code"] == 503
        # Not due yet: nothing is sent.
        assert dispatch.deliver(people.instance, now=lambda: clock[0] + SECOND).retrying == 0
        clock[0] += 31 * SECOND
        second = dispatch.deliver(people.instance, now=lambda: clock[0])
        assert second.retrying == 1
        [row] = _deliveries(people)
        assert row["next_attempt_at"] - row["last_attempt_at"] == 120 * SECOND  # four times
        clock[0] += 121 * SECOND
        assert dispatch.deliver(people.instance, now=lambda: clock[0]).delivered == 1
    [row] = _deliveries(people)
    assert (row["status"], row["attempts"]) == ("delivered", 3)
    assert len(receiver.requests) == 3


def test_a_refusal_is_final_and_an_admin_can_send_it_again(people: TestNode) -> None:
    receiver = Receiver([400, 204])
    with serving(receiver.handler()) as url:
        _hook(people, url)
        _send_rfa_to_b(people)
        assert dispatch.deliver(people.instance).failed == 1
        [row] = _deliveries(people)
        assert (row["status"], row["last_code"]) == ("failed", 400)
        with people.instance.begin() as conn:
            with pytest.raises(Forbidden):
                webhooks.retry_delivery(conn, people.principals[B_ANALYST], row["id"])
            with pytest.raises(NotFound):
                webhooks.retry_delivery(conn, people.principals[A_ADMIN], row["id"])
            again, kind = webhooks.retry_delivery(conn, people.principals[B_ADMIN], row["id"])
            assert (again.status, kind) == ("pending", "rfa.received")
            with pytest.raises(Conflict):
                webhooks.retry_delivery(conn, people.principals[B_ADMIN], row["id"])
        assert dispatch.deliver(people.instance).delivered == 1


def test_attempts_end_after_the_maximum(people: TestNode) -> None:
    people.instance.settings = people.instance.settings.model_copy(
        update={"notify_max_attempts": 2, "notify_retry_seconds": 0.001}
    )
    receiver = Receiver([502, 502, 502])
    with serving(receiver.handler()) as url:
        _hook(people, url)
        _send_rfa_to_b(people)
        assert dispatch.deliver(people.instance).retrying == 1
        later = now_us() + 10 * SECOND
        assert dispatch.deliver(people.instance, now=lambda: later).failed == 1
    [row] = _deliveries(people)
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert len(receiver.requests) == 2


def test_an_unreachable_receiver_is_retried(people: TestNode) -> None:
    with serving(Receiver().handler()) as url:
        pass  # the port is free again: nothing listens
    _hook(people, url)
    _send_rfa_to_b(people)
    report = dispatch.deliver(people.instance)
    assert report.retrying == 1
    [row] = _deliveries(people)
    assert row["status"] == "pending"
    assert row["last_code"] is None
    assert "Connect" in row["last_error"]


def test_private_addresses_are_refused_unless_the_node_allows_them(people: TestNode) -> None:
    strict = people.instance.settings.model_copy(update={"webhook_allow_private": False})
    with people.instance.begin() as conn:
        for url in (
            "http://127.0.0.1:9/x",
            "http://10.1.2.3/",
            "http://[::1]/",
            "http://169.254.169.254/",
        ):
            with pytest.raises(InvalidInput, match="not a public address"):
                webhooks.create_webhook(conn, people.principals[B_ADMIN], strict, url=url)
    receiver = Receiver()
    with serving(receiver.handler()) as url:
        made = _hook(people, url.replace("127.0.0.1", "localhost"))
        people.instance.settings = strict
        _send_rfa_to_b(people)
        report = dispatch.deliver(people.instance)
    assert report.failed == 1
    assert receiver.requests == []
    [row] = _deliveries(people)
    assert "not a public address" in row["last_error"]
    assert row["webhook_id"] == made.webhook.id


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("javascript:alert(1)", "https://"),
        ("ftp://example.org/", "https://"),
        ("https://user:pw@example.org/", "credentials"),
        ("https://example.org/a b", "control characters"),
        ("https://example.org/\r\nX-Evil: 1", "control characters"),
        ("https:///nohost", "no host"),
        ("https://example.org/" + "a" * 2000, "longer than"),
        ("", "give the address"),
        ("https://example.org:99999/", "not a URL"),
    ],
)
def test_bad_webhook_addresses_are_named(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason) as caught:
        check_url(url, allow_private=False)
    assert caught.value.context.get("field") == "url"


def test_webhooks_belong_to_their_org_and_its_admins(people: TestNode) -> None:
    made = _hook(people, "https://hooks.example.org/qalqan")
    settings = people.instance.settings
    with people.instance.begin() as conn:
        for who in (B_ANALYST, B_READER, "sync@b.test"):
            with pytest.raises(Forbidden):
                webhooks.list_webhooks(conn, people.principals[who])
            with pytest.raises(Forbidden):
                webhooks.create_webhook(conn, people.principals[who], settings, url="https://x.org")
        # Another org's admin (a node admin included) does not learn it exists.
        with pytest.raises(NotFound):
            webhooks.get_webhook(conn, people.principals[A_ADMIN], made.webhook.id)
        with pytest.raises(NotFound):
            webhooks.update_webhook(conn, people.principals[A_ADMIN], settings, made.webhook.id,
                                    WebhookChanges(active=False))  # fmt: skip
        with pytest.raises(NotFound):
            webhooks.delete_webhook(conn, people.principals[A_ADMIN], made.webhook.id)
        assert webhooks.list_webhooks(conn, people.principals[A_ADMIN]) == []
        with pytest.raises(InvalidInput, match="no notification kind"):
            webhooks.update_webhook(conn, people.principals[B_ADMIN], settings, made.webhook.id,
                                    WebhookChanges(kinds=["case.nothing"]))  # fmt: skip


def test_the_secret_is_never_stored_and_rotation_changes_it(people: TestNode) -> None:
    made = _hook(people, "https://hooks.example.org/qalqan")
    with people.instance.begin() as conn:
        stored = " ".join(str(v) for v in conn.execute(select(*webhooks.store.wt.c)).one())
        assert made.secret not in stored
        rotated = webhooks.rotate_secret(
            conn, people.principals[B_ADMIN], people.instance.settings, made.webhook.id
        )
    assert rotated.secret != made.secret
    assert rotated.secret.startswith("whsec_")
    assert "secret" not in webhooks.describe(rotated.webhook)


def test_email_goes_to_those_who_chose_it_and_personal_ones_by_default(
    people: TestNode, mailbox: Mailbox
) -> None:
    with people.instance.begin() as conn:
        preferences.set_preferences(conn, people.principals[B_ANALYST], {"rfa.received": True})
    _send_rfa_to_b(people, "Block\r\nBcc: evil@x.test <script>")
    with people.instance.begin() as conn:
        events.tasks_coming_due(conn)  # nothing is due: no notice
        # A personal notification, for the reader only.
        notifications_store.insert_personal_notifications(
            conn,
            [(people.org_ids["CERT-B"], people.principals[B_READER].user_id or "", "task.due",
              "task-1", orjson.dumps({"title": "Image the server"}).decode(), now_us())],
        )  # fmt: skip
    report = dispatch.deliver(people.instance)
    assert (report.queued, report.delivered) == (2, 2)
    got = {rcpt[0]: msg for _, rcpt, msg in mailbox.messages}
    assert set(got) == {B_ANALYST, B_READER}  # the admin kept the default (org-wide: no e-mail)
    rfa_mail = got[B_ANALYST]
    assert rfa_mail["From"] == "qalqan@node.test"
    assert rfa_mail["Bcc"] is None
    assert "\n" not in rfa_mail["Subject"]
    assert "Block Bcc: evil@x.test <script>" in rfa_mail["Subject"]
    assert "<script>" in rfa_mail.get_payload()  # plain text, never markup
    assert rfa_mail.get_content_type() == "text/plain"
    assert "Image the server" in got[B_READER]["Subject"]


def test_without_smtp_no_email_is_queued(people: TestNode) -> None:
    with people.instance.begin() as conn:
        preferences.set_preferences(conn, people.principals[B_ANALYST], {"rfa.received": True})
    _send_rfa_to_b(people)
    report = dispatch.deliver(people.instance)
    assert (report.fanned_out, report.queued) == (1, 0)


def test_a_refused_recipient_is_final(people: TestNode, mailbox: Mailbox) -> None:
    class Refusing(Mailbox):
        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                              options: list[str]) -> str:  # fmt: skip
            return "550 no such user"

    box = Refusing()
    controller = _smtp(box)
    try:
        port = controller.port
        people.instance.settings = people.instance.settings.model_copy(update={"smtp_port": port})
        with people.instance.begin() as conn:
            preferences.set_preferences(conn, people.principals[B_ANALYST], {"rfa.received": True})
        _send_rfa_to_b(people)
        report = dispatch.deliver(people.instance)
    finally:
        controller.stop()
    assert report.failed == 1
    [row] = _deliveries(people)
    assert (row["status"], row["last_code"]) == ("failed", 550)


def test_preferences_name_bad_kinds_and_belong_to_people(people: TestNode) -> None:
    with people.instance.begin() as conn:
        with pytest.raises(InvalidInput, match="no such notification kind") as caught:
            preferences.set_preferences(conn, people.principals[B_ANALYST], {"rfa.nope": True})
        assert caught.value.context.get("field") == "email.rfa.nope"
        with pytest.raises(InvalidInput, match="true or false"):
            preferences.set_preferences(conn, people.principals[B_ANALYST], {"sighting": "yes"})
        with pytest.raises(Forbidden):
            preferences.get_preferences(conn, people.principals["sync@b.test"])
        shown = {
            p["kind"]: p for p in preferences.get_preferences(conn, people.principals[B_ANALYST])
        }
    assert shown["task.assigned"]["email"]
    assert shown["task.assigned"]["default"]
    assert not shown["sighting"]["email"]


def test_personal_notifications_are_read_by_their_user_only(people: TestNode) -> None:
    from qalqan.intel import notifications as reading

    with people.instance.begin() as conn:
        notifications_store.insert_personal_notifications(
            conn,
            [(people.org_ids["CERT-B"], people.principals[B_READER].user_id or "", "task.due",
              "t", "{}", now_us())],
        )  # fmt: skip
        mine = reading.list_notifications(conn, people.principals[B_READER]).items
        theirs = reading.list_notifications(conn, people.principals[B_ANALYST]).items
        assert [n.kind for n in mine] == ["task.due"]
        assert theirs == []
        assert reading.mark_read(conn, people.principals[B_ANALYST], [mine[0].id]) == 0
        assert reading.mark_read(conn, people.principals[B_READER], [mine[0].id]) == 1


def test_concurrent_rounds_send_each_delivery_once(people: TestNode) -> None:
    receiver = Receiver()
    with serving(receiver.handler()) as url:
        _hook(people, url)
        for i in range(30):
            _send_rfa_to_b(people, f"request {i}")
        errors: list[BaseException] = []

        def round_() -> None:
            try:
                dispatch.deliver(people.instance)
            except Exception as exc:  # a busy SQLite writer: the next round picks it up
                errors.append(exc)

        threads = [threading.Thread(target=round_) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        dispatch.deliver(people.instance)
    with people.instance.begin() as conn:
        undispatched = conn.execute(
            select(func.count()).where(notifications.c.dispatched_at.is_(None))
        ).scalar_one()
    rows = _deliveries(people)
    assert undispatched == 0
    assert len(rows) == 30
    assert {r["status"] for r in rows} == {"delivered"}
    titles = [orjson.loads(body)["detail"]["title"] for _, body in receiver.requests]
    assert sorted(titles) == sorted(f"request {i}" for i in range(30))
