"""Fast structural validation of STIX 2.1 objects.

An importer runs :func:`check_object` on every object of large bundles, so the checks are plain
dictionary and regular-expression work: no object model is built and nothing is copied. The
checks cover what the STIX 2.1 specification makes mandatory about an object's shape (type and
identifier form, required properties, common property types, timestamp order and reference
form). They leave value semantics to other modules: indicator patterns, hash formats and
address syntax are not looked at here, and unknown properties are allowed.

Findings are returned as :class:`Problem` values, never raised, so a caller can reject one object
and carry on with the rest of a bundle.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "ID_RE",
    "Problem",
    "check_bundle",
    "check_object",
    "detection_columns",
    "format_timestamp",
    "object_kind",
    "parse_timestamp",
    "random_ids",
    "references",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One structural defect of a STIX object: the property path and a plain-sentence reason."""

    field: str
    reason: str


_TYPE_PATTERN = r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]"
# RFC 4122 layout: lowercase hex, a version digit and the 10xx variant bits.
_UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
_UUID_SUFFIX_LEN: Final = 38  # "--" and the 36 characters of the UUID

ID_RE: Final = re.compile(rf"^{_TYPE_PATTERN}--{_UUID_PATTERN}\Z")
_TYPE_RE: Final = re.compile(_TYPE_PATTERN)
_NAME_RE: Final = re.compile(r"[a-z0-9_]{3,250}")
_TIMESTAMP_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z"
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Formatting works on UTC wall-clock time, so the naive epoch stands for UTC.
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)
_MICROSECOND: Final = timedelta(microseconds=1)


def parse_timestamp(value: str) -> int:
    """Return microseconds since the Unix epoch for an RFC 3339 UTC timestamp.

    The accepted form is ``YYYY-MM-DDTHH:MM:SS[.fraction]Z`` with 1 to 9 fraction digits; digits
    beyond microseconds are truncated. Leap seconds (``:60``) are refused because they have no
    position on the epoch scale. On failure a ``ValueError`` is raised whose message is a reason
    phrase such as ``"must be an RFC 3339 timestamp in UTC ending in Z, got '2020-13-01'"``.
    """
    if not isinstance(value, str):
        raise ValueError(f"must be an RFC 3339 timestamp in UTC ending in Z, got {_show(value)}")
    return _parse_timestamp(value)


@lru_cache(maxsize=4096)  # bundles repeat their timestamps (created = modified = ...)
def _parse_timestamp(value: str) -> int:
    if _TIMESTAMP_RE.fullmatch(value) is None:
        raise ValueError(f"must be an RFC 3339 timestamp in UTC ending in Z, got {_show(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"must be a real calendar date and time, got {_show(value)}") from None
    return (moment - _EPOCH) // _MICROSECOND


def format_timestamp(micros: int) -> str:
    """Return the STIX form ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` of microseconds since the epoch.

    Raises ``ValueError`` when the instant lies outside years 1 to 9999.
    """
    try:
        moment = _NAIVE_EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise ValueError(f"timestamp {micros} is outside years 1 to 9999") from None
    return moment.isoformat(timespec="microseconds") + "Z"


def _names(text: str) -> frozenset[str]:
    """Read a table of names written as whitespace-separated words."""
    return frozenset(text.split())


_SDO_TYPES: Final = _names(
    "attack-pattern campaign course-of-action grouping identity incident indicator"
    " infrastructure intrusion-set location malware malware-analysis note observed-data"
    " opinion report threat-actor tool vulnerability"
)
_SRO_TYPES: Final = frozenset({"relationship", "sighting"})
_SCO_TYPES: Final = _names(
    "artifact autonomous-system directory domain-name email-addr email-message file ipv4-addr"
    " ipv6-addr mac-addr mutex network-traffic process software url user-account"
    " windows-registry-key x509-certificate"
)
_KINDS: Final[dict[str, str]] = {
    **dict.fromkeys(_SDO_TYPES, "sdo"),
    **dict.fromkeys(_SRO_TYPES, "sro"),
    **dict.fromkeys(_SCO_TYPES, "sco"),
    "marking-definition": "marking",
    "bundle": "bundle",
    "language-content": "language-content",
    "extension-definition": "extension-definition",
}


def object_kind(type_name: str) -> str:
    """Classify a STIX type name.

    Returns one of ``"sdo"``, ``"sro"``, ``"sco"``, ``"marking"``, ``"bundle"``,
    ``"language-content"``, ``"extension-definition"`` or ``"custom"`` for any other name.
    """
    return _KINDS.get(type_name, "custom")


_COMMON: Final = ("spec_version", "created", "modified")
_KIND_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "sdo": _COMMON,
    "sro": _COMMON,
    "custom": _COMMON,
    "language-content": _COMMON,
    "extension-definition": _COMMON,
    "marking": ("spec_version", "created"),
    "sco": (),
}
_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "attack-pattern": ("name",),
    "campaign": ("name",),
    "course-of-action": ("name",),
    "grouping": ("context", "object_refs"),
    "identity": ("name",),
    "incident": ("name",),
    "indicator": ("pattern", "pattern_type", "valid_from"),
    "infrastructure": ("name",),
    "intrusion-set": ("name",),
    "malware": ("is_family",),
    "malware-analysis": ("product",),
    "note": ("content", "object_refs"),
    "observed-data": ("first_observed", "last_observed", "number_observed"),
    "opinion": ("opinion", "object_refs"),
    "report": ("name", "published", "object_refs"),
    "threat-actor": ("name",),
    "tool": ("name",),
    "vulnerability": ("name",),
    "relationship": ("relationship_type", "source_ref", "target_ref"),
    "sighting": ("sighting_of_ref",),
    "language-content": ("object_ref", "object_modified", "contents"),
    "extension-definition": ("created_by_ref", "name", "schema", "version", "extension_types"),
    "ipv4-addr": ("value",),
    "ipv6-addr": ("value",),
    "domain-name": ("value",),
    "url": ("value",),
    "email-addr": ("value",),
    "mac-addr": ("value",),
    "autonomous-system": ("number",),
    "directory": ("path",),
    "mutex": ("name",),
    "software": ("name",),
    "email-message": ("is_multipart",),
    "network-traffic": ("protocols",),
}

# Reference properties whose target type the specification fixes.
_REF_TARGETS: Final[dict[str, tuple[str, ...]]] = {
    "created_by_ref": ("identity",),
    "object_marking_refs": ("marking-definition",),
    "marking_ref": ("marking-definition",),
    "where_sighted_refs": ("identity", "location"),
    "observed_data_refs": ("observed-data",),
}
_REF_SUFFIXES: Final = ("_ref", "_refs")
_NESTED_REF_CONTAINERS: Final = frozenset({"granular_markings", "extensions", "body_multipart"})


class _Report:
    """Problems found so far, and the timestamps already parsed for order checks."""

    __slots__ = ("problems", "stamps")

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.stamps: dict[str, int] = {}

    def add(self, field: str, reason: str) -> None:
        self.problems.append(Problem(field, reason))


_Check = Callable[[_Report, str, Any], None]
_Rule = Callable[[dict[str, Any], _Report], None]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_between(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _check_ref(report: _Report, field: str, value: Any, targets: tuple[str, ...] | None) -> None:
    if not isinstance(value, str) or ID_RE.match(value) is None:
        report.add(field, f"must be an identifier type--uuid, got {_show(value)}")
    elif targets is not None and value[:-_UUID_SUFFIX_LEN] not in targets:
        wanted = " or ".join(targets)
        report.add(field, f"must reference a {wanted} object, got {_show(value)}")


def _check_ref_property(report: _Report, field: str, name: str, value: Any) -> None:
    targets = _REF_TARGETS.get(name)
    if name.endswith("_ref"):
        _check_ref(report, field, value, targets)
    elif not isinstance(value, list):
        report.add(field, f"must be a list of identifiers, got {_show(value)}")
    else:
        for index, item in enumerate(value):
            _check_ref(report, f"{field}[{index}]", item, targets)


def _walk_refs(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """Yield (path, name, value) of reference properties nested anywhere inside ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("x_"):
                continue
            if key.endswith(_REF_SUFFIXES):
                yield f"{path}.{key}", key, item
            else:
                yield from _walk_refs(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_refs(item, f"{path}[{index}]")


def references(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return ``(path, identifier)`` for every reference an object makes.

    Covers top-level ``*_ref`` and ``*_refs`` properties and those nested inside granular
    markings, extensions and email body parts; a list yields one entry per element with an
    indexed path such as ``"object_refs[2]"``. Custom properties (``x_`` names) and everything
    inside them are left out, as are non-string values; malformed identifiers are returned as
    they are, since :func:`check_object` reports them.
    """
    found: list[tuple[str, str]] = []
    for key, value in obj.items():
        # A plain loop over the top level: this runs once for every imported object.
        if key.endswith(_REF_SUFFIXES):
            if not key.startswith("x_"):
                _collect_ref(found, key, key, value)
        elif key in _NESTED_REF_CONTAINERS:
            for path, name, item in _walk_refs(value, key):
                _collect_ref(found, path, name, item)
    return found


def _collect_ref(found: list[tuple[str, str]], path: str, name: str, value: Any) -> None:
    if name.endswith("_ref"):
        if isinstance(value, str):
            found.append((path, value))
    elif isinstance(value, list):
        found.extend(
            (f"{path}[{index}]", item) for index, item in enumerate(value) if isinstance(item, str)
        )


# Checks of single properties.


def _timestamp(report: _Report, field: str, value: Any) -> None:
    try:
        report.stamps[field] = parse_timestamp(value)
    except ValueError as exc:
        report.add(field, str(exc))


def _spec_version(report: _Report, field: str, value: Any) -> None:
    if value != "2.1":
        report.add(field, f"must be '2.1', got {_show(value)}")


def _ref_property(report: _Report, field: str, value: Any) -> None:
    _check_ref_property(report, field, field, value)


def _granular_markings(report: _Report, field: str, value: Any) -> None:
    if not isinstance(value, list):
        report.add(field, f"must be a list of granular markings, got {_show(value)}")
        return
    for index, marking in enumerate(value):
        path = f"{field}[{index}]"
        if not isinstance(marking, dict):
            report.add(path, f"must be an object, got {_show(marking)}")
            continue
        selectors = marking.get("selectors")
        if not selectors or not _is_str_list(selectors):
            report.add(f"{path}.selectors", "must be a non-empty list of strings")
        has_ref, has_lang = "marking_ref" in marking, "lang" in marking
        if has_ref == has_lang:
            report.add(path, "must have exactly one of marking_ref and lang")
        if has_ref:
            _check_ref_property(
                report, f"{path}.marking_ref", "marking_ref", marking["marking_ref"]
            )
        if has_lang and not isinstance(marking["lang"], str):
            report.add(f"{path}.lang", f"must be a string, got {_show(marking['lang'])}")


def _external_references(report: _Report, field: str, value: Any) -> None:
    if not isinstance(value, list):
        report.add(field, f"must be a list of external references, got {_show(value)}")
        return
    for index, reference in enumerate(value):
        path = f"{field}[{index}]"
        if not isinstance(reference, dict):
            report.add(path, f"must be an object, got {_show(reference)}")
            continue
        source = reference.get("source_name")
        if not isinstance(source, str) or not source:
            report.add(f"{path}.source_name", f"must be a non-empty string, got {_show(source)}")


def _extensions(report: _Report, field: str, value: Any) -> None:
    if not isinstance(value, dict):
        report.add(field, f"must be an object, got {_show(value)}")
        return
    for key, extension in value.items():
        path = f"{field}.{key}"
        if not isinstance(extension, dict):
            report.add(path, f"must be an object, got {_show(extension)}")
            continue
        for ref_path, name, item in _walk_refs(extension, path):
            _check_ref_property(report, ref_path, name, item)


def _body_multipart(report: _Report, field: str, value: Any) -> None:
    if not isinstance(value, list):
        report.add(field, f"must be a list of MIME parts, got {_show(value)}")
        return
    for ref_path, name, item in _walk_refs(value, field):
        _check_ref_property(report, ref_path, name, item)


# A shape is a test of a property value and the phrase naming what the test expects.
_Shape = tuple[Callable[[Any], bool], str]
_STRING: Final[_Shape] = (lambda value: isinstance(value, str), "a string")
_BOOLEAN: Final[_Shape] = (lambda value: isinstance(value, bool), "true or false")
_OBJECT: Final[_Shape] = (lambda value: isinstance(value, dict), "an object")
_INTEGER: Final[_Shape] = (_is_int, "an integer")
_STRINGS: Final[_Shape] = (_is_str_list, "a list of strings")
_SOME_STRINGS: Final[_Shape] = (
    lambda value: bool(value) and _is_str_list(value),
    "a non-empty list of strings",
)
_OPINIONS: Final = ("strongly-disagree", "disagree", "neutral", "agree", "strongly-agree")


def _shaped(shape: _Shape) -> _Check:
    test, expected = shape

    def check(report: _Report, field: str, value: Any) -> None:
        if not test(value):
            report.add(field, f"must be {expected}, got {_show(value)}")

    return check


_TIMESTAMP_PROPERTIES: Final = _names(
    "created modified valid_from valid_until first_seen last_seen first_observed"
    " last_observed published object_modified"
)
_STANDARD_REF_PROPERTIES: Final = _names(
    "created_by_ref object_marking_refs object_refs object_ref source_ref target_ref"
    " sighting_of_ref observed_data_refs where_sighted_refs sample_refs sample_ref"
    " analysis_sco_refs host_vm_ref operating_system_ref installed_software_refs"
)
# Checks of properties common to all types, run whenever the property is present.
_CHECKS: Final[dict[str, _Check]] = {
    **dict.fromkeys(_TIMESTAMP_PROPERTIES, _timestamp),
    **dict.fromkeys(_STANDARD_REF_PROPERTIES, _ref_property),
    "spec_version": _spec_version,
    "granular_markings": _granular_markings,
    "external_references": _external_references,
    "extensions": _extensions,
    "body_multipart": _body_multipart,
    "labels": _shaped(_STRINGS),
    "confidence": _shaped((lambda value: _int_between(value, 0, 100), "an integer from 0 to 100")),
    "lang": _shaped(_STRING),
    "name": _shaped(_STRING),
    "description": _shaped(_STRING),
    "revoked": _shaped(_BOOLEAN),
}
# Standard names that need no check of their own; skipping the name pattern for them saves time.
_PLAIN_NAMES: Final = _names(
    "type id description pattern pattern_type pattern_version kill_chain_phases aliases"
    " relationship_type is_family value identity_class definition definition_type"
    " indicator_types malware_types defanged hashes count"
)
# Shapes of properties particular to one type, checked when present.
_TYPE_SHAPES: Final[dict[str, dict[str, _Shape]]] = {
    "indicator": {"pattern": _STRING, "pattern_type": _STRING, "pattern_version": _STRING},
    "relationship": {"relationship_type": _STRING},
    "malware": {"is_family": _BOOLEAN},
    "observed-data": {
        "number_observed": (
            lambda value: _int_between(value, 1, 999_999_999),
            "an integer from 1 to 999999999",
        )
    },
    "sighting": {
        "count": (
            lambda value: _int_between(value, 0, 999_999_999),
            "an integer from 0 to 999999999",
        )
    },
    "opinion": {"opinion": (lambda value: value in _OPINIONS, f"one of {', '.join(_OPINIONS)}")},
    "marking-definition": {"definition_type": _STRING, "definition": _OBJECT},
    "language-content": {"contents": _OBJECT},
    "extension-definition": {"extension_types": _SOME_STRINGS},
    **{
        name: {"value": _STRING}
        for name in _names("ipv4-addr ipv6-addr domain-name url email-addr mac-addr")
    },
    "autonomous-system": {"number": _INTEGER},
    "email-message": {"is_multipart": _BOOLEAN},
    "network-traffic": {"protocols": _STRINGS},
}

# Order of paired timestamps: (earlier, later, reason given on the later one).
_ORDERED: Final = (
    ("created", "modified", "must not be earlier than created"),
    ("first_seen", "last_seen", "must not be earlier than first_seen"),
    ("first_observed", "last_observed", "must not be earlier than first_observed"),
)


# Rules tying several properties of one type together, run after the property checks.


def _indicator(obj: dict[str, Any], report: _Report) -> None:
    stamps = report.stamps
    if (
        "valid_from" in stamps
        and "valid_until" in stamps
        and stamps["valid_until"] <= stamps["valid_from"]
    ):
        report.add("valid_until", "must be later than valid_from")


def _malware(obj: dict[str, Any], report: _Report) -> None:
    if obj.get("is_family") is True and "name" not in obj:
        report.add("name", "is required when is_family is true")


def _location(obj: dict[str, Any], report: _Report) -> None:
    has_latitude, has_longitude = "latitude" in obj, "longitude" in obj
    if has_latitude != has_longitude:
        missing = "longitude" if has_latitude else "latitude"
        report.add(missing, "is required together with the other coordinate")
    elif not ("region" in obj or "country" in obj or has_latitude):
        report.add("region", "one of region, country, or latitude and longitude is required")


def _malware_analysis(obj: dict[str, Any], report: _Report) -> None:
    if "result" not in obj and "analysis_sco_refs" not in obj:
        report.add("result", "is required when analysis_sco_refs is absent")


def _observed_data(obj: dict[str, Any], report: _Report) -> None:
    if ("object_refs" in obj) == ("objects" in obj):
        report.add("object_refs", "exactly one of object_refs and objects is required")


def _marking_definition(obj: dict[str, Any], report: _Report) -> None:
    # TLP 2.0 markings carry their meaning in an extension and have no definition_type.
    if "definition_type" in obj or "extensions" not in obj:
        for name in ("definition_type", "definition"):
            if name not in obj:
                report.add(name, "is required unless an extension defines the marking")


def _file(obj: dict[str, Any], report: _Report) -> None:
    if "hashes" not in obj and "name" not in obj:
        report.add("name", "is required when hashes is absent")


_ACCOUNT_NEUTRAL: Final = _names(
    "type id spec_version object_marking_refs granular_markings defanged"
)


def _user_account(obj: dict[str, Any], report: _Report) -> None:
    if obj.keys() <= _ACCOUNT_NEUTRAL:
        report.add("user_id", "or another property describing the account is required")


_RULES: Final[dict[str, _Rule]] = {
    "indicator": _indicator,
    "malware": _malware,
    "location": _location,
    "malware-analysis": _malware_analysis,
    "observed-data": _observed_data,
    "marking-definition": _marking_definition,
    "file": _file,
    "user-account": _user_account,
}


def _defines_new_sco(obj: dict[str, Any]) -> bool:
    """Whether a custom object declares itself an observable through an extension definition."""
    extensions = obj.get("extensions")
    if not isinstance(extensions, dict):
        return False
    return any(
        isinstance(extension, dict) and extension.get("extension_type") == "new-sco"
        for extension in extensions.values()
    )


def _check_id(obj: dict[str, Any], type_name: str, report: _Report) -> None:
    if "id" not in obj:
        report.add("id", "is required")
        return
    value = obj["id"]
    if not isinstance(value, str) or ID_RE.match(value) is None:
        report.add("id", f"must be an identifier {type_name}--uuid, got {_show(value)}")
    elif value[:-_UUID_SUFFIX_LEN] != type_name:
        report.add("id", f"must start with the object's type {type_name!r}, got {_show(value)}")


def check_object(obj: object) -> list[Problem]:
    """Return the structural problems of one STIX 2.1 object; an empty list means valid.

    Checks the type name and identifier, ``spec_version``, the properties required for the type,
    the form of common properties (timestamps, references, markings, external references,
    labels, confidence and the like), timestamp order and property names. Types the
    specification does not define are treated as custom domain objects, unless an extension
    declares them ``new-sco``. Properties named ``x_...`` are only checked for their name.
    """
    if not isinstance(obj, dict):
        return [Problem("", f"must be a JSON object, got {type(obj).__name__}")]
    if "type" not in obj:
        return [Problem("type", "is required")]
    type_name = obj["type"]
    if not isinstance(type_name, str) or _TYPE_RE.fullmatch(type_name) is None:
        return [
            Problem(
                "type", f"must be 3 to 250 characters of a-z, 0-9 and -, got {_show(type_name)}"
            )
        ]
    kind = _KINDS.get(type_name, "custom")
    if kind == "bundle":
        return [Problem("type", "a bundle is an envelope and cannot be one of its objects")]
    if kind == "custom" and _defines_new_sco(obj):
        kind = "sco"

    report = _Report()
    _check_id(obj, type_name, report)
    for key, value in obj.items():
        check = _CHECKS.get(key)
        if check is not None:
            check(report, key, value)
        elif key in _PLAIN_NAMES:
            continue
        elif not isinstance(key, str) or _NAME_RE.fullmatch(key) is None:
            report.add(str(key), "is not a property name: names are 3 to 250 of a-z, 0-9 and _")
        elif not key.startswith("x_") and key.endswith(_REF_SUFFIXES):
            _check_ref_property(report, key, key, value)

    for name in _KIND_REQUIRED[kind]:
        if name not in obj:
            report.add(name, "is required")
    for name in _REQUIRED.get(type_name, ()):
        if name not in obj:
            report.add(name, "is required")

    stamps = report.stamps
    for earlier, later, reason in _ORDERED:
        if earlier in stamps and later in stamps and stamps[later] < stamps[earlier]:
            report.add(later, reason)

    shapes = _TYPE_SHAPES.get(type_name)
    if shapes is not None:
        for name, (test, expected) in shapes.items():
            if name in obj and not test(obj[name]):
                report.add(name, f"must be {expected}, got {_show(obj[name])}")
    rule = _RULES.get(type_name)
    if rule is not None:
        rule(obj, report)
    return report.problems


def check_bundle(doc: object) -> list[Problem]:
    """Return the problems of a bundle's envelope; the objects inside are not examined.

    The envelope must be an object with ``type`` ``"bundle"``, an ``id`` of the form
    ``bundle--uuid`` and an ``objects`` list. STIX allows an empty bundle to omit ``objects``;
    it is required here so that callers can rely on it.
    """
    if not isinstance(doc, dict):
        return [Problem("", f"must be a JSON object, got {type(doc).__name__}")]
    problems: list[Problem] = []
    if "type" not in doc:
        problems.append(Problem("type", "is required"))
    elif doc["type"] != "bundle":
        problems.append(Problem("type", f"must be 'bundle', got {_show(doc['type'])}"))
    bundle_id = doc.get("id")
    if "id" not in doc:
        problems.append(Problem("id", "is required"))
    elif (
        not isinstance(bundle_id, str)
        or ID_RE.match(bundle_id) is None
        or not bundle_id.startswith("bundle--")
    ):
        problems.append(
            Problem("id", f"must be an identifier bundle--uuid, got {_show(bundle_id)}")
        )
    if "objects" not in doc:
        problems.append(Problem("objects", "is required"))
    elif not isinstance(doc["objects"], list):
        problems.append(Problem("objects", f"must be a list, got {_show(doc['objects'])}"))
    return problems


def random_ids(type_name: str, count: int, prefix: bytes | None = None) -> list[str]:
    """``count`` new identifiers ``<type_name>--<UUIDv4>``, in ascending order.

    Drawn from one read of the system's random source rather than a call per id, which is
    several times faster for the batches feeds create; sorted, so an index on ids grows in
    order. ``prefix`` (up to 6 random bytes the caller drew once) starts every UUID of the
    call: ids written together then also sit together in the id index instead of at random
    places all over it, and the other 74 random bits keep them unique.
    """
    raw = bytearray(os.urandom(16 * count))
    if prefix:
        if len(prefix) > 6:
            raise ValueError("an id prefix is at most 6 bytes")
        for start in range(len(prefix)):
            raw[start::16] = prefix[start : start + 1] * count
    raw[6::16] = bytes((b & 0x0F) | 0x40 for b in raw[6::16])
    raw[8::16] = bytes((b & 0x3F) | 0x80 for b in raw[8::16])
    text = raw.hex()
    head = f"{type_name}--"
    return sorted(
        f"{head}{text[i : i + 8]}-{text[i + 8 : i + 12]}-{text[i + 12 : i + 16]}-"
        f"{text[i + 16 : i + 20]}-{text[i + 20 : i + 32]}"
        for i in range(0, 32 * count, 32)
    )


def detection_columns(obj: Mapping[str, Any]) -> tuple[int | None, int | None, bool]:
    """``(confidence, valid_until, detect)`` of an object, as stored beside its content.

    Detection exports decide from these in SQL which indicators are active: ``valid_until``
    in microseconds (None when absent or unreadable), ``confidence`` when it is a number from
    0 to 100, and ``detect`` False when the object says it is not for detection
    (``x_qalqan_detect: false``, e.g. a MISP attribute without ``to_ids``).
    """
    confidence = obj.get("confidence")
    if not _int_between(confidence, 0, 100):
        confidence = None
    valid_until = obj.get("valid_until")
    until: int | None = None
    if isinstance(valid_until, str):
        try:
            until = parse_timestamp(valid_until)
        except ValueError:
            until = None
    return confidence, until, obj.get("x_qalqan_detect") is not False
