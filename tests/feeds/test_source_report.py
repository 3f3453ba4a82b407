"""The ``report`` source, on HTML, text and PDF reports kept in ``data/`` or written here."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qalqan.errors import InvalidInput
from qalqan.feeds.items import Document, Item, Reject, Unchanged, Value
from qalqan.feeds.sources import Job, make_source
from qalqan.testing import serving_directory

DATA = Path(__file__).parent / "data"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _read(url: str, state: dict[str, Any] | None = None, **options: Any) -> list[Item]:
    return list(make_source("report", options).read(Job(url, "reports", state=state or {})))


def _found(items: list[Item]) -> list[tuple[str | None, str]]:
    return [(item.kind, item.raw) for item in items if isinstance(item, Value)]


def _document(items: list[Item]) -> Document:
    documents = [item for item in items if isinstance(item, Document)]
    assert len(documents) == 1
    return documents[0]


def _pdf(lines: list[str], title: str) -> bytes:
    """A one-page PDF showing ``lines`` in Helvetica, with ``title`` in its metadata."""

    def literal(text: str) -> str:
        return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"

    shown = " ".join(f"{literal(line)} Tj T*" for line in lines)
    content = f"BT /F1 11 Tf 14 TL 72 720 Td {shown} ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
        b" /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Title %s >>" % literal(title).encode("latin-1"),
    ]
    pdf = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    pdf += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(pdf)


def test_an_html_report_yields_the_indicators_of_its_visible_text() -> None:
    path = DATA / "report_campaign.html"

    items = _read(path.as_uri())

    assert _found(items) == [
        ("url", "http://bad.example.com/x.exe"),
        ("domain", "bad.example.com"),
        ("ip", "198.51.100.7"),
        ("email", "phish@example.org"),
        ("domain", "example.org"),
        ("sha256", SHA256),
        ("ip", "192.0.2.1"),
        ("ip", "192.0.2.2"),
        ("cidr", "203.0.113.0/24"),
    ]
    values = [item for item in items if isinstance(item, Value)]
    assert [value.line for value in values] == list(range(1, 10))
    origin = "report:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert {value.origin for value in values} == {origin}
    assert values[0].context.description == "found in report Operation Harbor Light: a & b"
    document = _document(items)
    assert document.origin == origin
    assert document.name == "Operation Harbor Light: a & b"
    assert document.description is not None
    assert document.description.startswith("Operation Harbor Light\nThe loader was downloaded")
    assert document.url is None
    assert not [item for item in items if isinstance(item, Reject)]


def test_domains_of_urls_can_be_left_out() -> None:
    items = _read((DATA / "report_campaign.html").as_uri(), domains_from_urls=False)

    assert ("url", "http://bad.example.com/x.exe") in _found(items)
    assert ("domain", "bad.example.com") not in _found(items)


def test_a_text_report_is_named_after_its_file() -> None:
    items = _read((DATA / "report_notes.txt").as_uri())

    assert _found(items) == [
        ("url", "https://update.example.org/api/v2?id=7"),
        ("domain", "update.example.org"),
        ("md5", "5d41402abc4b2a76b9719d911017c592"),
        ("sha1", "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"),
        ("domain", "stage.example.net"),
        ("ip", "2001:db8::8a2e:370:7334"),
        ("email", "soc@example.com"),
        ("domain", "example.com"),
    ]
    document = _document(items)
    assert document.name == "report_notes.txt"
    assert document.description is not None
    assert document.description.startswith("Weekly threat notes\n")


def test_a_utf16_text_report_is_decoded() -> None:
    items = _read((DATA / "report_utf16.txt").as_uri())

    assert _found(items) == [
        ("url", "https://kontrolle.example.de/gate"),
        ("domain", "kontrolle.example.de"),
        ("ip", "192.0.2.44"),
    ]
    assert (_document(items).description or "").startswith("Bericht über die Kampagne")


def test_a_pdf_report_yields_the_indicators_of_its_text(tmp_path: Path) -> None:
    path = tmp_path / "harbor.pdf"
    lines = [
        "Harbor Light follow-up",
        "C2 at 198.51.100[.]23 and hxxps://c2.example[.]net/q",
        SHA256,
    ]
    path.write_bytes(_pdf(lines, "Harbor Light (PDF)"))

    items = _read(path.as_uri())

    assert _found(items) == [
        ("ip", "198.51.100.23"),
        ("url", "https://c2.example.net/q"),
        ("domain", "c2.example.net"),
        ("sha256", SHA256),
    ]
    assert _document(items).name == "Harbor Light (PDF)"


def test_a_damaged_pdf_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="the PDF cannot be read") as caught:
        _read((DATA / "report_corrupt.pdf").as_uri())
    assert caught.value.field == "content"


def test_binary_data_is_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))

    with pytest.raises(InvalidInput, match="binary data"):
        _read(path.as_uri())


def test_a_long_report_is_searched_up_to_max_chars(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("first 192.0.2.1\n" + "filler text\n" * 20 + "last 192.0.2.99\n")

    items = _read(path.as_uri(), max_chars=100)

    assert _found(items) == [("ip", "192.0.2.1")]
    rejects = [item for item in items if isinstance(item, Reject)]
    assert [(reject.line, reject.field) for reject in rejects] == [(0, "content")]
    assert "first 100 characters" in rejects[0].reason


@pytest.fixture
def served() -> Iterator[str]:
    """The ``data`` directory served over HTTP on a free local port; its URL."""
    with serving_directory(DATA) as url:
        yield url


def test_a_report_over_http_is_read_then_found_unchanged(served: str) -> None:
    url = f"{served}report_notes.txt"
    job = Job(url, "reports")

    items = list(make_source("report", {}).read(job))

    assert _document(items).url == url
    assert ("md5", "5d41402abc4b2a76b9719d911017c592") in _found(items)
    assert list(make_source("report", {}).read(job)) == [Unchanged()]
