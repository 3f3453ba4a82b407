"""SigmaHQ's own regression cases, with every SigmaHQ rule loaded; and the prefilter changes
no result.

The rules and the cases (Windows events, as JSON, that a named rule must detect) come from the
shared data directory beside the project; without it these tests are skipped.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from sigma.pipelines.common import windows_logsource_mapping

from qalqan.detect.sigma import SigmaEngine, load_rules
from qalqan.detect.sigma.logsource import WINDOWS_CATEGORY_EVENTS, LogSource
from qalqan.detect.sigma.nodes import is_lower

SIGMA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "sigma"
SYSTEM_FIELDS = ("EventID", "Channel", "Computer", "EventRecordID", "Level", "Task", "Keywords")

pytestmark = pytest.mark.skipif(
    not (SIGMA / "regression_data").is_dir(), reason="the SigmaHQ rules are not available"
)


def _rule_dirs() -> list[Path]:
    return sorted(SIGMA.glob("rules*"))


def _json_objects(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a file of pretty-printed JSON objects, one after the other."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return
        found, at = decoder.raw_decode(text, at)
        yield found


def _flatten(record: dict[str, Any]) -> dict[str, str | None]:
    """A Windows event as the event log reader gives it: EventData keys and system fields."""
    event = record["Event"]
    system = event["System"]
    row: dict[str, str | None] = {
        name: None if value is None else str(value)
        for name, value in (event.get("EventData") or {}).items()
        if not isinstance(value, dict | list)
    }
    for name in SYSTEM_FIELDS:
        value = system.get(name)
        row[name] = None if value is None or isinstance(value, dict) else str(value)
    row["Provider_Name"] = system["Provider"]["#attributes"]["Name"]
    security = system.get("Security")
    row["UserID"] = security["#attributes"].get("UserID") if security else None
    return row


def _cases() -> tuple[pl.DataFrame, list[tuple[str, str, list[int]]]]:
    """One frame of every case's events, and per case its folder, rule id and rows."""
    rows: list[dict[str, str | None]] = []
    cases = []
    for info in sorted((SIGMA / "regression_data").rglob("info.yml")):
        rule_id = yaml.safe_load(info.read_text(encoding="utf-8"))["rule_metadata"][0]["id"]
        first = len(rows)
        for path in sorted(info.parent.glob("*.json")):
            rows.extend(_flatten(record) for record in _json_objects(path))
        cases.append((str(info.parent.relative_to(SIGMA)), rule_id, list(range(first, len(rows)))))
    names = sorted({name for row in rows for name in row})
    frame = pl.DataFrame(
        [{name: row.get(name) for name in names} for row in rows],
        schema=dict.fromkeys(names, pl.String),
    )
    return frame, cases


def test_every_regression_case_is_detected_by_its_rule() -> None:
    engine = SigmaEngine.from_paths(_rule_dirs())
    frame, cases = _cases()

    hits = engine.match(frame)

    found = set(hits.select("row", "rule").iter_rows())
    missed = [
        (case, rule) for case, rule, rows in cases if not any((r, rule) in found for r in rows)
    ]
    assert len(cases) == 129
    assert missed == []
    assert len(engine.rules) + len(engine.skipped) == engine.files_seen


def _channel_and_event(logsource: LogSource) -> tuple[str, str, str] | None:
    """A channel, event id and Sysmon event type of rows a rule of ``logsource`` runs on."""
    for entry in WINDOWS_CATEGORY_EVENTS:
        if logsource.category in entry.categories and logsource.service in (None, entry.service):
            channels = windows_logsource_mapping[entry.service]
            channel = channels if isinstance(channels, str) else channels[0]
            event_type = "DeleteValue" if entry.event_type_prefix else "SetValue"
            return channel, entry.event_ids[0], event_type
    return None


def _random_frame(engine: SigmaEngine, seed: int, size: int) -> pl.DataFrame:
    """Windows events written for randomly chosen rules: each holds one literal of every clause
    the rule needs, in random case and among noise, with now and then a clause left out or the
    event of another kind, so that rules hit, half-hit and miss."""
    rng = random.Random(seed)
    candidates = []
    for rule_id, info in engine.rules.items():
        where = _channel_and_event(info.logsource) if info.logsource.product == "windows" else None
        if where is not None:
            candidates.append((engine.compiled(rule_id).requirements, where))
    noise = ("", " ", "\\", "x", " -y ", "/")
    rows = []
    for _ in range(size):
        clauses, (channel, event_id, event_type) = rng.choice(candidates)
        if rng.random() < 0.1:
            _, (channel, event_id, event_type) = rng.choice(candidates)
        row = {"Channel": channel, "EventID": event_id, "EventType": event_type}
        for clause in clauses:
            if rng.random() < 0.15:
                continue
            column, text = rng.choice(sorted(clause))
            field = is_lower(column) or column
            text = "".join(c.upper() if rng.random() < 0.3 else c for c in text)
            row[field] = rng.choice(noise) + text + rng.choice(noise)
        rows.append(row)
    names = sorted({name for row in rows for name in row})
    return pl.DataFrame(
        [{name: row.get(name) for name in names} for row in rows],
        schema=dict.fromkeys(names, pl.String),
    )


def test_the_prefilter_changes_no_result() -> None:
    ruleset = load_rules(_rule_dirs())
    prefiltered = SigmaEngine.from_ruleset(ruleset)
    exhaustive = SigmaEngine.from_ruleset(ruleset, prefilter=False)
    frames = [_cases()[0], *(_random_frame(prefiltered, seed, 600) for seed in (1, 2))]

    for frame in frames:
        expected = exhaustive.match(frame)
        assert expected.height > 0
        assert prefiltered.match(frame).equals(expected)
