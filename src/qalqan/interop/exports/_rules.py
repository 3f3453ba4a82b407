"""What the Suricata and Snort formats share: escaping of rule text, and address lists for
IP-only rules.

A rule option's value ends at an unescaped ``;`` and a quoted value at an unescaped ``"``, so
every text that comes from users (an org's name, an indicator's name, a value) goes through
:func:`rule_text` (for ``msg``) or :func:`content_bytes` (for ``content``) and can never end
its option early or start a new one.
"""

from __future__ import annotations

import re

from qalqan.interop.exports.base import RenderContext, one_line

__all__ = [
    "ADDRESS_RE",
    "CLASSTYPE",
    "AddressGroups",
    "address_rules",
    "content_bytes",
    "rule_text",
    "url_parts",
]

# Canonical addresses and networks only: digits, hex, dots, colons and one prefix.
ADDRESS_RE = re.compile(r"[0-9a-f.:]+(?:/[0-9]{1,3})?")
_MSG_SPECIAL_RE = re.compile(r'([\\";])')
# Printable ASCII that needs no escape inside content:"..."; the rest is written as |hex|.
_CONTENT_PLAIN = frozenset(
    chr(c) for c in range(0x20, 0x7F) if chr(c) not in {'"', ";", "\\", "|", ":"}
)
CLASSTYPE = "classtype:trojan-activity"
# Suricata refuses rules longer than 8 KB; stay well under it, for Snort too.
_LIST_BUDGET = 4000


def rule_text(text: str, limit: int = 200) -> str:
    """``text`` for a quoted ``msg``: one line, ``\\``, ``"`` and ``;`` escaped."""
    return _MSG_SPECIAL_RE.sub(r"\\\1", one_line(text, limit))


def content_bytes(data: str) -> str:
    """``data`` (as UTF-8) for a quoted ``content``: plain printable ASCII as is, every other
    byte in ``|..|`` hex."""
    out: list[str] = []
    hexed: list[str] = []
    for char in data:
        if char in _CONTENT_PLAIN:
            if hexed:
                out.append("|" + " ".join(hexed) + "|")
                hexed = []
            out.append(char)
        else:
            hexed.extend(f"{b:02X}" for b in char.encode())
    if hexed:
        out.append("|" + " ".join(hexed) + "|")
    return "".join(out)


class AddressGroups:
    """Addresses gathered into lists short enough for one rule each."""

    def __init__(self) -> None:
        self._current: list[str] = []
        self._length = 0

    def add(self, address: str, ctx: RenderContext) -> list[str] | None:
        """Add one; returns a full list when one is ready. A value that is not a canonical
        address or network is skipped (and counted): it could break the rule's syntax."""
        if ADDRESS_RE.fullmatch(address) is None:
            ctx.skip("unsafe value")
            return None
        self._current.append(address)
        self._length += len(address) + 1
        if self._length < _LIST_BUDGET:
            return None
        return self.flush()

    def flush(self) -> list[str] | None:
        """The addresses gathered so far, if any."""
        if not self._current:
            return None
        ready, self._current, self._length = self._current, [], 0
        return ready


def address_rules(addresses: list[str], org: str, sid: int, label: str = "") -> str:
    """Two IP-only rules, traffic from and to the listed addresses, with ``sid`` and
    ``sid + 1``; ``label`` ends their messages (e.g. ", group 3")."""
    listed = "[" + ",".join(addresses) + "]"
    return (
        f'alert ip {listed} any -> $HOME_NET any (msg:"QALQAN {org} traffic from listed '
        f'addresses{label}"; {CLASSTYPE}; sid:{sid}; rev:1;)\n'
        f'alert ip $HOME_NET any -> {listed} any (msg:"QALQAN {org} traffic to listed '
        f'addresses{label}"; {CLASSTYPE}; sid:{sid + 1}; rev:1;)\n'
    )


def url_parts(url: str) -> tuple[str, str] | None:
    """(host, raw URI) of a canonical http(s) URL; None for other schemes."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        return None
    slash = rest.find("/")
    authority, uri = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    host = authority.rpartition("@")[2]
    host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    return (host, uri) if host else None
