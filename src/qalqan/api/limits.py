"""Refuse request bodies over the configured size before they are read into memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qalqan.api.problems import problem_response
from qalqan.interop.taxii.server import PREFIX as TAXII_PREFIX
from qalqan.interop.taxii.server import taxii_error

__all__ = ["BodyLimit"]


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 when Content-Length, or the bytes actually sent, exceed ``limit``
    (a TAXII error message under ``/taxii2/``, a problem document elsewhere).

    Paths in ``exempt`` are left to their route, which streams the body to disk under a limit
    of its own (log uploads).
    """

    def __init__(self, app: ASGIApp, limit: int, exempt: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than the limit of {self.limit} bytes"
        if str(scope.get("path", "")).startswith(TAXII_PREFIX + "/"):
            response = taxii_error(413, detail)
        else:
            response = problem_response(413, "payload_too_large", detail)
        await response(scope, receive, send)
