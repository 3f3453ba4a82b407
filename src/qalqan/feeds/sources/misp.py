"""``misp-feed``: a MISP feed, or one MISP event file, read with PyMISP's object model.

The URL is either a feed (a directory, or its ``manifest.json``, mapping each event UUID to
its ``info``, ``timestamp`` and tags, beside one ``<uuid>.json`` file per event) or a single
event file (any other ``.json`` URL holding ``{"Event": {...}}``).

Reading is incremental: ``job.state["events"]`` keeps the manifest timestamp of every event
read. An event whose timestamp has not moved is not fetched again and yields
``Unchanged(origin=uuid)``; an event gone from the manifest yields nothing, so its values
expire. An event file that cannot be fetched or parsed is one ``Reject``; the others still come
through, and an event read before keeps its values (``Unchanged``) until it reads again.

Attribute types map to kinds: ``ip-src``/``ip-dst`` (and their ``|port`` forms) → ``ip`` (or
``cidr`` for a network), ``domain``/``hostname`` → ``domain``, ``domain|ip`` → both, ``url``
and absolute ``uri`` → ``url``, hashes and ``filename|<hash>`` → the hash, e-mail types →
``email``. ``link`` (a reference, not an indicator) and every other type are skipped. Tags
become labels, except TLP tags, which set the value's TLP (the most restrictive of the event's
and the attribute's).

Line numbers count what the run reads, in order: each manifest entry (event) and each
attribute of an event read, attributes inside MISP objects included.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Generator, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from pydantic import PositiveInt

from qalqan.domain.handling import TLP
from qalqan.errors import FetchError, InvalidInput
from qalqan.feeds.fetch import Resource, child_url, fetch
from qalqan.feeds.items import Context, Document, Item, Reject, Unchanged, Value
from qalqan.feeds.sources import Job, Source, SourceOptions, register

if TYPE_CHECKING:
    from pymisp import MISPAttribute, MISPEvent, MISPObject, MISPTag

__all__ = ["MispFeedOptions", "MispFeedSource"]

_MANIFEST = "manifest.json"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_MAX_DESCRIPTION = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_HASHES = ("md5", "sha1", "sha256", "sha512")
_EMAILS = (
    "email",
    "email-src",
    "email-dst",
    "email-reply-to",
    "target-email",
    "whois-registrant-email",
)
# The kind of each "|"-separated part of a MISP attribute type's value; None: not an indicator.
_KINDS: dict[str, tuple[str | None, ...]] = {
    "ip-src": ("ip",),
    "ip-dst": ("ip",),
    "ip-src|port": ("ip", None),
    "ip-dst|port": ("ip", None),
    "domain": ("domain",),
    "hostname": ("domain",),
    "domain|ip": ("domain", "ip"),
    "hostname|port": ("domain", None),
    "url": ("url",),
    "uri": ("url",),
    "malware-sample": (None, "md5"),
    **{name: (name,) for name in _HASHES},
    **{f"filename|{name}": (None, name) for name in _HASHES},
    **dict.fromkeys(_EMAILS, ("email",)),
}


class MispFeedOptions(SourceOptions):
    """``only_to_ids``: skip attributes not flagged for detection; ``max_events``: read only
    that many of the feed's most recent events (by manifest timestamp), the others count as
    gone."""

    only_to_ids: bool = False
    max_events: PositiveInt | None = None


def _micros(moment: object) -> int | None:
    """A PyMISP timestamp (a datetime or a date) as microseconds since the epoch."""
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return (aware - _EPOCH) // timedelta(microseconds=1)
    if isinstance(moment, date):
        return _micros(datetime.combine(moment, time(), UTC))
    return None


def _tags(tags: Iterable[MISPTag]) -> tuple[TLP | None, tuple[str, ...]]:
    """The most restrictive TLP among ``tags`` and the names of the other tags."""
    levels: list[TLP] = []
    labels: list[str] = []
    for tag in tags:
        name = tag.get("name")
        if not isinstance(name, str) or not name.strip():
            continue
        if name.lower().startswith("tlp:"):
            try:
                levels.append(TLP.parse(name))
                continue
            except ValueError:
                pass  # "tlp:ex:chr" and other non-levels stay labels
        labels.append(name.strip())
    return (max(levels) if levels else None), tuple(labels)


def _manifest(document: Any, where: str) -> dict[str, Any]:
    """The entries of a parsed feed manifest; InvalidInput naming ``where`` when it is not one."""
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        why = (
            f"{_MANIFEST} is not a MISP feed manifest: it must map event UUIDs to objects"
            if where == _MANIFEST
            else f"{where} is neither a MISP event nor a MISP feed manifest"
        )
        raise InvalidInput(why, field=where)
    return document


def _manifest_timestamp(entry: Mapping[str, Any]) -> int | None:
    """An entry's ``timestamp`` (seconds, as a number or a string of digits), or None."""
    value = entry.get("timestamp")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _json(data: bytes, where: str) -> Any:
    """``data`` parsed as JSON; InvalidInput naming ``where`` when it is not JSON."""
    try:
        return orjson.loads(data.removeprefix(codecs.BOM_UTF8))
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{where} is not JSON: {exc}", field=where) from None


def _load_event(document: Any, where: str) -> MISPEvent:
    """``document`` (``{"Event": {...}}``) as a PyMISP event; InvalidInput naming ``where``."""
    # Imported here: importing PyMISP takes about a second (it loads its whole API and the
    # warninglists), which every user of the source registry would otherwise pay.
    from pymisp import MISPEvent, PyMISPError

    if not isinstance(document, dict) or not isinstance(document.get("Event"), dict):
        raise InvalidInput(f'{where} is not a MISP event: no "Event" object', field=where)
    event = MISPEvent()
    try:
        event.load(document)
    # PyMISP trusts the shape of what it loads: a wrong type anywhere surfaces as a builtin error.
    except (PyMISPError, LookupError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{where} is not a valid MISP event: {exc}", field=where) from exc
    return event


def _attributes(event: MISPEvent) -> Iterator[tuple[MISPAttribute, MISPObject | None]]:
    """The event's attributes, then those of its objects, each with its object."""
    for attribute in event.attributes:
        yield attribute, None
    for obj in event.objects:
        if obj.get("deleted"):
            continue
        for attribute in obj.attributes:
            yield attribute, obj


def _parts(misp_type: str, value: str) -> list[tuple[str, str]] | str:
    """The ``(kind, raw value)`` pairs of an attribute value, or why it is malformed."""
    kinds = _KINDS.get(misp_type, ())
    if len(kinds) == 1:
        pieces = [value]
    else:
        # A file name may hold "|", an IP, a domain or a port does not: split on the right "|".
        pieces = value.rsplit("|", 1) if kinds[0] is None else value.split("|", 1)
        if len(pieces) != 2:
            return f"a {misp_type} value needs two parts separated by '|'"
    found: list[tuple[str, str]] = []
    for kind, piece in zip(kinds, pieces, strict=True):
        piece = piece.strip()
        if kind is None or not piece:
            continue
        if kind == "ip" and "/" in piece:
            kind = "cidr"
        if misp_type == "uri" and "://" not in piece:
            continue  # a path or a relative URI, not an indicator on its own
        found.append((kind, piece))
    return found


def _feed_urls(url: str) -> tuple[str, str | None]:
    """The directory URL of the feed and the name of the ``.json`` file the URL names (None
    when it names the directory)."""
    parts = urlsplit(url)
    if not parts.path.lower().endswith(".json"):
        return url, None
    directory, _, name = parts.path.rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, directory, "", "")), name


@register
class MispFeedSource(Source):
    kind = "misp-feed"
    summary = "a MISP feed (manifest.json and event files) or one MISP event file"
    options_model = MispFeedOptions

    def read(self, job: Job) -> Iterator[Item]:
        """Yield the values and one Document per event read, incrementally (see the module)."""
        directory, name = _feed_urls(job.url)
        # A failed event is retried next run even if the manifest has not changed.
        resource = job.fetch(
            child_url(directory, _MANIFEST) if name is None else job.url,
            conditional=not job.state.get("incomplete"),
        )
        if resource is None:
            yield Unchanged()
            return
        name = name or _MANIFEST
        with resource:
            document = _json(resource.stream.read(), name)
        if name.lower() != _MANIFEST and isinstance(document, dict) and "Event" in document:
            yield from self._single_event(document, name, job.url)
            return
        yield from self._feed(job, directory, _manifest(document, name))

    def _single_event(self, document: dict[str, Any], name: str, url: str) -> Iterator[Item]:
        # Read before loading: PyMISP consumes the dict, and invents a uuid when there is none.
        origin = document["Event"].get("uuid") if isinstance(document["Event"], dict) else None
        event = _load_event(document, name)
        if not isinstance(origin, str) or not _UUID.fullmatch(origin):
            raise InvalidInput(f"{name}: the event has no valid uuid", field="uuid")
        yield from self._event_items(event, origin.lower(), 0, _public_url(url))

    def _feed(self, job: Job, directory: str, manifest: dict[str, Any]) -> Iterator[Item]:
        options = self.options
        assert isinstance(options, MispFeedOptions)
        stamps = {key: _manifest_timestamp(entry) for key, entry in manifest.items()}
        chosen = {key for key, stamp in stamps.items() if stamp is not None}
        if options.max_events is not None and len(chosen) > options.max_events:
            newest = sorted(chosen, key=lambda key: (stamps[key], key), reverse=True)
            chosen = set(newest[: options.max_events])
        saved = job.state.get("events")
        previous: dict[str, Any] = saved if isinstance(saved, dict) else {}
        read: dict[str, int] = {}
        incomplete = False
        position = 0
        for key in manifest:
            position += 1
            stamp = stamps[key]
            if not _UUID.fullmatch(key):
                why = f"{key[:80]!r} in {_MANIFEST} is not an event UUID"
                yield Reject(position, why, field="uuid", raw=key[:200])
                continue
            if stamp is None:
                why = f"event {key} in {_MANIFEST} has no valid timestamp"
                yield Reject(position, why, field="timestamp", raw=key)
                continue
            if key not in chosen:
                continue
            origin = key.lower()
            saved_stamp = previous.get(origin)
            before = saved_stamp if type(saved_stamp) is int else None
            if before is not None and stamp <= before:
                read[origin] = before
                yield Unchanged(origin)
                continue
            url = child_url(directory, f"{key}.json")
            try:
                event = _fetch_event(job, url, f"{key}.json")
            except (FetchError, InvalidInput) as exc:
                incomplete = True
                yield Reject(position, f"event {key}: {exc.detail}", field="event", raw=key)
                if before is not None:
                    read[origin] = before
                    yield Unchanged(origin)
                continue
            read[origin] = stamp
            position = yield from self._event_items(event, origin, position, _public_url(url))
        job.state["events"] = read
        job.state["incomplete"] = incomplete

    def _event_items(
        self, event: MISPEvent, origin: str, position: int, url: str | None
    ) -> Generator[Item, None, int]:
        """The values of one event, then its Document; returns the last line number used."""
        options = self.options
        assert isinstance(options, MispFeedOptions)
        info = str(event.get("info") or "").strip()
        event_tlp, event_labels = _tags(event.tags)
        for attribute, obj in _attributes(event):
            position += 1
            misp_type = str(attribute.get("type"))
            to_ids = bool(attribute.get("to_ids"))
            if misp_type not in _KINDS or attribute.get("deleted"):
                continue
            if options.only_to_ids and not to_ids:
                continue
            value = attribute.get("value")
            parts = _parts(misp_type, value) if isinstance(value, str) else "no text value"
            if isinstance(parts, str):
                raw = str(value)[:200]
                yield Reject(position, f"event {origin}: {parts}", field="value", raw=raw)
                continue
            tlp, labels = _tags(attribute.tags)
            levels = [level for level in (event_tlp, tlp) if level is not None]
            comment = str(attribute.get("comment") or "").strip()
            first_seen = (
                attribute.get("first_seen")
                or (obj.get("first_seen") if obj is not None else None)
                or attribute.get("timestamp")
            )
            extra = [("misp_type", misp_type), ("misp_category", str(attribute.get("category")))]
            if obj is not None:
                extra.append(("misp_object", obj.name))
            context = Context(
                labels=tuple(dict.fromkeys(event_labels + labels)),
                description=(comment or info)[:_MAX_DESCRIPTION] or None,
                first_seen=_micros(first_seen),
                tlp=max(levels) if levels else None,
                detect=to_ids,
                extra=tuple(extra),
            )
            for kind, raw in parts:
                yield Value(position, raw, kind, context, origin)
        published = event.get("publish_timestamp") or event.get("date")
        yield Document(
            origin,
            info or origin,
            published=_micros(published),
            url=url,
            labels=event_labels,
        )
        return position


def _fetch_event(job: Job, url: str, name: str) -> MISPEvent:
    # Not job.fetch: the manifest timestamp already says whether an event changed, and
    # remembering HTTP validators for every event file would bloat the feed's state.
    resource: Resource | None = fetch(url, job.limits)
    assert resource is not None  # no validators sent, so never "not modified"
    with resource:
        data = resource.stream.read()
    return _load_event(_json(data, name), name)


def _public_url(url: str) -> str | None:
    """``url`` if people can follow it (http or https), else None."""
    return url if urlsplit(url).scheme.lower() in ("http", "https") else None
