"""What each user gets by e-mail, per kind of notification.

Without a choice of their own, users get by e-mail what is addressed to them personally (an
assignment, a task coming due) and not what is addressed to their whole org; each choice
overrides that default for one kind. In-app notifications are always kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from qalqan.audit import record
from qalqan.domain.principal import Principal
from qalqan.errors import Forbidden, InvalidInput
from qalqan.notify.kinds import KINDS
from qalqan.policy.notify import may_choose_email
from qalqan.store import deliveries as store

__all__ = ["email_wanted", "get_preferences", "set_preferences"]


def email_wanted(kind: str, chosen: Mapping[str, bool]) -> bool:
    """Does a user with these explicit choices get ``kind`` by e-mail?"""
    if kind in chosen:
        return chosen[kind]
    known = KINDS.get(kind)
    return known is not None and known.email_default


def _user(principal: Principal) -> str:
    if not may_choose_email(principal) or principal.user_id is None:
        raise Forbidden("e-mail choices belong to people with an account, not to machine keys")
    return principal.user_id


def get_preferences(conn: Connection, principal: Principal) -> list[dict[str, Any]]:
    """Every kind with what the user gets: e-mail or not, and whether that is the default."""
    user_id = _user(principal)
    chosen = store.preferences_of(conn, [user_id]).get(user_id, {})
    return [
        {
            "kind": kind.name,
            "summary": kind.summary,
            "personal": kind.personal,
            "email": email_wanted(kind.name, chosen),
            "default": kind.name not in chosen,
        }
        for kind in KINDS.values()
    ]


def set_preferences(
    conn: Connection, principal: Principal, email: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Set, per kind named, whether the user gets it by e-mail; the other kinds keep theirs."""
    user_id = _user(principal)
    choices: dict[str, bool] = {}
    for kind, wanted in email.items():
        if kind not in KINDS:
            raise InvalidInput(
                f"email.{str(kind)[:60]}: no such notification kind; known: {', '.join(KINDS)}",
                field=f"email.{str(kind)[:60]}",
            )
        if not isinstance(wanted, bool):
            raise InvalidInput(f"email.{kind}: give true or false", field=f"email.{kind}")
        choices[kind] = wanted
    store.set_preferences(conn, user_id, choices)
    if choices:
        record(conn, principal, "notification.preferences", target=user_id,
               detail={"email": choices})  # fmt: skip
    return get_preferences(conn, principal)
