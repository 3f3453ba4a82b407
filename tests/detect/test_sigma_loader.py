"""Loading Sigma rules: every file is a loaded rule, an applied filter or a skipped finding."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from qalqan.detect.sigma import LogSource, SigmaEngine, SkippedRule, load_rules

RULES = Path(__file__).parent / "sigma_rules" / "loading"
WHOAMI = "5a1d6c2e-0b6f-4b8e-9a51-6f1f3c0d2a01"


def _skipped(engine: SigmaEngine) -> dict[str, SkippedRule]:
    return {Path(s.path).name: s for s in engine.skipped}


def test_every_file_is_loaded_applied_or_skipped() -> None:
    engine = SigmaEngine.from_paths([RULES])

    files = sorted(p.name for p in RULES.iterdir())
    accounted = [Path(s.path).name for s in engine.skipped]
    accounted += [Path(i.path).name for i in engine.rules.values()]
    accounted += [Path(f.path).name for f in engine.filters]
    assert sorted(accounted) == files
    assert engine.files_seen == len(files)
    assert list(engine.rules) == [WHOAMI]


def test_skipped_rules_say_why() -> None:
    skipped = _skipped(SigmaEngine.from_paths([RULES]))

    assert skipped["invalid_yaml.yml"].reason.startswith("invalid YAML:")
    assert skipped["invalid_yaml.yml"].rule_id is None
    assert "Unknown modifier" in skipped["unknown_modifier.yml"].reason
    assert skipped["unknown_modifier.yml"].rule_id == "5a1d6c2e-0b6f-4b8e-9a51-6f1f3c0d2a04"
    assert "not defined" in skipped["undefined_detection.yml"].reason
    assert skipped["correlation.yml"].reason == "correlation rules are not supported yet"
    assert skipped["correlation.yml"].title == "Whoami Burst"
    assert skipped["aggregation.yml"].reason.startswith("aggregations and near are not supported")
    assert "timestamp modifiers" in skipped["timestamp_modifier.yml"].reason
    assert "%admin_hosts%" in skipped["placeholder.yml"].reason
    assert skipped["whoami_duplicate_id.yml"].reason.startswith("duplicate rule id")
    assert "not a map" in skipped["not_a_rule.yaml"].reason


def test_rule_info_says_what_the_rule_says() -> None:
    info = SigmaEngine.from_paths([RULES / "whoami_all.yml"]).rules[WHOAMI]

    assert info.title == "Whoami With All Parameter"
    assert info.level == "medium"
    assert info.status == "test"
    assert info.tags == ("attack.discovery", "attack.t1033")
    assert info.logsource == LogSource("windows", "process_creation")
    assert info.description == "Local discovery with whoami /all."
    assert info.falsepositives == ("Administrators troubleshooting",)
    assert Path(info.path).name == "whoami_all.yml"


def test_filters_are_applied_to_the_rules_they_name() -> None:
    engine = SigmaEngine.from_paths([RULES / "whoami_all.yml", RULES / "filter_whoami_admins.yml"])
    [applied] = engine.filters
    frame = pl.DataFrame(
        {
            "Channel": ["Microsoft-Windows-Sysmon/Operational"] * 2,
            "EventID": ["1", "1"],
            "Computer": ["WS-07", "JUMP-01"],
            "Image": ["C:\\Windows\\System32\\whoami.exe"] * 2,
            "CommandLine": ["whoami /all"] * 2,
        }
    )

    assert applied.rule_ids == (WHOAMI,)
    assert engine.match(frame).to_dicts() == [{"row": 0, "rule": WHOAMI}]
    assert SigmaEngine.from_paths([RULES / "whoami_all.yml"]).match(frame).height == 2


def test_load_rules_reads_directories_recursively_and_files(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "rule.yaml").write_text((RULES / "whoami_all.yml").read_text())
    (nested / "notes.txt").write_text("not a rule")

    found = load_rules([tmp_path, RULES / "correlation.yml"])

    assert [r.info.id for r in found.rules] == [WHOAMI]
    assert [s.reason for s in found.skipped] == ["correlation rules are not supported yet"]
    assert found.files == 2


def test_an_empty_file_is_a_finding(tmp_path: Path) -> None:
    (tmp_path / "empty.yml").write_text("---\n")

    [skipped] = load_rules([tmp_path]).skipped

    assert skipped.reason == "the file holds no rule"
