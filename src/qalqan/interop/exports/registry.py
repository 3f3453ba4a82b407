"""The export formats by name. A format is a module of this package that defines ``FORMAT``:
adding one is adding that module, nothing else."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Mapping

from qalqan.interop.exports.base import ExportFormat

__all__ = ["formats", "get_format"]

_NOT_FORMATS = frozenset({"base", "registry", "service"})


@functools.cache
def formats() -> Mapping[str, ExportFormat]:
    """Every export format, by name, in name order."""
    package = __name__.rpartition(".")[0]
    found: dict[str, ExportFormat] = {}
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if info.name in _NOT_FORMATS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        fmt = getattr(module, "FORMAT", None)
        if isinstance(fmt, ExportFormat):
            found[fmt.name] = fmt
    return dict(sorted(found.items()))


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; ValueError naming the known ones."""
    fmt = formats().get(name)
    if fmt is None:
        raise ValueError(f"unknown export format {name!r}; use one of {', '.join(formats())}")
    return fmt
