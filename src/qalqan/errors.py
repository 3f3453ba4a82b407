"""Every error Qalqan raises on purpose, with a stable ``code`` the API renders as problem+json.

The tree::

    QalqanError                    code "error"            HTTP 500
    ├── InvalidInput               code "invalid_input"    HTTP 400  (item index, id, field)
    │   └── PayloadTooLarge        code "payload_too_large" HTTP 413
    ├── Unauthorized               code "unauthorized"     HTTP 401
    ├── Forbidden                  code "forbidden"        HTTP 403
    ├── NotFound                   code "not_found"        HTTP 404
    ├── Conflict                   code "conflict"         HTTP 409
    ├── PolicyViolation            code "policy_violation" HTTP 422  (handling rules refuse it)
    ├── ConfigurationError         code "configuration"    HTTP 500
    ├── StoreError                 code "store"            HTTP 503  (database unreachable, ...)
    ├── Unavailable                code "unavailable"      HTTP 503  (shutting down; retry later)
    ├── FetchError                 code "fetch_failed"     HTTP 502  (a feed's source failed)
    └── PeerError                  code "peer"             HTTP 502  (a federation peer failed)

Third-party exceptions are translated where they enter (``raise ... from exc``), so callers only
ever catch ``QalqanError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

__all__ = [
    "ConfigurationError",
    "Conflict",
    "FetchError",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PeerError",
    "PolicyViolation",
    "QalqanError",
    "StoreError",
    "Unauthorized",
    "Unavailable",
    "parse_field",
]

T = TypeVar("T")


class QalqanError(Exception):
    """Root of Qalqan's errors. ``detail`` is one line a person can act on."""

    code = "error"
    status = 500

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = {k: v for k, v in context.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """The error as the body of an RFC 9457 problem document (without ``type``/``status``)."""
        return {"code": self.code, "detail": self.detail, **self.context}


class InvalidInput(QalqanError):
    """The caller sent something malformed; ``index``, ``id`` and ``field`` say where."""

    code = "invalid_input"
    status = 400

    def __init__(
        self,
        detail: str,
        *,
        index: int | None = None,
        id: str | None = None,
        field: str | None = None,
        line: int | None = None,
        **context: Any,
    ) -> None:
        super().__init__(detail, index=index, id=id, field=field, line=line, **context)
        self.index = index
        self.id = id
        self.field = field
        self.line = line


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    status = 413


class Unauthorized(QalqanError):
    code = "unauthorized"
    status = 401


class Forbidden(QalqanError):
    code = "forbidden"
    status = 403


class NotFound(QalqanError):
    code = "not_found"
    status = 404


class Conflict(QalqanError):
    code = "conflict"
    status = 409


class PolicyViolation(QalqanError):
    code = "policy_violation"
    status = 422


class ConfigurationError(QalqanError):
    code = "configuration"
    status = 500


class StoreError(QalqanError):
    code = "store"
    status = 503


class Unavailable(QalqanError):
    """The server cannot take the work now (it is shutting down); the same request later can
    succeed."""

    code = "unavailable"
    status = 503


class FetchError(QalqanError):
    """A feed's source could not be read: unreachable, an HTTP error, a timeout, too large."""

    code = "fetch_failed"
    status = 502


class PeerError(QalqanError):
    code = "peer"
    status = 502


@overload
def parse_field(field: str, parser: Callable[[str], T], value: str) -> T: ...
@overload
def parse_field(field: str, parser: Callable[[str], T], value: str | None) -> T | None: ...
def parse_field(field: str, parser: Callable[[str], T], value: str | None) -> T | None:
    """``parser(value)``, or None when the value is absent; a ``ValueError`` from the parser
    becomes ``InvalidInput`` naming ``field``. Every adapter reads options this way."""
    if value is None:
        return None
    try:
        return parser(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}", field=field) from None
