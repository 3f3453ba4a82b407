"""Errors as RFC 9457 ``application/problem+json`` documents with a stable ``code``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from qalqan.errors import QalqanError

__all__ = ["install_handlers", "problem_response"]

PROBLEM = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def problem_response(status: int, code: str, detail: str, **extra: Any) -> Response:
    """A problem+json response."""
    body = {
        "type": f"urn:qalqan:error:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)


async def _qalqan_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, QalqanError)
    extra = {k: v for k, v in exc.to_dict().items() if k not in ("code", "detail")}
    return problem_response(exc.status, exc.code, exc.detail, **extra)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), "reason": e["msg"]}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": None, "reason": "invalid request"}
    return problem_response(
        400,
        "invalid_input",
        f"{first['field']}: {first['reason']}",
        field=first["field"],
        errors=errors,
    )


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "error")
    return problem_response(exc.status_code, code, str(exc.detail))


def install_handlers(app: FastAPI) -> None:
    """Render every error the app raises as problem+json."""
    app.add_exception_handler(QalqanError, _qalqan_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
