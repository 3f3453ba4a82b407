"""Search: every mode, refanged input, filters, facets, keyset pages, the visibility matrix of
three orgs, and hostile query strings that must be read as text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal, Role
from qalqan.errors import InvalidInput
from qalqan.instance import Instance
from qalqan.intel import reading
from qalqan.intel import search as service
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.intel.search import SearchRequest, SearchResult
from qalqan.store import search as store
from qalqan.store.search import SearchFilter
from qalqan.testing import STAMP, TestNode, fresh_instance, indicator, stix_id

A, B, C = "analyst@a.test", "analyst@b.test", "analyst@c.test"
HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
NET_IPS = [f"203.0.113.{n}" for n in range(1, 13)]


def sdo(type_name: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": type_name,
        "spec_version": "2.1",
        "id": stix_id(type_name),
        "created": STAMP,
        "modified": STAMP,
        **properties,
    }


@dataclass
class World:
    node: TestNode
    ids: dict[str, str]

    @property
    def instance(self) -> Instance:
        return self.node.instance

    def principal(self, email: str) -> Principal:
        return self.node.principals[email]

    def run(self, email: str, q: str, **options: Any) -> SearchResult:
        with self.instance.begin() as conn:
            return service.search(conn, self.principal(email), SearchRequest(q, **options))

    def names(self, email: str, q: str, **options: Any) -> list[str | None]:
        return [hit.name for hit in self.run(email, q, limit=1000, **options).hits]

    def all_pages(self, email: str, q: str, limit: int, **options: Any) -> list[tuple[Any, ...]]:
        seen: list[tuple[Any, ...]] = []
        cursor = None
        for _ in range(100):
            result = self.run(email, q, limit=limit, cursor=cursor, **options)
            assert len(result.hits) <= limit
            seen.extend((h.stix_id, h.matched_value) for h in result.hits)
            cursor = result.next_cursor
            if cursor is None:
                return seen
        raise AssertionError("paging did not end")


def _store(
    conn: Connection,
    principal: Principal,
    objects: list[dict[str, Any]],
    tlp: TLP,
    distribution: Distribution,
    group: str | None = None,
) -> None:
    report = import_objects(conn, principal, objects, HandlingRequest(tlp, distribution, group))
    assert not report.rejected, report.to_dict()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with fresh_instance(Path(tmp_path_factory.mktemp("search"))) as inst:
        node = TestNode.create(inst, "CERT-A", "KZ")
        node.add_org("CERT-B", "UZ")
        node.add_org("CERT-C", "KG")
        node.add_user(A, "CERT-A", Role.ANALYST)
        node.add_user(B, "CERT-B", Role.ANALYST)
        node.add_user(C, "CERT-C", Role.ANALYST)
        node.add_group("A and B", "CERT-A", ["CERT-A", "CERT-B"])
        ids: dict[str, str] = {}
        shared = [indicator(ip, labels=["scanner"]) for ip in NET_IPS]
        shared += [
            indicator("203.0.113.0/28", name="small net", description="APT28 staging network"),
            indicator("10.0.0.0/8", name="private range"),
            indicator("example.com", "domain-name"),
            indicator("evil.example.com", "domain-name", labels=["phishing"]),
            indicator("a.b.example.com", "domain-name"),
            indicator("x-example.com", "domain-name"),
            indicator("notexample.com", "domain-name"),
            indicator("http://evil.example.com/login", "url", name="login page"),
            indicator(HASH, "SHA-256", name="dropper hash"),
            indicator("2001:db8::1", "ipv6-addr", name="v6 host"),
        ]
        org_only = indicator(
            "203.0.113.200",
            name="A private",
            description="Sandworm private note",
            labels=["org-only"],
        )
        group_only = indicator(
            "203.0.113.201",
            name="AB shared",
            description="Sandworm group note",
            labels=["group-only"],
        )
        emotet = sdo(
            "malware",
            name="Emotet",
            is_family=True,
            description='Loader; "quoted" text, NEAR(x y), a OR b, 100% of_it, <b>bold</b>',
            labels=["botnet", "loader"],
        )
        c_domain = indicator("evil2.example.com", "domain-name")
        revoked = indicator("198.51.100.9", name="to revoke")
        with inst.begin() as conn:
            a, b, c = (node.principals[e] for e in (A, B, C))
            _store(conn, a, [*shared, revoked], TLP.GREEN, Distribution.NODE)
            _store(conn, a, [org_only], TLP.AMBER, Distribution.ORGANIZATION)
            _store(conn, a, [group_only], TLP.AMBER, Distribution.SHARING_GROUP, "A and B")
            _store(conn, b, [emotet], TLP.CLEAR, Distribution.NODE)
            _store(conn, c, [c_domain], TLP.AMBER, Distribution.NODE)
            reading.revoke_object(conn, a, revoked["id"])
        ids.update(
            org_only=org_only["id"],
            group_only=group_only["id"],
            emotet=emotet["id"],
            revoked=revoked["id"],
        )
        yield World(node, ids)


# --- reading the query ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "mode", "value"),
    [
        ("203.0.113.7", "exact", "203.0.113.7"),
        ("203[.]0[.]113[.]7", "exact", "203.0.113.7"),
        ("hxxp://evil[.]example[.]com/login", "exact", "http://evil.example.com/login"),
        ("Evil[.]Example[.]com", "exact", "evil.example.com"),
        (HASH.upper(), "exact", HASH),
        ("203.0.113.0/24", "cidr", "203.0.113.0/24"),
        ("203.0.113.77/24", "cidr", "203.0.113.0/24"),
        ("*.example.com", "suffix", "example.com"),
        (".Example.COM", "suffix", "example.com"),
        ("EVIL*", "prefix", "evil"),
        ("emotet loader", "text", None),
        ("T1059.001", "text", None),
    ],
)
def test_auto_mode_reads_the_shape_of_the_query(q: str, mode: str, value: str | None) -> None:
    parsed = service.parse_query(q)
    assert parsed.mode == mode
    assert parsed.value == value


def test_an_explicit_mode_is_obeyed_or_refused_clearly() -> None:
    assert service.parse_query("example.com", "suffix").value == "example.com"
    assert service.parse_query("203.0.113.7", "cidr").mode == "cidr"
    assert service.parse_query("203.0.113.7", "text").terms == ("203.0.113.7",)
    with pytest.raises(InvalidInput, match="cidr"):
        service.parse_query("example.com", "cidr")
    with pytest.raises(InvalidInput, match="exact"):
        service.parse_query("not a value", "exact")
    with pytest.raises(InvalidInput, match="mode"):
        service.parse_query("x", "regex")
    with pytest.raises(InvalidInput, match="empty"):
        service.parse_query(" \x00 \t ")


# --- modes ------------------------------------------------------------------------------------


def test_exact_value_finds_the_value_and_the_networks_around_it(world: World) -> None:
    result = world.run(A, "203[.]0[.]113[.]5")
    matched = {(h.matched_kind, h.matched_value) for h in result.hits}
    assert matched == {("ip", "203.0.113.5"), ("cidr", "203.0.113.0/28")}


def test_exact_refangs_urls_and_normalizes_hashes(world: World) -> None:
    assert world.names(A, "hxxps[:]//evil[.]example[.]com/login") == []
    assert world.names(A, "hxxp://evil[.]example[.]com/login") == ["login page"]
    assert world.names(A, HASH.upper()) == ["dropper hash"]
    assert world.names(A, "2001:DB8:0::1") == ["v6 host"]


def test_cidr_finds_everything_inside_without_enumerating(world: World) -> None:
    inside = {h.matched_value for h in world.run(A, "203.0.113.0/24", limit=1000).hits}
    assert inside == {*NET_IPS, "203.0.113.0/28", "203.0.113.200", "203.0.113.201"}
    # The whole address space is a range like any other.
    everything = {h.matched_value for h in world.run(A, "0.0.0.0/0", limit=1000).hits}
    assert {"10.0.0.0/8", "198.51.100.9"} & everything == {"10.0.0.0/8"}
    assert inside <= everything
    v6 = {h.matched_value for h in world.run(A, "::/0", limit=1000).hits}
    assert "2001:db8::1" in v6


def test_a_network_also_finds_the_wider_networks_that_contain_it(world: World) -> None:
    values = [h.matched_value for h in world.run(A, "203.0.113.0/30").hits]
    assert values == ["203.0.113.0/28", "203.0.113.1", "203.0.113.2", "203.0.113.3"]


def test_suffix_finds_the_domain_and_what_is_under_it(world: World) -> None:
    expected = {"example.com", "evil.example.com", "a.b.example.com", "evil2.example.com"}
    for q in ("*.example.com", ".example.com", "*.example[.]com"):
        assert {h.matched_value for h in world.run(A, q).hits} == expected
    assert {h.matched_value for h in world.run(A, "example.com", mode="suffix").hits} == expected
    assert {h.matched_value for h in world.run(A, "*.com").hits} >= expected | {"x-example.com"}


def test_prefix_is_a_range_over_values_of_every_kind(world: World) -> None:
    values = [h.matched_value for h in world.run(A, "evil*").hits]
    assert values == ["evil.example.com", "evil2.example.com"]
    ones = {h.matched_value for h in world.run(A, "203.0.113.1*").hits}
    assert ones == {"203.0.113.1", "203.0.113.10", "203.0.113.11", "203.0.113.12"}
    assert [h.matched_value for h in world.run(A, "http://evil*").hits] == [
        "http://evil.example.com/login"
    ]
    assert world.run(A, "e3b0c442*").hits[0].matched_value == HASH


def test_text_searches_names_descriptions_and_labels(world: World) -> None:
    assert world.names(A, "emotet") == ["Emotet"]
    assert world.names(A, "LOADER") == ["Emotet"]
    assert world.names(A, "apt28 staging") == ["small net"]
    assert world.names(A, "apt28 missing") == []
    assert world.names(A, "phishing") == ["evil.example.com"]
    hit = world.run(A, "emotet").hits[0]
    assert hit.matched_kind is None
    assert hit.owner_org_name == "CERT-B"


def test_revoked_objects_are_not_found(world: World) -> None:
    assert world.names(A, "198.51.100.9") == []
    assert world.names(A, "to revoke", mode="text") == []


# --- filters ----------------------------------------------------------------------------------


def test_filters_narrow_the_matches(world: World) -> None:
    assert world.names(A, "*.example.com", orgs=["CERT-C"]) == ["evil2.example.com"]
    c_id = world.node.org_ids["CERT-C"]
    assert world.names(A, "*.example.com", orgs=[c_id]) == ["evil2.example.com"]
    assert world.names(A, "*.example.com", countries=["kg"]) == ["evil2.example.com"]
    assert world.names(A, "*.example.com", tlps=["amber"]) == ["evil2.example.com"]
    assert world.names(A, "*.example.com", labels=["phishing"]) == ["evil.example.com"]
    assert world.names(A, "emotet", types=["indicator"]) == []
    assert world.names(A, "emotet", types=["malware,indicator"]) == ["Emotet"]
    assert world.names(A, "*.example.com", orgs=["no such org"]) == []


def test_score_bands_split_the_matches(world: World) -> None:
    everything = world.names(A, "203.0.113.0/24")
    parts: list[str | None] = []
    for band in service.SCORE_BANDS:
        hits = world.run(A, "203.0.113.0/24", scores=[band], limit=1000).hits
        for hit in hits:
            score = hit.score
            assert band == (
                "none"
                if score is None
                else "low"
                if score < 30
                else "medium"
                if score < 70
                else "high"
            )
        parts.extend(hit.name for hit in hits)
    assert sorted(parts, key=str) == sorted(everything, key=str)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"tlp": ["purple"]}, "tlp"),
        ({"scores": ["extreme"]}, "score"),
        ({"limit": 0}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "dGV4dDowOjE"}, "cursor"),  # a text cursor given to a value search
    ],
)
def test_bad_options_are_clear_errors(world: World, options: dict[str, Any], field: str) -> None:
    options = {("tlps" if k == "tlp" else k): v for k, v in options.items()}
    with pytest.raises(InvalidInput) as info:
        world.run(A, "203.0.113.0/24", **options)
    assert info.value.field == field


# --- pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "q", ["203.0.113.0/24", "0.0.0.0/0", "*.example.com", "203.0*", "e*", "scanner", "203.0.113.5"]
)
def test_keyset_pages_walk_every_match_once(world: World, q: str) -> None:
    whole = world.all_pages(A, q, limit=1000)
    assert len(whole) >= 2
    for size in (1, 2, 5):
        assert world.all_pages(A, q, limit=size) == whole


def test_text_pages_are_newest_first(world: World) -> None:
    result = world.run(A, "scanner", limit=1000)
    added = [hit.date_added for hit in result.hits]
    assert len(added) == len(NET_IPS)
    assert added == sorted(added, reverse=True)


# --- facets -----------------------------------------------------------------------------------


def test_facets_count_distinct_visible_objects(world: World) -> None:
    facets = world.run(A, "203.0.113.0/24", facets=True).facets
    assert facets is not None
    assert facets.exact
    assert facets.objects == len(NET_IPS) + 3
    assert facets.types == {"indicator": len(NET_IPS) + 3}
    assert facets.tlps == {int(TLP.GREEN): len(NET_IPS) + 1, int(TLP.AMBER): 2}
    assert facets.labels == {"scanner": len(NET_IPS), "org-only": 1, "group-only": 1}
    assert facets.orgs == [(world.node.org_ids["CERT-A"], "CERT-A", "KZ", len(NET_IPS) + 3)]
    assert sum(facets.score_bands.values()) == facets.objects
    by_country = world.run(A, "*.example.com", facets=True).facets
    assert by_country is not None
    assert by_country.countries == {"KZ": 3, "KG": 1}


def test_facets_say_when_they_are_capped(world: World) -> None:
    match = service.parse_query("203.0.113.0/24").match
    with world.instance.begin() as conn:
        capped = store.facet_counts(conn, world.principal(A), match, SearchFilter(), 3)
        whole = store.facet_counts(conn, world.principal(A), match, SearchFilter(), 1000)
    assert not capped.exact
    assert capped.objects < whole.objects
    assert whole.exact


def test_facets_follow_the_filters(world: World) -> None:
    facets = world.run(A, "*.example.com", facets=True, countries=["KG"]).facets
    assert facets is not None
    assert facets.objects == 1
    assert facets.countries == {"KG": 1}


# --- visibility -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "sees_org_only", "sees_group_only"),
    [(A, True, True), (B, False, True), (C, False, False)],
)
@pytest.mark.parametrize("q", ["203.0.113.0/24", "203.0.113.2*", "sandworm", "0.0.0.0/0"])
def test_items_and_facets_show_only_what_the_viewer_may_see(
    world: World, email: str, sees_org_only: bool, sees_group_only: bool, q: str
) -> None:
    result = world.run(email, q, limit=1000, facets=True)
    ids = {hit.stix_id for hit in result.hits}
    assert (world.ids["org_only"] in ids) is sees_org_only
    assert (world.ids["group_only"] in ids) is sees_group_only
    facets = result.facets
    assert facets is not None
    assert facets.objects == len(ids)
    assert ("org-only" in facets.labels) is sees_org_only
    assert ("group-only" in facets.labels) is sees_group_only
    assert sum(facets.tlps.values()) == len(ids)
    assert sum(n for *_, n in facets.orgs) == len(ids)


def test_exact_search_of_an_invisible_value_finds_nothing(world: World) -> None:
    assert world.names(C, "203.0.113.200") == []
    facets = world.run(C, "203.0.113.200", facets=True).facets
    assert facets is not None
    assert facets.objects == 0
    assert world.names(A, "203.0.113.200") == ["A private"]


def test_filtering_by_an_invisible_label_reveals_nothing(world: World) -> None:
    assert world.names(C, "0.0.0.0/0", labels=["org-only"]) == []
    assert world.names(C, "sandworm", labels=["group-only"]) == []


# --- hostile input ----------------------------------------------------------------------------

HOSTILE = [
    '"',
    '""',
    '"unterminated',
    "NEAR(",
    "NEAR(a b, 2)",
    "*",
    "**",
    "a*b*",
    "OR",
    "a OR b",
    "NOT emotet",
    "emotet AND",
    "body:emotet",
    "-emotet",
    "^emotet",
    "'; DROP TABLE object_versions; --",
    "%",
    "_",
    "100%",
    "of_it",
    "%_%*",
    ".*",
    "(a|b)+[^c]{2,}\\d$",
    "<script>alert(1)</script>",
    "<b>bold</b>",
    "a" * 10_000,
    "emotet\x00loader",
    "\x00",
    "::",
    "*.",
    ".",
    "1.2.3.4/99",
    "::/200",
    "*.-bad-.com",
    "ßtraße*",
    "😀 emotet",
    "ab" * 20,
    "x " * 40,
    "\\",
    "'",
    "$1",
    "&&",
    "!",
]


@pytest.mark.parametrize("q", HOSTILE)
@pytest.mark.parametrize("mode", ["auto", "text", "prefix", "suffix"])
def test_hostile_queries_are_text_or_a_clear_error(world: World, q: str, mode: str) -> None:
    refused: InvalidInput | None = None
    try:
        result = world.run(C, q, mode=mode, facets=True)
    except InvalidInput as exc:
        refused = exc
    if refused is not None:
        assert refused.field == "q"
        return
    assert result.facets is not None
    if result.query.mode == "text":
        assert all("\x00" not in term for term in result.query.terms)


def test_syntax_in_text_is_matched_as_words(world: World) -> None:
    assert world.names(A, '"quoted"') == ["Emotet"]
    assert world.names(A, "NEAR(x") == ["Emotet"]
    assert world.names(A, "a OR b") == ["Emotet"]
    assert world.names(A, "emotet OR nothing") == []
    assert world.names(A, "100%") == ["Emotet"]
    assert world.names(A, "<b>bold</b>") == ["Emotet"]
    assert world.names(A, "emotet\x00loader") == ["Emotet"]
