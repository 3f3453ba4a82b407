"""Windows events as JSON: EVTX-style objects (pretty, concatenated, arrays, JSON lines),
Winlogbeat and flat renderings, named as Sigma rules name them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest

from qalqan.detect.events import FILE, LINE, OFFSET, TIME, LineProblem
from qalqan.detect.readers import read_events
from qalqan.detect.readers.winevt import WinEventReader

DATA = Path(__file__).parent / "data"
REGRESSION = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "sigma" / "regression_data"
)


def read_all(
    paths: list[Path], columns: list[str] | None = None, batch_bytes: int = 32 << 20
) -> tuple[pl.DataFrame, list[LineProblem]]:
    batches = list(
        read_events([str(p) for p in paths], "winevt", columns=columns, batch_bytes=batch_bytes)
    )
    frames = [b.frame for b in batches if b.frame.height]
    frame = pl.concat(frames, how="diagonal") if frames else pl.DataFrame()
    return frame, [p for b in batches for p in b.problems]


def objects_of(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8")
    decoder, pos, found = json.JSONDecoder(), 0, []
    while True:
        while pos < len(text) and text[pos] in " \r\n\t,[]":
            pos += 1
        if pos >= len(text):
            return found
        value, pos = decoder.raw_decode(text, pos)
        found.append(value)


def as_json_lines(paths: list[Path], target: Path) -> Path:
    target.write_bytes(b"".join(orjson.dumps(o) + b"\n" for p in paths for o in objects_of(p)))
    return target


def test_concatenated_pretty_objects_are_events_at_their_first_line() -> None:
    path = DATA / "sysmon_pretty.json"
    frame, problems = read_all([path])
    raw = path.read_bytes()
    second = raw.index(b"}\n{") + 2
    assert problems == []
    assert frame[LINE].to_list() == [1, raw[:second].count(b"\n") + 1]
    assert frame[OFFSET].to_list() == [0, second]
    first = frame.row(0, named=True)
    assert first["EventID"] == "1"
    assert first["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert first["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert first["Computer"] == "ws01.corp.example"
    assert first["EventRecordID"] == "1001"
    assert first["Level"] == "4"
    assert first["Task"] == "1"
    assert first["Keywords"] == "0x8000000000000000"
    assert first["UserID"] == "S-1-5-18"
    assert first["ProcessId"] == "4460"
    assert first["Image"] == "C:\\Windows\\System32\\cmd.exe"
    assert first["CommandLine"] == 'cmd.exe /c "echo <b>hi</b> & whoami"'
    assert first[TIME] == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    second_row = frame.row(1, named=True)
    assert second_row["TargetObject"] == "HKLM\\Software\\Run\\evil"
    assert second_row["UserID"] is None
    assert not any(c.startswith(("#", "Event.", "System")) for c in frame.columns)


def test_arrays_data_entries_qualified_ids_and_user_data() -> None:
    frame, problems = read_all([DATA / "security_array.json"])
    assert problems == []
    first, second = frame.rows(named=True)
    assert first["EventID"] == "4688"
    assert first["NewProcessName"] == "C:\\Windows\\System32\\whoami.exe"
    assert first["ParentProcessName"] == "C:\\Windows\\System32\\cmd.exe"
    assert first["TargetUserName"] == "alice"
    assert first[LINE] == 2
    assert second["EventID"] == "1102"
    assert second["SubjectUserName"] == "mallory"


def test_json_lines_take_the_fast_path_with_the_same_names(tmp_path: Path) -> None:
    frame, problems = read_all([DATA / "sysmon_lines.jsonl"])
    assert problems == []
    assert frame[LINE].to_list() == [1, 3, 4]
    assert frame["EventID"].to_list() == ["1", "3", "1"]
    assert frame["DestinationHostname"].to_list() == [None, "c2.example.net", None]
    assert frame["UserID"].to_list() == ["S-1-5-18", None, None]
    wanted = ["Image", "CommandLine", "EventID", "Computer", "ParentImage"]
    only, _ = read_all([DATA / "sysmon_lines.jsonl"], columns=wanted)
    assert only.columns == [FILE, LINE, OFFSET, TIME, *wanted]
    assert only["Image"].to_list() == frame["Image"].to_list()
    assert only["ParentImage"].null_count() == 3
    assert only[TIME].to_list() == frame[TIME].to_list()
    # The same events pretty-printed read to the same frame.
    pretty = tmp_path / "pretty.json"
    pretty.write_text(
        "\n".join(json.dumps(o, indent=2) for o in objects_of(DATA / "sysmon_lines.jsonl"))
    )
    slow, _ = read_all([pretty], columns=wanted)
    assert slow.drop(FILE, LINE, OFFSET).equals(only.drop(FILE, LINE, OFFSET))


def test_json_lines_with_data_entries_fall_back_per_event(tmp_path: Path) -> None:
    path = as_json_lines(
        [DATA / "security_array.json", DATA / "sysmon_pretty.json"], tmp_path / "mixed.jsonl"
    )
    for columns in (None, ["NewProcessName", "Image", "EventID"]):
        frame, problems = read_all([path], columns=columns)
        assert problems == []
        assert frame["EventID"].to_list() == ["4688", "1102", "1", "13"]
        assert frame["NewProcessName"][0] == "C:\\Windows\\System32\\whoami.exe"
        assert frame["Image"][2] == "C:\\Windows\\System32\\cmd.exe"


def test_winlogbeat_names_become_sigma_names() -> None:
    frame, _ = read_all([DATA / "winlogbeat.jsonl"])
    row = frame.row(0, named=True)
    assert row["EventID"] == "1"
    assert row["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert row["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert row["Computer"] == "ws03.corp.example"
    assert row["UserID"] == "S-1-5-18"
    assert row["Image"] == "C:\\Windows\\System32\\certutil.exe"
    assert row[TIME] == datetime(2026, 1, 1, 0, 3, tzinfo=UTC)
    only, _ = read_all([DATA / "winlogbeat.jsonl"], columns=["CommandLine", "EventID"])
    assert only["CommandLine"][0].startswith("certutil -urlcache")
    assert only["EventID"][0] == "1"


def test_flat_events_are_read_as_they_are() -> None:
    batch = WinEventReader().parse_chunk(
        b'{"EventID":4624,"Channel":"Security","IpAddress":"203.0.113.7","TimeCreated":"2026-01-01T00:00:00Z"}\n',
        file="flat.json",
    )
    row = batch.frame.row(0, named=True)
    assert row["EventID"] == "4624"
    assert row["IpAddress"] == "203.0.113.7"
    assert row[TIME] == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_broken_object_is_reported_and_the_next_one_read() -> None:
    text = (DATA / "sysmon_pretty.json").read_bytes()
    broken = b'{\n  "Event": {"System": \n' + text
    batch = WinEventReader().parse_chunk(broken, file="broken.json", first_line=10, offset=5)
    assert [p.line for p in batch.problems] == [10]
    assert batch.frame["EventRecordID"].to_list() == ["1001", "1002"]
    assert batch.frame[LINE][0] == 12
    assert batch.frame[OFFSET][0] == 5 + broken.index(text)


def test_documents_come_in_bounded_batches(tmp_path: Path) -> None:
    one = (DATA / "sysmon_pretty.json").read_text()
    path = tmp_path / "many.json"
    path.write_text(one * 30)
    batches = list(read_events([str(path)], "winevt", batch_bytes=4096))
    assert len(batches) > 5
    lines = [line for b in batches for line in b.frame[LINE].to_list()]
    assert len(lines) == 60
    assert lines == sorted(lines)


@pytest.fixture
def regression_files() -> list[Path]:
    if not REGRESSION.is_dir():
        pytest.skip("the shared Sigma regression data is not here")
    return sorted(REGRESSION.rglob("*.json"))


def test_every_regression_sample_reads_alike_in_both_layouts(
    regression_files: list[Path], tmp_path: Path
) -> None:
    documents, problems = read_all(regression_files)
    assert problems == []
    assert documents.height >= len(regression_files)
    assert documents["EventID"].null_count() == 0
    assert documents[TIME].null_count() == 0
    lines_path = as_json_lines(regression_files, tmp_path / "all.jsonl")
    lines, problems = read_all([lines_path])
    assert problems == []
    shared = [c for c in documents.columns if c not in (FILE, LINE, OFFSET)]
    assert sorted(shared) == sorted(c for c in lines.columns if c not in (FILE, LINE, OFFSET))
    assert lines.select(shared).equals(documents.select(shared))


def test_user_data_is_read_on_the_fast_path_too(tmp_path: Path) -> None:
    events = objects_of(DATA / "security_array.json")[1:] + objects_of(DATA / "sysmon_lines.jsonl")
    path = tmp_path / "user_data.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    frame, problems = read_all([path], columns=["SubjectUserName", "Image", "EventID"])
    assert problems == []
    assert frame["SubjectUserName"].to_list() == ["mallory", None, None, None]
    assert frame["Image"][1] == "C:\\Windows\\System32\\cmd.exe"
    assert frame["EventID"].to_list() == ["1102", "1", "3", "1"]
