"""Who is acting: roles and the principal a request or command runs as."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Principal", "Role"]


class Role(StrEnum):
    """A user's role; what each may do is decided in ``qalqan.policy``."""

    NODE_ADMIN = "node-admin"
    ORG_ADMIN = "org-admin"
    ANALYST = "analyst"
    READER = "reader"
    SYNC = "sync"

    @classmethod
    def parse(cls, text: str) -> Role:
        """``'analyst'`` → Role.ANALYST; ValueError naming the valid roles."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise ValueError(f"unknown role {text!r}; use one of {names}") from None


@dataclass(frozen=True, slots=True)
class Principal:
    """A user of an org, with the sharing groups that org belongs to (resolved at login)."""

    user_id: str | None
    org_id: str
    role: Role
    group_ids: frozenset[str] = field(default_factory=frozenset)
    email: str = ""
