"""``zeek``: a file for Zeek's Intel framework (``Intel::read_files``).

Tab-separated, with the header the framework's input reader expects::

    #fields	indicator	indicator_type	meta.source	meta.desc	meta.url

``-`` stands for an empty field. Tabs, line breaks and other control characters never reach a
field: they become spaces, and a value that would need them is left out and counted. URLs are
written without their scheme, as Zeek's ``HTTP::build_url`` sees them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from qalqan.interop.exports.base import MAIN, Chunk, ExportFormat, RenderContext, Source, one_line

__all__ = ["FORMAT", "HEADER", "INTEL_TYPES", "ZeekFormat"]

HEADER = "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\n"
INTEL_TYPES = {
    "ip": "Intel::ADDR",
    "cidr": "Intel::SUBNET",
    "domain": "Intel::DOMAIN",
    "url": "Intel::URL",
    "email": "Intel::EMAIL",
    "md5": "Intel::FILE_HASH",
    "sha1": "Intel::FILE_HASH",
    "sha256": "Intel::FILE_HASH",
    "sha512": "Intel::FILE_HASH",
}
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_VALUE_RE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Kinds whose canonical values may hold characters a TSV field cannot; the others (addresses,
# domains, hashes) are made of letters, digits and . : / - _ only.
_CHECKED_KINDS = frozenset({"url", "email"})
_MARKERS = frozenset({"-", "(empty)"})


def _field(text: str | None) -> str:
    """A meta field: one line without tabs; ``-`` when empty (Zeek's unset marker)."""
    cleaned = one_line(text)
    return cleaned if cleaned and cleaned not in _MARKERS else "-"


class ZeekFormat(ExportFormat):
    name = "zeek"
    description = "Zeek Intel framework file (Intel::ADDR, SUBNET, DOMAIN, URL, EMAIL, FILE_HASH)"
    media_type = "text/plain; charset=utf-8"
    suffix = ".intel"
    kinds = tuple(INTEL_TYPES)

    def render(self, source: Source, ctx: RenderContext) -> Iterator[Chunk]:
        yield MAIN, HEADER.encode()
        sources: dict[str, str] = {}
        link = ctx.object_url
        for batch in source.indicators():
            lines = []
            for kind, value, stix_id, name, _, _, owner in batch:
                if kind in _CHECKED_KINDS:
                    if kind == "url":
                        value = _SCHEME_RE.sub("", value, count=1)
                    if _VALUE_RE.fullmatch(value) is None or value == "-":
                        ctx.skip("unsafe value")
                        continue
                where = sources.get(owner)
                if where is None:
                    where = sources[owner] = _field(ctx.org_names.get(owner))
                # The common description needs no cleaning: printable (no tab, no line break),
                # short, not one of Zeek's markers.
                if name and name.isprintable() and len(name) <= 200 and name not in _MARKERS:
                    desc = name
                else:
                    desc = _field(name)
                url = f"{link}{stix_id}" if link else "-"
                lines.append(f"{value}\t{INTEL_TYPES[kind]}\t{where}\t{desc}\t{url}\n")
            yield MAIN, "".join(lines).encode()


FORMAT = ZeekFormat()
