"""Canonical forms of observables: normalize, refang, detect_kind, parse_value, from_sco."""

from __future__ import annotations

import ipaddress
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.provisional import domains, urls

from qalqan.domain.observables import (
    KINDS,
    InvalidObservable,
    Observable,
    detect_kind,
    from_sco,
    from_sco_property,
    hash_kind,
    ip_key,
    normalize,
    parse_value,
    refang,
)

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA512 = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce" * 2


def key(address: str) -> str:
    return ip_key(ipaddress.ip_address(address))


# --- addresses and networks ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("  198.51.100.7\n", "198.51.100.7"),
        ("0.0.0.0", "0.0.0.0"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
        ("::", "::"),
        ("::FFFF:102:304", "::ffff:1.2.3.4"),
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
    ],
)
def test_ip_canonical_form(raw: str, value: str) -> None:
    observable = normalize("ip", raw)
    assert observable.kind == "ip"
    assert observable.value == value
    assert observable.ip_start == observable.ip_end == key(value)


def test_ipv4_and_its_mapped_ipv6_share_a_key() -> None:
    assert normalize("ip", "1.2.3.4").ip_start == normalize("ip", "::ffff:1.2.3.4").ip_start
    assert key("1.2.3.4") == "00000000000000000000ffff01020304"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("999.1.1.1", "'999.1.1.1' is not an IP address"),
        ("010.1.1.1", "'010.1.1.1' is not an IP address"),
        ("1.2.3", "'1.2.3' is not an IP address"),
        ("", "'' is not an IP address"),
        ("2001:db8::1::2", "'2001:db8::1::2' is not an IP address"),
        ("fe80::1%eth0", "'fe80::1%eth0' has a zone index"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not an IP network"),
        ("10.0.0.0/", "'10.0.0.0/' is not an IP network"),
        ("10.0.0.0/255.0.0.0", "'10.0.0.0/255.0.0.0' is not an IP network"),
        ("10.0.0.0/\u0668", "'10.0.0.0/\u0668' is not an IP network"),
    ],
)
def test_bad_ip(raw: str, message: str) -> None:
    with pytest.raises(InvalidObservable) as caught:
        normalize("ip", raw)
    assert str(caught.value) == message
    assert caught.value.kind == "ip"
    assert caught.value.value == raw


@pytest.mark.parametrize(
    ("raw", "kind", "value"),
    [
        ("10.1.2.3/8", "cidr", "10.0.0.0/8"),
        ("192.0.2.0/24", "cidr", "192.0.2.0/24"),
        ("192.0.2.9/32", "ip", "192.0.2.9"),
        ("2001:DB8::1/32", "cidr", "2001:db8::/32"),
        ("2001:db8::1/128", "ip", "2001:db8::1"),
        ("::ffff:10.0.0.1/104", "cidr", "::ffff:10.0.0.0/104"),
    ],
)
def test_networks(raw: str, kind: str, value: str) -> None:
    for asked in ("ip", "cidr"):
        observable = normalize(asked, raw)
        assert (observable.kind, observable.value) == (kind, value)


def test_network_range() -> None:
    network = normalize("cidr", "10.1.2.3/8")
    assert network.ip_start == key("10.0.0.0")
    assert network.ip_end == key("10.255.255.255")
    v6 = normalize("cidr", "2001:db8::/32")
    assert v6.ip_start == key("2001:db8::")
    assert v6.ip_end == key("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")


def test_cidr_without_prefix_is_an_ip() -> None:
    assert normalize("cidr", "1.2.3.4") == normalize("ip", "1.2.3.4")


@given(st.ip_addresses())
def test_ip_text_matches_ipaddress(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    observable = normalize("ip", str(address))
    assert ipaddress.ip_address(observable.value) == address
    if address.version == 6 and address.ipv4_mapped is None:
        assert observable.value == address.compressed
    assert observable.ip_start == ip_key(address)


@given(st.ip_addresses(), st.ip_addresses())
def test_keys_sort_like_addresses(
    first: ipaddress.IPv4Address | ipaddress.IPv6Address,
    second: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    def number(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
        return int(address) | (0xFFFF << 32) if address.version == 4 else int(address)

    assert (ip_key(first) < ip_key(second)) == (number(first) < number(second))
    assert len(ip_key(first)) == 32


@given(st.ip_addresses(), st.integers(min_value=0, max_value=128))
def test_network_covers_its_addresses(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int
) -> None:
    prefix = min(prefix, address.max_prefixlen)
    observable = normalize("cidr", f"{address}/{prefix}")
    assert observable.ip_start is not None
    assert observable.ip_end is not None
    assert observable.ip_start <= ip_key(address) <= observable.ip_end


# --- domains -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("Example.COM.", "example.com"),
        (" evil.example ", "evil.example"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.de", "xn--bcher-kva.de"),
        ("\uff22\uff35\uff23\uff28\uff25\uff32\u3002de", "bucher.de"),
        ("faß.de", "xn--fa-hia.de"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("_dmarc.Example.com", "_dmarc.example.com"),
        ("r3---sn-abc.googlevideo.com", "r3---sn-abc.googlevideo.com"),
        ("localhost", "localhost"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ],
)
def test_domain_canonical_form(raw: str, value: str) -> None:
    assert normalize("domain", raw) == Observable("domain", value)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "it is empty"),
        ("a..example", "empty label"),
        (".example", "empty label"),
        ("example..", "empty label"),
        ("-bad.example", "starts or ends with a hyphen"),
        ("a" * 64 + ".example", "label longer than 63 characters"),
        (".".join(["a" * 60] * 5), "longer than 253 characters"),
        ("exa mple.com", "character ' ' is not allowed"),
        ("user@example.com", "character '@' is not allowed"),
        ("1.2.3", "top-level label is all digits"),
        ("\U0001f4a9.la", "not allowed"),
        ("_bücher.de", "not allowed"),
    ],
)
def test_bad_domain(raw: str, why: str) -> None:
    with pytest.raises(InvalidObservable, match="is not a domain name") as caught:
        normalize("domain", raw)
    assert why in str(caught.value)


# --- URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("HTTP://Evil.Example/Path?Q=A", "http://evil.example/Path?Q=A"),
        ("http://evil.example", "http://evil.example/"),
        ("http://evil.example?q=1", "http://evil.example/?q=1"),
        ("http://evil.example:80/a", "http://evil.example/a"),
        ("https://evil.example:443/a", "https://evil.example/a"),
        ("http://evil.example:443/a", "http://evil.example:443/a"),
        ("https://evil.example:8080", "https://evil.example:8080/"),
        ("http://evil.example:/a", "http://evil.example/a"),
        ("http://evil.example/a#frag", "http://evil.example/a"),
        ("http://evil.example/a?", "http://evil.example/a"),
        ("http://User:Pw@Evil.example/", "http://User:Pw@evil.example/"),
        ("http://bücher.de/straße", "http://xn--bcher-kva.de/straße"),
        ("http://[2001:DB8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        ("http://198.51.100.7/x", "http://198.51.100.7/x"),
        ("ftp://files.example/a.exe", "ftp://files.example/a.exe"),
        ("http://evil.example./", "http://evil.example/"),
    ],
)
def test_url_canonical_form(raw: str, value: str) -> None:
    assert normalize("url", raw) == Observable("url", value)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("evil.example/path", "no scheme"),
        ("http:///path", "no host"),
        ("http://user@/path", "no host"),
        ("http://evil.example:http/", "port 'http' is not a number"),
        ("http://evil.example:70000/", "port '70000' is not a number"),
        ("http://evil.example/a b", "whitespace"),
        ("http://[2001:db8::zz]/", "is not an IPv6 address"),
        ("http://[2001:db8::1/", "malformed IPv6 host"),
        ("http://999.1.1.1/", "is not an IPv4 address"),
        ("http://exa_mple..com/", "empty label"),
    ],
)
def test_bad_url(raw: str, why: str) -> None:
    with pytest.raises(InvalidObservable, match="is not a URL") as caught:
        normalize("url", raw)
    assert why in str(caught.value)


# --- emails and hashes -------------------------------------------------------------------


def test_email_keeps_local_part_and_normalizes_domain() -> None:
    assert normalize("email", " John.Doe@Example.COM ").value == "John.Doe@example.com"
    assert normalize("email", "a@bücher.de").value == "a@xn--bcher-kva.de"
    assert normalize("email", "root@localhost").value == "root@localhost"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("no-at.example", "exactly one '@'"),
        ("a@b@example.com", "exactly one '@'"),
        ("@example.com", "bad local part"),
        ("a b@example.com", "bad local part"),
        ("a@exa..mple.com", "empty label"),
    ],
)
def test_bad_email(raw: str, why: str) -> None:
    with pytest.raises(InvalidObservable, match="is not an email address") as caught:
        normalize("email", raw)
    assert why in str(caught.value)


@pytest.mark.parametrize(
    ("kind", "value"), [("md5", MD5), ("sha1", SHA1), ("sha256", SHA256), ("sha512", SHA512)]
)
def test_hashes(kind: str, value: str) -> None:
    assert normalize(kind, f" {value.upper()} ") == Observable(kind, value)
    with pytest.raises(InvalidObservable, match="hex digits"):
        normalize(kind, value[:-1])
    with pytest.raises(InvalidObservable, match="hex digits"):
        normalize(kind, value[:-1] + "g")


def test_hash_message() -> None:
    with pytest.raises(InvalidObservable) as caught:
        normalize("sha256", "abc")
    assert str(caught.value) == "'abc' is not a SHA-256 hash (64 hex digits)"


def test_unknown_kind() -> None:
    with pytest.raises(InvalidObservable, match="unknown observable kind 'asn'"):
        normalize("asn", "AS1")


def test_long_values_are_cut_in_messages() -> None:
    with pytest.raises(InvalidObservable) as caught:
        normalize("md5", "x" * 10_000)
    assert len(str(caught.value)) < 200


# --- idempotence -------------------------------------------------------------------------


def assert_idempotent(kind: str, raw: str) -> None:
    try:
        first = normalize(kind, raw)
    except InvalidObservable:
        return
    assert normalize(kind, first.value) == first
    assert first.kind in KINDS


@given(st.sampled_from(KINDS), st.text())
def test_normalize_is_idempotent_on_any_text(kind: str, raw: str) -> None:
    assert_idempotent(kind, raw)


@given(st.ip_addresses(), st.integers(min_value=0, max_value=128))
def test_normalize_is_idempotent_on_networks(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int
) -> None:
    assert_idempotent("cidr", f"{address}/{min(prefix, address.max_prefixlen)}")


@given(domains(max_length=253))
def test_generated_domains_are_accepted_and_stable(domain: str) -> None:
    first = normalize("domain", domain)
    assert first.value == domain.lower()
    assert normalize("domain", first.value) == first


@given(urls())
def test_generated_urls_are_accepted_and_stable(url: str) -> None:
    first = normalize("url", url)
    assert normalize("url", first.value) == first


@given(st.emails())
def test_generated_emails_are_stable(email: str) -> None:
    assert_idempotent("email", email)


unicode_names = st.lists(
    st.text(
        st.characters(categories=["Ll", "Lu", "Lo", "Nd", "Mn"], include_characters="-_\u3002"),
        min_size=1,
        max_size=12,
    ),
    min_size=1,
    max_size=4,
).map(".".join)


@given(unicode_names)
def test_unicode_domains_are_stable(name: str) -> None:
    assert_idempotent("domain", name)
    assert_idempotent("url", f"https://{name}/Path")
    assert_idempotent("email", f"Someone@{name}")


@given(st.text())
def test_parse_value_reads_its_own_output(raw: str) -> None:
    kind = detect_kind(raw)
    if kind is not None:
        observable = parse_value(raw)
        assert observable.kind == kind
        assert parse_value(observable.value) == observable


@given(st.sampled_from(["md5", "sha1", "sha256", "sha512"]), st.text(string.hexdigits))
def test_hash_idempotence(kind: str, raw: str) -> None:
    assert_idempotent(kind, raw)


# --- refang, detect_kind, parse_value ----------------------------------------------------


@pytest.mark.parametrize(
    ("defanged", "clean"),
    [
        ("hxxp://evil[.]example/a", "http://evil.example/a"),
        ("hXXps://evil(.)example", "https://evil.example"),
        ("HXXP[://]evil{.}example", "http://evil.example"),
        ("hxxp[:]//evil[dot]example", "http://evil.example"),
        ("fxp://files(dot)example", "ftp://files.example"),
        ("evil[ dot ]example", "evil.example"),
        ("evil dot example", "evil dot example"),
        ("198.51.100\\.7", "198.51.100.7"),
        ("user[at]example[.]com", "user@example.com"),
        ("user(at)example.com", "user@example.com"),
        ("user[@]example.com", "user@example.com"),
        ("  evil[.]example \t", "evil.example"),
        ("hxxpd://x", "hxxpd://x"),
        ("plain text", "plain text"),
    ],
)
def test_refang(defanged: str, clean: str) -> None:
    assert refang(defanged) == clean


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("198.51.100.7", "ip"),
        ("2001:db8::1", "ip"),
        ("10.0.0.0/8", "cidr"),
        ("2001:db8::/32", "cidr"),
        ("10.0.0.1/32", "ip"),
        ("evil.example", "domain"),
        ("evil[.]example", "domain"),
        ("bücher.de", "domain"),
        ("http://evil.example/a", "url"),
        ("evil.example/path", "url"),
        ("evil.example:8080/path", "url"),
        ("198.51.100.7/login.php", "url"),
        ("user@evil.example", "email"),
        ("user[at]evil[.]example", "email"),
        (MD5, "md5"),
        (SHA1.upper(), "sha1"),
        (SHA256, "sha256"),
        (SHA512, "sha512"),
        ("", None),
        ("localhost", None),
        ("999.1.1.1", None),
        ("1.2.3", None),
        ("deadbeef", None),
        ("localhost/path", None),
        ("just words", None),
        ("a..example", None),
    ],
)
def test_detect_kind(raw: str, kind: str | None) -> None:
    assert detect_kind(raw) == kind


def test_parse_value() -> None:
    assert parse_value("hxxp://Evil[.]example/Path") == Observable(
        "url", "http://evil.example/Path"
    )
    assert parse_value("evil.example/path").value == "http://evil.example/path"
    assert parse_value("evil.example/path", "url").value == "http://evil.example/path"
    assert parse_value("localhost", "domain").value == "localhost"
    assert parse_value(" 10.1.2.3/8 ").value == "10.0.0.0/8"


def test_parse_value_errors_say_why() -> None:
    with pytest.raises(InvalidObservable) as caught:
        parse_value("999.1.1.1")
    assert str(caught.value) == "'999.1.1.1' is not an IP address"
    with pytest.raises(InvalidObservable) as caught:
        parse_value("localhost")
    assert str(caught.value) == "cannot tell what kind of observable 'localhost' is"
    assert caught.value.kind is None


# --- STIX cyber-observable objects -------------------------------------------------------


def test_from_sco_values() -> None:
    assert from_sco({"type": "ipv4-addr", "value": "198.51.100.7"}) == [
        normalize("ip", "198.51.100.7")
    ]
    assert from_sco({"type": "ipv4-addr", "value": "10.1.0.0/16"})[0].kind == "cidr"
    assert from_sco({"type": "ipv6-addr", "value": "2001:DB8::1"})[0].value == "2001:db8::1"
    assert from_sco({"type": "domain-name", "value": "Evil.Example"}) == [
        Observable("domain", "evil.example")
    ]
    assert from_sco({"type": "url", "value": "http://Evil.example"}) == [
        Observable("url", "http://evil.example/")
    ]
    assert from_sco({"type": "email-addr", "value": "a@B.example"}) == [
        Observable("email", "a@b.example")
    ]


def test_from_sco_file_hashes() -> None:
    sco = {
        "type": "file",
        "hashes": {
            "MD5": MD5,
            "SHA-1": SHA1,
            "sha256": SHA256.upper(),
            "SHA512": SHA512,
            "SHA3-256": SHA256,
            "SSDEEP": "3:a:b",
        },
    }
    assert from_sco(sco) == [
        Observable("md5", MD5),
        Observable("sha1", SHA1),
        Observable("sha256", SHA256),
        Observable("sha512", SHA512),
    ]


@pytest.mark.parametrize(
    "sco",
    [
        {"type": "ipv4-addr", "value": "999.1.1.1"},
        {"type": "ipv4-addr", "value": "2001:db8::1"},
        {"type": "ipv6-addr", "value": "198.51.100.7"},
        {"type": "ipv4-addr"},
        {"type": "domain-name", "value": 7},
        {"type": "file", "hashes": {"MD5": "short", "SHA-1": None}},
        {"type": "file", "hashes": ["MD5"]},
        {"type": "file", "name": "a.exe"},
        {"type": "email-message", "is_multipart": False},
        {"type": "process", "pid": 1},
        {"value": "198.51.100.7"},
    ],
)
def test_from_sco_skips_what_it_cannot_read(sco: dict[str, object]) -> None:
    assert from_sco(sco) == []


def test_from_sco_property() -> None:
    assert from_sco_property("file", ("hashes", "SHA-256"), SHA256) == Observable("sha256", SHA256)
    assert from_sco_property("file", ("hashes", "TLSH"), "x") is None
    assert from_sco_property("process", ("name",), "x") is None
    assert from_sco_property("domain-name", ("resolves_to_refs",), "x") is None
    with pytest.raises(InvalidObservable, match="is not an IPv6 address"):
        from_sco_property("ipv6-addr", ("value",), "10.0.0.0/8")


@pytest.mark.parametrize(
    ("name", "kind"),
    [("MD5", "md5"), ("SHA-1", "sha1"), ("sha_256", "sha256"), ("SHA512", "sha512"), ("x", None)],
)
def test_hash_kind(name: str, kind: str | None) -> None:
    assert hash_kind(name) == kind


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("ipv4-addr", "198.51.100[.]7", ("ip", "198.51.100.7")),
        ("ipv4-addr", "198.51.100.0/24", ("cidr", "198.51.100.0/24")),
        ("IPv6-Addr", "2001:DB8::1", ("ip", "2001:db8::1")),
        ("domain-name", "Evil[.]Example", ("domain", "evil.example")),
        ("email-addr", "a@Example.COM", ("email", "a@example.com")),
        ("SHA-256", "A" * 64, ("sha256", "a" * 64)),
    ],
)
def test_stix_type_names_are_kinds_too(kind: str, raw: str, expected: tuple[str, str]) -> None:
    found = parse_value(raw, kind)
    assert (found.kind, found.value) == expected


def test_defanged_observables_are_indexed_refanged() -> None:
    sco = {
        "type": "url",
        "id": "url--4c9a3e5e-5e44-4f8e-9a8b-2f1d7c3b6a10",
        "defanged": True,
        "value": "hxxp://evil[.]example/gate.php",
    }
    assert [o.value for o in from_sco(sco)] == ["http://evil.example/gate.php"]
    assert from_sco({**sco, "defanged": False}) == []
