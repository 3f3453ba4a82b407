"""Readers of text and columnar formats: Zeek TSV, CSV/TSV, CEF, LEEF, syslog and Parquet."""

from __future__ import annotations

import gzip
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from qalqan.detect.events import FILE, LINE, OFFSET, TIME, LineProblem
from qalqan.detect.readers import READERS, read_events
from qalqan.detect.readers.csv import CsvReader
from qalqan.detect.readers.zeek import ZeekReader

DATA = Path(__file__).parent / "data"


def read_all(
    path: Path | str,
    format: str = "auto",
    columns: list[str] | None = None,
    batch_bytes: int = 32 << 20,
) -> tuple[pl.DataFrame, list[LineProblem]]:
    batches = list(read_events([str(path)], format, columns=columns, batch_bytes=batch_bytes))
    frames = [b.frame for b in batches if b.frame.height]
    frame = pl.concat(frames, how="diagonal") if frames else pl.DataFrame()
    return frame, [p for b in batches for p in b.problems]


def test_zeek_tsv_follows_its_header() -> None:
    frame, problems = read_all(DATA / "conn.log")
    assert problems == []
    assert frame[LINE].to_list() == [9, 10]
    raw = (DATA / "conn.log").read_bytes()
    assert frame[OFFSET].to_list() == [raw.index(b"1767225600.000100"), raw.index(b"1767225601.5")]
    assert frame["id.orig_h"].to_list() == ["10.0.0.5", "10.0.0.6"]
    assert frame["id.resp_p"].to_list() == ["443", "80"]
    assert frame["service"].to_list() == ["ssl", None]
    assert frame["tunnel_parents"].to_list() == ["[]", '["Cx1","Cx2"]']
    assert frame["_path"].to_list() == ["conn", "conn"]
    assert frame[TIME].to_list() == [
        datetime(2026, 1, 1, 0, 0, 0, 100, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 1, 500000, tzinfo=UTC),
    ]


def test_zeek_http_gets_a_url_and_unescapes_separators() -> None:
    frame, _ = read_all(DATA / "http.log")
    assert frame["@url"].to_list() == [
        "http://download.example.net/payload.exe",
        "http://absolute.example.org/x",
    ]
    assert frame["user_agent"][1] == "Tab\tAgent"
    only, _ = read_all(DATA / "http.log", columns=["@url"])
    assert only.columns == [FILE, LINE, OFFSET, TIME, "@url"]
    assert READERS["zeek"].default_fields["@url"] == "url"


def test_zeek_tsv_concatenated_logs_switch_headers(tmp_path: Path) -> None:
    path = tmp_path / "both.log"
    path.write_bytes((DATA / "conn.log").read_bytes() + (DATA / "http.log").read_bytes())
    for batch_bytes in (32 << 20, 200):
        frame, problems = read_all(path, batch_bytes=batch_bytes)
        assert problems == []
        assert frame["_path"].to_list() == ["conn", "conn", "http", "http"]
        assert frame["host"].to_list() == [None, None, "download.example.net", "proxy.example.net"]
        assert frame[LINE].to_list() == [9, 10, 19, 20]


def test_zeek_follower_keeps_the_header_it_read() -> None:
    reader = ZeekReader()
    with open(DATA / "conn.log", "rb") as stream:
        list(reader.read(stream, "conn.log"))
    batch = reader.parse_chunk(
        b"1767225700.0\tCa9\t10.0.0.9\t1\t192.0.2.1\t2\ttcp\t-\t(empty)\n",
        file="conn.log",
        first_line=12,
        offset=500,
    )
    assert batch.frame["uid"].to_list() == ["Ca9"]
    assert batch.frame[LINE].to_list() == [12]
    orphan = ZeekReader().parse_chunk(b"1\t2\n", file="x.log")
    assert orphan.frame.height == 0
    assert "#fields" in orphan.problems[0].reason


def test_zeek_lines_that_do_not_fit_the_header_are_reported() -> None:
    header = (DATA / "http.log").read_bytes().split(b"1767225600.5")[0]
    data = header + b"1\tCh1\t10.0.0.1\n" + b"2\tCh2\t10.0.0.1\t10.0.0.2\th\t/u\tua\n"
    batch = ZeekReader().parse_chunk(data, file="bad.log")
    assert batch.frame["uid"].to_list() == ["Ch2"]
    assert [p.line for p in batch.problems] == [8]


def test_csv_keeps_line_numbers_true_across_quoted_newlines() -> None:
    frame, problems = read_all(DATA / "audit.csv")
    assert problems == []
    assert frame["user"].to_list() == ["alice", "bob", "carol"]
    assert frame["comment"].to_list() == ["first, with a comma", "spans\ntwo lines", "plain"]
    assert frame[LINE].to_list() == [2, 3, 6]
    raw = (DATA / "audit.csv").read_bytes()
    assert frame[OFFSET].to_list() == [raw.index(b"2026-01-01T00:00:0%d" % i) for i in range(3)]
    assert frame[TIME][2] == datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)


def test_csv_chunks_never_cut_a_quoted_field(tmp_path: Path) -> None:
    rows = "".join(f'{i},"line one\nline two of {i}",x\n' for i in range(200))
    path = tmp_path / "quoted.csv"
    path.write_text("id,text,other\n" + rows)
    batches = list(read_events([str(path)], "csv", batch_bytes=256))
    assert len(batches) > 10
    frame = pl.concat([b.frame for b in batches])
    assert frame["id"].to_list() == [str(i) for i in range(200)]
    assert frame[LINE].to_list() == [2 + 2 * i for i in range(200)]
    assert frame["text"][7] == "line one\nline two of 7"


def test_csv_with_stray_quotes_is_read_leniently() -> None:
    reader = CsvReader()
    batch = reader.parse_chunk(b'a,b\n1,"x" y\n\n2,3\n', file="odd.csv")
    assert batch.frame["a"].to_list() == ["1", "2"]
    assert batch.frame["b"].to_list() == ["x y", "3"]
    assert batch.frame[LINE].to_list() == [2, 4]


def test_tsv_and_csv_columns_hint() -> None:
    frame, _ = read_all(DATA / "flows.tsv", columns=["dst", "missing"])
    assert frame.columns == [FILE, LINE, OFFSET, TIME, "dst", "missing"]
    assert frame["dst"].to_list() == ["203.0.113.7", "198.51.100.9"]
    assert frame[TIME][0] == datetime(2026, 1, 1, tzinfo=UTC)


def test_cef_header_extension_escapes_and_syslog_prefix() -> None:
    frame, problems = read_all(DATA / "firewall.cef")
    assert [(p.line, p.reason) for p in problems] == [(3, "not a CEF record")]
    first, second = frame.rows(named=True)
    assert first["deviceVendor"] == "Acme"
    assert first["deviceEventClassId"] == "100"
    assert first["name"] == "Blocked connection"
    assert first["severity"] == "5"
    assert first["src"] == "10.0.0.5"
    assert first["msg"] == "Blocked a=b = c and \\ path"
    assert first["request"] == "http://evil.example.net/a?b=1"
    assert first["host"] == "fw01"
    assert first[TIME] == datetime(2026, 1, 1, tzinfo=UTC)
    assert second["deviceProduct"] == "Proxy|Gateway"
    assert second["dhost"] == "download.example.net"
    assert second["host"] is None
    assert second[LINE] == 2
    only, _ = read_all(DATA / "firewall.cef", columns=["dhost", "src"])
    assert only.columns == [FILE, LINE, OFFSET, TIME, "dhost", "src"]
    assert only["dhost"].to_list() == [None, "download.example.net"]
    assert only[TIME].to_list() == frame[TIME].to_list()


def test_leef_one_and_two_with_their_delimiters() -> None:
    frame, problems = read_all(DATA / "ids.leef")
    assert problems == []
    first, second = frame.rows(named=True)
    assert first["leefVersion"] == "1.0"
    assert first["eventId"] == "4001"
    assert (first["src"], first["dst"], first["sev"]) == ("10.0.0.5", "203.0.113.7", "7")
    assert first[TIME] == datetime(2026, 1, 1, tzinfo=UTC)
    assert first["host"] == "qradar"
    assert second["url"] == "http://evil.example.net/x"
    assert second["src"] == "10.0.0.6"
    assert second[TIME].month == 1
    assert second[TIME].day == 1
    assert second[TIME].second == 1


def test_syslog_both_rfcs_and_shapeless_lines() -> None:
    frame, problems = read_all(DATA / "auth.syslog")
    assert problems == []
    rows = frame.rows(named=True)
    assert (rows[0]["host"], rows[0]["program"], rows[0]["pid"]) == ("web01", "sshd", "4242")
    assert rows[0]["message"].startswith("Accepted password for root")
    assert (rows[0][TIME].month, rows[0][TIME].day, rows[0][TIME].hour) == (1, 1, 0)
    assert rows[1]["program"] == "kernel"
    assert rows[1]["pid"] is None
    assert rows[2]["host"] == "mail.example.org"
    assert rows[2]["msgid"] == "ID47"
    assert rows[2]["structured_data"] == '[exampleSDID@32473 iut="3"]'
    assert rows[2]["message"] == "su root failed on /dev/pts/8"
    assert rows[2][TIME] == datetime(2026, 1, 1, 0, 0, 2, 3000, tzinfo=UTC)
    assert rows[3]["message"] == "continuation without a header"
    assert rows[3]["host"] is None
    assert rows[3][TIME] is None
    assert frame[LINE].to_list() == [1, 2, 3, 4]


def _parquet_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": [datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 0, 1)],
            "src": ["10.0.0.5", "10.0.0.6"],
            "bytes": [1200, 5],
            "ok": [True, False],
            "dns": [{"rrname": "evil.example.com", "ttl": 60}, None],
            "tags": [["a", "b"], []],
        }
    )


def test_parquet_is_flattened_into_text(tmp_path: Path) -> None:
    path = tmp_path / "flows.parquet"
    _parquet_frame().write_parquet(path)
    frame, problems = read_all(path)
    assert problems == []
    assert frame[LINE].to_list() == [1, 2]
    assert frame[OFFSET].null_count() == 2
    assert frame[TIME].to_list() == [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
    ]
    assert frame["bytes"].to_list() == ["1200", "5"]
    assert frame["ok"].to_list() == ["true", "false"]
    assert frame["dns.rrname"].to_list() == ["evil.example.com", None]
    assert json.loads(frame["tags"][0]) == ["a", "b"]
    assert frame["timestamp"].to_list() == ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"]
    only, _ = read_all(path, columns=["dns.rrname"])
    assert only.columns == [FILE, LINE, OFFSET, TIME, "dns.rrname"]


def test_parquet_comes_in_row_group_batches(tmp_path: Path) -> None:
    path = tmp_path / "many.parquet"
    pl.DataFrame({"n": list(range(10_000))}).write_parquet(path, row_group_size=1000)
    batches = list(read_events([str(path)], batch_bytes=4096))
    assert len(batches) >= 5
    assert pl.concat([b.frame for b in batches])[LINE].to_list() == list(range(1, 10_001))
    assert batches[-1].bytes_read == path.stat().st_size


def test_parquet_from_stdin_or_compressed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    _parquet_frame().write_parquet(buffer)
    path = tmp_path / "flows.parquet.gz"
    path.write_bytes(gzip.compress(buffer.getvalue()))
    frame, _ = read_all(path)
    assert frame["src"].to_list() == ["10.0.0.5", "10.0.0.6"]
    monkeypatch.setattr(sys, "stdin", io.BytesIO(buffer.getvalue()))
    frame, _ = read_all("-")
    assert frame["src"].to_list() == ["10.0.0.5", "10.0.0.6"]


def test_a_damaged_parquet_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    frame, problems = read_all(path)
    assert frame.height == 0
    assert "Parquet" in problems[0].reason


def test_zeek_lines_with_extra_fields_are_reported_too() -> None:
    header = (DATA / "http.log").read_bytes().split(b"1767225600.5")[0]
    data = header + b"2\tCh2\t10.0.0.1\t10.0.0.2\th\t/u\tua\textra\n3\tCh3\t1\t2\th\t/\tua\n"
    batch = ZeekReader().parse_chunk(data, file="bad.log")
    assert batch.frame["uid"].to_list() == ["Ch3"]
    assert [p.line for p in batch.problems] == [8]
