"""Periods of time that dashboards and analysis read: ``since`` and ``until`` as people write
them (an ISO 8601 time or date, or a duration back from now such as ``7d`` or ``24h``).

A period is half-open, ``since <= t < until``, in microseconds since the epoch (UTC), the unit
of every stored time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from qalqan.domain.durations import parse_duration
from qalqan.domain.stix import format_timestamp
from qalqan.errors import InvalidInput

__all__ = ["DAY_US", "Period", "parse_moment", "parse_period"]

DAY_US: Final = 86_400_000_000
_SECOND_US: Final = 1_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_EARLIEST: Final = 0
_LATEST: Final = 253_402_300_800_000_000  # 10000-01-01


@dataclass(frozen=True, slots=True)
class Period:
    """``since <= t < until`` (µs); ``since`` None: from the beginning."""

    since: int | None
    until: int

    def to_dict(self) -> dict[str, str | None]:
        return {
            "since": format_timestamp(self.since) if self.since is not None else None,
            "until": format_timestamp(self.until),
        }


def parse_moment(text: str, now: int) -> int:
    """µs of ``text``: an ISO 8601 time (UTC when it names no zone), a date (its midnight UTC)
    or a duration back from ``now`` (``90m``, ``24h``, ``7d``); ValueError saying how to write
    one."""
    cleaned = text.strip()
    try:
        seconds = parse_duration(cleaned)
    except ValueError:
        seconds = None
    if seconds is not None:
        return _bounded(text, now - seconds * _SECOND_US)
    try:
        moment = datetime.fromisoformat(cleaned.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a time (2026-01-31, 2026-01-31T12:00:00Z) nor a duration "
            "back from now (24h, 7d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _bounded(text, (moment - _EPOCH) // _MICROSECOND)


def _bounded(text: str, micros: int) -> int:
    if not _EARLIEST <= micros < _LATEST:
        raise ValueError(f"{text!r} is out of range (1970 to 9999)")
    return micros


def _field(name: str, text: str, now: int) -> int:
    try:
        return parse_moment(text, now)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(f"{name}: {exc}", field=name) from None


def parse_period(
    since: str | None,
    until: str | None,
    *,
    now: int,
    default_days: int | None = 30,
    max_days: int | None = 366,
) -> Period:
    """The period ``since``..``until`` (``until`` defaults to now, ``since`` to ``default_days``
    before ``until``, or to the beginning when ``default_days`` is None).

    InvalidInput naming the field when one is malformed, when ``since`` is not before
    ``until``, or when the period spans more than ``max_days``.
    """
    end = _field("until", until, now) if until is not None else now
    if since is not None:
        start: int | None = _field("since", since, now)
    elif default_days is not None:
        start = end - default_days * DAY_US
    else:
        start = None
    if start is not None and start >= end:
        raise InvalidInput("since: the period must begin before it ends (until)", field="since")
    if max_days is not None and (start is None or end - start > max_days * DAY_US):
        raise InvalidInput(
            f"since: a period may span at most {max_days} days; narrow since/until",
            field="since",
        )
    return Period(start, end)
