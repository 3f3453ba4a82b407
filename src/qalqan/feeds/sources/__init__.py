"""Feed sources: one module per kind, each registering one :class:`Source` subclass by name.

Adding a kind means adding a module here: every module of this package is imported when the
registry is first used, and ``@register`` puts its class in the registry. A source parses only;
it yields :mod:`qalqan.feeds.items` and keeps what it needs between runs (cursors, timestamps)
in ``job.state``, which is saved only when the run succeeds.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from qalqan.errors import InvalidInput
from qalqan.feeds.fetch import FetchLimits, Resource, TextLines, fetch
from qalqan.feeds.items import Item

__all__ = [
    "Job",
    "NoOptions",
    "Source",
    "SourceOptions",
    "make_source",
    "register",
    "source_kinds",
]


class SourceOptions(BaseModel):
    """Options of a source kind. Unknown options are refused; secret ones are never shown."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def public(self) -> dict[str, Any]:
        """The options as shown to people: secrets replaced by ``***``."""
        shown = self.model_dump(mode="json", exclude_defaults=True)
        return {k: ("***" if k in self.secret_fields and v else v) for k, v in shown.items()}


class NoOptions(SourceOptions):
    """A source kind without options."""


@dataclass(slots=True)
class Job:
    """What a source gets for one run: where to read, how much, and its saved state."""

    url: str
    feed_name: str
    limits: FetchLimits = field(default_factory=FetchLimits)
    state: dict[str, Any] = field(default_factory=dict)

    def fetch(self, url: str | None = None, *, conditional: bool = True) -> Resource | None:
        """Open ``url`` (the feed's URL by default); None when it has not changed since the last
        successful run — the server answered 304, or the content has the same SHA-256 as then.
        Remembers validators and digest for the next run."""
        url = url or self.url
        validators: dict[str, dict[str, str]] = self.state.setdefault("validators", {})
        digests: dict[str, str] = self.state.setdefault("digests", {})
        resource = fetch(url, self.limits, validators.get(url) if conditional else None)
        if resource is None:
            return None
        if resource.validators:
            validators[url] = resource.validators
        digest = _digest(resource)
        if conditional and digests.get(url) == digest:
            resource.close()
            return None
        digests[url] = digest
        return resource

    def lines(self, resource: Resource) -> TextLines:
        """The lines of a text resource (see :class:`TextLines`)."""
        return TextLines(resource.stream, self.limits.max_line)


def _digest(resource: Resource) -> str:
    """SHA-256 of the resource's bytes, leaving the stream at its start."""
    hasher = hashlib.sha256()
    stream = resource.stream
    while chunk := stream.read(1 << 20):
        hasher.update(chunk)
    stream.seek(0)
    return hasher.hexdigest()


class Source(ABC):
    """A kind of feed source. Subclasses set ``kind``, ``summary`` and ``options_model``."""

    kind: ClassVar[str]
    summary: ClassVar[str]
    options_model: ClassVar[type[SourceOptions]] = NoOptions
    # Whether values missing from a complete run expire (False where a run only sees what is
    # new, like a TAXII poll, or where objects carry their own lifecycle).
    expires_missing: ClassVar[bool] = True

    def __init__(self, options: SourceOptions):
        self.options = options

    @abstractmethod
    def read(self, job: Job) -> Iterator[Item]:
        """Yield what the source holds. Raises ``FetchError`` when it cannot be read at all and
        ``InvalidInput`` when it is not in the source's format."""


_REGISTRY: dict[str, type[Source]] = {}
_loaded = False


def register(cls: type[Source]) -> type[Source]:
    """Class decorator: make ``cls`` available under ``cls.kind``."""
    if cls.kind in _REGISTRY and _REGISTRY[cls.kind] is not cls:
        raise RuntimeError(f"two feed sources are called {cls.kind!r}")
    _REGISTRY[cls.kind] = cls
    return cls


def _load() -> dict[str, type[Source]]:
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True
    return _REGISTRY


def source_kinds() -> dict[str, type[Source]]:
    """Every registered source kind, by name."""
    return dict(sorted(_load().items()))


def _field_errors(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "options"
    return f"option {where}: {first['msg']}"


def make_source(kind: str, options: Mapping[str, Any]) -> Source:
    """An instance of source ``kind`` with ``options`` checked; InvalidInput names what is wrong."""
    cls = _load().get(kind)
    if cls is None:
        known = ", ".join(sorted(_REGISTRY))
        raise InvalidInput(f"unknown feed source {kind!r}; known: {known}", field="source")
    try:
        parsed = cls.options_model.model_validate(dict(options))
    except ValidationError as exc:
        raise InvalidInput(_field_errors(exc), field="options") from None
    return cls(parsed)
