"""Each detection format as its consumer reads it, with hostile values and descriptions: Zeek's
Intel file, an RPZ zone loaded by ``named-checkzone``, a MISP event loaded by PyMISP, CSV a
spreadsheet can open safely, plain lists; and the STIX bundle under ``stix2-validator``."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pymisp import MISPEvent
from stix2validator import ValidationOptions, validate_string

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Role
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.interop.exports import parse_request, prepare, write_files
from qalqan.testing import STAMP, TestNode, fresh_instance, indicator, stix_id

ANALYST = "analyst@a.test"
NAMES = [
    "plain description",
    "tab\there\nnew line\r\nend",
    '<script>alert("x")</script>',
    "=cmd|' /C calc'!A0",
    "+SUM(1,2)",
    "-2+3",
    "@SUM(A1)",
    "\ttabbed",
    "-",
    "(empty)",
    'semi;colon, comma "quote"',
    "\u202eright-to-left\u2028separator",
]
URLS = [
    'http://evil.example/a";b;c\\d?x=<script>',
    "http://evil.example/=cmd|calc",
    "https://shop.example:8443/login?next=/",
]
EMAILS = ["=cmd@evil.example", "phish@evil.example"]


def _url(value: str) -> dict[str, Any]:
    literal = value.replace("\\", "\\\\").replace("'", "\\'")
    return {**indicator(value), "pattern": f"[url:value = '{literal}']"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNode]:
    with fresh_instance(tmp_path_factory.mktemp("formats")) as inst:
        site = TestNode.create(inst, "CERT-A", "KZ")
        site.add_user(ANALYST, "CERT-A", Role.ANALYST)
        objects = [
            indicator(f"d{i}.evil.example", kind="domain-name", name=name, confidence=80)
            for i, name in enumerate(NAMES)
        ]
        objects += [indicator(f"192.0.2.{i + 1}", name=name) for i, name in enumerate(NAMES)]
        objects += [_url(u) for u in URLS]
        objects += [indicator(e, kind="email-addr", name="=HYPERLINK(x)") for e in EMAILS]
        objects += [
            indicator("203.0.113.0/24"),
            indicator("44d88612fea8a8f36de82e1278abb02f", kind="MD5", name="eicar"),
            indicator("com", kind="domain-name", name="a whole TLD"),
        ]
        with inst.begin() as conn:
            report = import_objects(
                conn,
                site.principals[ANALYST],
                objects,
                HandlingRequest(TLP.GREEN, Distribution.NODE),
            )
        assert not report.rejected, report.rejected
        yield site


def run(node: TestNode, fmt: str, out: Path, **options: Any) -> dict[str, Any]:
    with node.instance.begin() as conn:
        export = prepare(
            conn, node.principals[ANALYST], parse_request(fmt, **options), output_name=out.name
        )
        write_files(export, conn, out)
        export.audit(conn)
    return export.summary()


def test_zeek_intel_file(node: TestNode, tmp_path: Path) -> None:
    out = tmp_path / "intel.dat"
    run(node, "zeek", out)
    lines = out.read_text().split("\n")
    assert lines[0] == "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url"
    assert lines[-1] == ""
    rows = [line.split("\t") for line in lines[1:-1]]
    assert rows
    for row in rows:
        assert len(row) == 5, row
        assert all(field and field == field.strip() for field in row), row
        assert not any(c in field for field in row for c in "\r\x0b\x0c\u2028\u202e"), row
        assert row[1] in {
            "Intel::ADDR", "Intel::SUBNET", "Intel::DOMAIN", "Intel::URL",
            "Intel::EMAIL", "Intel::FILE_HASH",
        }  # fmt: skip
        assert row[2] == "CERT-A"
        assert row[4] == "-"
    by_value = {row[0]: row for row in rows}
    assert by_value["d1.evil.example"][3] == "tab here new line end"
    assert by_value["d8.evil.example"][3] == "-"  # a description of "-" is no description
    assert by_value["203.0.113.0/24"][1] == "Intel::SUBNET"
    # Zeek's URLs have no scheme.
    assert by_value['evil.example/a";b;c\\d?x=<script>'][1] == "Intel::URL"
    assert "shop.example:8443/login?next=/" in by_value
    assert by_value["44d88612fea8a8f36de82e1278abb02f"][1] == "Intel::FILE_HASH"


def test_rpz_zone_loads_in_named_checkzone(node: TestNode, tmp_path: Path) -> None:
    out = tmp_path / "block.rpz"
    summary = run(node, "rpz", out)
    text = out.read_text()
    assert "d3.evil.example CNAME .\n*.d3.evil.example CNAME .\n" in text
    assert "\ncom CNAME" not in text
    assert summary["skipped"] == {"single-label name": 1}
    checker = shutil.which("named-checkzone")
    if checker is None:
        pytest.skip("named-checkzone (bind9-utils) is not installed")
    done = subprocess.run(
        [checker, "rpz.qalqan.test", str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loaded serial" in done.stdout


def test_misp_event_loads_in_pymisp(node: TestNode, tmp_path: Path) -> None:
    out = tmp_path / "event.json"
    run(node, "misp", out)
    event = MISPEvent()
    event.load(out.read_text())
    values = {a.value: a for a in event.attributes}
    assert values["d1.evil.example"].type == "domain"
    assert values["d1.evil.example"].comment == "tab here new line end"
    assert values["192.0.2.3"].type == "ip-dst"
    assert values["203.0.113.0/24"].type == "ip-dst"
    assert values['http://evil.example/a";b;c\\d?x=<script>'].type == "url"
    assert values["=cmd@evil.example"].type == "email"
    assert values["44d88612fea8a8f36de82e1278abb02f"].type == "md5"
    assert all(a.to_ids for a in event.attributes)
    assert {t.name for a in event.attributes for t in a.tags} == {"tlp:green"}
    # uuids are stable: the same export gives the same attribute ids.
    again = tmp_path / "again.json"
    run(node, "misp", again)
    second = MISPEvent()
    second.load(again.read_text())
    assert {a.uuid for a in event.attributes} == {a.uuid for a in second.attributes}


def test_csv_is_safe_in_a_spreadsheet(node: TestNode, tmp_path: Path) -> None:
    out = tmp_path / "iocs.csv"
    run(node, "csv", out)
    raw = out.read_bytes()
    rows = list(csv.reader(io.StringIO(raw.decode(), newline="")))
    assert rows[0] == ["kind", "value", "indicator_id", "name", "confidence", "tlp", "source"]
    # One physical line per record: no field carries a line break.
    assert raw.count(b"\r\n") == len(rows)
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    names = {row[1]: row[3] for row in rows[1:]}
    assert names["d3.evil.example"] == "'=cmd|' /C calc'!A0"
    assert names["d5.evil.example"] == "'-2+3"
    assert names["d10.evil.example"] == 'semi;colon, comma "quote"'
    values = {row[1] for row in rows[1:]}
    assert "'=cmd@evil.example" in values
    assert "http://evil.example/=cmd|calc" in values


def test_text_lists_one_value_per_line(node: TestNode, tmp_path: Path) -> None:
    out = tmp_path / "all.txt"
    run(node, "text", out)
    lines = out.read_text().splitlines()
    assert len(lines) == len(set(lines))
    assert lines.index("192.0.2.1") < lines.index("203.0.113.0/24") < lines.index("com")
    domains = tmp_path / "domains.txt"
    run(node, "text", domains, kinds=["domain-name"])
    expected = {"com"} | {f"d{i}.evil.example" for i in range(len(NAMES))}
    assert sorted(domains.read_text().splitlines()) == sorted(expected)


def test_stix_bundle_passes_the_validator(tmp_path: Path) -> None:
    with fresh_instance(tmp_path / "data") as inst:
        site = TestNode.create(inst, "CERT-A", "KZ")
        malware = {
            "type": "malware",
            "spec_version": "2.1",
            "id": stix_id("malware"),
            "created": STAMP,
            "modified": STAMP,
            "name": "Loader",
            "is_family": True,
        }
        ioc = indicator(
            "198.51.100.5",
            indicator_types=["malicious-activity"],
            labels=["c2"],
            description='<script>alert("x")</script>\n; DROP TABLE',
        )
        relation = {
            "type": "relationship",
            "spec_version": "2.1",
            "id": stix_id("relationship"),
            "created": STAMP,
            "modified": STAMP,
            "relationship_type": "indicates",
            "source_ref": ioc["id"],
            "target_ref": malware["id"],
        }
        with inst.begin() as conn:
            report = import_objects(conn, site.principals["admin@a.test"], [malware, ioc, relation])
        assert not report.rejected
        out = tmp_path / "bundle.json"
        run_as = site.principals["admin@a.test"]
        # Standard objects only: the node's own org identity carries a custom property
        # (x_qalqan_country), which strict validation wants as an extension.
        standard = ["indicator", "malware", "relationship", "marking-definition"]
        with inst.begin() as conn:
            request = parse_request("stix", types=standard)
            export = prepare(conn, run_as, request, output_name=out.name)
            write_files(export, conn, out)
    bundle = orjson.loads(out.read_bytes())
    ids = {o["id"] for o in bundle["objects"]}
    assert {malware["id"], ioc["id"], relation["id"]} <= ids
    assert TLP.GREEN.marking_id in ids
    results = validate_string(out.read_text(), ValidationOptions(version="2.1", strict=True))
    assert results.is_valid, [str(e) for e in results.errors]
