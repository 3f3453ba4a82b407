"""JSON-lines readers: generic ``jsonl``, Suricata ``eve`` and Zeek's ``zeek-json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from qalqan.detect.events import FILE, LINE, OFFSET, TIME, LineProblem
from qalqan.detect.readers import read_events
from qalqan.detect.readers.eve import EveReader
from qalqan.detect.readers.jsonl import JsonLinesReader
from qalqan.detect.readers.zeek import ZeekJsonReader

DATA = Path(__file__).parent / "data"


def read_all(
    path: Path, format: str = "auto", columns: list[str] | None = None
) -> tuple[pl.DataFrame, list[LineProblem]]:
    batches = list(read_events([str(path)], format, columns=columns))
    frame = pl.concat([b.frame for b in batches], how="diagonal")
    return frame, [p for b in batches for p in b.problems]


def parse(data: bytes, columns: list[str] | None = None) -> tuple[pl.DataFrame, list[LineProblem]]:
    batch = JsonLinesReader().parse_chunk(data, file="t.jsonl", columns=columns)
    return batch.frame, list(batch.problems)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_jsonl_reads_fields_lines_offsets_and_times() -> None:
    frame, problems = read_all(DATA / "dns.jsonl")
    raw = (DATA / "dns.jsonl").read_bytes()
    assert frame[LINE].to_list() == [1, 2, 4, 6]  # line 3 is blank, line 5 is broken
    assert frame[OFFSET].to_list() == [
        raw.index(b'{"ts":%s' % t)
        for t in (b"1767225600,", b"1767225601.25", b'"2026', b"1767225604000")
    ]
    assert frame[FILE].unique().to_list() == [str(DATA / "dns.jsonl")]
    assert frame[TIME].to_list() == [
        utc(2026, 1, 1, 0, 0, 0),
        datetime(2026, 1, 1, 0, 0, 1, 250000, tzinfo=UTC),
        utc(2026, 1, 1, 0, 0, 2),
        utc(2026, 1, 1, 0, 0, 4),
    ]
    assert frame["query"][2] == "<script>alert(1)</script>"
    assert frame["answer"][2] is None
    assert frame["ts"][0] == "1767225600"
    assert frame["extra.ttl"][3] == "60"
    assert frame["extra.ok"][3] == "true"
    assert json.loads(frame["extra.flags"][3]) == ["rd", "ra"]
    assert [(p.line, p.reason.split(" (")[0]) for p in problems] == [(5, "not valid JSON")]


def test_jsonl_with_columns_reads_only_those() -> None:
    frame, problems = read_all(DATA / "dns.jsonl", "jsonl", ["query", "extra.ttl"])
    assert frame.columns == [FILE, LINE, OFFSET, TIME, "query", "extra.ttl"]
    assert frame["extra.ttl"].to_list() == [None, None, None, "60"]
    assert frame[TIME].null_count() == 0
    assert [p.line for p in problems] == [5]


def test_a_field_of_changing_type_does_not_sink_the_chunk() -> None:
    data = b'{"a":1,"n":"x"}\n{"a":{"b":2}}\n{"a":"text"}\n{"a":[1,{"c":3}]}\n{"a":null}\n'
    frame, problems = parse(data)
    assert problems == []
    assert frame[LINE].to_list() == [1, 2, 3, 4, 5]
    values = frame["a"].to_list()
    assert values[0] == "1"
    assert values[2] == "text"
    assert values[4] is None
    assert json.loads(values[1]) == {"b": 2}
    assert json.loads(values[3]) == [1, {"c": 3}]
    nested, _ = parse(data, columns=["a.b", "n"])
    assert nested["a.b"].to_list() == [None, "2", None, None, None]
    assert nested["n"].to_list() == ["x", None, None, None, None]


def test_malformed_and_non_object_lines_are_reported_and_skipped() -> None:
    data = b'{"a":1}\n{"a":\n[1,2]\n"text"\n{"a":2} trailing\n{"a":3}\n'
    frame, problems = parse(data)
    assert frame["a"].to_list() == ["1", "3"]
    assert frame[LINE].to_list() == [1, 6]
    assert [p.line for p in problems] == [2, 3, 4, 5]
    assert "not a JSON object" in problems[1].reason
    assert all(p.file == "t.jsonl" for p in problems)


def test_invalid_utf8_is_replaced_not_refused() -> None:
    frame, problems = parse(b'{"user":"caf\xe9"}\n{"user":"ok"}\n')
    assert problems == []
    assert frame["user"].to_list() == ["caf\ufffd", "ok"]


def test_blank_and_whitespace_lines_keep_line_numbers_true() -> None:
    frame, _ = parse(b'\n  \n{"a":1}\r\n\t\n   {"a":2}\n{"a":3}')
    assert frame[LINE].to_list() == [3, 5, 6]
    assert frame[OFFSET].to_list() == [4, 15, 26]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ('{"@timestamp":"2026-01-01T01:00:00+01:00"}', utc(2026, 1, 1)),
        ('{"timestamp":"2026-01-01 00:00:00"}', utc(2026, 1, 1)),
        ('{"time":1767225600000}', utc(2026, 1, 1)),
        ('{"_time":"1767225600"}', utc(2026, 1, 1)),
        ('{"eventTime":1767225600000000}', utc(2026, 1, 1)),
        ('{"ts":"not a time","time":1767225600}', utc(2026, 1, 1)),
        ('{"when":1767225600}', None),
    ],
)
def test_time_comes_from_the_first_readable_time_field(
    record: str, expected: datetime | None
) -> None:
    frame, _ = parse(record.encode() + b"\n")
    assert frame[TIME].to_list() == [expected]


def test_dotted_keys_and_nested_objects_are_one_field() -> None:
    data = b'{"id.orig_h":"10.0.0.1"}\n{"id":{"orig_h":"10.0.0.2"}}\n'
    for columns in (None, ["id.orig_h"]):
        frame, _ = parse(data, columns)
        assert frame["id.orig_h"].to_list() == ["10.0.0.1", "10.0.0.2"]


def test_a_record_without_wanted_fields_still_counts() -> None:
    frame, problems = parse(b'{}\n{"a":1}\n{bad\n', columns=[])
    assert frame[LINE].to_list() == [1, 2]
    assert [p.line for p in problems] == [3]


def test_eve_fields_presets_and_url() -> None:
    frame, problems = read_all(DATA / "eve.json")
    assert problems == []
    assert frame["event_type"].to_list() == ["dns", "dns", "http", "tls", "fileinfo", "alert"]
    assert frame["dns.rrname"][0] == "evil.example.com"
    assert json.loads(frame["dns.queries"][1])[0]["rrname"] == "other.example.com"
    assert frame["@url"].to_list() == [
        None,
        None,
        "http://download.example.net/payload.exe?x=1",
        None,
        None,
        None,
    ]
    assert frame["tls.sni"][3] == "c2.example.org"
    assert frame["fileinfo.md5"][4] == "d41d8cd98f00b204e9800998ecf8427e"
    assert frame["alert.signature_id"][5] == "2000001"
    assert frame[TIME][0] == datetime(2026, 1, 1, 0, 0, 0, 100, tzinfo=UTC)
    presets = EveReader.default_fields
    assert presets["src_ip"] == "ip"
    assert presets["@url"] == "url"
    assert presets["tls.sni"] == "domain"


def test_eve_url_alone_reads_its_sources_and_drops_them() -> None:
    frame, _ = read_all(DATA / "eve.json", columns=["@url"])
    assert frame.columns == [FILE, LINE, OFFSET, TIME, "@url"]
    assert frame["@url"].drop_nulls().to_list() == ["http://download.example.net/payload.exe?x=1"]


def test_zeek_json_reads_names_as_zeek_writes_them() -> None:
    frame, problems = read_all(DATA / "zeek_dns.json")
    assert problems == []
    assert frame["id.orig_h"].to_list() == ["10.0.0.5", "10.0.0.6"]
    assert json.loads(frame["answers"][0]) == ["203.0.113.7", "alias.example.com"]
    assert frame["answers"][1] is None
    assert frame[TIME].to_list() == [
        datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=UTC),
        utc(2026, 1, 1, 0, 0, 1),
    ]
    assert ZeekJsonReader.default_fields["id.resp_h"] == "ip"
    only, _ = read_all(DATA / "zeek_dns.json", columns=["id.resp_h", "query"])
    assert only["id.resp_h"].to_list() == ["10.0.0.53", "10.0.0.53"]
