"""The decay model: the polynomial curve, its crossing time, and the rules of base, false
positives, cut-off and expiration."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qalqan.domain import decay
from qalqan.domain.decay import DAY_US, NEVER, DecayConfig, DecayModel

bases = st.integers(min_value=0, max_value=100)
taus = st.floats(min_value=0.01, max_value=5000.0)
deltas = st.floats(min_value=0.05, max_value=20.0)
ratios = st.floats(min_value=0.0, max_value=2.0)


def one(value: float) -> np.ndarray:
    return np.array([value], dtype=np.float64)


def score(base: float, t: float, tau: float, delta: float) -> float:
    return float(decay.score(one(base), one(t), one(tau), one(delta))[0])


@given(bases, taus, deltas)
def test_the_score_starts_at_the_base(base: int, tau: float, delta: float) -> None:
    assert score(base, 0.0, tau, delta) == pytest.approx(base)


@given(bases, taus, deltas, st.floats(min_value=1.0, max_value=10.0))
def test_the_score_is_zero_from_tau_on(base: int, tau: float, delta: float, after: float) -> None:
    assert score(base, tau, tau, delta) == 0.0
    assert score(base, tau * after, tau, delta) == 0.0


@given(bases, taus, deltas, ratios, ratios)
def test_the_score_never_rises_with_time(
    base: int, tau: float, delta: float, a: float, b: float
) -> None:
    early, late = sorted((a, b))
    assert score(base, early * tau, tau, delta) >= score(base, late * tau, tau, delta)


@given(bases, taus, deltas, st.floats(min_value=-1e12, max_value=1e13))
def test_the_score_stays_within_zero_and_the_base(
    base: int, tau: float, delta: float, t: float
) -> None:
    assert 0.0 <= score(base, t, tau, delta) <= base


@given(
    st.integers(min_value=1, max_value=100),
    st.floats(min_value=0.1, max_value=99.0),
    taus,
    st.floats(min_value=0.1, max_value=10.0),
)
def test_the_crossing_time_is_where_the_score_meets_the_cutoff(
    base: int, cut: float, tau: float, delta: float
) -> None:
    crossing = float(decay.crossing_time(one(base), one(cut), one(tau), one(delta))[0])
    if base <= cut:
        assert crossing == 0.0
        return
    assert 0.0 <= crossing <= tau
    assert score(base, crossing, tau, delta) == pytest.approx(cut, rel=1e-6, abs=1e-6)
    # Before it the score is at least the cut-off; after it, below.
    assert score(base, crossing * 0.999, tau, delta) >= cut - 1e-6
    if crossing * 1.001 <= tau:
        assert score(base, crossing * 1.001, tau, delta) <= cut + 1e-6


def test_the_closed_form_of_the_crossing_time() -> None:
    # tau * (1 - thr/base)^delta: an address at 50 under a threshold of 30
    t = decay.crossing_time(one(50), one(30), one(30.0), one(0.5))[0]
    assert t == pytest.approx(30.0 * 0.4**0.5)


def test_a_cutoff_of_zero_is_never_crossed() -> None:
    assert np.isinf(decay.crossing_time(one(50), one(0), one(30.0), one(1.0))[0])


def test_the_base_is_the_confidence_or_medium_raised_by_sightings() -> None:
    assert decay.raised_base(None, 0) == decay.DEFAULT_BASE == 50
    assert decay.raised_base(80, 0) == 80
    assert decay.raised_base(80, 2) == 80 + 2 * decay.SIGHTING_RAISE
    assert decay.raised_base(90, 10) == 100
    assert decay.raised_base(0, 0) == 0


def test_false_positives_halve_what_the_score_starts_from() -> None:
    got = decay.effective_base(np.array([80, 80, 80]), np.array([0, 1, 2]))
    assert got.tolist() == [80.0, 40.0, 20.0]


def test_the_cutoff_is_the_threshold_or_half_the_base() -> None:
    assert decay.cutoff(np.array([90, 50, 20, 0]), 30).tolist() == [30.0, 25.0, 10.0, 0.0]


def _decays_at(base: int, fp: int, expired: int = NEVER, threshold: int = 30) -> int:
    model = DecayModel(30.0, 1.0)
    return int(
        decay.decays_at(
            np.array([0]),
            np.array([expired]),
            np.array([base]),
            np.array([fp]),
            one(model.tau_us),
            one(model.delta),
            threshold,
        )[0]
    )


def test_when_an_indicator_leaves_detection() -> None:
    # Linear over 30 days: from 90 to 30 takes two thirds of tau.
    assert _decays_at(90, 0) == 20 * DAY_US
    # A doubtful indicator (20) leaves when half its confidence has gone.
    assert _decays_at(20, 0) == 15 * DAY_US
    # One false positive takes out an indicator under twice the threshold at once ...
    assert _decays_at(50, 1) == 0
    # ... and shortens the life of a confident one: 90 -> 45, down to 30 in a third of tau.
    assert _decays_at(90, 1) == 10 * DAY_US
    # An expiration report ends it when it arrived, whatever the curve says.
    assert _decays_at(90, 0, expired=DAY_US) == DAY_US
    # A threshold of 0 keeps everything.
    assert _decays_at(90, 0, threshold=0) == NEVER


def test_the_score_now_is_zero_after_an_expiration() -> None:
    args = (np.array([0]), np.array([DAY_US]), np.array([90]), np.array([0]))
    tau, delta = one(30.0 * DAY_US), one(1.0)
    assert decay.score_at(0, *args, tau, delta).tolist() == [90]
    assert decay.score_at(DAY_US, *args, tau, delta).tolist() == [0]
    assert decay.score_at(
        15 * DAY_US, args[0], np.array([NEVER]), *args[2:], tau, delta
    ).tolist() == [45]


def test_scores_are_rounded_half_up() -> None:
    assert decay.rounded(np.array([0.4, 0.5, 49.99999, 100.2, -3.0])).tolist() == [0, 1, 50, 100, 0]


def test_models_by_kind_fall_back_to_other() -> None:
    config = DecayConfig.from_pairs(30, {"ip": (30, 0.5), "other": (365, 1.0)})
    assert config.model("ip") == DecayModel(30.0, 0.5)
    assert config.model("wallet") == config.model(None) == DecayModel(365.0, 1.0)
    assert DecayConfig(30).model("ip") == decay.DEFAULT_MODEL
    tau, delta = config.arrays(np.array(["ip", "sha256", "ip"], dtype=object))
    assert (tau / DAY_US).tolist() == [30.0, 365.0, 30.0]
    assert delta.tolist() == [0.5, 1.0, 0.5]


@pytest.mark.parametrize(("tau", "delta"), [(0, 1), (-1, 1), (30, 0), (30, float("nan"))])
def test_a_model_needs_positive_numbers(tau: float, delta: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        DecayModel(tau, delta)


def test_a_threshold_is_a_score() -> None:
    with pytest.raises(ValueError, match="0 to 100"):
        DecayConfig(101)
