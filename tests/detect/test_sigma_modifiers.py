"""Sigma value modifiers and conditions, each on a tiny rule and a tiny frame."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import polars as pl
import pytest

from qalqan.detect.sigma import SigmaEngine
from qalqan.detect.sigma.nodes import Regex, leaves

RULE_ID = "0f6a2c3e-1d4b-4c5a-8e9f-000000000001"


def _engine(tmp_path: Path, detection: str, logsource: str = "product: test") -> SigmaEngine:
    """An engine with one rule; ``product: test`` routes nowhere, so it runs on any frame that
    has its fields."""
    rule = f"""\
title: Unit
id: {RULE_ID}
logsource:
    {logsource}
detection:
{textwrap.indent(textwrap.dedent(detection), "    ")}
level: low
"""
    path = tmp_path / "rule.yml"
    path.write_text(rule, encoding="utf-8")
    engine = SigmaEngine.from_paths([path])
    assert not engine.skipped, engine.skipped
    return engine


def _rows(engine: SigmaEngine, **columns: list[str | None]) -> list[int]:
    frame = pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String))
    return engine.match(frame).get_column("row").to_list()


def _sysmon(engine: SigmaEngine, **columns: list[str | None]) -> list[int]:
    """Rows of a Sysmon process creation frame that hit."""
    size = len(next(iter(columns.values())))
    channel: list[str | None] = ["Microsoft-Windows-Sysmon/Operational"] * size
    return _rows(engine, Channel=channel, EventID=["1"] * size, **columns)


PROCESS_CREATION = "product: windows\n    category: process_creation"


def test_strings_compare_without_case_and_with_wildcards(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        r"""
        selection:
            Image: 'C:\Windows\\*\cmd.exe'
            CommandLine|contains: 'WhoAmI'
            ParentImage|startswith: 'C:\WINDOWS\explorer'
            User|endswith: '\ALICE'
        condition: selection
        """,
    )
    hits = _rows(
        engine,
        Image=[r"c:\windows\system32\CMD.EXE", r"C:\Windows\cmd.exe", r"C:\Windows\x\cmd.exe"],
        CommandLine=["cmd /c WHOAMI /all", "whoami", "whoami"],
        ParentImage=[r"C:\Windows\Explorer.exe", r"C:\Windows\explorer.exe", None],
        User=[r"CORP\alice", r"CORP\Alice", r"CORP\alice"],
    )
    assert hits == [0]


def test_single_character_wildcard_and_escaped_wildcards(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        r"""
        selection_single:
            Name: 'file?.txt'
        selection_escaped:
            Name: 'star\*name'
        condition: 1 of selection_*
        """,
    )
    names = ["file1.txt", "file12.txt", "star*name", "starXname", "FILEa.TXT"]
    assert _rows(engine, Name=names) == [0, 2, 4]


def test_cased_compares_with_case(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        """
        selection:
            CommandLine|contains|cased: 'Invoke-Mimikatz'
        condition: selection
        """,
    )
    assert _rows(engine, CommandLine=["x Invoke-Mimikatz y", "invoke-mimikatz"]) == [0]


def test_lists_are_or_and_all_is_and(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        """
        any_flag:
            CommandLine|contains:
                - ' -a '
                - ' -b '
        both_flags:
            CommandLine|contains|all:
                - ' -c '
                - ' -d '
        condition: any_flag or both_flags
        """,
    )
    lines = ["x -a y", "x -b y", "x -c y", "x -c -d y", "x -d y -c z"]
    assert _rows(engine, CommandLine=lines) == [0, 1, 3, 4]


def test_numbers_compare_as_text(tmp_path: Path) -> None:
    engine = _engine(tmp_path, "selection:\n    EventID: 4688\ncondition: selection")
    assert _rows(engine, EventID=["4688", "4689", "04688", None]) == [0]


def test_regular_expressions(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        r"""
        plain:
            A|re: '\s-e(nc)?\s'
        insensitive:
            B|re|i: '^invoke-'
        multiline:
            C|re|m: '^second$'
        dotall:
            D|re|s: 'begin.end'
        lookahead:
            E|re: 'pass(?=word)'
        condition: 1 of them
        """,
    )
    hits = _rows(
        engine,
        A=["ps -enc x", "ps -E x", None, None, None, None, None, None],
        B=[None, None, "Invoke-X", "xinvoke-", None, None, None, None],
        C=[None, None, None, None, "first\nsecond\nthird", None, None, None],
        D=[None, None, None, None, None, "begin\nend", None, None],
        E=[None, None, None, None, None, None, "password", "passport"],
    )
    assert hits == [0, 2, 4, 5, 6]


def test_a_regex_rust_cannot_compile_runs_with_python(tmp_path: Path) -> None:
    engine = _engine(tmp_path, r"s:" "\n" r"    A|re: '(\w)\1x'" "\ncondition: s")
    [test] = leaves(engine.compiled(RULE_ID).condition)

    assert isinstance(test, Regex)
    assert test.python
    assert _rows(engine, A=["aax", "abx", None]) == [0]


def test_cidr(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        """
        selection:
            DestinationIp|cidr:
                - '10.0.0.0/8'
                - '192.168.1.0/24'
                - 'fe80::/10'
        condition: selection
        """,
    )
    addresses = ["10.2.3.4", "11.0.0.1", "192.168.1.77", "192.168.2.1", "10.1.2.300", "fe80::1"]
    assert _rows(engine, DestinationIp=[*addresses, "2001:db8::1", "x"]) == [0, 2, 5]


def test_windash(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        """
        selection:
            CommandLine|windash|contains: ' -enc '
        condition: selection
        """,
    )
    lines = ["ps -enc x", "ps /enc x", "ps \u2013enc x", "ps enc x"]
    assert _rows(engine, CommandLine=lines) == [0, 1, 2]


def test_base64_offsets(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        """
        selection:
            CommandLine|base64offset|contains: 'http://'
        condition: selection
        """,
    )
    encoded = [
        base64.b64encode(prefix + b"http://x.example/").decode()
        for prefix in (b"", b"a", b"ab", b"abc")
    ]
    assert _rows(engine, CommandLine=[*encoded, base64.b64encode(b"ftp://x").decode()]) == [
        0,
        1,
        2,
        3,
    ]


def test_wide_base64(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        """
        selection:
            CommandLine|wide|base64offset|contains: 'IEX'
        condition: selection
        """,
    )
    encoded = base64.b64encode("x IEX (y)".encode("utf-16le")).decode()
    assert _rows(engine, CommandLine=[encoded, base64.b64encode(b"IEX").decode()]) == [0]


def test_exists(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        """
        has_a:
            A|exists: true
        lacks_b:
            B|exists: false
        condition: has_a and lacks_b
        """,
    )
    assert _rows(engine, A=["x", "", None, "y"], B=[None, None, None, "z"]) == [0, 1]


def test_null_means_missing_or_empty(tmp_path: Path) -> None:
    engine = _engine(tmp_path, "selection:\n    A: null\ncondition: selection")
    assert _rows(engine, A=[None, "", "x"]) == [0, 1]


def test_numeric_comparisons(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        """
        big:
            Size|gt: 100
        small:
            Size|lte: 2
        condition: big or small
        """,
    )
    assert _rows(engine, Size=["101", "100", "2", "3", "x", None, "1e3", " 500 "]) == [0, 2, 6, 7]


def test_fieldref(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        """
        same:
            ParentImage|fieldref: Image
        tail:
            CommandLine|fieldref|endswith: Image
        condition: same or tail
        """,
    )
    hits = _rows(
        engine,
        Image=[r"C:\a.exe", r"C:\a.exe", "b.exe", "b.exe"],
        ParentImage=[r"c:\A.EXE", r"C:\x.exe", "y", None],
        CommandLine=["z", "z", "run B.EXE", None],
    )
    assert hits == [0, 2]


def test_keywords_search_every_field(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        """
        keywords:
            - 'mimikatz'
            - 'sekurlsa*logon'
        condition: keywords
        """,
    )
    hits = _rows(
        engine,
        A=["nothing", "run MIMIKATZ now", None, "sekurlsa", "sekurlsa::"],
        B=["sekurlsa::LogonPasswords", None, "x", "logon", "x logonpasswords"],
    )
    assert hits == [0, 1]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("1 of selection_*", [0, 1, 2]),
        ("all of selection_*", [2]),
        ("1 of them", [0, 1, 2, 3]),
        ("all of them", []),
        ("selection_a and not filter", [0, 2]),
        ("(selection_a or selection_b) and not filter", [0, 1, 2]),
        ("not (selection_a or filter)", [1, 4]),
    ],
)
def test_conditions(tmp_path: Path, condition: str, expected: list[int]) -> None:
    engine = _engine(
        tmp_path,
        f"""
        selection_a:
            A: 'a'
        selection_b:
            B: 'b'
        filter:
            C: 'c'
        condition: {condition}
        """,
    )
    hits = _rows(
        engine,
        A=["a", "x", "a", "x", "x"],
        B=["x", "b", "b", "x", "x"],
        C=["x", "x", "x", "c", "x"],
    )
    assert hits == expected


def test_a_missing_field_is_false_and_its_negation_true(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        r"""
        selection:
            Image|endswith: '\cmd.exe'
        filter:
            NotInTheLog: 'x'
        condition: selection and not filter
        """,
        PROCESS_CREATION,
    )
    only_missing = _engine(
        tmp_path, "selection:\n    NotInTheLog: 'x'\ncondition: selection", PROCESS_CREATION
    )

    assert _sysmon(engine, Image=[r"C:\cmd.exe", r"C:\x.exe"]) == [0]
    assert _sysmon(only_missing, Image=[r"C:\cmd.exe"]) == []


def test_null_values_in_present_fields(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        r"""
        selection:
            Image|endswith: '\cmd.exe'
        filter:
            ParentImage|contains: 'explorer'
        condition: selection and not filter
        """,
        PROCESS_CREATION,
    )
    images = [r"C:\cmd.exe", r"C:\cmd.exe", None]
    assert _sysmon(engine, Image=images, ParentImage=[None, "explorer.exe", None]) == [0]


def test_neq(tmp_path: Path) -> None:
    engine = _engine(tmp_path, "selection:\n    A|neq: 'x'\ncondition: selection")
    assert _rows(engine, A=["x", "X", "y", None]) == [2, 3]


def test_non_string_columns_are_read_as_text(tmp_path: Path) -> None:
    engine = _engine(tmp_path, "selection:\n    EventID: 4624\ncondition: selection")
    frame = pl.DataFrame({"EventID": [4624, 4625]})
    assert engine.match(frame).get_column("row").to_list() == [0]


def test_the_expression_of_a_rule_matches_like_the_engine(tmp_path: Path) -> None:
    engine = _engine(
        tmp_path,
        r"""
        selection:
            Image|endswith: '\cmd.exe'
            CommandLine|contains: '/c'
        condition: selection
        """,
    )
    frame = pl.DataFrame(
        {"Image": [r"C:\CMD.exe", r"C:\cmd.exe"], "CommandLine": ["cmd /C x", "cmd"]}
    )
    shadows = frame.with_columns(
        pl.col(c).str.to_lowercase().alias(f"@lower:{c}") for c in frame.columns
    )

    expression = engine.compiled(RULE_ID).expression
    assert shadows.select(expression).to_series().to_list() == [True, False]


def test_keywords_skip_reserved_and_nested_columns(tmp_path: Path) -> None:
    engine = _engine(tmp_path, "keywords:\n    - 'evtx'\n    - 'mimikatz'\ncondition: keywords")
    frame = pl.DataFrame(
        {
            "@file": ["x.evtx", "x.evtx"],
            "@line": [1, 2],
            "Tags": [["mimikatz"], ["a"]],
            "Message": ["hello", "MIMIKATZ ran"],
        }
    )
    assert engine.match(frame).get_column("row").to_list() == [1]


def test_a_nested_column_is_no_value(tmp_path: Path) -> None:
    engine = _engine(tmp_path, "selection:\n    Tags|contains: 'x'\ncondition: selection")
    frame = pl.DataFrame({"Tags": [["x"], ["y"]]})
    assert engine.match(frame).height == 0
