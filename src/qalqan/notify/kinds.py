"""The kinds of notification, who each is for, and whether it goes by e-mail unless a user
chose otherwise.

A notification is addressed to an org (every user of the org may get it) or to one user (an
assignment). Users choose per kind whether they also get it by e-mail; without a choice, what
is addressed to them personally comes by e-mail and what is addressed to the whole org does not.
Webhooks subscribe to kinds, or to all with ``*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from qalqan.errors import InvalidInput

__all__ = ["ALL", "KINDS", "Kind", "parse_kinds"]

ALL: Final = "*"


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    summary: str
    personal: bool  # addressed to one user rather than the whole org

    @property
    def email_default(self) -> bool:
        return self.personal


KINDS: Final[dict[str, Kind]] = {
    k.name: k
    for k in (
        Kind("sighting", "Another org sighted an indicator of your org", personal=False),
        Kind("rfa.received", "Your org received a request for assistance", personal=False),
        Kind("rfa.answered", "Your request for assistance was answered", personal=False),
        Kind("rfa.declined", "Your request for assistance was declined", personal=False),
        Kind("rfa.withdrawn", "A request for assistance to your org was withdrawn", False),
        Kind("rfa.overdue", "Your request for assistance is past its deadline", personal=False),
        Kind("case.invited", "Your org was invited to a case", personal=False),
        Kind("case.assigned", "You were assigned to a case", personal=True),
        Kind("task.assigned", "You were assigned a task", personal=True),
        Kind("task.due", "A task of yours is due soon", personal=True),
    )
}


def parse_kinds(values: list[str], field: str = "kinds") -> list[str]:
    """Known kinds, or ``["*"]``, deduplicated in order; InvalidInput naming an unknown one."""
    seen: list[str] = []
    for value in values:
        if value != ALL and value not in KINDS:
            raise InvalidInput(
                f"{field}: {value[:60]!r} is no notification kind; known: "
                f"{', '.join([ALL, *KINDS])}",
                field=field,
            )
        if value not in seen:
            seen.append(value)
    if not seen:
        raise InvalidInput(f"{field}: name at least one kind, or {ALL} for all", field=field)
    return [ALL] if ALL in seen else seen
