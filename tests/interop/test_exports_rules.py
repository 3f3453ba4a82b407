"""Suricata and Snort rules under a grammar check, with hostile values, names and org names.

Why a grammar check and not Suricata itself: no Suricata package can be installed where these
tests run, so each rule is parsed here against the rule language as Suricata's and Snort's
manuals define it, strictly enough that an injection would fail it: the header (action,
protocol, addresses, ports, direction), options as ``keyword[:value];`` with keywords from an
allowlist, ``msg`` and ``content`` quoted with every ``"``, ``;`` and ``\\`` escaped (and hex
runs in ``content`` well formed), unique numeric ``sid``s, and every ``dataset`` or hash list
pointing at a file written beside the rules, whose lines are base64 (string sets) or hex of the
right length (hash lists). Whatever a value holds, each rule must still parse, and its ``msg``
must unescape back to the text we meant.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Role
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.interop.exports import parse_request, prepare, write_files
from qalqan.testing import TestNode, fresh_instance, indicator

HOSTILE_ORG = 'Evil"; sid:1; msg:"pwn\\'
ANALYST = "analyst@evil.test"

ACTIONS = {"alert", "drop", "pass", "reject"}
PROTOCOLS = {"ip", "tcp", "udp", "icmp", "dns", "tls", "http", "smtp", "smb", "ftp-data"}
# keyword → does it take a value (True), never (False)
SURICATA_KEYWORDS = {
    "msg": True, "flow": True, "classtype": True, "sid": True, "rev": True, "dataset": True,
    "filemd5": True, "filesha1": True, "filesha256": True, "metadata": True,
    "dns.query": False, "tls.sni": False, "http.host": False, "http.uri.raw": False,
}  # fmt: skip
SNORT_KEYWORDS = {
    "msg": True, "flow": True, "classtype": True, "sid": True, "rev": True, "content": True,
    "nocase": False, "fast_pattern": False, "http_raw_uri": False, "http_header": False,
}  # fmt: skip
HASH_LENGTHS = {"filemd5": 32, "filesha1": 40, "filesha256": 64}
_HEADER_RE = re.compile(
    r"(?P<action>\S+) (?P<proto>\S+) (?P<src>\S+) (?P<sport>\S+) (?P<dir>->|<>) "
    r"(?P<dst>\S+) (?P<dport>\S+) \((?P<options>.*)\)"
)
_KEYWORD_RE = re.compile(r"[a-z][a-z0-9_.-]*")
_VARIABLE_RE = re.compile(r"\$[A-Z_]+")


@dataclass
class Rule:
    header: dict[str, str]
    options: list[tuple[str, str | None]] = field(default_factory=list)

    def values(self, keyword: str) -> list[str]:
        return [v for k, v in self.options if k == keyword and v is not None]


def _address(text: str) -> None:
    if text in ("any",) or _VARIABLE_RE.fullmatch(text):
        return
    assert text.startswith("["), text
    assert text.endswith("]"), text
    for part in text[1:-1].split(","):
        ipaddress.ip_network(part, strict=True)


def _port(text: str) -> None:
    assert text == "any" or _VARIABLE_RE.fullmatch(text) or text.isdigit(), text


def _quoted(value: str) -> str:
    """The text of a quoted option value; fails on an unescaped quote inside."""
    assert len(value) >= 2, value
    assert value.startswith('"'), value
    assert value.endswith('"'), value
    body = value[1:-1]
    out = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            assert i + 1 < len(body), f"dangling escape in {value!r}"
            assert body[i + 1] in '\\";', f"bad escape in {value!r}"
            out.append(body[i + 1])
            i += 2
            continue
        assert char not in '";', f"unescaped {char!r} in {value!r}"
        out.append(char)
        i += 1
    return "".join(out)


def _content(value: str) -> bytes:
    """The bytes a content value matches; hex runs must be pairs of hex digits."""
    text = _quoted(value)
    out = bytearray()
    for i, part in enumerate(text.split("|")):
        if i % 2:
            out += bytes.fromhex(part)
        else:
            assert ":" not in part, value
            out += part.encode()
    assert text.count("|") % 2 == 0, f"unclosed hex run in {value!r}"
    return bytes(out)


def _options(text: str, keywords: dict[str, bool]) -> Iterator[tuple[str, str | None]]:
    """Split ``keyword[:value];`` options, honouring quotes and escapes."""
    i = 0
    while i < len(text):
        while i < len(text) and text[i] == " ":
            i += 1
        if i >= len(text):
            return
        match = _KEYWORD_RE.match(text, i)
        assert match, f"no keyword at {text[i:]!r}"
        keyword = match.group()
        assert keyword in keywords, f"unknown keyword {keyword!r}"
        i = match.end()
        if text[i] == ";":
            assert not keywords[keyword], f"{keyword} needs a value"
            yield keyword, None
            i += 1
            continue
        assert text[i] == ":", f"after {keyword}: {text[i:]!r}"
        assert keywords[keyword], f"{keyword} takes no value"
        i += 1
        start = i
        quoted = False
        while True:
            assert i < len(text), f"option {keyword} does not end"
            char = text[i]
            if char == "\\":
                i += 2
                continue
            if char == '"':
                quoted = not quoted
            elif char == ";" and not quoted:
                break
            i += 1
        yield keyword, text[start:i]
        i += 1


def parse_rules(text: str, keywords: dict[str, bool]) -> list[Rule]:
    rules = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        assert len(line) < 8192, "Suricata refuses rules of 8 KB or more"
        header = _HEADER_RE.fullmatch(line)
        assert header, f"not a rule: {line[:200]!r}"
        assert header["action"] in ACTIONS
        assert header["proto"] in PROTOCOLS
        for part in ("src", "dst"):
            _address(header[part])
        for part in ("sport", "dport"):
            _port(header[part])
        rule = Rule(header.groupdict(), list(_options(header["options"], keywords)))
        assert len(rule.values("msg")) == 1, line
        assert len(rule.values("sid")) == 1, line
        assert rule.values("sid")[0].isdigit()
        assert rule.values("rev")[0].isdigit()
        _quoted(rule.values("msg")[0])
        for content in rule.values("content"):
            _content(content)
        rules.append(rule)
    sids = [rule.values("sid")[0] for rule in rules]
    assert len(sids) == len(set(sids)), "sids repeat"
    return rules


def check_datasets(rules: list[Rule], directory: Path) -> dict[str, list[bytes]]:
    """Every dataset and hash list a rule loads exists beside the rules and is well formed;
    returns the decoded entries of each file."""
    declared: dict[str, str] = {}
    entries: dict[str, list[bytes]] = {}
    for rule in rules:
        for value in rule.values("dataset"):
            parts = value.split(",")
            assert parts[0] == "isset", value
            settings = dict(p.split(" ", 1) for p in parts[2:])
            assert settings["type"] == "string"
            assert set(settings) == {"type", "load", "memcap", "hashsize"}
            assert re.fullmatch(r"[a-z0-9_-]+", parts[1]), parts[1]
            # One set, one definition: every rule naming it says the same.
            assert declared.setdefault(parts[1], value) == value
            path = directory / settings["load"]
            assert path.parent == directory, settings["load"]
            assert path.is_file(), settings["load"]
            lines = path.read_text("ascii").splitlines()
            assert lines
            decoded = []
            for line in lines:
                raw = base64.b64decode(line, validate=True)
                raw.decode()
                decoded.append(raw)
            entries[settings["load"]] = decoded
        for keyword, length in HASH_LENGTHS.items():
            for name in rule.values(keyword):
                path = directory / name
                assert path.parent == directory, name
                assert path.is_file(), name
                lines = path.read_text("ascii").splitlines()
                assert lines
                assert all(re.fullmatch(f"[0-9a-f]{{{length}}}", x) for x in lines)
                entries[name] = [x.encode() for x in lines]
    return entries


HOSTILE_NAMES = [
    '"; alert ip any any -> any any (msg:"owned"; sid:1;)',
    "line\nbreak\r\nand\ttab",
    "<script>alert(1)</script>",
    "back\\slash\\",
    "=cmd|' /C calc'!A0",
    "\u202eevil\u2028next",
]
HOSTILE_URLS = [
    'http://evil.example/a";b;c\\d|e:f?x=<script>',
    "http://evil.example:8080/path%0d%0aHeader:%20x",
    "https://xn--80ak6aa92e.example/клик?q=1",
    "ftp://files.example/pub/x.exe",
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNode]:
    with fresh_instance(tmp_path_factory.mktemp("rules")) as inst:
        node = TestNode.create(inst, "CERT-A", "KZ")
        node.add_org(HOSTILE_ORG, "UZ")
        node.add_user(ANALYST, HOSTILE_ORG, Role.ANALYST)
        objects: list[dict[str, Any]] = []
        for i, name in enumerate(HOSTILE_NAMES):
            objects.append(indicator(f"203.0.113.{i + 1}", name=name))
            objects.append(indicator(f"d{i}.evil.example", kind="domain-name", name=name))
        for url in HOSTILE_URLS:
            literal = url.replace("\\", "\\\\").replace("'", "\\'")
            objects.append({**indicator(url), "pattern": f"[url:value = '{literal}']"})
        objects += [
            indicator("198.51.100.0/24"),
            indicator("2001:db8::/32", kind="ipv6-addr"),
            indicator("2001:db8::7", kind="ipv6-addr"),
            indicator("44d88612fea8a8f36de82e1278abb02f", kind="MD5"),
            indicator("3395856ce81f2b7382dee72602f798b642f14140", kind="SHA-1"),
            indicator(
                "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f", kind="SHA-256"
            ),
        ]
        objects += [indicator(f"198.18.{i // 256}.{i % 256}") for i in range(600)]
        with inst.begin() as conn:
            report = import_objects(
                conn,
                node.principals[ANALYST],
                objects,
                HandlingRequest(TLP.GREEN, Distribution.NODE),
            )
        assert not report.rejected, report.rejected
        yield node


def _write(node: TestNode, fmt: str, out: Path) -> dict[str, Any]:
    with node.instance.begin() as conn:
        export = prepare(conn, node.principals[ANALYST], parse_request(fmt), output_name=out.name)
        write_files(export, conn, out)
    return export.summary()


def test_suricata_rules_pass_the_grammar(hostile: TestNode, tmp_path: Path) -> None:
    out = tmp_path / "sensor one.rules"
    summary = _write(hostile, "suricata", out)
    rules = parse_rules(out.read_text(), SURICATA_KEYWORDS)
    entries = check_datasets(rules, tmp_path)
    # The org name went into every msg and came back out intact.
    for rule in rules:
        assert _quoted(rule.values("msg")[0]).startswith(f"QALQAN {HOSTILE_ORG} ")
    domains = entries["sensor-one-domains.lst"]
    assert {f"d{i}.evil.example".encode() for i in range(len(HOSTILE_NAMES))} <= set(domains)
    assert 'a";b;c\\d|e:f?x=<script>' in "".join(
        b.decode() for b in entries["sensor-one-url-paths.lst"]
    )
    assert b"xn--80ak6aa92e.example" in entries["sensor-one-url-hosts.lst"]
    addresses = {
        address
        for rule in rules
        if rule.header["proto"] == "ip"
        for side in (rule.header["src"], rule.header["dst"])
        if side.startswith("[")
        for address in side[1:-1].split(",")
    }
    assert {"198.51.100.0/24", "2001:db8::/32", "2001:db8::7", "198.18.2.87"} <= addresses
    assert sum(r.header["proto"] == "ip" for r in rules) >= 4  # 600+ addresses: several lists
    hash_rules = [r for r in rules if set(HASH_LENGTHS) & {k for k, _ in r.options}]
    assert len(hash_rules) == 12
    assert summary["skipped"] == {"URL scheme not seen by HTTP rules": 1}


def test_snort_rules_pass_the_grammar(hostile: TestNode, tmp_path: Path) -> None:
    out = tmp_path / "snort.rules"
    _write(hostile, "snort", out)
    rules = parse_rules(out.read_text(), SNORT_KEYWORDS)
    matched = {_content(c) for rule in rules for c in rule.values("content")}
    assert b"\x02d0\x04evil\x07example\x00" in matched
    assert b'a";b;c\\d|e:f?x=<script>' in b"".join(matched)
    messages = [_quoted(rule.values("msg")[0]) for rule in rules]
    assert any('a";b;c\\d|e:f?x=<script>' in m for m in messages)
    assert not any("\n" in m or "\t" in m for m in messages)


def test_the_grammar_check_catches_an_injection() -> None:
    injected = 'alert ip any any -> any any (msg:"x"; sid:1; rev:1; msg:"a"b"; sid:2; rev:1;)'
    with pytest.raises(AssertionError):
        parse_rules(injected, SURICATA_KEYWORDS)
    with pytest.raises(AssertionError):
        parse_rules('alert ip any any -> any any (msg:"a;b"; sid:1; rev:1;)', SURICATA_KEYWORDS)
    with pytest.raises((AssertionError, binascii.Error, ValueError)):
        parse_rules(
            'alert tcp any any -> any any (msg:"x"; content:"|4G|"; sid:1; rev:1;)',
            SNORT_KEYWORDS,
        )
