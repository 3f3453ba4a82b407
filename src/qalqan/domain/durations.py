"""Durations as people write them: ``90``, ``30s``, ``15m``, ``1h``, ``7d``, ``2w``, ``1h30m``."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["format_duration", "parse_duration"]

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART_RE: Final = re.compile(r"(\d{1,9})([smhdw])")


def parse_duration(text: str) -> int:
    """Seconds of a duration; ValueError saying how to write one."""
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned.isdigit() and len(cleaned) <= 10:
        return int(cleaned)
    parts = _PART_RE.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 15m, 1h, 7d or 1h30m")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: int) -> str:
    """The shortest writing of ``seconds`` that :func:`parse_duration` reads back."""
    if seconds == 0:
        return "0s"
    out = []
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out)
