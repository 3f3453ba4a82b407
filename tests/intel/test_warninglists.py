"""Warninglists: parsing MISP list documents, matching semantics, the MISP data, the cache."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import random
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qalqan.domain.observables import InvalidObservable, normalize
from qalqan.errors import InvalidInput
from qalqan.intel import warninglists
from qalqan.intel.warninglists import (
    Warninglist,
    WarninglistHit,
    WarninglistIndex,
    load_index,
    misp_lists,
    parse_list,
)

DATA = Path(__file__).parent / "data"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def custom_documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = orjson.loads((DATA / "warninglist_custom.json").read_bytes())
    return documents


CUSTOM = [parse_list(document) for document in custom_documents()]
INDEX = WarninglistIndex.compile(CUSTOM)


def listed(kind: str, value: str, index: WarninglistIndex = INDEX) -> str | None:
    hit = index.check(kind, value)
    return None if hit is None else hit.list_name


# --- parsing -------------------------------------------------------------------------------


def test_parse_list_reads_a_misp_document() -> None:
    corporate = CUSTOM[0]
    assert corporate == Warninglist(
        name="Corporate hosts",
        description="Hosts of the node's own organisation",
        type="hostname",
        kinds=frozenset({"domain", "url", "email"}),
        entries=(".Corp.Example.", "*.intra.example.net", "google.com", "bücher.de"),
        origin="custom",
    )
    assert CUSTOM[1].kinds == {"md5", "sha256"}
    assert CUSTOM[3].kinds == {"ip", "cidr"}  # domain|ip cannot flag a domain on a network list
    assert parse_list({"name": "n", "list": []}, origin="misp").origin == "misp"


def test_parse_list_defaults_follow_misp() -> None:
    wl = parse_list({"name": "Everything", "list": ["x"]})
    assert wl.type == "string"
    assert wl.kinds == {"ip", "cidr", "domain", "url", "email", "md5", "sha1", "sha256", "sha512"}
    assert wl.description == ""
    assert parse_list({"name": "n", "type": "cidr", "list": []}).kinds == {"ip", "cidr"}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (["not", "an", "object"], "document"),
        ({"list": []}, "name"),
        ({"name": "  ", "list": []}, "name"),
        ({"name": 7, "list": []}, "name"),
        ({"name": "n", "description": ["x"], "list": []}, "description"),
        ({"name": "n", "type": "glob", "list": []}, "type"),
        ({"name": "n", "type": ["string"], "list": []}, "type"),
        ({"name": "n"}, "list"),
        ({"name": "n", "list": "8.8.8.8"}, "list"),
        ({"name": "n", "list": ["8.8.8.8", 8]}, "list"),
        ({"name": "n", "list": {"8.8.8.8": "comment"}}, "list"),
        ({"name": "n", "list": [], "matching_attributes": "ip-src"}, "matching_attributes"),
        ({"name": "n", "list": [], "matching_attributes": [None]}, "matching_attributes"),
        ({"name": "n", "list": [], "matching_attributes": ["phone-number"]}, "matching_attributes"),
        (
            {"name": "n", "type": "cidr", "list": [], "matching_attributes": ["domain", "url"]},
            "matching_attributes",
        ),
    ],
)
def test_parse_list_refuses_bad_documents_naming_the_field(document: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_list(document)
    assert caught.value.field == field
    assert field in str(caught.value) or field == "document"


# --- semantics, on small custom lists ------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "name", "reason"),
    [
        ("domain", "google.com", "Corporate hosts", "equals a listed value"),
        ("domain", "mail.google.com", "Corporate hosts", "a subdomain of google.com"),
        ("domain", "a.b.corp.example", "Corporate hosts", "a subdomain of corp.example"),
        ("domain", "corp.example", "Corporate hosts", "equals a listed value"),
        ("domain", "intra.example.net", "Corporate hosts", "equals a listed value"),
        ("domain", "xn--bcher-kva.de", "Corporate hosts", "equals a listed value"),
        (
            "url",
            "https://user@www.google.com:8443/search?q=1",
            "Corporate hosts",
            "host www.google.com is a subdomain of google.com",
        ),
        ("url", "http://google.com/", "Corporate hosts", "host google.com is listed"),
        ("email", "it@corp.example", "Corporate hosts", "domain corp.example is listed"),
        ("md5", EMPTY_MD5, "Known hashes", "equals a listed value"),
        ("sha256", EMPTY_SHA256, "Known hashes", "equals a listed value"),
        ("domain", "exact.example.org", "Exact domains", "equals a listed value"),
        ("ip", "192.0.2.77", "Lab networks", "192.0.2.77 is in 192.0.2.0/24"),
        ("ip", "198.51.100.7", "Lab networks", "198.51.100.7 is in 198.51.100.7/32"),
        ("ip", "2001:db8:1::5", "Lab networks", "2001:db8:1::5 is in 2001:db8:1::/48"),
        ("cidr", "192.0.2.128/25", "Lab networks", "192.0.2.128/25 is inside 192.0.2.0/24"),
        ("cidr", "10.1.2.0/24", "Lab networks", "10.1.2.0/24 is inside 10.1.0.0/16"),
        ("cidr", "10.1.2.0/28", "Lab networks", "10.1.2.0/28 is inside 10.1.0.0/16"),
        ("cidr", "10.2.0.0/15", "Lab networks", "10.2.0.0/15 is inside 10.0.0.0/8"),
        (
            "cidr",
            "2001:db8:1:2::/64",
            "Lab networks",
            "2001:db8:1:2::/64 is inside 2001:db8:1::/48",
        ),
        ("ip", "2001:db8:2::1", "Core networks", "2001:db8:2::1 is in 2001:db8::/32"),
        ("url", "https://cdn.example.com/img/Beacon.gif", "Trackers", "contains '/beacon.gif'"),
        ("domain", "mytracker.example.com", "Trackers", "contains 'tracker'"),
        ("email", "Abuse@example.org", "Contacts", "matches /^(abuse|noc)@/i"),
        ("email", "postmaster@example.org", "Contacts", "matches #^postmaster@#"),
        ("url", "http://example.com/Path?q=1", "Landing pages", "equals a listed value"),
        ("domain", "maps.google.com", "Corporate hosts", "a subdomain of google.com"),
    ],
)
def test_listed_values_are_found_with_a_reason(
    kind: str, value: str, name: str, reason: str
) -> None:
    assert normalize(kind, value).value == value  # the index takes canonical values
    assert INDEX.check(kind, value) == WarninglistHit(name, reason)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("domain", "notgoogle.com"),
        ("domain", "google.com.evil.example"),
        ("domain", "com"),
        ("domain", "sub.exact.example.org"),  # a string list only matches itself
        ("domain", "leading.example"),  # ".leading.example" is no canonical domain
        ("url", "http://exact.example.org/"),  # that list applies to domains only
        ("url", "http://example.com/path?q=1"),  # URL paths keep their case
        ("url", "http://notgoogle.com/google.com"),
        ("email", "it@notcorp.example"),
        ("email", "Postmaster@example.org"),  # that pattern has no i flag
        ("md5", "0" * 32),
        ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),  # the list has no SHA-1 entries
        ("ip", "192.0.3.1"),
        ("ip", "11.0.0.1"),
        ("ip", "::ffff:192.0.2.1"),  # a mapped address is IPv6, as in MISP
        ("ip", "2001:db9::1"),
        ("cidr", "192.0.2.0/23"),  # only part of it is listed
        ("cidr", "0.0.0.0/0"),
        ("cidr", "2001:db8::/31"),
    ],
)
def test_unlisted_values_are_not_found(kind: str, value: str) -> None:
    assert INDEX.check(kind, value) is None


def test_the_first_list_holding_a_value_is_reported() -> None:
    assert listed("domain", "google.com") == "Corporate hosts"
    reordered = WarninglistIndex.compile([CUSTOM[6], *CUSTOM[:6]])
    assert listed("domain", "google.com", reordered) == "Google again"
    # an address in networks of two lists: the earlier list, even for the inner network
    assert listed("ip", "10.1.2.3") == "Lab networks"
    core_first = WarninglistIndex.compile([CUSTOM[8], CUSTOM[3]])
    assert core_first.check("ip", "10.1.2.3") == WarninglistHit(
        "Core networks", "10.1.2.3 is in 10.1.2.0/24"
    )
    assert core_first.check("ip", "10.1.3.3") == WarninglistHit(
        "Lab networks", "10.1.3.3 is in 10.1.0.0/16"
    )


def test_values_that_are_not_canonical_or_of_no_kind_are_not_found() -> None:
    kinds = ["ip", "ip", "cidr", "cidr", "url", "email", "bitcoin", "md5", "domain", "ip"]
    values = [
        "not an ip",
        "10.0.0.0/8",
        "10.0.0.0/99",
        "10.0.0.0/x",
        "google.com",
        "no-at-sign",
        "google.com",
        "",
        "",
        "1.2.3.4\x00",
    ]
    assert INDEX.check_many(kinds, values) == [None] * len(values)
    assert INDEX.check_many([], []) == []
    with pytest.raises(InvalidInput):
        INDEX.check_many(["ip"], [])


def test_revision_and_length_describe_the_compiled_lists() -> None:
    assert len(INDEX) == len(CUSTOM)
    again = WarninglistIndex.compile(parse_list(d) for d in custom_documents())
    assert again.revision == INDEX.revision
    documents = custom_documents()
    documents[3]["list"].append("203.0.113.0/24")
    assert WarninglistIndex.compile(map(parse_list, documents)).revision != INDEX.revision
    assert WarninglistIndex.compile(reversed(CUSTOM)).revision != INDEX.revision
    assert WarninglistIndex.compile([]).check("domain", "google.com") is None


def test_hostile_entries_are_skipped_without_harm() -> None:
    huge = "a" * 200_000
    hostile = [
        huge,
        f"{huge}.example",
        "<script>alert(1)</script>",
        "/(unclosed/",
        "/(a+)+$/q",
        "/[[nested]]/",
        "\x00",
        "\ud800.example",
        "*.",
        "10.0.0.0/",
        "/",
    ]
    lists = [
        parse_list({"name": t, "type": t, "list": [*hostile, "ok.example"]})
        for t in ("hostname", "string", "substring", "regex", "cidr")
    ]
    assert "\ud800.example" not in lists[0].entries  # not valid Unicode
    index = WarninglistIndex.compile(lists)
    assert index.check("domain", "www.ok.example") == WarninglistHit(
        "hostname", "a subdomain of ok.example"
    )
    html = index.check("url", "http://x.example/<script>alert(1)</script>")
    assert html is not None
    assert html.list_name == "substring"
    assert index.check("domain", "a" * 63 + ".example") is None
    assert index.check("ip", "10.0.0.1") is None


def test_distinct_entries_with_colliding_hashes_are_told_apart() -> None:
    # The Thue-Morse sequence and its complement have the same polynomial hash modulo 2**64
    # for any odd multiplier once they are 1,024 long.
    morse = "".join("ab"[bin(i).count("1") % 2] for i in range(1024))
    first = f"http://collide.example/{morse}"
    second = f"http://collide.example/{morse.translate(str.maketrans('ab', 'ba'))}"
    hashes = warninglists._full_hashes([first, second])
    assert first != second
    assert hashes[0] == hashes[1]
    lists = [
        parse_list({"name": "First", "list": [first], "matching_attributes": ["url"]}),
        parse_list({"name": "Second", "list": [second], "matching_attributes": ["url"]}),
    ]
    both = WarninglistIndex.compile(lists)
    assert [listed("url", v, both) for v in (first, second)] == ["First", "Second"]
    only_first = WarninglistIndex.compile(lists[:1])
    assert [listed("url", v, only_first) for v in (first, second)] == ["First", None]


# --- check_many against a naive reading of the same lists ----------------------------------


def _naive_regex(entry: str) -> re.Pattern[str] | None:
    match = re.fullmatch(r"([/#])(.*)\1([a-z]*)", entry)
    if match is None or set(match.group(3)) - {"i"}:
        return None
    try:
        return re.compile(match.group(2), re.IGNORECASE if match.group(3) else 0)
    except re.error:
        return None


def _canonical(kind: str, text: str) -> str | None:
    try:
        observable = normalize(kind, text)
    except InvalidObservable:
        return None
    return observable.value if observable.kind == kind else None


def _naive_match(wl: Warninglist, kind: str, value: str) -> bool:
    if wl.type == "cidr":
        networks = []
        for entry in wl.entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        block = ipaddress.ip_network(value)
        return any(n.version == block.version and block.subnet_of(n) for n in networks)
    if wl.type == "string":
        return value in {_canonical(kind, entry) for entry in wl.entries}
    if wl.type == "hostname":
        entries = {e.lower().removeprefix("*.").strip(".") for e in wl.entries}
        entries |= {c for e in entries if (c := _canonical("domain", e)) is not None}
        host = value
        if kind == "url":
            host = value.split("/")[2].rpartition("@")[2].split(":")[0]
        elif kind == "email":
            host = value.rpartition("@")[2]
        return any(host == e or host.endswith(f".{e}") for e in entries)
    if wl.type == "substring":
        return any(entry.lower() in value.lower() for entry in wl.entries)
    return any(r.search(value) for e in wl.entries if (r := _naive_regex(e)) is not None)


def naive(kind: str, value: str) -> str | None:
    for wl in CUSTOM:
        if kind in wl.kinds and _naive_match(wl, kind, value):
            return wl.name
    return None


POOLS = {
    "ip": [
        "192.0.2.1",
        "192.0.3.9",
        "10.1.2.3",
        "10.9.9.9",
        "198.51.100.7",
        "2001:db8:1::9",
        "2001:db8:2::1",
        "2002::1",
        "8.8.8.8",
    ],
    "cidr": [
        "192.0.2.0/24",
        "192.0.2.0/23",
        "10.1.0.0/16",
        "10.1.2.0/26",
        "11.0.0.0/8",
        "2001:db8::/48",
        "2001:db8::/31",
    ],
    "domain": [
        "google.com",
        "mail.google.com",
        "notgoogle.com",
        "corp.example",
        "x.intra.example.net",
        "exact.example.org",
        "a.exact.example.org",
        "tracker.example",
        "example.com",
        "xn--bcher-kva.de",
    ],
    "url": [
        "http://google.com/",
        "https://a.corp.example/x",
        "http://example.com/Path?q=1",
        "http://example.com/path?q=1",
        "http://e.example/beacon.gif",
        "http://e.example/x",
    ],
    "email": [
        "abuse@x.example",
        "NOC@x.example",
        "postmaster@x.example",
        "Postmaster@x.example",
        "a@corp.example",
        "a@b.example",
    ],
    "md5": [EMPTY_MD5, "f" * 32],
    "sha256": [EMPTY_SHA256, "0" * 64],
    "sha1": ["0" * 40],
    "sha512": ["0" * 128],
}
LABELS = ["google", "com", "corp", "example", "tracker", "intra", "net", "maps", "xn--bcher-kva"]
domains = st.lists(st.sampled_from(LABELS), min_size=1, max_size=4).map(".".join)
addresses = st.integers(0x0A000000 - 512, 0x0B000000).map(ipaddress.IPv4Address)
networks = st.tuples(addresses, st.integers(6, 31)).map(
    lambda pair: ipaddress.ip_network(pair, strict=False)
)
pairs = st.one_of(
    st.sampled_from(list(POOLS)).flatmap(
        lambda kind: st.tuples(st.just(kind), st.sampled_from(POOLS[kind]))
    ),
    st.tuples(st.just("domain"), domains),
    st.tuples(st.just("url"), domains.map(lambda d: f"https://{d}/beacon.gif")),
    st.tuples(st.just("email"), domains.map(lambda d: f"noc@{d}")),
    st.tuples(st.just("ip"), addresses.map(str)),
    st.tuples(st.just("cidr"), networks.map(lambda n: normalize("cidr", str(n)).value)),
)


@given(st.lists(pairs, max_size=40))
def test_check_many_agrees_with_check_and_a_naive_reading(batch: list[tuple[str, str]]) -> None:
    kinds, values = [k for k, _ in batch], [v for _, v in batch]
    many = INDEX.check_many(kinds, values)
    assert many == [INDEX.check(k, v) for k, v in batch]
    assert [None if hit is None else hit.list_name for hit in many] == [
        naive(k, v) for k, v in batch
    ]


# --- the MISP lists ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def misp_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory for every test worker of the session (xdist workers share the
    parent of their temporary directories)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    cache = root / "warninglists-misp"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture(scope="module")
def misp_index(misp_cache: Path) -> WarninglistIndex:
    # The first worker compiles the MISP lists (several seconds) and caches them; the others
    # wait for it, then read the cache.
    with (misp_cache / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return load_index(misp_cache)


@pytest.mark.parametrize(
    ("kind", "value", "name", "reason"),
    [
        ("ip", "8.8.8.8", "List of known IPv4 public DNS resolvers", "8.8.8.8 is in 8.8.8.8/32"),
        ("domain", "mail.google.com", None, "a subdomain of google.com"),
        ("md5", EMPTY_MD5, None, "equals a listed value"),
        ("sha256", EMPTY_SHA256, None, "equals a listed value"),
        (
            "ip",
            "198.51.100.23",
            "List of RFC 5735 CIDR blocks",
            "198.51.100.23 is in 198.51.100.0/24",
        ),
        ("ip", "2001:db8::1", "List of RFC 3849 CIDR blocks", "2001:db8::1 is in 2001:db8::/32"),
        ("cidr", "10.1.0.0/16", "List of RFC 1918 CIDR blocks", "10.1.0.0/16 is inside 10.0.0.0/8"),
        ("email", "abuse@qalqan.example", "Common contact e-mail addresses", None),
    ],
)
def test_misp_lists_flag_well_known_values(
    misp_index: WarninglistIndex, kind: str, value: str, name: str | None, reason: str | None
) -> None:
    hit = misp_index.check(kind, value)
    assert hit is not None
    assert name is None or hit.list_name == name
    assert reason is None or hit.reason == reason


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("ip", "45.9.148.3"),
        ("domain", "qalqan-unlisted-7f3k.kz"),
        ("url", "http://45.9.148.3/payload.bin"),
        ("email", "someone@qalqan-unlisted-7f3k.kz"),
        ("md5", "0123456789abcdef0123456789abcdef"),
    ],
)
def test_misp_lists_leave_other_values_alone(
    misp_index: WarninglistIndex, kind: str, value: str
) -> None:
    assert misp_index.check(kind, value) is None


def test_misp_lists_are_every_list_for_a_qalqan_kind(misp_index: WarninglistIndex) -> None:
    lists = misp_lists()
    names = {wl.name for wl in lists}
    assert len(misp_index) == len(lists) > 100
    assert {wl.origin for wl in lists} == {"misp"}
    assert "Unattributed phone number." not in names  # phone numbers are no Qalqan kind
    assert "List of disposable email domains" in names


def _mixed_sample(count: int) -> tuple[list[str], list[str]]:
    rng = random.Random(5)
    pairs = [(k, v) for k, vs in POOLS.items() for v in vs]
    for _ in range(count):
        kind = rng.choice(["ip", "domain", "url", "sha1"])
        if kind == "ip":
            pairs.append((kind, str(ipaddress.IPv4Address(rng.getrandbits(32)))))
        elif kind == "sha1":
            pairs.append((kind, f"{rng.getrandbits(160):040x}"))
        else:
            host = rng.choice(["google.com", "yandex.ru", "qalqan-x.kz", "github.io", "a.b"])
            host = f"{rng.choice(['www.', 'api.', ''])}{host}"
            pairs.append((kind, host if kind == "domain" else f"https://{host}/x"))
    return [k for k, _ in pairs], [v for _, v in pairs]


def test_cache_round_trip_gives_the_same_answers(
    misp_index: WarninglistIndex, misp_cache: Path
) -> None:
    again = load_index(misp_cache)
    assert again is not misp_index
    assert again.revision == misp_index.revision
    kinds, values = _mixed_sample(300)
    answers = misp_index.check_many(kinds, values)
    assert again.check_many(kinds, values) == answers
    assert answers == [misp_index.check(k, v) for k, v in zip(kinds, values, strict=True)]
    assert any(answers)
    assert not all(answers)


@pytest.fixture
def small_misp(monkeypatch: pytest.MonkeyPatch) -> list[Warninglist]:
    """Stand-in MISP lists, so that cache tests do not compile the real ones each time."""
    lists = [parse_list({"name": "MISP resolvers", "type": "cidr", "list": ["9.9.9.9"]}, "misp")]
    monkeypatch.setattr(warninglists, "misp_lists", lambda: lists)
    return lists


@pytest.mark.usefixtures("small_misp")
def test_a_change_of_custom_lists_rebuilds_the_cache(tmp_path: Path) -> None:
    first = load_index(tmp_path, CUSTOM)
    assert len(first) == len(CUSTOM) + 1
    assert listed("ip", "9.9.9.9", first) == "MISP resolvers"
    assert listed("domain", "google.com", first) == "Corporate hosts"  # custom lists first
    assert load_index(tmp_path, CUSTOM).revision == first.revision
    changed = load_index(tmp_path, CUSTOM[1:])
    assert changed.revision != first.revision
    assert listed("domain", "google.com", changed) == "Google again"
    assert load_index(tmp_path).revision not in {first.revision, changed.revision}


@pytest.mark.usefixtures("small_misp")
@pytest.mark.parametrize("damage", [b"", b"not a zip file", b"PK\x03\x04" + b"\x00" * 64, None])
def test_a_damaged_cache_is_rebuilt(tmp_path: Path, damage: bytes | None) -> None:
    original = load_index(tmp_path, CUSTOM)
    cache = next(tmp_path.glob("*.npz"))
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2] if damage is None else damage)
    rebuilt = load_index(tmp_path, CUSTOM)
    assert rebuilt.revision == original.revision
    assert listed("ip", "10.1.2.3", rebuilt) == "Lab networks"
    assert cache.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]  # no temporary file left


def test_arrays_that_do_not_fit_together_are_refused() -> None:
    arrays, meta = dict(INDEX._arrays), dict(INDEX._meta)
    arrays["node_parent"] = arrays["node_parent"][::-1].copy()
    with pytest.raises(ValueError, match="do not fit"):
        WarninglistIndex(arrays, meta)
    with pytest.raises(ValueError, match="format"):
        WarninglistIndex(dict(INDEX._arrays), {**meta, "format": 0})


def test_a_batch_missing_some_kinds_of_a_substring_list_is_checked() -> None:
    # Regression: a substring list applying to several kinds, in a batch holding values of
    # only some of them, once misaligned the kinds with the values.
    index = WarninglistIndex.compile(
        [
            parse_list(
                {
                    "name": "Sinkholes",
                    "type": "substring",
                    "list": ["sinkhole"],
                    "matching_attributes": ["domain", "url", "email-src"],
                }
            )
        ]
    )
    hits = index.check_many(
        ["url", "ip", "url"], ["http://sinkhole.example/a", "192.0.2.1", "http://fine.example/"]
    )
    assert [h.list_name if h else None for h in hits] == ["Sinkholes", None, None]
