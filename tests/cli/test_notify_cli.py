"""``qalqan webhook`` and ``qalqan notify``: a webhook added, listed and tested, a delivery
round by hand, the delivery log, and users' e-mail choices."""

from __future__ import annotations

from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from qalqan.testing import serving

from .test_cli import Cli


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@dataclass
class PrivateCli(Cli):
    """The CLI on a node that may call webhooks on loopback (the test's receiver)."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "QALQAN_WEBHOOK_ALLOW_PRIVATE": "true"}


def test_webhooks_and_choices_from_the_cli(tmp_path: Path) -> None:
    cli = PrivateCli(tmp_path / "data")
    cli.json("init")
    cli.ok("org", "add", "CERT-B", "--country", "UZ")
    with serving(Receiver) as url:
        made = cli.json("webhook", "add", url, "--kind", "rfa.received", "--org", "CERT-B")
        assert made["secret"].startswith("whsec_")
        listed = cli.json("webhook", "list", "--org", "CERT-B")
        assert [w["id"] for w in listed] == [made["id"]]
        assert "secret" not in listed[0]
        assert cli.json("webhook", "test", made["id"], "--org", "CERT-B")["delivered"] is True
        cli.ok("rfa", "create", "--to", "CERT-B", "--kind", "takedown", "--title", "Kit", "--send")
        report = cli.json("notify", "deliver")
        assert (report["fanned_out"], report["delivered"]) == (1, 1)
        log = cli.json("notify", "log", "--org", "CERT-B")
        assert [d["kind"] for d in log["items"]] == ["rfa.received"]
    assert "no notification kind" in cli.fails("webhook", "add", "https://x.org", "-k", "nope")
    admin = "admin@localhost.localdomain"
    prefs = cli.json(
        "notify", "preferences", admin, "--email", "sighting", "--no-email", "task.due"
    )
    shown = {p["kind"]: p["email"] for p in prefs}
    assert (shown["sighting"], shown["task.due"]) == (True, False)
    assert "no such notification kind" in cli.fails("notify", "preferences", admin, "--email", "x")
