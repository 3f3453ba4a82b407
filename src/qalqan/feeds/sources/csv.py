"""``csv``: delimited feeds such as URLhaus, Feodo Tracker or ThreatFox exports.

The ``columns`` option maps fields to columns, by header name or by 1-based number, e.g.
``url=url,first_seen=dateadded,labels=tags,malware=threat``. Value fields are the observable
kinds (``ip``, ``domain``, ``url``, ``md5`` ...) or ``value`` (kind detected per row); context
fields are ``first_seen``, ``labels`` (split on ``,``, ``;`` or ``|``), ``malware``, ``threat``,
``description`` and ``confidence``. Every other column is kept as context under its header name.

A header is the first row, or — as abuse.ch publishes it — the last comment line before the first
row when it has as many fields as that row (``header=auto``, the default).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator

from qalqan.domain.observables import KIND_ALIASES, KINDS
from qalqan.feeds.items import Context, Item, Reject, Unchanged, Value
from qalqan.feeds.sources import Job, Source, SourceOptions, register

__all__ = ["CsvOptions", "CsvSource"]

_CONTEXT_FIELDS = frozenset(
    {"first_seen", "labels", "malware", "threat", "description", "confidence"}
)
_VALUE_FIELDS = frozenset({*KINDS, *KIND_ALIASES, "value"})
_LABEL_SPLIT_RE = re.compile(r"[,;|]")
_MAX_FIELD = 10_000


class CsvOptions(SourceOptions):
    delimiter: str = ","
    header: Literal["auto", "yes", "no"] = "auto"
    columns: dict[str, str] = Field(default_factory=lambda: {"value": "1"})
    comment: str = "#"

    @field_validator("columns", mode="before")
    @classmethod
    def _parse_columns(cls, raw: object) -> object:
        if isinstance(raw, str):
            pairs = [part.partition("=") for part in raw.split(",") if part.strip()]
            if any(not sep or not k.strip() or not v.strip() for k, sep, v in pairs):
                raise ValueError("write columns as field=column,field=column")
            raw = {k.strip(): v.strip() for k, _, v in pairs}
        return raw

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = set(columns) - _VALUE_FIELDS - _CONTEXT_FIELDS
        if unknown:
            raise ValueError(
                f"unknown field {sorted(unknown)[0]!r}; value fields are the observable kinds "
                f"or 'value', context fields: {', '.join(sorted(_CONTEXT_FIELDS))}"
            )
        if not set(columns) & _VALUE_FIELDS:
            raise ValueError("map at least one value column, e.g. url=3 or value=1")
        return columns

    @field_validator("delimiter", mode="before")
    @classmethod
    def _delimiter(cls, raw: object) -> object:
        if raw in ("\\t", "tab", "TAB"):
            return "\t"
        if isinstance(raw, str) and len(raw) != 1:
            raise ValueError("the delimiter is one character (or 'tab')")
        return raw


def _timestamp(text: str) -> int | None:
    """Microseconds since the epoch of a date as feeds write it, or None if unreadable."""
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        seconds = int(text)
        return seconds * 1_000_000 if seconds < 10**11 else seconds * 1000
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" UTC", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


class _Layout:
    """Where each mapped field is in a row, once the header (if any) is known."""

    def __init__(self, columns: dict[str, str], header: list[str] | None):
        self.positions: dict[str, int] = {}
        names = [h.strip().lstrip("#").strip().lower() for h in header] if header else None
        for field, ref in columns.items():
            if ref.isdigit():
                self.positions[field] = int(ref) - 1
            elif names is not None and ref.lower() in names:
                self.positions[field] = names.index(ref.lower())
            else:
                where = "the header" if names is not None else "a file without a header"
                raise ValueError(f"column {ref!r} of field {field!r} is not in {where}")
        mapped = set(self.positions.values())
        self.extra = [(i, n) for i, n in enumerate(names) if i not in mapped and n] if names else []


@register
class CsvSource(Source):
    kind = "csv"
    summary = "delimited rows; columns mapped to observable kinds and context"
    options_model = CsvOptions

    def read(self, job: Job) -> Iterator[Item]:
        options = self.options
        assert isinstance(options, CsvOptions)
        resource = job.fetch()
        if resource is None:
            yield Unchanged()
            return
        with resource:
            lines = job.lines(resource)
            last_comment: list[str | None] = [None]

            def data_lines() -> Iterator[str]:
                for _, text in lines:
                    if options.comment and text.lstrip().startswith(options.comment):
                        last_comment[0] = text.lstrip()[len(options.comment) :]
                        continue
                    if text.strip():
                        yield text

            reader = csv.reader(data_lines(), delimiter=options.delimiter)
            layout: _Layout | None = None
            for row in reader:
                line_no = lines.line_no
                if layout is None:
                    try:
                        layout, is_header = self._layout(options, row, last_comment[0])
                    except ValueError as exc:
                        yield Reject(line_no, str(exc), field="columns")
                        return
                    if is_header:
                        continue
                yield from self._values(options, layout, row, line_no)
            for line_no, reason in lines.rejects:
                yield Reject(line_no, reason)

    @staticmethod
    def _layout(options: CsvOptions, first: list[str], comment: str | None) -> tuple[_Layout, bool]:
        """The layout, and whether ``first`` is the header row."""
        if options.header == "yes":
            return _Layout(options.columns, first), True
        if options.header == "no":
            return _Layout(options.columns, None), False
        if comment is not None:
            candidate = next(csv.reader([comment], delimiter=options.delimiter), [])
            if len(candidate) == len(first):
                try:
                    return _Layout(options.columns, candidate), False
                except ValueError:
                    pass
        named = any(not ref.isdigit() for ref in options.columns.values())
        return _Layout(options.columns, first if named else None), named

    @staticmethod
    def _values(
        options: CsvOptions, layout: _Layout, row: list[str], line_no: int
    ) -> Iterator[Item]:
        def cell(field: str) -> str | None:
            at = layout.positions.get(field)
            if at is None or at >= len(row):
                return None
            return row[at].strip()[:_MAX_FIELD]

        labels: list[str] = []
        for field in ("labels", "malware", "threat"):
            text = cell(field)
            if text:
                parts = _LABEL_SPLIT_RE.split(text) if field == "labels" else [text]
                labels.extend(p.strip()[:100] for p in parts if p.strip())
        confidence_text = cell("confidence")
        confidence = (
            min(100, int(confidence_text))
            if confidence_text and confidence_text.isdigit()
            else None
        )
        first_seen_text = cell("first_seen")
        context = Context(
            labels=tuple(dict.fromkeys(labels)),
            description=cell("description") or None,
            first_seen=_timestamp(first_seen_text) if first_seen_text else None,
            confidence=confidence,
            extra=tuple((name, row[i].strip()[:1000]) for i, name in layout.extra if i < len(row)),
        )
        found = False
        for field, at in layout.positions.items():
            if field in _CONTEXT_FIELDS:
                continue
            if at >= len(row):
                yield Reject(
                    line_no, f"the row has {len(row)} fields; column {at + 1} is missing",
                    field=field,
                )  # fmt: skip
                continue
            raw = row[at].strip()
            if raw:
                found = True
                yield Value(line_no, raw, None if field == "value" else field, context)
        if not found and len(row) > max(layout.positions.values(), default=0):
            yield Reject(line_no, "no value in the mapped columns", field="value")
