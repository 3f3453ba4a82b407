"""Webhooks, the delivery log and e-mail choices over REST: who may do what, what bad input
gets, and that secrets show once."""

from __future__ import annotations

import hashlib
import hmac
import logging
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from qalqan.api import create_app
from qalqan.assistance import RfaSpec, create_rfa
from qalqan.domain.principal import Role
from qalqan.instance import Instance
from qalqan.notify import dispatch
from qalqan.testing import TestNode, assert_problem, serving

B_ADMIN, B_ANALYST = "admin@b.test", "analyst@b.test"


class Recorder(BaseHTTPRequestHandler):
    got: list[tuple[dict[str, str], bytes]] = []  # noqa: RUF012 - one per test (see below)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.got.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def _recorder() -> type[Recorder]:
    return type("OwnRecorder", (Recorder,), {"got": []})


@pytest.fixture
def site(instance: Instance) -> tuple[TestNode, TestClient]:
    node = TestNode.create(instance)
    node.add_org("CERT-B")
    node.add_user(B_ADMIN, "CERT-B", Role.ORG_ADMIN)
    node.add_user(B_ANALYST, "CERT-B")
    node.add_user("sync@b.test", "CERT-B", Role.SYNC)
    instance.settings = instance.settings.model_copy(update={"webhook_allow_private": True})
    return node, TestClient(create_app(instance))


def _as(node: TestNode, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.keys[email]}"}


def test_webhook_lifecycle_over_rest(
    site: tuple[TestNode, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    node, client = site
    handler = _recorder()
    caplog.set_level(logging.DEBUG)
    with serving(handler) as url:
        made = client.post(
            "/api/v1/webhooks",
            json={"url": url, "kinds": ["rfa.received"], "description": "<b>SOC</b>"},
            headers=_as(node, B_ADMIN),
        )
        assert made.status_code == 201, made.text
        hook = made.json()
        secret = hook.pop("secret")
        assert secret.startswith("whsec_")
        assert hook["description"] == "<b>SOC</b>"
        shown = client.get(f"/api/v1/webhooks/{hook['id']}", headers=_as(node, B_ADMIN)).json()
        assert "secret" not in shown
        assert shown == hook
        listed = client.get("/api/v1/webhooks", headers=_as(node, B_ADMIN)).json()
        assert [w["id"] for w in listed] == [hook["id"]]

        test = client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=_as(node, B_ADMIN))
        assert test.json() == {"delivered": True, "code": 204, "error": None}
        headers, body = handler.got[-1]
        mac = hmac.new(secret.encode(), f"{headers['X-Qalqan-Timestamp']}.".encode() + body,
                       hashlib.sha256)  # fmt: skip
        assert headers["X-Qalqan-Signature"] == "sha256=" + mac.hexdigest()
        assert orjson.loads(body)["kind"] == "ping"

        with node.instance.begin() as conn:
            spec = RfaSpec(to="CERT-B", kind="takedown", title="Phishing kit", send=True)
            create_rfa(conn, node.principals["admin@a.test"], spec)
        assert dispatch.deliver(node.instance).delivered == 1
        log = client.get("/api/v1/deliveries", headers=_as(node, B_ADMIN)).json()
        assert [(d["kind"], d["status"], d["last_code"]) for d in log["items"]] == [
            ("rfa.received", "delivered", 204)
        ]
        only = client.get(f"/api/v1/deliveries?webhook={hook['id']}&status=failed",
                          headers=_as(node, B_ADMIN)).json()  # fmt: skip
        assert only["items"] == []

        rotated = client.post(f"/api/v1/webhooks/{hook['id']}/secret", headers=_as(node, B_ADMIN))
        assert rotated.json()["secret"] != secret
        changed = client.patch(
            f"/api/v1/webhooks/{hook['id']}",
            json={"active": False, "kinds": ["*"]},
            headers=_as(node, B_ADMIN),
        )
        assert (changed.json()["active"], changed.json()["kinds"]) == (False, ["*"])
        gone = client.delete(f"/api/v1/webhooks/{hook['id']}", headers=_as(node, B_ADMIN))
        assert gone.status_code == 204
        assert client.get("/api/v1/deliveries", headers=_as(node, B_ADMIN)).json()["items"] == []
    for secret_text in (secret, rotated.json()["secret"]):
        assert secret_text not in caplog.text


def test_who_may_touch_webhooks(site: tuple[TestNode, TestClient]) -> None:
    node, client = site
    hook = client.post("/api/v1/webhooks", json={"url": "https://hooks.example.org/q"},
                       headers=_as(node, B_ADMIN)).json()  # fmt: skip
    for who in (B_ANALYST, "sync@b.test"):
        assert_problem(client.get("/api/v1/webhooks", headers=_as(node, who)), 403, "forbidden")
        assert_problem(client.get("/api/v1/deliveries", headers=_as(node, who)), 403, "forbidden")
    unknown = client.get("/api/v1/webhooks/00000000-0000-0000-0000-000000000000",
                         headers=_as(node, "admin@a.test"))  # fmt: skip
    other = client.get(f"/api/v1/webhooks/{hook['id']}", headers=_as(node, "admin@a.test"))
    assert_problem(other, 404, "not_found")
    assert other.json()["detail"].replace(hook["id"], "X") == unknown.json()["detail"].replace(
        "00000000-0000-0000-0000-000000000000", "X"
    )
    for method, path in (("PATCH", ""), ("DELETE", ""), ("POST", "/test"), ("POST", "/secret")):
        response = client.request(method, f"/api/v1/webhooks/{hook['id']}{path}",
                                  json={} if method == "PATCH" else None,
                                  headers=_as(node, "admin@a.test"))  # fmt: skip
        assert_problem(response, 404, "not_found")
    assert client.get("/api/v1/webhooks").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "https://x.org/", "kinds": ["everything"]}, "kinds"),
        ({"url": "https://x.org/", "kinds": []}, "kinds"),
        ({"url": "https://x.org/", "secret": "mine"}, "secret"),
        ({"url": 5}, "url"),
    ],
)
def test_bad_webhooks_are_named(
    site: tuple[TestNode, TestClient], body: dict[str, Any], field: str
) -> None:
    node, client = site
    response = client.post("/api/v1/webhooks", json=body, headers=_as(node, B_ADMIN))
    assert response.status_code in (400, 422), response.text
    assert field in response.text
    assert client.get("/api/v1/webhooks", headers=_as(node, B_ADMIN)).json() == []


def test_email_choices_over_rest(site: tuple[TestNode, TestClient]) -> None:
    node, client = site
    mine = client.get("/api/v1/notifications/preferences", headers=_as(node, B_ANALYST)).json()
    assert {p["kind"]: p["email"] for p in mine}["task.assigned"] is True
    changed = client.put("/api/v1/notifications/preferences",
                         json={"email": {"sighting": True, "task.due": False}},
                         headers=_as(node, B_ANALYST)).json()  # fmt: skip
    shown = {p["kind"]: (p["email"], p["default"]) for p in changed}
    assert shown["sighting"] == (True, False)
    assert shown["task.due"] == (False, False)
    assert shown["case.assigned"] == (True, True)
    bad = client.put("/api/v1/notifications/preferences", json={"email": {"<script>": True}},
                     headers=_as(node, B_ANALYST))  # fmt: skip
    assert_problem(bad, 400, "invalid_input")
    assert "no such notification kind" in bad.json()["detail"]
    machine = client.get("/api/v1/notifications/preferences", headers=_as(node, "sync@b.test"))
    assert_problem(machine, 403, "forbidden")
