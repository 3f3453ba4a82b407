"""Every module says what it exports, and exports only what exists."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import qalqan


def _modules() -> list[str]:
    names = ["qalqan"]
    for info in pkgutil.walk_packages(qalqan.__path__, "qalqan."):
        if ".migrations" not in info.name:
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_module_declares_an_existing_public_surface(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names {symbol}, which does not exist"
    assert module.__doc__, f"{name} has no docstring"
