"""The IOC matcher on hand-written cases: each field kind, the edges people get wrong, bad
input."""

from __future__ import annotations

import polars as pl
import pytest

from qalqan.detect.matcher import match_iocs, parse_field_map
from qalqan.detect.plan import IndicatorValue, build_plan, like_to_regex, search_patterns
from qalqan.domain.observables import normalize
from qalqan.errors import InvalidInput


def _values(*specs: tuple[str, str]) -> list[IndicatorValue]:
    out = []
    for n, (kind, raw) in enumerate(specs):
        o = normalize(kind, raw)
        out.append(
            IndicatorValue(
                o.kind, o.value, f"indicator--{n}", None, 80, 1, "org-a", o.ip_start, o.ip_end
            )
        )
    return out


def _hits(
    values: list[IndicatorValue], column: list[str | None], kind: str
) -> list[tuple[int, str]]:
    plan = build_plan(values)
    frame = pl.DataFrame({"f": pl.Series(column, dtype=pl.String)})
    hits = match_iocs(plan, frame, {"f": kind}).join(plan.refs, on="ref")
    return sorted((int(r), v) for r, v in hits.select("row", "value").iter_rows())


def test_a_domain_hits_itself_and_its_subdomains_but_not_lookalikes() -> None:
    values = _values(("domain", "evil.example"))
    column = ["evil.example", "a.b.EVIL.example.", "notevil.example", "evil.example.org", None]
    assert _hits(values, column, "domain") == [(0, "evil.example"), (1, "evil.example")]


def test_an_internationalized_domain_meets_its_unicode_spelling() -> None:
    values = _values(("domain", "пример.рф"))
    assert _hits(values, ["www.ПРИМЕР.рф", "xn--e1afmkfd.xn--p1ai", "пример.com"], "domain") == [
        (0, "xn--e1afmkfd.xn--p1ai"),
        (1, "xn--e1afmkfd.xn--p1ai"),
    ]


def test_cidr_edges_and_exact_addresses() -> None:
    values = _values(("cidr", "45.144.30.0/24"), ("ip", "91.215.85.17"))
    column = [
        "45.144.29.255",
        "45.144.30.0",
        "45.144.30.255",
        "45.144.31.0",
        "91.215.85.17",
        "091.215.85.17",
    ]
    assert _hits(values, column, "ip") == [
        (1, "45.144.30.0/24"),
        (2, "45.144.30.0/24"),
        (4, "91.215.85.17"),
    ]


def test_ipv6_in_any_spelling_and_v4_mapped_addresses() -> None:
    values = _values(("cidr", "2001:db8::/32"), ("ip", "198.51.100.7"))
    column = ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db9::1", "::ffff:198.51.100.7"]
    assert _hits(values, column, "ip") == [(0, "2001:db8::/32"), (2, "198.51.100.7")]


def test_urls_are_normalized_and_their_hosts_checked() -> None:
    values = _values(("url", "http://bad.example/x?y=1"), ("domain", "c2.example"))
    column = [
        "HTTP://BAD.example:80/x?y=1#frag",
        "http://bad.example/x?y=2",
        "https://a.c2.example/anything",
        "not a url",
    ]
    assert _hits(values, column, "url") == [
        (0, "http://bad.example/x?y=1"),
        (2, "c2.example"),
    ]


def test_hashes_lists_and_emails() -> None:
    md5 = "0123456789abcdef0123456789abcdef"
    values = _values(("md5", md5), ("email", "Boss@Corp.example"))
    assert _hits(values, [f"SHA1={'0' * 40},MD5={md5.upper()}"], "hashes") == [(0, md5)]
    assert _hits(values, ["boss@corp.EXAMPLE", "other@corp.example"], "email") == [
        (0, "Boss@corp.example")
    ]


def test_like_and_matches_patterns() -> None:
    indicator = IndicatorValue("pattern", "", "indicator--p", None, None, 1, "org-a")
    pattern = "[domain-name:value LIKE '%.dyn-dns.%' OR url:value MATCHES '/gate\\\\.php$']"
    found, skipped = search_patterns(pattern, indicator)
    assert [p.kind for p in found] == ["domain", "url"]
    assert skipped == []
    plan = build_plan([], found)
    frame = pl.DataFrame(
        {"d": ["a.dyn-dns.org", "dyn-dns.org"], "u": ["http://x/gate.php", "http://x/gate.phps"]}
    )
    hits = match_iocs(plan, frame, {"d": "domain", "u": "url"})
    assert sorted(hits.select("row", "field").iter_rows()) == [(0, "d"), (0, "u")]
    assert like_to_regex("a_b%") == "(?is)^a.b.*$"


def test_negated_and_unusable_patterns_are_reported_not_dropped() -> None:
    indicator = IndicatorValue("pattern", "", "indicator--q", None, None, 1, "org-a")
    found, skipped = search_patterns(
        "[domain-name:value NOT LIKE 'a%'] OR [file:name MATCHES 'x']", indicator
    )
    assert found == []
    assert len(skipped) == 2


def test_missing_fields_and_non_text_columns() -> None:
    plan = build_plan(_values(("ip", "10.0.0.1")))
    frame = pl.DataFrame({"n": [1, 2], "other": ["10.0.0.1", None]})
    assert match_iocs(plan, frame, {"absent": "ip", "n": "ip"}).height == 0
    assert match_iocs(plan, frame, {"other": "ip"})["row"].to_list() == [0]


def test_field_maps_name_the_bad_entry() -> None:
    assert parse_field_map(["query=domain-name", "answer=ipv4-addr"]) == {
        "query": "domain",
        "answer": "ip",
    }
    assert parse_field_map([]) is None
    with pytest.raises(InvalidInput, match=r"'query'.*FIELD=KIND"):
        parse_field_map(["query"])
    with pytest.raises(InvalidInput, match=r"unknown field kind 'dns'.*known kinds"):
        parse_field_map(["query=dns"])


def test_an_empty_plan_matches_nothing() -> None:
    frame = pl.DataFrame({"q": ["<script>alert(1)</script>"]})
    assert match_iocs(build_plan([]), frame, {"q": "domain"}).height == 0


def test_list_fields_are_matched_item_by_item_but_urls_keep_their_commas() -> None:
    values = _values(("ip", "10.9.8.7"), ("domain", "evil.example"), ("url", "http://x.example/a"))
    assert _hits(values, ["1.1.1.1,10.9.8.7", '["a.evil.example", "ok.example"]'], "host") == [
        (0, "10.9.8.7"),
        (1, "evil.example"),
    ]
    assert _hits(values, ["http://x.example/a,b"], "url") == []
