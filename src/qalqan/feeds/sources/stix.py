"""``stix``: a STIX 2.1 bundle, or a JSON list of STIX objects, at a ``file://`` or HTTP(S) URL.

Each object is yielded as it is, numbered by its position in the document (from 0, as the
importer numbers a bundle's objects), and stored through the STIX importer, which validates it
and reports on it alone. The ``types`` option keeps only some object types, e.g.
``indicator,malware``. Objects carry their own lifecycle (``valid_until``, ``revoked``), so an
object missing from a later version of the document does not expire.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import BeforeValidator

from qalqan.errors import InvalidInput
from qalqan.feeds.items import Item, StixObject, Unchanged
from qalqan.feeds.sources import Job, Source, SourceOptions, register
from qalqan.intel.importer import load_document, objects_of

__all__ = ["ObjectTypes", "StixOptions", "StixSource"]

_TYPE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]")  # STIX 2.1 type names


def _object_types(raw: object) -> object:
    """STIX type names from a list or a comma-separated string; None keeps every type."""
    if raw is None:
        return None
    names = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(names, list | tuple):
        raise ValueError("list STIX object types, e.g. indicator,malware")
    kept: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"{name!r} is not a STIX object type")
        name = name.strip()
        if not name:
            continue
        if _TYPE_NAME_RE.fullmatch(name) is None:
            raise ValueError(f"{name!r} is not a STIX object type name")
        if name not in kept:
            kept.append(name)
    if not kept:
        raise ValueError("name at least one STIX object type, e.g. indicator,malware")
    return kept


ObjectTypes = Annotated[list[str] | None, BeforeValidator(_object_types)]
"""An option listing STIX object types (a list, or a comma-separated string); None: all."""


def _keeps_type(types: list[str] | None, obj: Any) -> bool:
    """Whether the ``types`` filter lets ``obj`` through. Something that is not a JSON object
    always does, so that the importer reports it instead of the filter hiding it."""
    if types is None or not isinstance(obj, dict):
        return True
    return obj.get("type") in types


class StixOptions(SourceOptions):
    """Options of the ``stix`` source."""

    types: ObjectTypes = None


def _objects(document: Any) -> list[Any]:
    """The objects of a bundle or a list; one object alone only if it looks like STIX."""
    if isinstance(document, dict) and document.get("type") != "bundle":
        kind, ident = document.get("type"), document.get("id")
        if not (isinstance(kind, str) and isinstance(ident, str) and ident.startswith(f"{kind}--")):
            shown = f"a JSON object of type {kind!r}" if kind else "a JSON object without a type"
            raise InvalidInput(
                f"expected a STIX 2.1 bundle or a JSON list of STIX objects, got {shown}",
                field="type",
            )
    return objects_of(document)


@register
class StixSource(Source):
    kind = "stix"
    summary = "a STIX 2.1 bundle or a JSON list of STIX objects; types=... keeps some types"
    options_model = StixOptions
    expires_missing = False

    def read(self, job: Job) -> Iterator[Item]:
        """Yield each object of the document at ``job.url`` (``Unchanged`` on HTTP 304).
        Raises ``InvalidInput`` if the document is not JSON or not a bundle or list."""
        options = self.options
        assert isinstance(options, StixOptions)
        resource = job.fetch()
        if resource is None:
            yield Unchanged()
            return
        with resource:
            data = resource.stream.read()
        for index, obj in enumerate(_objects(load_document(data, job.url))):
            if _keeps_type(options.types, obj):
                yield StixObject(index, obj)
