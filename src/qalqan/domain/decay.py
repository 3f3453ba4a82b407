"""How the confidence of an indicator decays: the polynomial model of MISP's decaying models,
vectorized over NumPy arrays so that a million indicators are scored in one pass.

The score of an indicator ``t`` after its decay started (its *reset*)::

    score(t) = base * (1 - (t / τ)^(1/δ))       for 0 ≤ t ≤ τ, and 0 after τ

``τ`` (days) is how long the indicator lives, ``δ`` how the decay bends: below 1 the score
holds near its base and falls late, 1 is a straight line, above 1 it falls early and then
lingers. Both are chosen per observable kind (:class:`DecayModel`): an address changes hands in
weeks, a file hash names the same file for years.

The rules the rest of the node builds on, all here:

- **base**: the indicator's ``confidence``, or :data:`DEFAULT_BASE` (50, STIX "medium") when it
  has none; each ``sighting`` report raises it by :data:`SIGHTING_RAISE` points, up to 100
  (:func:`raised_base`);
- **false positives** halve what the score starts from, once per report
  (:func:`effective_base`): base * 0.5^n;
- **cut-off**: an indicator takes part in detection while its score is at least
  :func:`cutoff` — the threshold, or half its (raised, not halved) base when that is lower, so
  intelligence its producer marked as doubtful is not dropped on arrival (the confidence floor
  of exports and sweeps is the knob for that) but still decays out, and a single
  false-positive report takes out any indicator whose base is under twice the threshold;
- **expiration**: an ``expiration`` report sets the score to 0 from the moment it arrived.

Times are microseconds since the epoch, like everywhere in the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DAY_US",
    "DEFAULT_BASE",
    "DEFAULT_MODEL",
    "FALSE_POSITIVE_FACTOR",
    "KINDS",
    "NEVER",
    "OTHER",
    "SIGHTING_RAISE",
    "DecayConfig",
    "DecayModel",
    "crossing_time",
    "cutoff",
    "decays_at",
    "effective_base",
    "raised_base",
    "rounded",
    "score",
    "score_at",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAY_US: Final = 86_400 * 1_000_000
DEFAULT_BASE: Final = 50
SIGHTING_RAISE: Final = 5
FALSE_POSITIVE_FACTOR: Final = 0.5
KINDS: Final[tuple[str, ...]] = (
    "ip",
    "cidr",
    "domain",
    "url",
    "email",
    "md5",
    "sha1",
    "sha256",
    "sha512",
)
OTHER: Final = "other"
# decays_at of an indicator that never falls below its cut-off (stored as null).
NEVER: Final = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class DecayModel:
    """τ (days until the score reaches 0) and δ (the bend of the curve) of one kind."""

    tau_days: float
    delta: float

    def __post_init__(self) -> None:
        if not (self.tau_days > 0 and np.isfinite(self.tau_days)):
            raise ValueError(f"tau must be a positive number of days, not {self.tau_days}")
        if not (self.delta > 0 and np.isfinite(self.delta)):
            raise ValueError(f"delta must be a positive number, not {self.delta}")

    @property
    def tau_us(self) -> float:
        """τ in microseconds."""
        return self.tau_days * DAY_US


DEFAULT_MODEL: Final = DecayModel(365.0, 1.0)


@dataclass(frozen=True, slots=True)
class DecayConfig:
    """The threshold (0-100) and the model of each kind; kinds without one use ``other``'s,
    or :data:`DEFAULT_MODEL`."""

    threshold: int
    models: Mapping[str, DecayModel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 100:
            raise ValueError(f"the threshold must be from 0 to 100, not {self.threshold}")

    @classmethod
    def from_pairs(cls, threshold: int, models: Mapping[str, tuple[float, float]]) -> DecayConfig:
        """A configuration from ``{kind: (tau_days, delta)}``, as settings hold it."""
        return cls(threshold, {k: DecayModel(float(t), float(d)) for k, (t, d) in models.items()})

    def model(self, kind: str | None) -> DecayModel:
        """The model of ``kind`` (None or unknown: ``other``)."""
        found = self.models.get(kind or OTHER) or self.models.get(OTHER)
        return found or DEFAULT_MODEL

    def arrays(self, kinds: npt.NDArray[np.object_]) -> tuple[FloatArray, FloatArray]:
        """τ (µs) and δ of each kind in ``kinds``, as arrays."""
        tau = np.empty(len(kinds), dtype=np.float64)
        delta = np.empty(len(kinds), dtype=np.float64)
        for kind in set(kinds.tolist()):
            model = self.model(kind)
            where = kinds == kind
            tau[where] = model.tau_us
            delta[where] = model.delta
        return tau, delta


def raised_base(confidence: int | None, sightings: int) -> int:
    """The base of an indicator: its confidence (or :data:`DEFAULT_BASE`) raised by
    :data:`SIGHTING_RAISE` per sighting report, at most 100."""
    start = DEFAULT_BASE if confidence is None else confidence
    return max(0, min(100, start + SIGHTING_RAISE * max(0, sightings)))


def effective_base(base: FloatArray | IntArray, false_positives: IntArray) -> FloatArray:
    """What the score decays from: ``base`` halved once per false-positive report."""
    return np.asarray(base, dtype=np.float64) * FALSE_POSITIVE_FACTOR ** np.maximum(
        np.asarray(false_positives, dtype=np.float64), 0.0
    )


def cutoff(base: FloatArray | IntArray, threshold: float) -> FloatArray:
    """The score below which an indicator leaves detection: the threshold, or half its base
    (before false positives) when that is lower."""
    return np.minimum(float(threshold), np.asarray(base, dtype=np.float64) / 2.0)


def score(base: FloatArray, t: FloatArray, tau: FloatArray, delta: FloatArray) -> FloatArray:
    """The score ``t`` µs after the reset: base * (1 - (t/τ)^(1/δ)), within [0, base]. A
    negative ``t`` (a reset in the future) counts as 0."""
    ratio = np.clip(np.asarray(t, dtype=np.float64) / tau, 0.0, 1.0)
    raw = base * (1.0 - ratio ** (1.0 / delta))
    return np.clip(raw, 0.0, np.maximum(base, 0.0))


def crossing_time(
    base: FloatArray, cut: FloatArray, tau: FloatArray, delta: FloatArray
) -> FloatArray:
    """µs after the reset when the score falls below ``cut``: τ * (1 - cut/base)^δ; 0 when it
    starts at or below it; ``inf`` when it never does (a cut-off of 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(base > 0, 1.0 - cut / np.where(base > 0, base, 1.0), 0.0)
    t = tau * np.clip(share, 0.0, 1.0) ** delta
    t = np.where(base <= cut, 0.0, t)
    return np.where(cut <= 0, np.inf, t)


def decays_at(
    reset_at: IntArray,
    expired_at: IntArray,
    base: FloatArray | IntArray,
    false_positives: IntArray,
    tau: FloatArray,
    delta: FloatArray,
    threshold: float,
) -> IntArray:
    """When each indicator leaves detection (µs), :data:`NEVER` if it never does.
    ``expired_at`` holds :data:`NEVER` where no expiration was reported."""
    start = effective_base(base, false_positives)
    t = crossing_time(start, cutoff(base, threshold), tau, delta)
    finite = np.isfinite(t)
    natural = np.full(len(t), NEVER, dtype=np.int64)
    # To the nearest microsecond: finer than any clock that compares with it.
    natural[finite] = np.asarray(reset_at, dtype=np.int64)[finite] + np.rint(t[finite]).astype(
        np.int64
    )
    return np.minimum(natural, np.asarray(expired_at, dtype=np.int64))


def rounded(values: FloatArray) -> npt.NDArray[np.int16]:
    """Scores as the integers 0-100 that are stored (half up)."""
    return np.clip(np.floor(values + 0.5), 0, 100).astype(np.int16)


def score_at(
    now: int,
    reset_at: IntArray,
    expired_at: IntArray,
    base: FloatArray | IntArray,
    false_positives: IntArray,
    tau: FloatArray,
    delta: FloatArray,
) -> npt.NDArray[np.int16]:
    """The integer score of each indicator at ``now`` (µs); 0 once an expiration was
    reported. ``expired_at`` holds :data:`NEVER` where none was."""
    start = effective_base(base, false_positives)
    t = (now - np.asarray(reset_at, dtype=np.int64)).astype(np.float64)
    live = score(start, t, tau, delta)
    live = np.where(np.asarray(expired_at, dtype=np.int64) <= now, 0.0, live)
    return rounded(live)
