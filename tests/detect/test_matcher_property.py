"""The vectorized IOC matcher against a plain matcher written for clarity, on random logs and
indicators: CIDR edges, IPv6 spellings, IDN domains, parent domains, URL normalization, case.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Any

import idna
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qalqan.detect.matcher import match_iocs
from qalqan.detect.plan import IndicatorValue, build_plan
from qalqan.domain.observables import InvalidObservable, normalize

FIELDS = {"ip": "ip", "domain": "domain", "url": "url", "email": "email", "hash": "hash"}


def _indicator(kind: str, raw: str, n: int) -> IndicatorValue | None:
    try:
        o = normalize(kind, raw)
    except InvalidObservable:
        return None
    return IndicatorValue(
        o.kind, o.value, f"indicator--{n}", None, 50, 1, "org", o.ip_start, o.ip_end
    )


# --- the reference: one event, one indicator at a time, with the standard library ----------


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        canonical = normalize("ip", text)
    except InvalidObservable:
        return None
    if canonical.kind != "ip":
        return None
    address = ipaddress.ip_address(canonical.value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _ip_hits(text: str, ind: IndicatorValue) -> bool:
    if ind.kind not in ("ip", "cidr"):
        return False
    address = _address(text)
    if address is None:
        return False
    network = ipaddress.ip_network(ind.value)
    return address.version == network.version and address in network


def _domain_forms(ind: IndicatorValue) -> set[str]:
    forms = {ind.value}
    if "xn--" in ind.value:
        forms.add(idna.decode(ind.value).lower())
    return forms


def _domain_hits(text: str, ind: IndicatorValue) -> bool:
    if ind.kind != "domain":
        return False
    name = text.lower().removesuffix(".")
    return any(name == d or name.endswith("." + d) for d in _domain_forms(ind))


def _host(text: str) -> str | None:
    stripped = text.strip()
    if "://" not in stripped:
        return None
    try:
        return urllib.parse.urlsplit(stripped).hostname
    except ValueError:
        return None


def _url_hits(text: str, ind: IndicatorValue) -> bool:
    if ind.kind == "url":
        try:
            return normalize("url", text).value == ind.value
        except InvalidObservable:
            return False
    host = _host(text)
    return host is not None and (_ip_hits(host, ind) or _domain_hits(host, ind))


def reference(values: list[IndicatorValue], events: list[dict[str, Any]]) -> set[tuple[int, int]]:
    """Every (event, indicator) pair that should hit."""
    found: set[tuple[int, int]] = set()
    for row, event in enumerate(events):
        for ref, ind in enumerate(values):
            for field, text in event.items():
                if text is None:
                    continue
                kind = FIELDS[field]
                hit = (
                    (kind == "ip" and _ip_hits(text, ind))
                    or (kind == "domain" and _domain_hits(text, ind))
                    or (kind == "url" and _url_hits(text, ind))
                    or (
                        kind == "email"
                        and ind.kind == "email"
                        and text.lower() == ind.value.lower()
                    )
                    or (
                        kind == "hash"
                        and ind.kind in ("md5", "sha1", "sha256")
                        and text.lower() == ind.value
                    )
                )
                if hit:
                    found.add((row, ref))
    return found


def vectorized(values: list[IndicatorValue], events: list[dict[str, Any]]) -> set[tuple[int, int]]:
    frame = pl.DataFrame(
        {f: pl.Series([e.get(f) for e in events], dtype=pl.String) for f in FIELDS}
    )
    hits = match_iocs(build_plan(values), frame, FIELDS)
    return {(int(r), int(f)) for r, f in hits.select("row", "ref").iter_rows()}


# --- generators -------------------------------------------------------------------------

LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
IDN_LABEL = st.sampled_from(["пример", "例子", "bücher", "ПРИМЕР", "straße", "δοκιμή"])
TLD = st.sampled_from(["com", "net", "org", "рф", "example"])


@st.composite
def domains(draw: st.DrawFn) -> str:
    labels = draw(st.lists(st.one_of(LABEL, IDN_LABEL), min_size=1, max_size=3))
    return ".".join([*labels, draw(TLD)])


@st.composite
def ipv4(draw: st.DrawFn) -> int:
    return draw(st.integers(0, 2**32 - 1))


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[IndicatorValue], list[dict[str, Any]]]:
    values: list[IndicatorValue] = []
    domain_pool = draw(st.lists(domains(), min_size=1, max_size=4))
    v4_pool = draw(st.lists(ipv4(), min_size=1, max_size=4))
    v6_pool = draw(st.lists(st.integers(0, 2**128 - 1), min_size=1, max_size=3))

    def add(kind: str, raw: str) -> None:
        ind = _indicator(kind, raw, len(values))
        if ind is not None:
            values.append(ind)

    url_paths: list[tuple[str, str]] = []
    for d in domain_pool:
        add("domain", d)
        path = f"/p/{len(values)}"
        url_paths.append((d, path))
        add("url", f"http://{d}{path}?q=1")
    for a in v4_pool:
        prefix = draw(st.integers(8, 32))
        add("ip", str(ipaddress.IPv4Address(a)))
        add("cidr", f"{ipaddress.IPv4Address(a)}/{prefix}")
    for a in v6_pool:
        add("cidr", f"{ipaddress.IPv6Address(a)}/{draw(st.integers(16, 128))}")
        add("ip", str(ipaddress.IPv6Address(a)))
    add("email", f"Alice@{domain_pool[0]}")
    add("md5", "0123456789abcdef0123456789ABCDEF")

    def near_v4(a: int) -> str:
        prefix = draw(st.integers(8, 32))
        net = ipaddress.IPv4Network(f"{ipaddress.IPv4Address(a)}/{prefix}", strict=False)
        edge = draw(
            st.sampled_from(
                [
                    int(net.network_address) - 1,
                    int(net.network_address),
                    int(net.broadcast_address),
                    int(net.broadcast_address) + 1,
                    a,
                ]
            )
        )
        return str(ipaddress.IPv4Address(edge % 2**32))

    def ip_text() -> str:
        choice = draw(st.integers(0, 4))
        if choice == 0:
            return near_v4(draw(st.sampled_from(v4_pool)))
        if choice == 1:
            a = draw(st.sampled_from(v6_pool))
            spelled = ipaddress.IPv6Address(a)
            return draw(st.sampled_from([str(spelled), spelled.exploded, spelled.exploded.upper()]))
        if choice == 2:
            return f"::ffff:{ipaddress.IPv4Address(draw(st.sampled_from(v4_pool)))}"
        if choice == 3:
            return str(ipaddress.IPv4Address(draw(ipv4())))
        return draw(st.sampled_from(["not-an-ip", "1.2.3", "999.1.1.1", "1.2.3.4.5", ""]))

    def domain_text() -> str:
        base = draw(st.sampled_from(domain_pool))
        choice = draw(st.integers(0, 4))
        if choice == 0:
            return base.upper()
        if choice == 1:
            return f"{draw(LABEL)}.{base}"
        if choice == 2:
            return f"{draw(LABEL)}{base}"  # shares a suffix, not a label boundary
        if choice == 3:
            return base + "."
        return draw(domains())

    def url_text() -> str:
        host, known_path = draw(st.sampled_from(url_paths))
        if draw(st.booleans()):
            host = str(ipaddress.IPv4Address(draw(st.sampled_from(v4_pool))))
        scheme = draw(st.sampled_from(["http", "HTTP", "https"]))
        port = draw(st.sampled_from(["", ":80", ":443", ":8080"]))
        path = draw(st.sampled_from([known_path, known_path, "", "/", "/other"]))
        query = draw(st.sampled_from(["?q=1", "?q=1", "", "?"]))
        fragment = draw(st.sampled_from(["", "#top"]))
        host = host.upper() if draw(st.booleans()) else host
        return f"{scheme}://{host}{port}{path}{query}{fragment}"

    events: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 25))):
        events.append(
            {
                "ip": draw(st.one_of(st.none(), st.builds(ip_text))),
                "domain": draw(st.one_of(st.none(), st.builds(domain_text))),
                "url": draw(st.one_of(st.none(), st.builds(url_text))),
                "email": draw(
                    st.sampled_from(
                        [
                            None,
                            f"alice@{domain_pool[0]}",
                            f"ALICE@{domain_pool[0].upper()}",
                            "bob@x.org",
                        ]
                    )
                ),
                "hash": draw(
                    st.sampled_from([None, "0123456789ABCDEF0123456789abcdef", "00" * 16])
                ),
            }
        )
    return values, events


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_vectorized_sweep_agrees_with_the_reference(
    case: tuple[list[IndicatorValue], list[dict[str, Any]]],
) -> None:
    values, events = case
    assert vectorized(values, events) == reference(values, events)
