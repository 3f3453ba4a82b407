"""The handling rules as pure functions: which handling is allowed, what crosses a federation
link and as what, and what may leave the system in an export."""

from __future__ import annotations

import pytest

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal, Role
from qalqan.policy import (
    DEFAULT_EXPORT_CEILING,
    Handling,
    PeerLink,
    exportable,
    handling_problem,
    is_visible,
    releasable_to_peer,
    sighting_recipient,
)

ORG_A, ORG_B, ORG_P, ORG_Q = "org-a", "org-b", "org-peer", "org-other-peer"
GROUP = "group-1"
ALL_TLPS = list(TLP)
ALL_DISTRIBUTIONS = list(Distribution)


def _name(value: object) -> str:
    return value.label if isinstance(value, TLP) else str(value)


def _group_of(distribution: Distribution) -> str | None:
    return GROUP if distribution is Distribution.SHARING_GROUP else None


# handling_problem


@pytest.mark.parametrize("tlp", ALL_TLPS, ids=_name)
@pytest.mark.parametrize("distribution", ALL_DISTRIBUTIONS, ids=_name)
def test_handling_problem_follows_the_tlp_cap(tlp: TLP, distribution: Distribution) -> None:
    why = handling_problem(tlp, distribution, _group_of(distribution))
    refused = tlp is TLP.RED and distribution in (
        Distribution.NODE,
        Distribution.CONNECTED,
        Distribution.ALL,
    )
    if refused:
        assert why is not None
        assert "RED" in why
        assert str(distribution) in why
    else:
        assert why is None


@pytest.mark.parametrize("tlp", ALL_TLPS, ids=_name)
def test_sharing_group_distribution_needs_a_group(tlp: TLP) -> None:
    assert handling_problem(tlp, Distribution.SHARING_GROUP, None) is not None
    assert handling_problem(tlp, Distribution.SHARING_GROUP, "") is not None


@pytest.mark.parametrize(
    "distribution",
    [d for d in Distribution if d is not Distribution.SHARING_GROUP],
    ids=_name,
)
def test_a_group_is_refused_with_any_other_distribution(distribution: Distribution) -> None:
    why = handling_problem(TLP.GREEN, distribution, GROUP)
    assert why is not None
    assert "sharing group" in why


def test_amber_strict_is_its_own_level() -> None:
    assert TLP.AMBER_STRICT != TLP.AMBER
    assert TLP.AMBER < TLP.AMBER_STRICT < TLP.RED
    assert TLP.parse("amber+strict") is TLP.AMBER_STRICT
    assert TLP.parse("TLP:AMBER") is TLP.AMBER
    assert TLP.AMBER_STRICT.marking_id != TLP.AMBER.marking_id
    assert TLP.AMBER_STRICT.label == "AMBER+STRICT"


# releasable_to_peer

OPEN_LINK = PeerLink(frozenset({ORG_P}), max_tlp=TLP.RED)


def _handling(distribution: Distribution, tlp: TLP = TLP.GREEN) -> Handling:
    return Handling(ORG_A, tlp, distribution, _group_of(distribution))


@pytest.mark.parametrize(
    ("distribution", "arrives_as"),
    [
        (Distribution.ORGANIZATION, None),
        (Distribution.NODE, None),
        (Distribution.CONNECTED, Distribution.NODE),
        (Distribution.ALL, Distribution.ALL),
    ],
    ids=_name,
)
@pytest.mark.parametrize("tlp", [TLP.CLEAR, TLP.GREEN, TLP.AMBER, TLP.AMBER_STRICT], ids=_name)
def test_distribution_decides_what_crosses_and_as_what(
    distribution: Distribution, arrives_as: Distribution | None, tlp: TLP
) -> None:
    handling = _handling(distribution, tlp)
    assert releasable_to_peer(handling, OPEN_LINK) is arrives_as
    # Group members do not change anything for objects that are not for a group.
    assert releasable_to_peer(handling, OPEN_LINK, frozenset({ORG_P})) is arrives_as


@pytest.mark.parametrize("tlp", ALL_TLPS, ids=_name)
def test_sharing_group_crosses_only_to_a_peer_with_a_member(tlp: TLP) -> None:
    handling = _handling(Distribution.SHARING_GROUP, tlp)
    members = frozenset({ORG_A, ORG_P})
    assert releasable_to_peer(handling, OPEN_LINK, members) is Distribution.SHARING_GROUP
    two_orgs = PeerLink(frozenset({ORG_Q, ORG_P}), max_tlp=TLP.RED)
    assert releasable_to_peer(handling, two_orgs, members) is Distribution.SHARING_GROUP
    assert releasable_to_peer(handling, OPEN_LINK, frozenset({ORG_A, ORG_B})) is None
    assert releasable_to_peer(handling, OPEN_LINK) is None
    assert releasable_to_peer(handling, PeerLink(frozenset(), TLP.RED), members) is None


# Handlings that may cross some link (RED with connected/all is refused before any link).
CROSSING = [
    (d, t)
    for d in (Distribution.CONNECTED, Distribution.ALL, Distribution.SHARING_GROUP)
    for t in TLP
    if handling_problem(t, d, _group_of(d)) is None
]


@pytest.mark.parametrize("link_max", ALL_TLPS, ids=_name)
@pytest.mark.parametrize(("distribution", "tlp"), CROSSING, ids=_name)
def test_nothing_above_the_links_ceiling_crosses(
    link_max: TLP, tlp: TLP, distribution: Distribution
) -> None:
    link = PeerLink(frozenset({ORG_P}), max_tlp=link_max)
    released = releasable_to_peer(_handling(distribution, tlp), link, frozenset({ORG_A, ORG_P}))
    assert (released is not None) is (tlp <= link_max)


def test_amber_strict_does_not_pass_an_amber_link() -> None:
    amber_link = PeerLink(frozenset({ORG_P}), max_tlp=TLP.AMBER)
    strict_link = PeerLink(frozenset({ORG_P}), max_tlp=TLP.AMBER_STRICT)
    assert releasable_to_peer(_handling(Distribution.ALL, TLP.AMBER), amber_link) is (
        Distribution.ALL
    )
    assert releasable_to_peer(_handling(Distribution.ALL, TLP.AMBER_STRICT), amber_link) is None
    assert releasable_to_peer(_handling(Distribution.ALL, TLP.AMBER_STRICT), strict_link) is (
        Distribution.ALL
    )


def test_a_link_defaults_to_amber() -> None:
    link = PeerLink(frozenset({ORG_P}))
    assert link.max_tlp is TLP.AMBER
    assert releasable_to_peer(_handling(Distribution.ALL, TLP.AMBER), link) is Distribution.ALL
    assert releasable_to_peer(_handling(Distribution.ALL, TLP.AMBER_STRICT), link) is None


def test_red_crosses_only_in_a_group_over_a_red_link() -> None:
    members = frozenset({ORG_A, ORG_P})
    red = _handling(Distribution.SHARING_GROUP, TLP.RED)
    assert releasable_to_peer(red, OPEN_LINK, members) is Distribution.SHARING_GROUP
    strict_link = PeerLink(frozenset({ORG_P}), max_tlp=TLP.AMBER_STRICT)
    assert releasable_to_peer(red, strict_link, members) is None
    assert releasable_to_peer(_handling(Distribution.ORGANIZATION, TLP.RED), OPEN_LINK) is None


# exportable


def test_default_export_ceiling_is_green() -> None:
    assert DEFAULT_EXPORT_CEILING is TLP.GREEN
    assert [t for t in TLP if exportable(t)] == [TLP.CLEAR, TLP.GREEN]


@pytest.mark.parametrize("ceiling", ALL_TLPS, ids=_name)
@pytest.mark.parametrize("tlp", ALL_TLPS, ids=_name)
def test_export_carries_only_what_the_ceiling_allows(ceiling: TLP, tlp: TLP) -> None:
    expected = tlp is not TLP.RED and tlp <= ceiling
    assert exportable(tlp, ceiling) is expected


def test_red_never_leaves_by_export() -> None:
    assert not exportable(TLP.RED, TLP.RED)
    assert not exportable(TLP.RED)
    assert exportable(TLP.AMBER_STRICT, TLP.RED)
    assert not exportable(TLP.AMBER_STRICT, TLP.AMBER)
    assert exportable(TLP.AMBER, TLP.AMBER)


# sightings shared back


def test_a_sighting_goes_back_to_the_indicator_owner_only_when_shared() -> None:
    assert sighting_recipient(True, ORG_B, ORG_A) == ORG_A
    assert sighting_recipient(False, ORG_B, ORG_A) is None
    assert sighting_recipient(True, ORG_A, ORG_A) is None


@pytest.mark.parametrize("tlp", [TLP.AMBER, TLP.RED], ids=_name)
def test_a_recipient_reads_an_org_only_version_and_nobody_else_does(tlp: TLP) -> None:
    handling = Handling(ORG_B, tlp, Distribution.ORGANIZATION, recipient_org_id=ORG_A)
    for org, seen in ((ORG_A, True), (ORG_B, True), (ORG_P, False), (ORG_Q, False)):
        viewer = Principal(user_id=None, org_id=org, role=Role.ANALYST, group_ids=frozenset())
        assert is_visible(viewer, handling) is seen
    assert releasable_to_peer(handling, OPEN_LINK) is None
