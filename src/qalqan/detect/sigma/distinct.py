"""The distinct values of each field of a batch, so that a test runs once per value, not row.

Logs repeat themselves: a hundred thousand process creations hold a few dozen images, users,
parents and hashes. For each field the rules read, :func:`distinct_values` keeps its distinct
values (with their lowercase shadow when a rule compares without case) and adds to the batch a
*code* column giving each row's position among them. A test on the field then runs over the
distinct values and reaches the rows by gathering through the codes. A field that barely
repeats (a command line with process ids in it) keeps one value per row: its code is the row
index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import polars as pl

from qalqan.detect.sigma.nodes import lower

__all__ = ["FieldValues", "distinct_values"]

_REPEATS: Final = 2
"""A field gets a dictionary when it has at most one distinct value per this many rows."""


@dataclass(frozen=True, slots=True)
class FieldValues:
    """The values of ``field`` in a batch: ``values`` has the field (and its shadow) as
    columns; the batch column ``code`` holds each row's position in ``values``."""

    field: str
    values: pl.DataFrame
    code: str

    def at_rows(self, column: str) -> pl.Expr:
        """``column`` of :attr:`values` (field or shadow), at the rows of the batch."""
        return pl.lit(self.values.get_column(column)).gather(pl.col(self.code)).alias(column)


def distinct_values(
    frame: pl.DataFrame, fields: Iterable[str], lowered: set[str], row: str
) -> tuple[pl.DataFrame, dict[str, FieldValues]]:
    """``frame`` with a code column for each field that gets a dictionary, and the values of
    every field (a field the events lack has the single value null). Fields in ``lowered``
    get their lowercase shadow; ``row`` is the frame's row index column."""
    codes: list[pl.Expr | pl.Series] = []
    found: dict[str, FieldValues] = {}
    for field in sorted(fields):
        code = f"@code:{field}"
        column = frame.get_column(field) if field in frame.columns else None
        # Sigma compares text: a list or map (which readers do not flatten) is no value of it.
        if column is not None and column.dtype.is_nested():
            column = None
        if column is not None and column.dtype != pl.String:
            column = column.cast(pl.String)
        distinct = column.unique().drop_nulls() if column is not None else None
        if column is None or distinct is None or distinct.is_empty():
            column = pl.Series(field, [None], pl.String)
            codes.append(pl.lit(0, pl.UInt32).alias(code))
        elif (len(distinct) + 1) * _REPEATS > len(column):
            code = row
        else:
            positions = column.cast(pl.Enum(distinct)).to_physical().cast(pl.UInt32)
            codes.append(positions.fill_null(len(distinct)).alias(code))
            column = distinct.extend_constant(None, 1).alias(field)
        values = column.to_frame()
        if field in lowered:
            values = values.with_columns(column.str.to_lowercase().alias(lower(field)))
        found[field] = FieldValues(field, values, code)
    return (frame.with_columns(codes) if codes else frame), found
