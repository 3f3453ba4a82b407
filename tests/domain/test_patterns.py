"""STIX pattern validation and analysis, fast road and reference parser alike."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stix2patterns.validator import run_validator

from qalqan.domain.observables import Observable, normalize
from qalqan.domain.patterns import PatternInfo, analyze, validate

SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def ip(value: str) -> Observable:
    return normalize("ip", value)


SIMPLE = [
    ("[ipv4-addr:value = '198.51.100.7']", [ip("198.51.100.7")]),
    (
        "[domain-name:value = 'evil.example' OR domain-name:value = 'bad.example']",
        [Observable("domain", "evil.example"), Observable("domain", "bad.example")],
    ),
    (f"[file:hashes.'SHA-256' = '{SHA256}']", [Observable("sha256", SHA256)]),
    (f"[file:hashes.MD5 = '{MD5.upper()}']", [Observable("md5", MD5)]),
    (f"[file:hashes.'SHA256' = '{SHA256}']", [Observable("sha256", SHA256)]),
    ("[url:value = 'http://x/y']", [Observable("url", "http://x/y")]),
    ("[email-addr:value = 'a@b.c']", [Observable("email", "a@b.c")]),
    (
        "[ipv4-addr:value = '1.2.3.4'] OR [ipv4-addr:value = '5.6.7.8']",
        [ip("1.2.3.4"), ip("5.6.7.8")],
    ),
    ("[ipv4-addr:value = '10.1.2.3/8']", [normalize("cidr", "10.0.0.0/8")]),
    ("[ipv6-addr:value = '2001:DB8::1']", [ip("2001:db8::1")]),
    ("[ipv6-addr:value = '2001:db8::/32']", [normalize("cidr", "2001:db8::/32")]),
    ("[domain-name:value = 'bücher.de']", [Observable("domain", "xn--bcher-kva.de")]),
    ("[ipv4-addr:value == '1.2.3.4']", [ip("1.2.3.4")]),
    (
        "[ipv4-addr:value = '1.2.3.4' AND domain-name:value = 'evil.example']",
        [ip("1.2.3.4"), Observable("domain", "evil.example")],
    ),
    (
        "  [ipv4-addr:value='1.2.3.4'OR ipv4-addr:value='1.2.3.4']OR[url:value='http://a/']\n",
        [ip("1.2.3.4"), Observable("url", "http://a/")],
    ),
    ("[url:value = 'http://x/it\\'s']", [Observable("url", "http://x/it's")]),
    ("[url:value = 'http://x/a\\\\b']", [Observable("url", "http://x/a\\b")]),
]


@pytest.mark.parametrize(("pattern", "observables"), SIMPLE)
def test_simple_patterns(pattern: str, observables: list[Observable]) -> None:
    assert validate(pattern) is None
    assert analyze(pattern) == PatternInfo(tuple(observables), simple=True)


def test_value_with_space_makes_the_pattern_invalid() -> None:
    pattern = "[url:value = 'http://x/?q=domain-name:value = \\'y.example\\'']"
    reason = validate(pattern)
    assert reason is not None
    assert reason.startswith("url:value \"http://x/?q=domain-name:value = 'y.example'\" ")
    assert reason.endswith("is not a URL: it contains whitespace or control characters")
    assert analyze(pattern) == PatternInfo((), simple=False)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (
            "[ipv4-addr:value = '999.1.1.1']",
            "ipv4-addr:value '999.1.1.1' is not an IP address",
        ),
        (
            "[ipv4-addr:value = '2001:db8::1']",
            "ipv4-addr:value '2001:db8::1' is not an IPv4 address",
        ),
        (
            "[ipv6-addr:value = '198.51.100.7']",
            "ipv6-addr:value '198.51.100.7' is not an IPv6 address",
        ),
        (
            "[file:hashes.'SHA-1' = 'abc']",
            "file:hashes.'SHA-1' 'abc' is not a SHA-1 hash (40 hex digits)",
        ),
        (
            "[file:hashes.sha_256 = 'abc']",
            "file:hashes.sha_256 'abc' is not a SHA-256 hash (64 hex digits)",
        ),
        (
            "[domain-name:value = 'a..example']",
            "domain-name:value 'a..example' is not a domain name: empty label",
        ),
        (
            "[email-addr:value = 'nobody']",
            "email-addr:value 'nobody' is not an email address: it needs exactly one '@'",
        ),
    ],
)
def test_bad_values_in_simple_patterns(pattern: str, reason: str) -> None:
    assert validate(pattern) == reason
    assert analyze(pattern) == PatternInfo((), simple=False)


def test_a_bad_value_leaves_the_good_ones() -> None:
    pattern = "[ipv4-addr:value = '999.1.1.1' OR ipv4-addr:value = '1.2.3.4']"
    assert validate(pattern) == "ipv4-addr:value '999.1.1.1' is not an IP address"
    assert analyze(pattern) == PatternInfo((ip("1.2.3.4"),), simple=False)


def test_patterns_are_not_refanged() -> None:
    assert validate("[domain-name:value = 'evil[.]example']") is not None


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ipv4-addr:value = '1.2.3.4'", "missing square brackets"),
        ("[ipv4-addr:value = '1.2.3.4'", "missing ']'"),
        ("[ipv4-addr:value ~ '1.2.3.4']", "no viable alternative"),
        ("[ipv4-addr:value = '1.2.3.4]", "extraneous input"),
        ("[ipv4-addr:value = '1.2.3.4'] $", "extraneous input '$'"),
        ("[]", "mismatched input"),
        ("[ipv4-addr:value = 'a\\q']", "mismatched input"),
        ("[file:hashes.SHA-256 = 'ab']", "no viable alternative"),
        (f"[file:hashes.'SHA3-256' = '{MD5}']", "is not a valid SHA3-256 hash"),
        ("[ipv4-addr:value = '1.2.3.4'] WITHIN 5 SECONDS WITHIN 6 SECONDS", "Duplicate"),
        ("[ipv4-addr:value = '1.2.3.4']\n OR\n", "mismatched input"),
    ],
)
def test_malformed_patterns(pattern: str, fragment: str) -> None:
    reason = validate(pattern)
    assert reason is not None
    assert fragment in reason
    assert "\n" not in reason
    assert not reason.startswith("FAIL")
    info = analyze(pattern)
    assert not info.simple
    if "Duplicate" not in reason:
        assert info.observables == ()


@pytest.mark.parametrize(
    "pattern",
    [
        "(" * 2000 + "[ipv4-addr:value = '1.2.3.4']" + ")" * 2000,
        "[" + " OR ".join(["process:name = 'x'"] * 3000) + "]",
    ],
)
def test_patterns_too_deep_for_the_reference_parser(pattern: str) -> None:
    assert validate(pattern) == "pattern is nested or chained too deeply to check"
    assert analyze(pattern) == PatternInfo((), simple=False)


def test_long_simple_patterns_stay_on_the_fast_road() -> None:
    pattern = "[" + " OR ".join(
        f"ipv4-addr:value = '10.0.{i // 256}.{i % 256}'" for i in range(3000)
    )
    info = analyze(pattern + "]")
    assert info.simple
    assert len(info.observables) == 3000


@pytest.mark.parametrize(
    ("pattern", "observables"),
    [
        ("[process:name = 'x']", []),
        ("[ipv4-addr:value != '1.2.3.4']", []),
        ("[ipv4-addr:value NOT = '1.2.3.4']", []),
        ("[domain-name:value LIKE 'evil%']", []),
        ("[url:value MATCHES '^http']", []),
        ("[ipv4-addr:value ISSUBSET '10.0.0.0/8']", []),
        ("[ipv4-addr:value IN ('1.2.3.4', '5.6.7.8')]", []),
        ("[ipv4-addr:value = '1.2.3.4'] WITHIN 300 SECONDS", [ip("1.2.3.4")]),
        ("[ipv4-addr:value = '1.2.3.4'] REPEATS 5 TIMES", [ip("1.2.3.4")]),
        (
            "[ipv4-addr:value = '1.2.3.4'] START t'2024-01-01T00:00:00Z' "
            "STOP t'2024-02-01T00:00:00Z'",
            [ip("1.2.3.4")],
        ),
        (
            "[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [domain-name:value = 'Evil.Example']",
            [ip("1.2.3.4"), Observable("domain", "evil.example")],
        ),
        (
            "[ipv4-addr:value = '1.2.3.4'] AND [url:value = 'http://a']",
            [ip("1.2.3.4"), Observable("url", "http://a/")],
        ),
        (
            "([ipv4-addr:value = '1.2.3.4'] OR [ipv4-addr:value = '5.6.7.8'])",
            [ip("1.2.3.4"), ip("5.6.7.8")],
        ),
        ("[(ipv4-addr:value = '1.2.3.4')]", [ip("1.2.3.4")]),
        ("[ ipv4-addr : value = '1.2.3.4' ]", [ip("1.2.3.4")]),
        ("[ipv4-addr:value = '1.2.3.4' /* seen in a phish */]", [ip("1.2.3.4")]),
        ("[ipv4-addr:value\u00a0= '1.2.3.4']", [ip("1.2.3.4")]),
        (
            f"[file:hashes.'SHA-256' = '{SHA256}' AND file:name = 'a.exe']",
            [Observable("sha256", SHA256)],
        ),
        (f"[file:hashes.'SHA3-256' = '{SHA256}']", []),
        ("[network-traffic:dst_ref.value = '1.2.3.4']", []),
        ("[IPV4-ADDR:value = '1.2.3.4']", []),
        (
            "[domain-name:value = 'evil.example' AND EXISTS domain-name:resolves_to_refs]",
            [Observable("domain", "evil.example")],
        ),
        ("[x-custom:value = 'anything']", []),
    ],
)
def test_complex_patterns(pattern: str, observables: list[Observable]) -> None:
    assert validate(pattern) is None
    info = analyze(pattern)
    assert not info.simple
    assert sorted(info.observables, key=str) == sorted(observables, key=str)


def test_complex_patterns_check_values_too() -> None:
    pattern = "[ipv4-addr:value = '999.1.1.1'] FOLLOWEDBY [ipv4-addr:value = '1.2.3.4']"
    assert validate(pattern) == "ipv4-addr:value '999.1.1.1' is not an IP address"
    assert analyze(pattern) == PatternInfo((ip("1.2.3.4"),), simple=False)
    pattern = "[file:hashes.'SHA-256' = 'abc' AND file:name = 'x' AND file:hashes.MD5 = '{0}']"
    assert validate(pattern.format(MD5)) == "'abc' is not a valid SHA-256 hash"
    assert analyze(pattern.format(MD5)) == PatternInfo((Observable("md5", MD5),), simple=False)


# --- the fast road agrees with the reference parser ---------------------------------------

VALUES = {
    "ipv4-addr:value": ["1.2.3.4", "10.0.0.0/8", "999.1.1.1", "2001:db8::1"],
    "ipv6-addr:value": ["2001:db8::1", "::ffff:1.2.3.4", "1.2.3.4"],
    "domain-name:value": ["evil.example", "Bücher.DE", "bad..example", "it's.example"],
    "url:value": ["http://x/y", "HTTP://X:80", "no scheme", "http://x/a\\b"],
    "email-addr:value": ["a@b.example", "a@@b"],
    "file:hashes.MD5": [MD5, "xyz"],
    "file:hashes.'SHA-256'": [SHA256],
    "file:hashes.'SHA3-256'": [SHA256],
    "process:name": ["cmd.exe"],
}


def literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


comparisons = st.sampled_from(sorted(VALUES)).flatmap(
    lambda path: st.tuples(
        st.just(path), st.sampled_from(["=", "==", " = ", "!="]), st.sampled_from(VALUES[path])
    )
)
observations = st.lists(
    st.tuples(comparisons, st.sampled_from([" OR ", " AND ", "OR ", " OR\n"])),
    min_size=1,
    max_size=3,
)
spaced = st.booleans()


def render(observation: list[tuple[tuple[str, str, str], str]], spaced_path: bool) -> str:
    parts = []
    for index, ((path, operator, value), joiner) in enumerate(observation):
        shown = path.replace(":", " : ") if spaced_path else path
        parts.append(("" if index == 0 else joiner) + f"{shown}{operator}{literal(value)}")
    return "[" + "".join(parts) + "]"


@given(
    st.lists(observations, min_size=1, max_size=3),
    st.sampled_from([" OR ", "OR", " AND ", " FOLLOWEDBY "]),
    spaced,
)
def test_fast_road_agrees_with_reference_parser(
    groups: list[list[tuple[tuple[str, str, str], str]]], joiner: str, spaced_path: bool
) -> None:
    fast = joiner.join(render(group, False) for group in groups)
    slow = joiner.join(render(group, spaced_path) for group in groups)
    fast_info, slow_info = analyze(fast), analyze(slow)
    assert set(fast_info.observables) == set(slow_info.observables)
    assert (validate(fast) is None) == (validate(slow) is None)
    if fast_info.simple:
        assert run_validator(fast, stix_version="2.1") == []
        assert validate(fast) is None
        assert "!=" not in fast
        assert "FOLLOWEDBY" not in fast
    if spaced_path:
        assert not slow_info.simple


@given(st.text(alphabet="[]()'\\:=. \nORANDipv4-addr:value1.2.3.4", max_size=60))
def test_any_text_gets_an_answer(pattern: str) -> None:
    reason = validate(pattern)
    info = analyze(pattern)
    assert reason is None or "\n" not in reason
    if info.simple:
        assert reason is None
        assert run_validator(pattern, stix_version="2.1") == []
