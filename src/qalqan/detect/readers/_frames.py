"""Turning what a parser produced into the frame every matcher expects.

Every field leaves a reader as a ``String`` column named by its path (``dns.rrname``), so the
Sigma engine and the IOC matcher compare text with text whatever the log's own types were:
numbers and booleans become their JSON text, lists and objects a field was not flattened into
become JSON text. This module holds those conversions, done on whole columns:

* a *tree* (:data:`Tree`) is the shape of the nested objects a parser should build: a key maps
  to a subtree, or to ``None`` for a leaf read as text; from it come the Polars schema to read
  with and the flattening that names each leaf by its dotted path;
* :func:`parse_time` reads the many ways logs write a time into ``@time``;
* :func:`finish` puts the reserved columns in front of the fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import polars as pl
from polars.datatypes import DataTypeClass

from qalqan.detect.events import FILE, LINE, OFFSET, RESERVED, TIME

__all__ = [
    "TIME_FIELDS",
    "Tree",
    "add_leaf",
    "finish",
    "first_time",
    "flatten",
    "json_text",
    "merge_trees",
    "parse_time",
    "schema_of",
    "select_columns",
    "stringify",
    "tree_from_columns",
    "tree_from_objects",
    "tree_from_schema",
]

Tree: TypeAlias = dict[str, "Tree | None"]
PolarsType: TypeAlias = pl.DataType | DataTypeClass

TIME_FIELDS: Final[tuple[str, ...]] = (
    "@timestamp",
    "timestamp",
    "ts",
    "time",
    "_time",
    "eventTime",
)
"""The fields a generic log keeps its time in, the first present wins."""

_TIME_FORMATS: Final[tuple[str, ...]] = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%b %d %Y %H:%M:%S%.f%#z",
    "%b %d %Y %H:%M:%S%.f",
    "%d/%b/%Y:%H:%M:%S %z",
    "%Y-%m-%d",
)
_UTC: Final = pl.Datetime("us", "UTC")


def add_leaf(tree: Tree, path: Sequence[str]) -> None:
    """Add ``path`` to ``tree`` as a leaf; a leaf already on the path wins over the subtree (the
    object is then read whole, as JSON text)."""
    node = tree
    for key in path[:-1]:
        child = node.get(key, {})
        if child is None:
            return
        node[key] = child
        node = child
    node[path[-1]] = None


def tree_from_columns(columns: Iterable[str]) -> Tree:
    """The tree that reads the wanted fields, each either a key of its own (``id.orig_h`` in
    Zeek's JSON) or a path through nested objects (``dns.rrname`` in Suricata's)."""
    tree: Tree = {}
    wanted = list(dict.fromkeys(columns))
    for column in wanted:
        parts = column.split(".")
        if len(parts) > 1:
            add_leaf(tree, parts)
    for column in wanted:
        tree[column] = None
    return tree


def tree_from_schema(schema: Mapping[str, PolarsType]) -> Tree:
    """The tree of a schema Polars inferred: structs are walked into, anything else is a leaf."""
    tree: Tree = {}
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Struct) and dtype.fields:
            tree[name] = tree_from_schema({f.name: f.dtype for f in dtype.fields})
        else:
            tree[name] = None
    return tree


def merge_trees(into: Tree, other: Tree) -> None:
    """Merge ``other`` into ``into``; a key that is an object in one and not in the other
    becomes a leaf, so no record's value can contradict the schema."""
    for key, sub in other.items():
        if key not in into:
            into[key] = None if sub is None else _copy(sub)
        else:
            mine = into[key]
            if mine is None or sub is None:
                into[key] = None
            else:
                merge_trees(mine, sub)


def _copy(tree: Tree) -> Tree:
    return {k: None if v is None else _copy(v) for k, v in tree.items()}


def _shape(obj: Mapping[str, Any]) -> Tree:
    return {k: _shape(v) if isinstance(v, dict) and v else None for k, v in obj.items()}


def tree_from_objects(objects: Iterable[Mapping[str, Any]]) -> Tree:
    """The merged shape of parsed JSON objects (see :func:`merge_trees` for conflicts)."""
    tree: Tree = {}
    for obj in objects:
        merge_trees(tree, _shape(obj))
    return tree


def schema_of(tree: Tree) -> dict[str, pl.DataType]:
    """The Polars schema that reads a tree: leaves as ``String`` (Polars writes numbers, booleans
    and nested values it is not told to walk into as their JSON text)."""
    return {
        key: pl.String() if sub is None or not sub else pl.Struct(schema_of(sub))
        for key, sub in tree.items()
    }


def _leaves(tree: Tree, expr: pl.Expr | None, path: str) -> Iterable[tuple[str, pl.Expr]]:
    for key, sub in tree.items():
        child = pl.col(key) if expr is None else expr.struct.field(key)
        name = key if expr is None else f"{path}.{key}"
        if sub:
            yield from _leaves(sub, child, name)
        else:
            yield name, child


def flatten(frame: pl.DataFrame, tree: Tree) -> pl.DataFrame:
    """Turn the struct columns of ``frame`` (read with :func:`schema_of` of ``tree``) into one
    column per leaf, named by its dotted path. A key that is itself dotted and a nested path
    that spell the same name are one field: the first non-null wins."""
    by_name: dict[str, list[pl.Expr]] = {}
    for name, expr in _leaves(tree, None, ""):
        by_name.setdefault(name, []).append(expr)
    if all(len(exprs) == 1 and "." not in name for name, exprs in by_name.items()):
        return frame
    return frame.select(
        exprs[0].alias(name) if len(exprs) == 1 else pl.coalesce(exprs).alias(name)
        for name, exprs in by_name.items()
    )


def _json_path(keys: Sequence[str]) -> str:
    quoted = (k.replace("\\", "\\\\").replace("'", "\\'") for k in keys)
    return "$" + "".join(f"['{k}']" for k in quoted)


def select_columns(frame: pl.DataFrame, columns: Sequence[str] | None) -> pl.DataFrame:
    """Keep the wanted fields in the order asked. A field the frame lacks is taken from the JSON
    text of an enclosing object when the frame has one (``a`` read whole gives ``a.b``), and is
    otherwise a null ``String`` column."""
    if columns is None:
        return frame
    present = set(frame.columns)
    exprs: list[pl.Expr] = []
    for column in dict.fromkeys(columns):
        if column in present:
            exprs.append(pl.col(column))
            continue
        parts = column.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in present and frame.schema[prefix] == pl.String:
                path = _json_path(parts[cut:])
                exprs.append(pl.col(prefix).str.json_path_match(path).alias(column))
                break
        else:
            exprs.append(pl.lit(None, pl.String).alias(column))
    return frame.select(exprs)


def json_text(expr: pl.Expr) -> pl.Expr:
    """A list or struct column as JSON text (null stays null)."""
    encoded = pl.struct(expr.alias("v")).struct.json_encode()
    text = encoded.str.strip_prefix('{"v":').str.strip_suffix("}")
    return pl.when(expr.is_null()).then(None).otherwise(text)


def _as_text(expr: pl.Expr, dtype: PolarsType) -> pl.Expr:
    if isinstance(dtype, pl.List | pl.Array | pl.Struct):
        return json_text(expr)
    if isinstance(dtype, pl.Datetime):
        utc = expr.dt.convert_time_zone("UTC") if dtype.time_zone else expr
        return utc.dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")
    return expr.cast(pl.String, strict=False)


def _stringified(expr: pl.Expr, dtype: PolarsType, name: str) -> Iterable[pl.Expr]:
    if isinstance(dtype, pl.Struct) and dtype.fields:
        for f in dtype.fields:
            yield from _stringified(expr.struct.field(f.name), f.dtype, f"{name}.{f.name}")
    else:
        yield _as_text(expr, dtype).alias(name)


def stringify(frame: pl.DataFrame) -> pl.DataFrame:
    """A typed frame (from a columnar file) as the fields a reader returns: structs flattened
    into dotted names, every value as text."""
    exprs = [
        e for name, dtype in frame.schema.items() for e in _stringified(pl.col(name), dtype, name)
    ]
    return frame.select(exprs)


def _scaled(number: pl.Series, scale: tuple[float, float, float, float]) -> pl.Series:
    """Epoch numbers to microseconds: seconds, milliseconds, microseconds or nanoseconds, told
    by their size (what a log means by a number is not written beside it)."""
    size = number.abs()
    largest = size.max()
    if largest is None or float(largest) < 1e11:  # type: ignore[arg-type]
        # Seconds, as nearly every log writes them: one multiplication, not four.
        return number * scale[0]
    return pl.select(
        pl.when(size < 1e11)
        .then(number * scale[0])
        .when(size < 1e14)
        .then(number * scale[1])
        .when(size < 1e17)
        .then(number * scale[2])
        .otherwise(number * scale[3])
    ).to_series()


def _epoch(text: pl.Series) -> pl.Series:
    """Text that is an epoch number as microseconds (null where it is not a number)."""
    whole = text.cast(pl.Int64, strict=False)
    micros = _scaled(whole, (1_000_000, 1_000, 1, 0.001)).round().cast(pl.Int64, strict=False)
    if whole.null_count() > text.null_count():
        number = text.cast(pl.Float64, strict=False)
        number = number.set(~number.is_finite().fill_null(False), None)
        fractional = _scaled(number, (1e6, 1e3, 1, 1e-3)).round().cast(pl.Int64, strict=False)
        micros = micros.fill_null(fractional)
    return micros.cast(_UTC)


def parse_time(text: pl.Series) -> pl.Series:
    """Read times written as epoch numbers (seconds, milliseconds, ... told by their size) or
    as text (ISO 8601 with or without zone, ``Nov 27 2025 07:40:10``, ``27/Nov/2025:07:40:10
    +0000``, a bare date). Text without a zone is taken as UTC; what cannot be read is null."""
    if text.dtype != pl.String:
        text = text.cast(pl.String, strict=False)
    result = _epoch(text)
    wanted = text.is_not_null()
    normal: pl.Series | None = None
    for fmt in _TIME_FORMATS:
        missing = wanted & result.is_null()
        if not missing.any():
            break
        if normal is None:
            normal = _normal_time(text)
        pending = normal.zip_with(missing, pl.repeat(None, len(text), dtype=pl.String, eager=True))
        parsed = pending.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)
        result = result.fill_null(parsed)
    return result.alias(TIME)


def _normal_time(text: pl.Series) -> pl.Series:
    """ISO times with a space between date and time, or zones spelled UTC/GMT, as chrono reads
    them."""
    stripped = text.str.strip_chars().str.replace(r"(?i)\s*(?:UTC|GMT)$", "Z")
    return stripped.str.replace(r"^(\d{4}-\d{2}-\d{2})[ t]", "${1}T")


def first_time(frame: pl.DataFrame, names: Sequence[str]) -> pl.Series | None:
    """``@time`` from the first of ``names`` that holds a readable time in each row."""
    times = [parse_time(frame[n]) for n in names if n in frame.columns]
    if not times:
        return None
    result = times[0]
    for other in times[1:]:
        result = result.fill_null(other)
    return result


def finish(
    fields: pl.DataFrame,
    *,
    file: str,
    lines: npt.NDArray[np.int64] | pl.Series,
    offsets: npt.NDArray[np.int64] | pl.Series | None,
    time: pl.Series | None,
) -> pl.DataFrame:
    """The frame a reader returns: the reserved columns first, then the fields. A field that
    shares a reserved column's name is dropped (the reader's own column says it better)."""
    height = len(lines)
    head = pl.DataFrame(
        [
            pl.repeat(file, height, dtype=pl.String, eager=True).alias(FILE),
            pl.Series(LINE, lines, dtype=pl.Int64),
            pl.repeat(None, height, dtype=pl.Int64, eager=True).alias(OFFSET)
            if offsets is None
            else pl.Series(OFFSET, offsets, dtype=pl.Int64),
            pl.repeat(None, height, dtype=_UTC, eager=True).alias(TIME)
            if time is None
            else time.cast(_UTC).alias(TIME),
        ]
    )
    rest = fields.drop([c for c in RESERVED if c in fields.columns])
    return pl.concat([head, rest], how="horizontal") if rest.width else head
