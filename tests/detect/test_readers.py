"""The reader registry and entry points: paths, globs, compression, standard input, format
detection, bounded batches, and the contract every reader keeps."""

from __future__ import annotations

import gzip
import io
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest
import zstandard

from qalqan.detect.events import FILE, LINE, OFFSET, RESERVED, TIME, LineProblem
from qalqan.detect.readers import (
    KINDS,
    READERS,
    LogReader,
    detect_format,
    expand_paths,
    known_formats,
    open_log,
    read_events,
    register,
)
from qalqan.detect.readers.jsonl import JsonLinesReader
from qalqan.errors import InvalidInput

DATA = Path(__file__).parent / "data"

FIXTURES = {
    "dns.jsonl": "jsonl",
    "eve.json": "eve",
    "zeek_dns.json": "zeek-json",
    "conn.log": "zeek",
    "http.log": "zeek",
    "firewall.cef": "cef",
    "ids.leef": "leef",
    "auth.syslog": "syslog",
    "audit.csv": "csv",
    "flows.tsv": "tsv",
    "sysmon_pretty.json": "winevt",
    "security_array.json": "winevt",
    "sysmon_lines.jsonl": "winevt",
    "winlogbeat.jsonl": "winevt",
}


def read_all(
    paths: Sequence[str | Path],
    format: str = "auto",
    *,
    columns: list[str] | None = None,
    batch_bytes: int = 32 << 20,
) -> tuple[pl.DataFrame, list[LineProblem]]:
    batches = list(
        read_events([str(p) for p in paths], format, columns=columns, batch_bytes=batch_bytes)
    )
    frames = [b.frame for b in batches if b.frame.height]
    frame = pl.concat(frames, how="diagonal") if frames else pl.DataFrame()
    return frame, [p for b in batches for p in b.problems]


def dns_lines(count: int) -> bytes:
    return b"".join(
        b'{"ts":%d,"client":"10.0.0.%d","query":"host%d.example.org","answer":"192.0.2.%d"}\n'
        % (1767225600 + i, i % 250, i, i % 250)
        for i in range(count)
    )


def test_known_formats_lists_every_reader_in_detection_order() -> None:
    formats = known_formats()
    assert sorted(formats) == sorted(READERS)
    order = [
        "parquet",
        "zeek",
        "winevt",
        "eve",
        "zeek-json",
        "jsonl",
        "cef",
        "leef",
        "syslog",
        "tsv",
        "csv",
    ]
    assert [f for f in formats if f in order] == order


@pytest.mark.parametrize(("name", "expected"), sorted(FIXTURES.items()))
def test_detects_the_format_of_each_sample(name: str, expected: str) -> None:
    path = DATA / name
    assert detect_format(path.read_bytes()[: 64 << 10], str(path)) == expected
    batches = list(read_events([str(path)]))
    assert {b.format for b in batches} == {expected}


def test_detects_parquet_by_its_magic(tmp_path: Path) -> None:
    path = tmp_path / "events.bin"
    pl.DataFrame({"a": [1]}).write_parquet(path)
    assert detect_format(path.read_bytes(), str(path)) == "parquet"


def test_an_undetectable_log_is_refused_with_its_name() -> None:
    with pytest.raises(InvalidInput, match=r"mystery\.bin") as info:
        detect_format(b"\x00\x01\x02 nothing recognisable", "mystery.bin")
    assert "jsonl" in info.value.detail


def test_an_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as info:
        list(read_events([str(DATA / "dns.jsonl")], "evtx-binary"))
    for name in ["auto", *known_formats()]:
        assert name in info.value.detail
    assert "evtx-binary" in info.value.detail


def test_a_path_that_matches_nothing_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope" / "*.json.gz")
    with pytest.raises(InvalidInput, match="nope"):
        expand_paths([missing])
    with pytest.raises(InvalidInput, match=r"absent\.log"):
        list(read_events([str(tmp_path / "absent.log")]))


def test_globs_directories_and_stdin_expand_in_order(tmp_path: Path) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("x.json", "y.json"):
        (tmp_path / "a" / name).write_bytes(b"{}\n")
    (tmp_path / "a" / "deep" / "z.json").write_bytes(b"{}\n")
    (tmp_path / "a" / "notes.txt").write_bytes(b"x\n")
    base = str(tmp_path / "a")
    assert expand_paths([f"{base}/*.json"]) == [f"{base}/x.json", f"{base}/y.json"]
    assert expand_paths([f"{base}/**/*.json"]) == [
        f"{base}/deep/z.json",
        f"{base}/x.json",
        f"{base}/y.json",
    ]
    assert expand_paths([base, "-", f"{base}/x.json"]) == [
        f"{base}/deep/z.json",
        f"{base}/notes.txt",
        f"{base}/x.json",
        f"{base}/y.json",
        "-",
    ]


def test_reads_every_file_a_directory_holds(tmp_path: Path) -> None:
    shutil.copy(DATA / "dns.jsonl", tmp_path / "1.jsonl")
    shutil.copy(DATA / "conn.log", tmp_path / "2.log")
    frame, _ = read_all([tmp_path])
    assert set(frame[FILE].unique()) == {str(tmp_path / "1.jsonl"), str(tmp_path / "2.log")}


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_compressed_logs_read_like_plain_ones(tmp_path: Path, codec: str) -> None:
    raw = (DATA / "eve.json").read_bytes()
    packed = gzip.compress(raw) if codec == "gzip" else zstandard.ZstdCompressor().compress(raw)
    path = tmp_path / "eve.log"  # the name says nothing: the magic bytes do
    path.write_bytes(packed)
    stream, compression = open_log(str(path))
    with stream:
        assert compression == codec
        assert stream.read() == raw
    plain, _ = read_all([DATA / "eve.json"])
    packed_frame, problems = read_all([path])
    assert problems == []
    assert packed_frame.drop(FILE).equals(plain.drop(FILE))


def test_concatenated_compressed_members_are_one_log(tmp_path: Path) -> None:
    path = tmp_path / "joined.gz"
    path.write_bytes(gzip.compress(dns_lines(3)) + gzip.compress(dns_lines(2)))
    frame, problems = read_all([path])
    assert problems == []
    assert frame[LINE].to_list() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_truncated_compressed_log_keeps_the_events_before_the_damage(
    tmp_path: Path, codec: str
) -> None:
    raw = dns_lines(20_000)
    if codec == "gzip":
        packed = gzip.compress(raw)
    else:
        packed = zstandard.ZstdCompressor(write_content_size=False).compress(raw)
    path = tmp_path / "cut.log"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    frame, problems = read_all([path], batch_bytes=64 << 10)
    assert 0 < frame.height < 20_000
    assert frame[LINE].to_list() == list(range(1, frame.height + 1))
    assert len(problems) == 1
    assert "truncated" in problems[0].reason
    assert problems[0].line == frame.height + 1


def test_standard_input_is_read_as_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(dns_lines(4)))))
    frame, problems = read_all(["-"])
    assert problems == []
    assert frame[FILE].unique().to_list() == ["-"]
    assert frame["query"].to_list() == [f"host{i}.example.org" for i in range(4)]


def test_standard_input_may_be_a_plain_binary_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.BytesIO((DATA / "conn.log").read_bytes()))
    frame, _ = read_all(["-"])
    assert frame["uid"].to_list() == ["Ca1", "Ca2"]


@pytest.mark.parametrize("compressed", [False, True])
def test_batches_are_bounded_and_continuous(tmp_path: Path, compressed: bool) -> None:
    raw = dns_lines(3000)
    path = tmp_path / "big.jsonl"
    path.write_bytes(gzip.compress(raw) if compressed else raw)
    batch_bytes = 16 << 10
    line_size = len(raw) // 3000 + 1
    batches = read_events([str(path)], columns=["query"], batch_bytes=batch_bytes)
    seen: list[int] = []
    progress = []
    count = 0
    for batch in batches:  # a generator: one batch in memory at a time
        count += 1
        assert batch.frame.height * (line_size - 2) <= batch_bytes
        seen.extend(batch.frame[LINE].to_list())
        progress.append(batch.bytes_read)
    assert count >= len(raw) // batch_bytes
    assert seen == list(range(1, 3001))
    assert progress == sorted(progress)
    assert progress[-1] == path.stat().st_size


def test_a_line_longer_than_a_batch_still_reads(tmp_path: Path) -> None:
    long = b'{"blob":"' + b"x" * 50_000 + b'"}\n'
    path = tmp_path / "long.jsonl"
    path.write_bytes(long + long + b'{"blob":"short"}\n')
    frame, problems = read_all([path], batch_bytes=1024)
    assert problems == []
    assert frame[LINE].to_list() == [1, 2, 3]
    assert frame[OFFSET].to_list() == [0, len(long), 2 * len(long)]


def test_an_empty_file_yields_no_events(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_bytes(b"")
    (tmp_path / "blank.log").write_bytes(b"\n\n  \n")
    assert list(read_events([str(tmp_path / "empty.log"), str(tmp_path / "blank.log")])) == []
    assert list(read_events([str(tmp_path / "blank.log")], "jsonl")) == []


def test_parse_chunk_counts_from_where_the_chunk_starts() -> None:
    reader = JsonLinesReader()
    batch = reader.parse_chunk(
        b'{"a":1}\n\n{"a":2}\n', file="live.jsonl", first_line=41, offset=1000
    )
    assert batch.frame[LINE].to_list() == [41, 43]
    assert batch.frame[OFFSET].to_list() == [1000, 1009]
    assert batch.frame[FILE].to_list() == ["live.jsonl"] * 2
    assert batch.format == "jsonl"


def test_columns_are_exactly_those_asked_for() -> None:
    frame, _ = read_all([DATA / "eve.json"], columns=["src_ip", "no.such.field", "dns.rrname"])
    assert frame.columns == [*RESERVED, "src_ip", "no.such.field", "dns.rrname"]
    assert frame["no.such.field"].dtype == pl.String
    assert frame["no.such.field"].null_count() == frame.height


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_reader_returns_text_fields_and_typed_reserved_columns(name: str) -> None:
    frame, _ = read_all([DATA / name])
    assert frame.height > 0
    assert frame.columns[:4] == list(RESERVED)
    assert frame.schema[FILE] == pl.String
    assert frame.schema[LINE] == pl.Int64
    assert frame.schema[OFFSET] == pl.Int64
    assert frame.schema[TIME] == pl.Datetime("us", "UTC")
    assert all(dtype == pl.String for name, dtype in frame.schema.items() if name not in RESERVED)
    assert frame[LINE].is_sorted()


def test_every_reader_is_described_and_names_only_known_kinds() -> None:
    for name, cls in READERS.items():
        assert cls.name == name
        assert cls.description
        assert set(cls.default_fields.values()) <= KINDS


def test_register_refuses_a_taken_name_and_unknown_kinds() -> None:
    class Twin(JsonLinesReader):
        name = "jsonl"

    class Odd(JsonLinesReader):
        name = "odd-for-test"
        default_fields = {"x": "url-path"}  # noqa: RUF012

    with pytest.raises(ValueError, match="already registered"):
        register(Twin)
    with pytest.raises(ValueError, match="url-path"):
        register(Odd)
    assert "odd-for-test" not in READERS
    assert issubclass(READERS["jsonl"], LogReader)


def test_a_callers_own_truncated_gzip_stream_does_not_raise() -> None:
    packed = gzip.compress(dns_lines(5000))
    stream = gzip.GzipFile(fileobj=io.BytesIO(packed[: len(packed) // 2]))
    batches = list(JsonLinesReader().read(stream, "cut.gz", batch_bytes=8 << 10))  # type: ignore[arg-type]
    problems = [p for b in batches for p in b.problems]
    assert sum(b.frame.height for b in batches) > 0
    assert len(problems) == 1
    assert "truncated" in problems[0].reason


def test_a_file_of_unknown_format_is_a_problem_and_the_rest_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"\x00\x01\x02 not a log")
    shutil.copy(DATA / "dns.jsonl", tmp_path / "b.jsonl")
    frame, problems = read_all([tmp_path])
    assert frame.height == 4
    assert problems[0].file == str(tmp_path / "a.bin")
    assert "cannot tell the log format" in problems[0].reason
