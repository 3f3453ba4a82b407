"""Structural validation of STIX 2.1 objects, bundles, references and timestamps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qalqan.domain.stix import (
    ID_RE,
    Problem,
    check_bundle,
    check_object,
    format_timestamp,
    object_kind,
    parse_timestamp,
    references,
)

ATTACK_ICS = Path(__file__).parents[2] / ".." / "shared" / "data" / "attack" / "ics-attack.json"

IDENTITY = "identity--c123cf37-4aaa-4c02-87b7-722c7f1df9c8"
MARKING = "marking-definition--c0a82a60-1149-4a7c-bf3c-f01e2dbc9401"
INDICATOR = "indicator--b1baab2b-a8ee-4e49-896a-f22412306cb7"
MALWARE = "malware--3de15918-20b9-4c90-83d5-674d115f1fdc"
FILE = "file--3d9c68a8-f060-429f-9dd4-95ac733a25c2"
CREATED = "2024-03-01T10:00:00.000Z"
MODIFIED = "2024-03-02T11:30:00.123Z"
TLP_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"


def sdo(type_name: str, uuid: str, **properties: Any) -> dict[str, Any]:
    """A domain object with the common properties filled in."""
    return {
        "type": type_name,
        "spec_version": "2.1",
        "id": f"{type_name}--{uuid}",
        "created": CREATED,
        "modified": MODIFIED,
        **properties,
    }


def changed(obj: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` with changes applied; a change to ``None`` removes the property."""
    copy = {**obj, **changes}
    return {key: value for key, value in copy.items() if value is not None}


def indicator(**changes: Any) -> dict[str, Any]:
    """A valid indicator, changed as asked."""
    obj = sdo(
        "indicator",
        "b1baab2b-a8ee-4e49-896a-f22412306cb7",
        created_by_ref=IDENTITY,
        name="Poison Ivy C2",
        indicator_types=["malicious-activity"],
        pattern="[ipv4-addr:value = '198.51.100.7']",
        pattern_type="stix",
        valid_from="2024-03-01T00:00:00Z",
        labels=["c2"],
        confidence=80,
        object_marking_refs=[MARKING],
        external_references=[{"source_name": "vendor", "url": "https://example.org/r/1"}],
    )
    return changed(obj, changes)


VALID = {
    "indicator": indicator(),
    "malware family": sdo(
        "malware", "3de15918-20b9-4c90-83d5-674d115f1fdc", name="Poison Ivy", is_family=True
    ),
    "malware instance": sdo(
        "malware", "3de15918-20b9-4c90-83d5-674d115f1fdc", is_family=False, sample_refs=[FILE]
    ),
    "relationship": sdo(
        "relationship",
        "f26aaa7c-55d9-42aa-8d8f-fbf5f6f10889",
        relationship_type="indicates",
        source_ref=INDICATOR,
        target_ref=MALWARE,
    ),
    "report": sdo(
        "report",
        "c9ac798f-8c71-420b-942a-3c089890a98f",
        name="Weekly",
        published="2024-03-03T00:00:00Z",
        object_refs=[INDICATOR, MALWARE],
        granular_markings=[{"selectors": ["name"], "marking_ref": MARKING}],
    ),
    "identity": sdo(
        "identity", "c123cf37-4aaa-4c02-87b7-722c7f1df9c8", name="CERT", identity_class="group"
    ),
    "sighting": sdo(
        "sighting",
        "52bb92a3-4aa7-419d-ab63-95d59693ed18",
        sighting_of_ref=INDICATOR,
        count=0,
        first_seen="2024-03-01T00:00:00Z",
        last_seen="2024-03-01T00:00:00Z",
        where_sighted_refs=[IDENTITY],
    ),
    "observed-data": sdo(
        "observed-data",
        "ff49a60f-0905-4422-a25d-34193c22a90b",
        first_observed="2024-03-01T00:00:00Z",
        last_observed="2024-03-01T01:00:00Z",
        number_observed=1,
        object_refs=[FILE],
    ),
    "location by coordinates": sdo(
        "location", "2c3ad8ac-426c-4c00-8d29-d7a924c941db", latitude=41.3, longitude=69.2
    ),
    "opinion": sdo(
        "opinion", "b9c4602c-9313-4a1b-b30b-bcf33fb0c9dc", opinion="agree", object_refs=[MALWARE]
    ),
    "marking statement": {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": MARKING,
        "created": CREATED,
        "definition_type": "statement",
        "definition": {"statement": "Copyright 2024, the authors."},
    },
    "TLP 2.0 marking": {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        "created": "2022-10-01T00:00:00.000Z",
        "name": "TLP:CLEAR",
        "extensions": {TLP_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": "clear"}},
    },
    "ipv4-addr": {
        "type": "ipv4-addr",
        "id": "ipv4-addr--0416e03b-f4e7-449f-b727-49483d2a9b77",
        "value": "198.51.100.7",
    },
    "domain-name without spec_version": {
        "type": "domain-name",
        "id": "domain-name--0416e03b-f4e7-449f-b727-49483d2a9b77",
        "value": "example.org",
    },
    "file by hash": {
        "type": "file",
        "spec_version": "2.1",
        "id": FILE,
        "hashes": {"SHA-256": "ab" * 32},
        "extensions": {"archive-ext": {"contains_refs": [FILE]}},
    },
    "email-message": {
        "type": "email-message",
        "id": "email-message--0416e03b-f4e7-449f-b727-49483d2a9b77",
        "is_multipart": True,
        "body_multipart": [{"body_raw_ref": FILE}],
    },
    "network-traffic": {
        "type": "network-traffic",
        "id": "network-traffic--0416e03b-f4e7-449f-b727-49483d2a9b77",
        "src_ref": "ipv4-addr--0416e03b-f4e7-449f-b727-49483d2a9b77",
        "protocols": ["ipv4", "tcp"],
    },
    "user-account": {
        "type": "user-account",
        "id": "user-account--0416e03b-f4e7-449f-b727-49483d2a9b77",
        "account_login": "root",
    },
    "x-mitre-tactic": sdo(
        "x-mitre-tactic",
        "0416e03b-f4e7-449f-b727-49483d2a9b77",
        name="Inhibit Response Function",
        x_mitre_shortname="inhibit-response-function",
        x_mitre_version="1.0",
        x_mitre_data_source_ref="",
    ),
    "custom observable declared by an extension": {
        "type": "x-acme-beacon",
        "id": "x-acme-beacon--0416e03b-f4e7-449f-b727-49483d2a9b77",
        "extensions": {
            "extension-definition--2c3ad8ac-426c-4c00-8d29-d7a924c941db": {
                "extension_type": "new-sco"
            }
        },
    },
    "language-content": sdo(
        "language-content",
        "0416e03b-f4e7-449f-b727-49483d2a9b77",
        object_ref=MALWARE,
        object_modified=MODIFIED,
        contents={"ru": {"name": "Ядовитый плющ"}},
    ),
}


def variant(valid: str, /, **changes: Any) -> dict[str, Any]:
    """The valid object named ``valid``, changed as asked."""
    return changed(VALID[valid], changes)


@pytest.mark.parametrize("obj", VALID.values(), ids=VALID.keys())
def test_valid_objects_have_no_problem(obj: dict[str, Any]) -> None:
    assert check_object(obj) == []


BAD: list[tuple[str, object, str, str]] = [
    ("not an object", ["indicator"], "", "JSON object, got list"),
    ("missing type", {"id": INDICATOR}, "type", "is required"),
    ("short type", indicator(type="ab"), "type", "3 to 250"),
    ("bundle as object", indicator(type="bundle"), "type", "envelope"),
    ("missing name", sdo("tool", "0416e03b-f4e7-449f-b727-49483d2a9b77"), "name", "is required"),
    ("missing pattern", indicator(pattern=None), "pattern", "is required"),
    ("missing id", indicator(id=None), "id", "is required"),
    ("bad id", indicator(id="indicator--1234"), "id", "indicator--uuid"),
    (
        "uppercase uuid",
        indicator(id=INDICATOR.upper().replace("INDICATOR", "indicator")),
        "id",
        "indicator--uuid",
    ),
    ("id prefix mismatch", indicator(id=MALWARE), "id", "must start with the object's type"),
    ("bad timestamp", indicator(modified="2020-13-01"), "modified", "got '2020-13-01'"),
    ("impossible date", indicator(created="2023-02-29T00:00:00Z"), "created", "calendar"),
    (
        "modified before created",
        indicator(modified="2024-02-01T00:00:00Z"),
        "modified",
        "earlier than created",
    ),
    (
        "valid_until not after valid_from",
        indicator(valid_until="2024-03-01T00:00:00Z"),
        "valid_until",
        "later than valid_from",
    ),
    ("STIX 2.0", indicator(spec_version="2.0"), "spec_version", "got '2.0'"),
    ("missing spec_version", indicator(spec_version=None), "spec_version", "is required"),
    ("bad created_by_ref", indicator(created_by_ref=MALWARE), "created_by_ref", "identity"),
    ("empty standard ref", indicator(created_by_ref=""), "created_by_ref", "type--uuid"),
    (
        "marking ref to a non-marking",
        indicator(object_marking_refs=[IDENTITY]),
        "object_marking_refs[0]",
        "marking-definition",
    ),
    (
        "marking refs not a list",
        indicator(object_marking_refs=MARKING),
        "object_marking_refs",
        "list of identifiers",
    ),
    (
        "granular marking without selectors",
        indicator(granular_markings=[{"marking_ref": MARKING}]),
        "granular_markings[0].selectors",
        "non-empty list",
    ),
    (
        "granular marking with both",
        indicator(
            granular_markings=[{"selectors": ["name"], "marking_ref": MARKING, "lang": "en"}]
        ),
        "granular_markings[0]",
        "exactly one",
    ),
    (
        "external reference without source",
        indicator(external_references=[{"url": "x"}]),
        "external_references[0].source_name",
        "non-empty string",
    ),
    ("labels not strings", indicator(labels=["a", 1]), "labels", "list of strings"),
    ("confidence out of range", indicator(confidence=101), "confidence", "0 to 100"),
    ("confidence is a bool", indicator(confidence=True), "confidence", "0 to 100"),
    ("revoked not bool", indicator(revoked="no"), "revoked", "true or false"),
    ("extensions not an object", indicator(extensions=[]), "extensions", "an object"),
    (
        "dash in a property name",
        indicator(**{"x-acme-score": 3}),
        "x-acme-score",
        "not a property name",
    ),
    ("short property name", indicator(ab=1), "ab", "not a property name"),
    ("uppercase custom name", indicator(x_Acme=1), "x_Acme", "not a property name"),
    (
        "bad ref in custom object",
        variant("x-mitre-tactic", tactic_refs=["x"]),
        "tactic_refs[0]",
        "type--uuid",
    ),
    (
        "custom object without created",
        variant("x-mitre-tactic", created=None),
        "created",
        "is required",
    ),
    (
        "custom object without spec_version",
        variant("x-mitre-tactic", spec_version=None),
        "spec_version",
        "is required",
    ),
    (
        "malware family without name",
        variant("malware family", name=None),
        "name",
        "is_family is true",
    ),
    ("name not a string", variant("malware family", name=["Poison Ivy"]), "name", "a string"),
    (
        "is_family not bool",
        variant("malware instance", is_family="yes"),
        "is_family",
        "true or false",
    ),
    (
        "location without place",
        sdo("location", "2c3ad8ac-426c-4c00-8d29-d7a924c941db"),
        "region",
        "one of region",
    ),
    (
        "latitude alone",
        sdo("location", "2c3ad8ac-426c-4c00-8d29-d7a924c941db", latitude=1.0),
        "longitude",
        "is required",
    ),
    ("opinion outside the scale", variant("opinion", opinion="meh"), "opinion", "one of"),
    (
        "observed-data count zero",
        variant("observed-data", number_observed=0),
        "number_observed",
        "1 to 999999999",
    ),
    (
        "last_observed before first",
        variant("observed-data", last_observed="2023-01-01T00:00:00Z"),
        "last_observed",
        "earlier than first_observed",
    ),
    (
        "observed-data with both object_refs and objects",
        variant("observed-data", objects={"0": {"type": "file", "name": "a.exe"}}),
        "object_refs",
        "exactly one",
    ),
    ("sighting count negative", variant("sighting", count=-1), "count", "0 to 999999999"),
    (
        "last_seen before first_seen",
        variant("sighting", last_seen="2023-01-01T00:00:00Z"),
        "last_seen",
        "earlier than first_seen",
    ),
    (
        "where sighted a malware",
        variant("sighting", where_sighted_refs=[MALWARE]),
        "where_sighted_refs[0]",
        "identity or location",
    ),
    (
        "statement marking without definition",
        variant("marking statement", definition=None),
        "definition",
        "is required",
    ),
    (
        "marking without definition_type or extensions",
        variant("marking statement", definition_type=None),
        "definition_type",
        "is required",
    ),
    ("marking without created", variant("TLP 2.0 marking", created=None), "created", "is required"),
    (
        "marking definition not an object",
        variant("marking statement", definition="x"),
        "definition",
        "an object",
    ),
    (
        "SCO with spec_version 2.0",
        variant("ipv4-addr", spec_version="2.0"),
        "spec_version",
        "got '2.0'",
    ),
    ("SCO value not a string", variant("ipv4-addr", value=3232235777), "value", "a string"),
    ("file with neither hashes nor name", {"type": "file", "id": FILE}, "name", "hashes is absent"),
    (
        "empty user-account",
        {"type": "user-account", "id": VALID["user-account"]["id"]},
        "user_id",
        "is required",
    ),
    (
        "protocols not a list",
        variant("network-traffic", protocols="tcp"),
        "protocols",
        "list of strings",
    ),
    (
        "bad ref inside an extension",
        variant("file by hash", extensions={"archive-ext": {"contains_refs": ["file"]}}),
        "extensions.archive-ext.contains_refs[0]",
        "type--uuid",
    ),
    (
        "bad ref inside a MIME part",
        variant("email-message", body_multipart=[{"body_raw_ref": 1}]),
        "body_multipart[0].body_raw_ref",
        "type--uuid",
    ),
]


@pytest.mark.parametrize(
    ("obj", "field", "reason_part"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_each_defect_is_reported_once_with_its_field(
    obj: object, field: str, reason_part: str
) -> None:
    problems = check_object(obj)
    assert [problem.field for problem in problems] == [field]
    assert reason_part in problems[0].reason


def test_every_problem_of_an_object_is_collected() -> None:
    obj = indicator(id="indicator--x", spec_version="2.0", pattern=None, confidence=-1)
    assert {problem.field for problem in check_object(obj)} == {
        "id",
        "spec_version",
        "pattern",
        "confidence",
    }


def test_problems_are_plain_values() -> None:
    assert check_object(indicator(pattern=None)) == [Problem("pattern", "is required")]


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        (INDICATOR, True),
        ("x-mitre-tactic--0416e03b-f4e7-449f-b727-49483d2a9b77", True),
        (INDICATOR.replace("b1baab2b", "B1BAAB2B"), False),
        (INDICATOR + "\n", False),
        ("indicator--b1baab2b-a8ee-4e49-c96a-f22412306cb7", False),
        ("indicator--b1baab2ba8ee4e49896af22412306cb7", False),
        ("ab--b1baab2b-a8ee-4e49-896a-f22412306cb7", False),
        ("Indicator--b1baab2b-a8ee-4e49-896a-f22412306cb7", False),
    ],
)
def test_identifier_form(value: str, matches: bool) -> None:
    assert (ID_RE.match(value) is not None) is matches


@pytest.mark.parametrize(
    ("type_name", "kind"),
    [
        ("indicator", "sdo"),
        ("sighting", "sro"),
        ("ipv4-addr", "sco"),
        ("marking-definition", "marking"),
        ("bundle", "bundle"),
        ("language-content", "language-content"),
        ("extension-definition", "extension-definition"),
        ("x-mitre-tactic", "custom"),
        ("acme-widget", "custom"),
    ],
)
def test_object_kind(type_name: str, kind: str) -> None:
    assert object_kind(type_name) == kind


def test_references_cover_nested_structures_but_not_custom_properties() -> None:
    obj = {
        **VALID["file by hash"],
        "created_by_ref": IDENTITY,
        "object_marking_refs": [MARKING, 7],
        "granular_markings": [{"selectors": ["name"], "marking_ref": MARKING}],
        "x_acme_owner_ref": IDENTITY,
        "x_acme": {"parent_ref": MALWARE},
        "parent_directory_ref": "",
        "content_ref": None,
    }
    assert references(obj) == [
        ("extensions.archive-ext.contains_refs[0]", FILE),
        ("created_by_ref", IDENTITY),
        ("object_marking_refs[0]", MARKING),
        ("granular_markings[0].marking_ref", MARKING),
        ("parent_directory_ref", ""),
    ]
    assert {problem.field for problem in check_object(obj)} == {
        "object_marking_refs[1]",
        "parent_directory_ref",
        "content_ref",
    }


def test_references_of_a_relationship() -> None:
    assert references(VALID["relationship"]) == [
        ("source_ref", INDICATOR),
        ("target_ref", MALWARE),
    ]


def test_bundle_envelope() -> None:
    bundle_id = "bundle--0416e03b-f4e7-449f-b727-49483d2a9b77"
    assert check_bundle({"type": "bundle", "id": bundle_id, "objects": [{"not": "checked"}]}) == []
    assert check_bundle([]) == [Problem("", "must be a JSON object, got list")]
    problems = check_bundle({"type": "report", "id": INDICATOR, "objects": {}})
    assert [problem.field for problem in problems] == ["type", "id", "objects"]
    assert [problem.field for problem in check_bundle({})] == ["type", "id", "objects"]


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.000001Z", 1),
        ("1969-12-31T23:59:59.999999Z", -1),
        ("2000-02-29T00:00:00Z", 951_782_400_000_000),
        ("2016-12-31T23:59:59Z", 1_483_228_799_000_000),
        ("2017-01-01T00:00:00.5Z", 1_483_228_800_500_000),
        ("0001-01-01T00:00:00Z", -62_135_596_800_000_000),
        ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999),
    ],
)
def test_parse_timestamp(value: str, micros: int) -> None:
    assert parse_timestamp(value) == micros


@pytest.mark.parametrize(
    ("fraction", "micros"),
    [
        ("1", 100_000),
        ("12", 120_000),
        ("123", 123_000),
        ("1234", 123_400),
        ("12345", 123_450),
        ("123456", 123_456),
        ("1234567", 123_456),
        ("12345678", 123_456),
        ("123456789", 123_456),
    ],
)
def test_fractions_of_one_to_nine_digits_truncate_to_microseconds(
    fraction: str, micros: int
) -> None:
    assert parse_timestamp(f"1970-01-01T00:00:00.{fraction}Z") == micros


@pytest.mark.parametrize(
    "value",
    [
        "2020-13-01T00:00:00Z",
        "2021-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2020-04-31T00:00:00Z",
        "2020-01-01T24:00:00Z",
        "2016-12-31T23:59:60Z",
        "0000-01-01T00:00:00Z",
        "2020-01-01T00:00:00.1234567890Z",
        "2020-01-01T00:00:00.Z",
        "2020-01-01T00:00:00",
        "2020-01-01T00:00:00z",
        "2020-01-01t00:00:00Z",
        "2020-01-01 00:00:00Z",
        "2020-01-01T00:00:00+00:00",
        "2020-01-01",
        "20200101T000000Z",
        "2020-01-01T00:00:00Z\n",
        "\uff12020-01-01T00:00:00Z",
        "",
    ],
)
def test_parse_timestamp_refuses(value: str) -> None:
    with pytest.raises(ValueError, match=r"^must be"):
        parse_timestamp(value)


def test_parse_timestamp_refuses_non_strings() -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_timestamp(1_700_000_000)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "1970-01-01T00:00:00.000000Z",
        "1969-12-31T23:59:59.999999Z",
        "2000-02-29T12:34:56.789012Z",
        "2024-02-29T23:59:59.000001Z",
        "2100-03-01T00:00:00.000000Z",
        "0001-01-01T00:00:00.000000Z",
        "9999-12-31T23:59:59.999999Z",
    ],
)
def test_format_and_parse_round_trip(value: str) -> None:
    assert format_timestamp(parse_timestamp(value)) == value


def test_format_timestamp_pads_and_normalises() -> None:
    assert (
        format_timestamp(parse_timestamp("2024-03-01T10:00:00Z")) == "2024-03-01T10:00:00.000000Z"
    )
    assert format_timestamp(parse_timestamp("0999-01-01T00:00:00.1Z")) == (
        "0999-01-01T00:00:00.100000Z"
    )


def test_format_timestamp_refuses_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        format_timestamp(parse_timestamp("9999-12-31T23:59:59.999999Z") + 1)


@pytest.mark.skipif(not ATTACK_ICS.is_file(), reason="ATT&CK ICS bundle not present")
def test_attack_ics_bundle_is_structurally_valid() -> None:
    bundle = json.loads(ATTACK_ICS.read_text(encoding="utf-8"))
    assert check_bundle(bundle) == []
    failures = {obj["id"]: problems for obj in bundle["objects"] if (problems := check_object(obj))}
    assert failures == {}
    # Empty custom references are left to the custom property's owner, not reported.
    with_empty_ref = [o for o in bundle["objects"] if o.get("x_mitre_data_source_ref") == ""]
    assert with_empty_ref
    assert all(not any(path.startswith("x_") for path, _ in references(o)) for o in with_empty_ref)
