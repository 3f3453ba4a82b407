"""Sending one notification: a signed webhook call, or an e-mail over SMTP.

Each send says whether it got through, and if not whether trying again later may help:
timeouts, connection errors, 408, 429 and 5xx answers, and temporary SMTP replies (4xx) are
retried; any other refusal is final. A webhook's body is signed with HMAC-SHA256 under the
webhook's secret over ``<timestamp>.<body>`` (headers ``X-Qalqan-Timestamp`` and
``X-Qalqan-Signature: sha256=<hex>``); redirects are not followed, and unless the node allows
it, webhooks to loopback, private, link-local or otherwise non-public addresses are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Final
from urllib.parse import urlsplit

import httpx

from qalqan.errors import InvalidInput
from qalqan.settings import Settings

__all__ = [
    "Outcome",
    "check_url",
    "post_webhook",
    "send_email",
    "sign",
]

_MAX_URL: Final = 2000
_RETRIED_HTTP: Final = frozenset({408, 425, 429})
_MAX_ERROR: Final = 500


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a send went: delivered, or not and whether a later retry may succeed."""

    delivered: bool
    code: int | None = None
    error: str | None = None
    retry: bool = False


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Qalqan-Signature`` of a body sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def check_url(url: str, *, allow_private: bool, field: str = "url") -> str:
    """A webhook address as given, if usable: http(s), a host, no credentials, no control
    characters, and (unless allowed) no literal non-public address. InvalidInput otherwise."""
    if not isinstance(url, str) or not url:
        raise InvalidInput(f"{field}: give the address to call", field=field)
    if len(url) > _MAX_URL:
        raise InvalidInput(f"{field}: longer than {_MAX_URL} characters", field=field)
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidInput(f"{field}: contains spaces or control characters", field=field)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise InvalidInput(f"{field}: not a URL ({exc})", field=field) from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"{field}: must start with https:// or http://", field=field)
    if not host:
        raise InvalidInput(f"{field}: names no host", field=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            f"{field}: must not carry credentials; the receiver checks the signature instead",
            field=field,
        )
    if not allow_private:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and not literal.is_global:
            raise InvalidInput(
                f"{field}: {host} is not a public address; this node does not call those",
                field=field,
            )
    return url


def _refused_address(host: str, port: int) -> str | None:
    """Why the host may not be called (it resolves to a non-public address), or None."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            return f"{host} resolves to {address}, which is not a public address"
    return None


def post_webhook(
    url: str,
    secret: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timestamp: int,
    timeout: float,
    allow_private: bool,
) -> Outcome:
    """POST the signed body to the webhook."""
    parts = urlsplit(url)
    if not allow_private:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        why = _refused_address(parts.hostname or "", port)
        if why is not None:
            return Outcome(False, error=why, retry=why.startswith("cannot resolve"))
    sent = {
        **headers,
        "Content-Type": "application/json",
        "X-Qalqan-Timestamp": str(timestamp),
        "X-Qalqan-Signature": sign(secret, timestamp, body),
    }
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            response = client.post(url, content=body, headers=sent)
    except httpx.HTTPError as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:_MAX_ERROR], retry=True)
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(True, code=code)
    retry = code >= 500 or code in _RETRIED_HTTP
    return Outcome(False, code=code, error=f"HTTP {code} {response.reason_phrase}", retry=retry)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def send_email(settings: Settings, to: str, subject: str, text: str) -> Outcome:
    """Send a plain-text e-mail through the configured SMTP server."""
    if not settings.smtp_host:
        return Outcome(False, error="no SMTP server is configured (QALQAN_SMTP_HOST)")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = _one_line(subject)[:200]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="qalqan")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    host, port, timeout = settings.smtp_host, settings.smtp_port, settings.notify_timeout
    try:
        smtp: smtplib.SMTP
        if settings.smtp_security == "tls":
            smtp = smtplib.SMTP_SSL(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if settings.smtp_security == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    return Outcome(
                        False,
                        error=f"{host} does not offer STARTTLS; set QALQAN_SMTP_SECURITY=none "
                        "to send in clear",
                    )
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.smtp_user and settings.smtp_password is not None:
                smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        return Outcome(False, code=code, error=f"refused {to}: {reply!r}"[:_MAX_ERROR],
                       retry=400 <= code < 500)  # fmt: skip
    except smtplib.SMTPResponseException as exc:
        return Outcome(False, code=exc.smtp_code, error=f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
                       [:_MAX_ERROR], retry=400 <= exc.smtp_code < 500)  # fmt: skip
    except (OSError, smtplib.SMTPException) as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:_MAX_ERROR], retry=True)
    return Outcome(True, code=250)
