"""``text``: one value per line, grouped by kind (ip, cidr, domain, ...), nothing else — the
shape firewalls, proxies and EDR tools read as an external block list. Ask for one kind
(``--kind domain``) to get one list."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from typing import IO

from qalqan.domain.observables import KINDS
from qalqan.interop.exports.base import (
    KIND,
    MAIN,
    VALUE,
    Chunk,
    ExportFormat,
    RenderContext,
    Source,
)

__all__ = ["FORMAT", "TextFormat"]

# A value goes out only if it is one run of visible ASCII or non-ASCII letters: no space,
# no control character, nothing that could split it over two lines.
_SAFE_RE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPOOL_BYTES = 4 << 20


class TextFormat(ExportFormat):
    name = "text"
    description = "one value per line, grouped by kind"
    media_type = "text/plain; charset=utf-8"
    suffix = ".txt"
    kinds = KINDS

    def render(self, source: Source, ctx: RenderContext) -> Iterator[Chunk]:
        spools: dict[str, IO[bytes]] = {}
        try:
            for batch in source.indicators():
                lines: dict[str, list[str]] = {}
                for item in batch:
                    if _SAFE_RE.fullmatch(item[VALUE]) is None:
                        ctx.skip("unsafe value")
                        continue
                    lines.setdefault(item[KIND], []).append(item[VALUE])
                for kind, values in lines.items():
                    spool = spools.get(kind)
                    if spool is None:
                        spool = spools[kind] = tempfile.SpooledTemporaryFile(_SPOOL_BYTES)  # noqa: SIM115
                    spool.write(("\n".join(values) + "\n").encode())
            for kind in KINDS:
                spool = spools.get(kind)
                if spool is None:
                    continue
                spool.seek(0)
                while block := spool.read(1 << 20):
                    yield MAIN, block
        finally:
            for spool in spools.values():
                spool.close()


FORMAT = TextFormat()
