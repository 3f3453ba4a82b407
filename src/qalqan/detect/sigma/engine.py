"""Running compiled Sigma rules over batches of events.

:meth:`SigmaEngine.from_paths` loads and compiles rules once; :meth:`SigmaEngine.match` runs
them over a frame of events and returns one row per (event, rule) hit. Per batch:

1. routing (:mod:`~qalqan.detect.sigma.logsource`) splits the rows into groups that share the
   rules that apply to them;
2. each field the rules read is reduced to its distinct values, lowercased once
   (:mod:`~qalqan.detect.sigma.distinct`);
3. the literal prefilter (:mod:`~qalqan.detect.sigma.prefilter`) scans those values once per
   column and drops, per group, the rules that cannot match it;
4. each distinct test of the surviving rules runs once over the values of its field, and
   reaches the rows through the field's codes; then each rule combines its tests, per group.

Each step is one Polars query per field or group, run together so Polars spreads them over the
cores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, TypeAlias

import polars as pl

from qalqan.detect.sigma.compiler import Unsupported, compile_condition
from qalqan.detect.sigma.distinct import FieldValues, distinct_values
from qalqan.detect.sigma.loader import (
    AppliedFilter,
    LoadedRule,
    RuleInfo,
    RuleSet,
    SkippedRule,
    load_rules,
)
from qalqan.detect.sigma.logsource import LogSource, route
from qalqan.detect.sigma.nodes import (
    KEYWORDS,
    All,
    AnyOf,
    Leaf,
    Literal,
    Node,
    is_lower,
    leaves,
    lower,
)
from qalqan.detect.sigma.prefilter import (
    Clause,
    patterns_by_column,
    requirements,
    satisfied,
    scan,
)

__all__ = ["CompiledRule", "SigmaEngine"]

ROW: Final = "@row"
_Group: TypeAlias = tuple[pl.Expr | None, list[int]]
"""Rows of a batch (None: all) and the indices of the rules to run on them."""
_HITS_SCHEMA: Final = {"row": pl.UInt32(), "rule": pl.String()}


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to run: its condition, the columns it reads and the literals it needs."""

    info: RuleInfo
    condition: Node
    columns: frozenset[str]
    requirements: tuple[Clause, ...]

    @property
    def fields(self) -> frozenset[str]:
        """The event fields the rule reads (:data:`~qalqan.detect.sigma.nodes.KEYWORDS` for
        keywords)."""
        return frozenset(is_lower(c) or c for c in self.columns)

    @property
    def expression(self) -> pl.Expr:
        """The whole condition as one boolean expression over the fields and their lowercase
        shadows (``nodes.lower``)."""
        return _combine(self.condition, lambda leaf: leaf.expression())


def _combine(node: Node, leaf_expression: Callable[[Leaf], pl.Expr]) -> pl.Expr:
    if isinstance(node, Leaf):
        return leaf_expression(node)
    if isinstance(node, All):
        return pl.all_horizontal([_combine(c, leaf_expression) for c in node.children])
    if isinstance(node, AnyOf):
        return pl.any_horizontal([_combine(c, leaf_expression) for c in node.children])
    return ~_combine(node.child, leaf_expression)


def compile_rule(loaded: LoadedRule) -> CompiledRule:
    """Compile a loaded rule; raises :class:`Unsupported` with the reason if it cannot be."""
    condition = compile_condition(loaded.rule)
    columns = frozenset(c for leaf in leaves(condition) for c in leaf.columns())
    return CompiledRule(loaded.info, condition, columns, requirements(condition))


class SigmaEngine:
    """Compiled Sigma rules, ready to match frames of events.

    ``rules`` are the rules that run, by id; ``skipped`` the ones that cannot, with the reason;
    ``filters`` the filter documents applied; ``files_seen`` how many rule files were read.
    With ``prefilter`` off every routed rule is evaluated on its rows (for comparison).
    """

    def __init__(
        self,
        rules: Sequence[CompiledRule],
        skipped: Sequence[SkippedRule] = (),
        *,
        filters: Sequence[AppliedFilter] = (),
        files_seen: int = 0,
        prefilter: bool = True,
    ) -> None:
        self.skipped: list[SkippedRule] = list(skipped)
        self.filters: list[AppliedFilter] = list(filters)
        self.files_seen = files_seen
        self.prefilter = prefilter
        self._rules: list[CompiledRule] = []
        paths: dict[str, str] = {}
        for rule in rules:
            info = rule.info
            if info.id in paths:
                reason = f"duplicate rule id: the rule in {paths[info.id]} has it too"
                self.skipped.append(SkippedRule(info.path, info.id, info.title, reason))
            else:
                paths[info.id] = info.path
                self._rules.append(rule)
        self.rules: Mapping[str, RuleInfo] = MappingProxyType(
            {r.info.id: r.info for r in self._rules}
        )
        self._index = {r.info.id: i for i, r in enumerate(self._rules)}
        leaf_ids: dict[Leaf, int] = {}
        for rule in self._rules:
            for leaf in leaves(rule.condition):
                leaf_ids.setdefault(leaf, len(leaf_ids))
        self._leaves = list(leaf_ids)
        self._leaf_field = [_single_field(leaf) for leaf in self._leaves]
        self._leaf_ids = [
            sorted({leaf_ids[leaf] for leaf in leaves(rule.condition)}) for rule in self._rules
        ]
        self._matches = [
            pl.col(ROW)
            .filter(_combine(rule.condition, lambda leaf: pl.col(_leaf_name(leaf_ids[leaf]))))
            .implode()
            .alias(rule.info.id)
            for rule in self._rules
        ]
        self._by_logsource: dict[LogSource, list[int]] = defaultdict(list)
        for index, rule in enumerate(self._rules):
            self._by_logsource[rule.info.logsource].append(index)
        self._windows = [ls for ls in self._by_logsource if ls.product == "windows"]
        self._patterns_of: dict[tuple[tuple[int, ...], ...], dict[str, list[str]]] = {}
        self._scanned_by: dict[tuple[int, ...], frozenset[str]] = {}

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path], *, prefilter: bool = True) -> SigmaEngine:
        """Load the rules under ``paths`` (files or directories) and compile them."""
        return cls.from_ruleset(load_rules(paths), prefilter=prefilter)

    @classmethod
    def from_ruleset(cls, ruleset: RuleSet, *, prefilter: bool = True) -> SigmaEngine:
        """Compile rules already loaded; those that cannot be compiled join the skipped."""
        compiled: list[CompiledRule] = []
        skipped = list(ruleset.skipped)
        for loaded in ruleset.rules:
            try:
                compiled.append(compile_rule(loaded))
            except Unsupported as exc:
                info = loaded.info
                skipped.append(SkippedRule(info.path, info.id, info.title, str(exc)))
        return cls(
            compiled,
            skipped,
            filters=ruleset.filters,
            files_seen=ruleset.files,
            prefilter=prefilter,
        )

    def compiled(self, rule_id: str) -> CompiledRule:
        """The compiled form of a rule (KeyError if no rule has this id)."""
        return self._rules[self._index[rule_id]]

    def match(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Every (event, rule) hit: ``row`` is the row's index in ``frame`` (UInt32), ``rule``
        the rule's id; sorted by row, then rule."""
        if frame.height == 0 or not self._rules:
            return pl.DataFrame(schema=_HITS_SCHEMA)
        fields = [c for c, t in frame.schema.items() if not c.startswith("@") and not t.is_nested()]
        batch = _Batch(fields=fields)
        batch.frame, groups = self._groups(frame.with_row_index(ROW))
        groups = [(rows, rules) for rows, rules in groups if rules]
        if self.prefilter:
            self._add_values(batch, groups, scanning=True)
            groups = self._prefiltered(batch, groups)
        self._add_values(batch, groups, scanning=False)
        masks = self._masks(batch, groups)
        plans = [self._evaluate(batch, rows, rules, masks) for rows, rules in groups if rules]
        if not plans:
            return pl.DataFrame(schema=_HITS_SCHEMA)
        hits = pl.concat(pl.collect_all(plans))
        return hits.select(pl.col("row").cast(pl.UInt32), "rule").sort("row", "rule")

    def _groups(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[_Group]]:
        """The frame, routed, and its groups of rows with the rules that apply to them."""
        routed = route(frame, self._windows)
        if routed is None:
            columns = set(frame.columns) | {KEYWORDS}
            return frame, [(None, [i for i, r in enumerate(self._rules) if r.fields <= columns])]
        frame, row_groups = routed
        return frame, [
            (g.rows, [i for ls in g.logsources for i in self._by_logsource[ls]]) for g in row_groups
        ]

    def _add_values(self, batch: _Batch, groups: list[_Group], *, scanning: bool) -> None:
        """Add the distinct values of the columns the groups' rules scan or read."""
        columns: set[str] = set()
        for _, rules in groups:
            for index in rules:
                rule = self._rules[index]
                if scanning:
                    columns.update(c for clause in rule.requirements for c, _ in clause)
                else:
                    columns.update(rule.columns)
        fields = {is_lower(c) or c for c in columns} - {KEYWORDS}
        lowered = {f for c in columns if (f := is_lower(c)) and f != KEYWORDS}
        missing = {f for f in fields if f not in batch.values or f in lowered - batch.lowered}
        if missing:
            batch.frame, values = distinct_values(batch.frame, missing, lowered, ROW)
            batch.values.update(values)
            batch.lowered.update(lowered & missing)

    def _prefiltered(self, batch: _Batch, groups: list[_Group]) -> list[_Group]:
        """The groups, without the rules whose literals their rows do not hold."""
        patterns = self._patterns(tuple(tuple(rules) for _, rules in groups))
        scans = pl.collect_all(
            _source(batch, column).select(scan(column, texts)) for column, texts in patterns.items()
        )
        scanned = {
            column: result.to_series() for column, result in zip(patterns, scans, strict=True)
        }
        # Which values each group's rows hold: their codes, for the fields the group scans.
        codes = [
            sorted({batch.values[is_lower(c) or c].code for c in self._scanned(tuple(rules))})
            for _, rules in groups
        ]
        present = pl.collect_all(
            batch.frame.lazy().filter(rows).select(pl.col(c).unique().implode() for c in names)
            for (rows, _), names in zip(groups, codes, strict=True)
            if rows is not None
        )
        kept = []
        for rows, rules in groups:
            held = None if rows is None else present.pop(0)
            found: set[Literal] = set()
            for column in self._scanned(tuple(rules)):
                hits = scanned[column]
                if held is not None:
                    hits = hits.gather(
                        held.get_column(batch.values[is_lower(column) or column].code)[0]
                    )
                found.update((column, t) for t in hits.explode().drop_nulls().unique().to_list())
            kept.append((rows, [i for i in rules if satisfied(self._rules[i].requirements, found)]))
        return kept

    def _patterns(self, groups: tuple[tuple[int, ...], ...]) -> dict[str, list[str]]:
        """The literals the groups' rules need, by column (the same groups come back batch
        after batch, so the answer is kept)."""
        if groups not in self._patterns_of:
            clauses = (c for rules in groups for i in rules for c in self._rules[i].requirements)
            self._patterns_of[groups] = patterns_by_column(clauses)
        return self._patterns_of[groups]

    def _scanned(self, rules: tuple[int, ...]) -> frozenset[str]:
        """The columns whose literals the rules need (kept, like :meth:`_patterns`)."""
        if rules not in self._scanned_by:
            clauses = (c for i in rules for c in self._rules[i].requirements)
            self._scanned_by[rules] = frozenset(
                column for clause in clauses for column, _ in clause
            )
        return self._scanned_by[rules]

    def _masks(self, batch: _Batch, groups: list[_Group]) -> dict[int, pl.Series]:
        """Each test of the groups' rules that reads one field, over that field's values."""
        by_field: dict[str, set[int]] = defaultdict(set)
        for _, rules in groups:
            for rule in rules:
                for leaf in self._leaf_ids[rule]:
                    if (name := self._leaf_field[leaf]) is not None:
                        by_field[name].add(leaf)
        tested = pl.collect_all(
            batch.values[name]
            .values.lazy()
            .select(self._leaves[i].expression().alias(_leaf_name(i)) for i in sorted(ids))
            for name, ids in by_field.items()
        )
        return {
            int(column.name.rsplit(":", 1)[1]): column
            for result in tested
            for column in result.get_columns()
        }

    def _gathered(self, batch: _Batch, masks: dict[int, pl.Series], leaf: int) -> pl.Expr:
        """A test that reads one field, at the rows of the batch."""
        code = batch.values[self._leaf_field[leaf] or ""].code
        return pl.lit(masks[leaf]).gather(pl.col(code)).alias(_leaf_name(leaf))

    def _evaluate(
        self, batch: _Batch, rows: pl.Expr | None, rules: list[int], masks: dict[int, pl.Series]
    ) -> pl.LazyFrame:
        """The hits of ``rules`` in the group's rows."""
        selected = batch.frame.lazy() if rows is None else batch.frame.lazy().filter(rows)
        leaf_ids = sorted({i for r in rules for i in self._leaf_ids[r]})
        tests = []
        row_level: set[str] = set()
        for i in leaf_ids:
            field = self._leaf_field[i]
            if field is None:
                row_level.update(self._leaves[i].columns())
                tests.append(self._leaves[i].expression().alias(_leaf_name(i)))
            else:
                tests.append(self._gathered(batch, masks, i))
        if row_level:
            selected = selected.with_columns(_row_columns(batch, row_level))
        return (
            selected.select(pl.col(ROW), *tests)
            .select(self._matches[r] for r in rules)
            .unpivot(variable_name="rule", value_name="row")
            .explode("row")
            .drop_nulls("row")
        )


@dataclass(slots=True)
class _Batch:
    """A frame being matched: its event fields and the distinct values found so far."""

    fields: list[str]
    frame: pl.DataFrame = field(default_factory=pl.DataFrame)
    values: dict[str, FieldValues] = field(default_factory=dict)
    lowered: set[str] = field(default_factory=set)


def _source(batch: _Batch, column: str) -> pl.LazyFrame:
    """Where ``column`` is scanned: the distinct values of its field."""
    return batch.values[is_lower(column) or column].values.lazy()


def _single_field(leaf: Leaf) -> str | None:
    """The one field a test reads, or None if it reads several or the keyword text."""
    fields = {is_lower(c) or c for c in leaf.columns()}
    field = fields.pop()
    return None if fields or field == KEYWORDS else field


def _row_columns(batch: _Batch, columns: set[str]) -> list[pl.Expr]:
    """Columns for tests that read several fields, at the rows of the batch."""
    added = []
    text = pl.concat_str(
        [pl.col(f).cast(pl.String) for f in batch.fields], separator="\n", ignore_nulls=True
    )
    for column in sorted(columns):
        if column == KEYWORDS:
            added.append(text.alias(column))
        elif column == lower(KEYWORDS):
            added.append(text.str.to_lowercase().alias(column))
        else:
            added.append(batch.values[is_lower(column) or column].at_rows(column))
    return added


def _leaf_name(index: int) -> str:
    return f"@test:{index}"
