"""What every case operation shares: finding a case the caller may see, checking what its org
may do there, recording a change (audit entry, timeline entry, ``updated_at``), and reading
text fields safely."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from qalqan import audit
from qalqan.domain.principal import Principal
from qalqan.errors import Forbidden, InvalidInput, NotFound
from qalqan.store import cases as store
from qalqan.store.clock import now_us

__all__ = [
    "LONG_TEXT_MAX",
    "TITLE_MAX",
    "CaseAccess",
    "check_text",
    "is_uuid",
    "load_case",
    "new_id",
    "note_change",
    "optional_text",
    "parse_moment",
    "parse_or_invalid",
    "require",
]

TITLE_MAX = 300
LONG_TEXT_MAX = 20_000
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_MAX_NUMBER = 2**31 - 1


class CaseAccess:
    """A case the caller may see, with the role of the caller's org in it."""

    __slots__ = ("case", "role")

    def __init__(self, case: store.CaseRow, role: str) -> None:
        self.case = case
        self.role = role


def load_case(conn: Connection, principal: Principal, ref: str) -> CaseAccess:
    """The case whose id or number is ``ref``, if the caller may see it: the caller's org takes
    part in it and, for a TLP:RED case, the caller is named in it or administers the org
    (:func:`qalqan.policy.case_visible_to`).

    NotFound otherwise, with the same words whether the case is missing or invisible: no
    existence leak.
    """
    text = ref.strip()
    row: store.CaseRow | None = None
    if text.isascii() and text.isdigit() and 0 < len(text) <= 10 and int(text) <= _MAX_NUMBER:
        row = store.get_case(conn, principal, number=int(text))
    elif _UUID.match(text.lower()):
        row = store.get_case(conn, principal, case_id=text.lower())
    if row is None:
        raise NotFound(f"no case {ref[:80]!r}", id=ref[:80])
    role = store.participant_role(conn, row.id, principal.org_id)
    assert role is not None  # visibility is participation
    return CaseAccess(row, role)


def is_uuid(text: str) -> bool:
    return bool(_UUID.match(text))


def require(allowed: bool, what: str) -> None:
    """Forbidden unless ``allowed``; ``what`` says what was refused."""
    if not allowed:
        raise Forbidden(f"your role in this case does not allow you to {what}")


def check_text(field: str, value: str, max_len: int, *, required: bool = False) -> str:
    """``value`` if it fits: at most ``max_len`` characters, no NUL; stored as given (HTML is
    text, never markup)."""
    if len(value) > max_len:
        raise InvalidInput(f"{field}: longer than {max_len} characters", field=field)
    if "\x00" in value:
        raise InvalidInput(f"{field}: holds a NUL character", field=field)
    if required and not value.strip():
        raise InvalidInput(f"{field}: must not be empty", field=field)
    return value


def optional_text(field: str, value: str | None, max_len: int) -> str | None:
    return None if value is None else check_text(field, value, max_len)


def parse_or_invalid(field: str, parser: Callable[[str], Any], value: str) -> Any:
    try:
        return parser(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}", field=field) from None


def note_change(
    conn: Connection,
    principal: Principal,
    case_id: str,
    action: str,
    text: str,
    detail: Mapping[str, Any] | None = None,
    *,
    at: int | None = None,
) -> int:
    """Record a change of a case: an audit entry, an automatic timeline entry, and the case's
    ``updated_at``. Returns the time used (µs)."""
    moment = at if at is not None else now_us()
    audit.record(conn, principal, action, target=case_id, detail=detail)
    store.add_timeline(
        conn,
        {
            "case_id": case_id,
            "at": moment,
            "event_time": None,
            "kind": "auto",
            "action": action,
            "actor_user_id": principal.user_id,
            "actor_org_id": principal.org_id,
            "text": text,
            "detail": orjson.dumps(dict(detail or {})).decode(),
        },
    )
    store.touch_case(conn, case_id, moment)
    return moment


def new_id() -> str:
    return str(uuid.uuid4())


def parse_moment(field: str, text: str) -> int:
    """An RFC 3339 time or a date (midnight UTC) as µs since the epoch; InvalidInput naming
    ``field``."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{field}: {text[:40]!r} is not an RFC 3339 time or date", field=field
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return int(moment.timestamp() * 1_000_000)
    except (OverflowError, ValueError):
        raise InvalidInput(f"{field}: {text[:40]!r} is out of range", field=field) from None
