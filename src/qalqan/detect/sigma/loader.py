"""Reading Sigma rule files with pySigma, keeping every rule that cannot be used as a finding.

:func:`load_rules` reads files and directories (``*.yml`` and ``*.yaml``, recursively). Each
rule document becomes a :class:`LoadedRule`, a filter document (pySigma ``filter:``) is applied
to the rules it names, and everything else becomes a :class:`SkippedRule` saying why: YAML and
pySigma parse errors (with pySigma's message), correlation rules, unreadable files. Nothing is
dropped silently: every document of every file is loaded, applied as a filter or skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule
from sigma.rule.base import SigmaYAMLLoader

from qalqan.detect.sigma.logsource import LogSource

__all__ = ["AppliedFilter", "LoadedRule", "RuleInfo", "RuleSet", "SkippedRule", "load_rules"]

SUFFIXES: Final = (".yml", ".yaml")


@dataclass(frozen=True, slots=True)
class SkippedRule:
    """A rule (or file) that cannot be used, and why. ``rule_id`` and ``title`` are None when
    the document could not be read far enough to know them."""

    path: str
    rule_id: str | None
    title: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What a loaded rule says about itself; ``tags`` as written (``attack.t1059.001``)."""

    id: str
    title: str
    level: str | None
    status: str | None
    tags: tuple[str, ...]
    logsource: LogSource
    path: str
    description: str | None
    falsepositives: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LoadedRule:
    """A parsed rule and what it says about itself."""

    info: RuleInfo
    rule: SigmaRule


@dataclass(frozen=True, slots=True)
class AppliedFilter:
    """A filter document and the rules it was applied to."""

    path: str
    filter_id: str | None
    title: str
    rule_ids: tuple[str, ...]


@dataclass(slots=True)
class RuleSet:
    """What :func:`load_rules` found: ``files`` counts the rule files read."""

    rules: list[LoadedRule] = field(default_factory=list)
    filters: list[AppliedFilter] = field(default_factory=list)
    skipped: list[SkippedRule] = field(default_factory=list)
    files: int = 0


def load_rules(paths: Iterable[str | Path]) -> RuleSet:
    """Load every rule under ``paths`` (files or directories), collecting what cannot be used.

    Rule ids are the rules' own ``id``; a rule without one is named by its file (and its
    position, in a file of several rules). A second rule with an id already loaded is skipped.
    """
    found = RuleSet()
    filters: list[tuple[str, SigmaFilter]] = []
    seen: dict[str, str] = {}
    for path in _rule_files(paths):
        found.files += 1
        name = str(path)
        documents = _documents(path, found.skipped)
        if documents is None:
            continue
        try:
            collection = SigmaCollection.from_dicts(
                documents,
                collect_errors=True,
                source=SigmaRuleLocation(path),
                collect_filters=True,
                resolve_references=False,
            )
        # pySigma raises assorted exception types on malformed documents; one bad file must
        # not stop the others from loading.
        except Exception as exc:
            found.skipped.append(SkippedRule(name, None, None, _message(exc)))
            continue
        _collect(name, collection, found, seen)
        filters.extend((name, f) for f in collection.filters if not f.errors)
        found.skipped.extend(
            SkippedRule(name, _id(f), f.title or None, _errors(f.errors))
            for f in collection.filters
            if f.errors
        )
    found.filters = [_apply(path, f, found.rules) for path, f in filters]
    return found


def _rule_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    done: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        else:
            candidates = [path]
        for candidate in candidates:
            if candidate not in done:
                done.add(candidate)
                yield candidate


def _documents(path: Path, skipped: list[SkippedRule]) -> list[Any] | None:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        skipped.append(SkippedRule(name, None, None, f"cannot read the file: {exc}"))
        return None
    try:
        documents = [d for d in yaml.load_all(text, Loader=SigmaYAMLLoader) if d is not None]
    except yaml.YAMLError as exc:
        skipped.append(SkippedRule(name, None, None, f"invalid YAML: {exc}"))
        return None
    if not documents:
        skipped.append(SkippedRule(name, None, None, "the file holds no rule"))
        return None
    if not all(isinstance(d, dict) for d in documents):
        skipped.append(SkippedRule(name, None, None, "not a Sigma rule: a document is not a map"))
        return None
    return documents


def _collect(path: str, collection: SigmaCollection, found: RuleSet, seen: dict[str, str]) -> None:
    own_errors = {id(e) for rule in collection.rules for e in rule.errors}
    own_errors.update(id(e) for f in collection.filters for e in f.errors)
    found.skipped.extend(
        SkippedRule(path, None, None, _message(e))
        for e in collection.errors
        if id(e) not in own_errors
    )
    several = len(collection.rules) > 1
    for position, rule in enumerate(collection.rules, 1):
        rule_id = _id(rule) or (f"{path}#{position}" if several else path)
        title = rule.title or None
        if isinstance(rule, SigmaCorrelationRule):
            reason = "correlation rules are not supported yet"
        elif rule.errors:
            reason = _errors(rule.errors)
        elif rule_id in seen:
            reason = f"duplicate rule id: the rule in {seen[rule_id]} has it too"
        else:
            seen[rule_id] = path
            found.rules.append(LoadedRule(_info(rule, rule_id, path), rule))
            continue
        found.skipped.append(SkippedRule(path, _id(rule), title, reason))


def _info(rule: SigmaRule, rule_id: str, path: str) -> RuleInfo:
    return RuleInfo(
        id=rule_id,
        title=rule.title,
        level=str(rule.level) if rule.level else None,
        status=str(rule.status) if rule.status else None,
        tags=tuple(str(t) for t in rule.tags),
        logsource=LogSource.of(rule.logsource),
        path=path,
        description=rule.description,
        falsepositives=tuple(str(f) for f in rule.falsepositives),
    )


def _apply(path: str, sigma_filter: SigmaFilter, rules: list[LoadedRule]) -> AppliedFilter:
    applied = []
    for loaded in rules:
        before = list(loaded.rule.detection.condition)
        sigma_filter.apply_on_rule(loaded.rule)
        if loaded.rule.detection.condition != before:
            applied.append(loaded.info.id)
    return AppliedFilter(path, _id(sigma_filter), sigma_filter.title, tuple(applied))


def _id(rule: SigmaRule | SigmaCorrelationRule | SigmaFilter) -> str | None:
    if rule.id is not None:
        return str(rule.id)
    return rule.name


def _errors(errors: list[SigmaError]) -> str:
    return "; ".join(dict.fromkeys(_message(e) for e in errors))


def _message(exc: Exception) -> str:
    """pySigma's message without the absolute file path it appends (the finding has the path)."""
    if isinstance(exc, SigmaError):
        message = ValueError.__str__(exc)
        line = exc.source.line if exc.source is not None else None
        return f"{message} (line {line})" if line is not None else message
    return str(exc) or type(exc).__name__
