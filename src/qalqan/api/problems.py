"""Errors as RFC 9457 ``application/problem+json`` documents with a stable ``code``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from qalqan.errors import QalqanError

__all__ = ["Problem", "install_handlers", "problem_response", "problem_responses"]

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
_WHEN = {
    400: "Invalid input: a malformed parameter or body",
    401: "No API key, or an unknown, revoked or disabled one",
    403: "The caller's role or org may not do this",
    404: "No such thing, or not visible to the caller",
    409: "It already exists",
    413: "The request body is larger than the node's limit",
}


class Problem(BaseModel):
    """An RFC 9457 problem document; errors about one field or item add ``field``, ``index``
    or ``id``, and a refused import adds its report."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="`urn:qalqan:error:<code>`")
    title: str
    status: int
    code: str = Field(description="stable, machine-readable: `invalid_input`, `not_found`, …")
    detail: str = Field(description="one line a person can act on")


_PROBLEM_SCHEMA = Problem.model_json_schema()


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


def problem_responses(
    *statuses: int, described: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting ``statuses`` as problem+json documents;
    ``described`` adds statuses with a description of their own."""
    descriptions = {s: _WHEN.get(s, _TITLES.get(s, "Error")) for s in statuses}
    descriptions.update(described or {})
    return {
        status: {"description": text, "content": {PROBLEM: {"schema": _PROBLEM_SCHEMA}}}
        for status, text in descriptions.items()
    }


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
