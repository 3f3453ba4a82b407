"""``csv``: one row per value with the indicator behind it, safe to open in a spreadsheet.

Every field is quoted, line breaks inside a field become spaces, and a field that a
spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) is prefixed with ``'``, as OWASP recommends against CSV injection.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from qalqan.domain.handling import TLP
from qalqan.domain.observables import KINDS
from qalqan.interop.exports.base import (
    CONFIDENCE,
    KIND,
    MAIN,
    NAME,
    OWNER,
    STIX_ID,
    TLP_LEVEL,
    VALUE,
    Chunk,
    ExportFormat,
    RenderContext,
    Source,
    one_line,
)

__all__ = ["FORMAT", "CsvFormat", "defuse"]

HEADER = ("kind", "value", "indicator_id", "name", "confidence", "tlp", "source")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def defuse(cell: str) -> str:
    """``cell`` made inert for spreadsheets: one line, and no formula."""
    text = one_line(cell, 2000)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class CsvFormat(ExportFormat):
    name = "csv"
    description = "one row per value: kind, value, indicator id, name, confidence, TLP, source"
    media_type = "text/csv; charset=utf-8"
    suffix = ".csv"
    kinds = KINDS

    def render(self, source: Source, ctx: RenderContext) -> Iterator[Chunk]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(HEADER)
        labels = {int(level): f"TLP:{level.label}" for level in TLP}
        names = ctx.org_names
        for batch in source.indicators():
            writer.writerows(
                (
                    item[KIND],
                    defuse(item[VALUE]),
                    item[STIX_ID],
                    defuse(item[NAME] or ""),
                    "" if item[CONFIDENCE] is None else str(item[CONFIDENCE]),
                    labels[item[TLP_LEVEL]],
                    defuse(names.get(item[OWNER], "")),
                )
                for item in batch
            )
            yield MAIN, buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():
            yield MAIN, buffer.getvalue().encode()


FORMAT = CsvFormat()
