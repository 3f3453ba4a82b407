"""``rpz``: a DNS Response Policy Zone that answers NXDOMAIN for every listed domain and its
subdomains (``CNAME .``), for BIND, Unbound, Knot Resolver or PowerDNS Recursor.

Owner names are relative, so the file loads under any zone name the resolver gives it (e.g.
``rpz.qalqan.``). The SOA serial is the time of the export in seconds, so each new file a
resolver loads has a higher serial.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from qalqan.interop.exports.base import (
    MAIN,
    VALUE,
    Chunk,
    ExportFormat,
    RenderContext,
    Source,
    one_line,
)

__all__ = ["FORMAT", "RpzFormat"]

_LABEL = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# "*." and the zone's own name must still fit in 255 octets: leave room for a zone name of up
# to 50 characters.
_MAX_NAME = 200


class RpzFormat(ExportFormat):
    name = "rpz"
    description = "DNS response policy zone: NXDOMAIN for listed domains and their subdomains"
    media_type = "text/plain; charset=utf-8"
    suffix = ".rpz"
    kinds = ("domain",)

    def render(self, source: Source, ctx: RenderContext) -> Iterator[Chunk]:
        serial = (ctx.generated // 1_000_000) % (1 << 32)
        head = (
            f"; Qalqan response policy zone for {one_line(ctx.org, 100)}\n"
            f"; up to TLP:{ctx.ceiling.label}; serial {serial}\n"
            "$TTL 300\n"
            f"@ IN SOA localhost. hostmaster.localhost. {serial} 3600 600 604800 300\n"
            "@ IN NS localhost.\n"
        )
        yield MAIN, head.encode()
        for batch in source.indicators():
            lines = []
            for item in batch:
                name = item[VALUE]
                if len(name) > _MAX_NAME or _NAME_RE.fullmatch(name) is None:
                    ctx.skip("not usable as an RPZ owner name")
                    continue
                if "." not in name:
                    # A top-level name with its wildcard would black-hole a whole TLD.
                    ctx.skip("single-label name")
                    continue
                lines.append(f"{name} CNAME .\n*.{name} CNAME .\n")
            yield MAIN, "".join(lines).encode()


FORMAT = RpzFormat()
