"""Handling values: TLP 2.0 levels, distribution levels and the official TLP marking objects.

TLP levels are ordered from least to most restrictive; ``AMBER+STRICT`` is a level of its own
between ``AMBER`` and ``RED``, never treated as ``AMBER``.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "OFFICIAL_MARKING_IDS",
    "TLP",
    "TLP_EXTENSION_ID",
    "Distribution",
    "marking_object",
    "tlp_from_marking_id",
]

TLP_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"


class TLP(IntEnum):
    """TLP 2.0 levels; the integer order is the order of restriction."""

    CLEAR = 0
    GREEN = 1
    AMBER = 2
    AMBER_STRICT = 3
    RED = 4

    @property
    def label(self) -> str:
        """The level as written in TLP 2.0, e.g. ``AMBER+STRICT``."""
        return self.name.replace("_", "+")

    @property
    def marking_id(self) -> str:
        """The official STIX marking-definition id of this level."""
        return _TLP2_IDS[self]

    @classmethod
    def parse(cls, text: str) -> TLP:
        """``'amber+strict'``, ``'TLP:GREEN'``, ``'white'`` (TLP 1.0) → the level; ValueError."""
        # A "+" in an unencoded query string arrives as a space: "amber strict".
        key = text.strip().upper().removeprefix("TLP:")
        key = key.replace("+", "_").replace("-", "_").replace(" ", "_")
        if key == "WHITE":
            return cls.CLEAR
        try:
            return cls[key]
        except KeyError:
            names = ", ".join(level.label.lower() for level in cls)
            raise ValueError(f"unknown TLP level {text!r}; use one of {names}") from None


class Distribution(StrEnum):
    """Who receives an object (see the handling rules in the design)."""

    ORGANIZATION = "organization"
    NODE = "node"
    CONNECTED = "connected"
    ALL = "all"
    SHARING_GROUP = "sharing_group"

    @classmethod
    def parse(cls, text: str) -> Distribution:
        """``'sharing-group'`` or ``'node'`` → the level; ValueError naming the valid ones."""
        try:
            return cls(text.strip().lower().replace("-", "_"))
        except ValueError:
            names = ", ".join(d.value for d in cls)
            raise ValueError(f"unknown distribution {text!r}; use one of {names}") from None


_TLP2_IDS: dict[TLP, str] = {
    TLP.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    TLP.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    TLP.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    TLP.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    TLP.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
# TLP 1.0 markings as defined in STIX 2.1 itself; read as their TLP 2.0 equivalents.
_TLP1_IDS: dict[str, TLP] = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": TLP.CLEAR,
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": TLP.GREEN,
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": TLP.AMBER,
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": TLP.RED,
}
_BY_ID: dict[str, TLP] = {**{v: k for k, v in _TLP2_IDS.items()}, **_TLP1_IDS}
# Every marking-definition id with a fixed meaning: references to them need no stored object.
OFFICIAL_MARKING_IDS: frozenset[str] = frozenset(_BY_ID)


def tlp_from_marking_id(marking_id: str) -> TLP | None:
    """The TLP level an official marking-definition id stands for, or None."""
    return _BY_ID.get(marking_id)


def marking_object(level: TLP) -> dict[str, Any]:
    """The official TLP 2.0 marking-definition object of ``level``, as STIX 2.1 JSON."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": level.marking_id,
        "created": "2022-10-01T00:00:00.000Z",
        "name": f"TLP:{level.label}",
        "extensions": {
            TLP_EXTENSION_ID: {
                "extension_type": "property-extension",
                "tlp_2_0": level.label.lower(),
            }
        },
    }
