"""Dependencies routes declare with ``Annotated``: the database connection and the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection

from qalqan.accounts import authenticate
from qalqan.domain.principal import Principal
from qalqan.errors import Unauthorized
from qalqan.instance import Instance

__all__ = ["CurrentInstance", "CurrentPrincipal", "DbConn", "get_instance"]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer qk_…`")


def get_instance(request: Request) -> Instance:
    """The instance the app serves."""
    instance: Instance = request.app.state.instance
    return instance


CurrentInstance = Annotated[Instance, Depends(get_instance)]


def _connection(instance: Annotated[Instance, Depends(get_instance)]) -> Iterator[Connection]:
    with instance.begin() as conn:
        yield conn


DbConn = Annotated[Connection, Depends(_connection)]


def _principal(
    instance: Annotated[Instance, Depends(get_instance)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("an API key is required: send `Authorization: Bearer <key>`")
    # A transaction of its own: recording the key's use must not hold SQLite's write lock
    # while the route writes through another connection (submissions, exports).
    with instance.begin() as conn:
        return authenticate(conn, credentials.credentials)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
