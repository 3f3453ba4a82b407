"""What every command shares: opening the instance, acting as an org, printing results."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import typer
from rich.console import Console
from sqlalchemy import Connection, select

from qalqan.accounts import system_principal
from qalqan.domain.principal import Principal
from qalqan.errors import ConfigurationError
from qalqan.instance import Instance
from qalqan.settings import Settings
from qalqan.store import accounts as store
from qalqan.store.tables import orgs

__all__ = [
    "JsonOption",
    "console",
    "err_console",
    "open_instance",
    "org_principal",
    "print_json",
    "transaction",
]

# Markup off: names and values come from users and must print as they are.
console = Console(markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)

JsonOption = typer.Option(False, "--json", help="Print the result as JSON for scripts.")


def open_instance(*, create: bool = False) -> Instance:
    """The instance named by the environment (``QALQAN_DATA_DIR``, ``QALQAN_DATABASE_URL``)."""
    return Instance.open(Settings(), create=create)


@contextmanager
def transaction(*, create: bool = False) -> Iterator[Connection]:
    """A connection to the instance in one transaction."""
    instance = open_instance(create=create)
    try:
        with instance.begin() as conn:
            yield conn
    finally:
        instance.close()


def org_principal(conn: Connection, org_ref: str | None) -> Principal:
    """Act as the org named ``org_ref`` (id or name), or as the node's first org."""
    if org_ref is None:
        first = conn.execute(select(orgs.c.id).order_by(orgs.c.created_at).limit(1)).scalar()
        if first is None:
            raise ConfigurationError("this node has no organization yet; run `qalqan init`")
        org_ref = str(first)
    return system_principal(store.get_org(conn, org_ref), conn)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
