"""The ``misp-feed`` source, on feeds written with PyMISP the way MISP's feed generator does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pymisp import MISPEvent, MISPObject, MISPOrganisation

from qalqan.domain.handling import TLP
from qalqan.errors import InvalidInput
from qalqan.feeds.items import Document, Item, Reject, Unchanged, Value
from qalqan.feeds.sources import Job, make_source
from qalqan.testing import serving_directory

ALPHA = "5c5e6f2a-1b2c-4d3e-8f90-a1b2c3d4e5f6"
BETA = "6d6f7a3b-2c3d-4e4f-9a01-b2c3d4e5f6a7"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SEEN = datetime(2024, 1, 1, tzinfo=UTC)
STAMPED = datetime(2024, 2, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


def _event(uuid: str, info: str, timestamp: int, tags: tuple[str, ...]) -> MISPEvent:
    event = MISPEvent()
    event.uuid = uuid
    event.info = info
    event.set_date("2024-02-01")
    event.timestamp = timestamp
    event.publish_timestamp = timestamp
    org = MISPOrganisation()
    org.name = "CERT-Test"
    org.uuid = "0f0e0d0c-0b0a-4909-8807-060504030201"
    event.Orgc = org
    for tag in tags:
        event.add_tag(tag)
    return event


def _alpha(timestamp: int = 1_700_000_000) -> MISPEvent:
    event = _event(ALPHA, "Campaign Alpha", timestamp, ("tlp:amber", "malware:emotet"))
    add = partial(event.add_attribute, timestamp=STAMPED)
    add(
        "ip-dst",
        "198.51.100.7",
        comment="c2 server",
        first_seen=SEEN,
        Tag=[{"name": "TLP:RED"}, {"name": "kill-chain:c2"}],
    )
    add("domain", "evil.example.com")
    add("url", "http://evil.example.com/x.exe", to_ids=False)
    add("ip-dst|port", "198.51.100.8|443")
    add("domain|ip", "bad.example.net|203.0.113.9")
    add("text", "a note, not an indicator")
    add("link", "https://blog.example.org/report")
    dropped = MISPObject("file")
    dropped.add_attribute("sha256", SHA256, timestamp=STAMPED)
    dropped.add_attribute("filename", "x.exe", timestamp=STAMPED)
    event.add_object(dropped)
    return event


def _beta(timestamp: int = 1_700_000_100, *, extra: bool = False) -> MISPEvent:
    event = _event(BETA, "Campaign Beta", timestamp, ("tlp:green",))
    add = partial(event.add_attribute, timestamp=STAMPED)
    add("filename|md5", f"dropper.exe|{MD5}")
    add("uri", "/gate.php")
    add("email-src", "phisher@example.org", Tag=[{"name": "tlp:clear"}])
    if extra:
        add("ip-src", "192.0.2.0/24")
    return event


def _write_feed(directory: Path, *events: MISPEvent) -> str:
    """Write ``events`` as a MISP feed in ``directory``; its file:// URL."""
    manifest: dict[str, Any] = {}
    for event in events:
        feed = event.to_feed(with_meta=True)
        manifest.update(feed["Event"].pop("_manifest"))
        feed["Event"].pop("_hashes")
        (directory / f"{event.uuid}.json").write_text(json.dumps(feed))
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory.as_uri()


def _read(url: str, state: dict[str, Any] | None = None, **options: Any) -> tuple[list[Item], Job]:
    # The pipeline saves the state as JSON: so does the test, to catch what would not survive.
    job = Job(url, "misp-test", state=json.loads(json.dumps(state or {})))
    return list(make_source("misp-feed", options).read(job)), job


def _values(items: list[Item]) -> dict[tuple[str | None, str], Value]:
    return {(item.kind, item.raw): item for item in items if isinstance(item, Value)}


def test_a_feed_yields_typed_values_with_their_event_context(tmp_path: Path) -> None:
    items, job = _read(_write_feed(tmp_path, _alpha(), _beta()))

    values = _values(items)
    assert sorted(values) == sorted(
        [
            ("ip", "198.51.100.7"),
            ("domain", "evil.example.com"),
            ("url", "http://evil.example.com/x.exe"),
            ("ip", "198.51.100.8"),
            ("domain", "bad.example.net"),
            ("ip", "203.0.113.9"),
            ("sha256", SHA256),
            ("md5", MD5),
            ("email", "phisher@example.org"),
        ]
    )
    assert not [item for item in items if isinstance(item, Reject | Unchanged)]
    c2 = values["ip", "198.51.100.7"]
    assert c2.origin == ALPHA
    assert c2.context.tlp is TLP.RED
    assert c2.context.labels == ("malware:emotet", "kill-chain:c2")
    assert c2.context.description == "c2 server"
    assert c2.context.first_seen == _micros(SEEN)
    assert c2.context.detect
    domain = values["domain", "evil.example.com"]
    assert domain.context.tlp is TLP.AMBER
    assert domain.context.description == "Campaign Alpha"
    assert domain.context.first_seen == _micros(STAMPED)
    assert not values["url", "http://evil.example.com/x.exe"].context.detect
    in_object = values["sha256", SHA256]
    assert ("misp_object", "file") in in_object.context.extra
    assert in_object.origin == ALPHA
    # tlp:clear on an attribute does not lower its event's tlp:green.
    assert values["email", "phisher@example.org"].context.tlp is TLP.GREEN
    assert values["md5", MD5].origin == BETA
    # Both parts of domain|ip come from one attribute, so they point at the same place.
    assert values["domain", "bad.example.net"].line == values["ip", "203.0.113.9"].line
    lines = [item.line for item in items if isinstance(item, Value)]
    assert lines == sorted(lines)

    documents = {item.origin: item for item in items if isinstance(item, Document)}
    assert set(documents) == {ALPHA, BETA}
    assert documents[ALPHA].name == "Campaign Alpha"
    assert documents[ALPHA].labels == ("malware:emotet",)
    assert documents[ALPHA].published == 1_700_000_000 * 1_000_000
    assert documents[ALPHA].url is None
    assert job.state["events"] == {ALPHA: 1_700_000_000, BETA: 1_700_000_100}


def test_options_keep_detection_values_and_the_newest_events(tmp_path: Path) -> None:
    url = _write_feed(tmp_path, _alpha(), _beta())

    items, _ = _read(url, only_to_ids=True, max_events=1)

    assert {item.origin for item in items if isinstance(item, Document)} == {BETA}
    assert ("md5", MD5) in _values(items)
    with pytest.raises(InvalidInput, match="max_events"):
        make_source("misp-feed", {"max_events": 0})
    with pytest.raises(InvalidInput, match="since"):
        make_source("misp-feed", {"since": 3})


def test_only_to_ids_skips_values_not_for_detection(tmp_path: Path) -> None:
    items, _ = _read(_write_feed(tmp_path, _alpha()), only_to_ids=True)

    assert ("url", "http://evil.example.com/x.exe") not in _values(items)
    assert ("domain", "evil.example.com") in _values(items)


def test_a_second_run_reads_only_the_events_that_changed(tmp_path: Path) -> None:
    url = _write_feed(tmp_path, _alpha(), _beta())
    _, first = _read(url)
    _write_feed(tmp_path, _alpha(), _beta(1_700_000_200, extra=True))
    # An untouched event is not fetched again: its file may as well be gone.
    (tmp_path / f"{ALPHA}.json").unlink()

    items, second = _read(url, first.state)

    assert Unchanged(ALPHA) in items
    assert not [item for item in items if isinstance(item, Reject)]
    assert {item.origin for item in items if isinstance(item, Value | Document)} == {BETA}
    assert ("cidr", "192.0.2.0/24") in _values(items)
    assert second.state["events"] == {ALPHA: 1_700_000_000, BETA: 1_700_000_200}


def test_an_event_gone_from_the_manifest_yields_nothing(tmp_path: Path) -> None:
    url = _write_feed(tmp_path, _alpha(), _beta())
    _, first = _read(url)
    _write_feed(tmp_path, _beta())

    items, second = _read(url, first.state)

    assert items == [Unchanged(BETA)]
    assert second.state["events"] == {BETA: 1_700_000_100}


def test_a_single_event_file_is_read_on_its_own(tmp_path: Path) -> None:
    _write_feed(tmp_path, _alpha(), _beta())

    items, _ = _read((tmp_path / f"{BETA}.json").as_uri())

    assert {item.origin for item in items} == {BETA}
    assert ("md5", MD5) in _values(items)
    assert [item.name for item in items if isinstance(item, Document)] == ["Campaign Beta"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "is not JSON"),
        ('{"Attribute": []}', "is not a MISP event"),
        (
            json.dumps({"Event": {"info": "x", "Attribute": [{"type": "nope", "value": "1"}]}}),
            "is not a valid MISP event: nope is invalid",
        ),
    ],
)
def test_a_broken_event_file_is_one_reject_and_the_others_come_through(
    tmp_path: Path, content: str, reason: str
) -> None:
    url = _write_feed(tmp_path, _alpha(), _beta())
    (tmp_path / f"{BETA}.json").write_text(content)

    items, job = _read(url)

    rejects = [item for item in items if isinstance(item, Reject)]
    assert len(rejects) == 1
    assert rejects[0].raw == BETA
    assert reason in rejects[0].reason
    assert f"{BETA}.json" in rejects[0].reason
    assert {item.origin for item in items if isinstance(item, Document)} == {ALPHA}
    # Not recorded: the event is fetched again next run, even if the manifest is the same.
    assert job.state["events"] == {ALPHA: 1_700_000_000}
    assert job.state["incomplete"] is True


def test_a_broken_update_keeps_the_values_read_before(tmp_path: Path) -> None:
    url = _write_feed(tmp_path, _alpha(), _beta())
    _, first = _read(url)
    _write_feed(tmp_path, _alpha(), _beta(1_700_000_200))
    (tmp_path / f"{BETA}.json").write_text("truncated {")

    items, second = _read(url, first.state)

    assert Unchanged(BETA) in items
    assert [item.raw for item in items if isinstance(item, Reject)] == [BETA]
    assert second.state["events"][BETA] == 1_700_000_100


def test_a_manifest_entry_that_is_not_a_uuid_is_rejected(tmp_path: Path) -> None:
    url = _write_feed(tmp_path, _alpha())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["../../etc/passwd"] = dict(manifest[ALPHA])
    manifest[BETA] = {"info": "no timestamp"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))

    items, _ = _read(url)

    rejects = {item.field: item for item in items if isinstance(item, Reject)}
    assert set(rejects) == {"uuid", "timestamp"}
    assert rejects["uuid"].raw == "../../etc/passwd"
    assert "not an event UUID" in rejects["uuid"].reason
    assert [item.origin for item in items if isinstance(item, Document)] == [ALPHA]


@pytest.mark.parametrize("content", ["<html>", "[1, 2]", '{"an-event": 3}'])
def test_a_malformed_manifest_fails_the_run(tmp_path: Path, content: str) -> None:
    (tmp_path / "manifest.json").write_text(content)

    with pytest.raises(InvalidInput, match=r"manifest\.json") as caught:
        _read((tmp_path / "manifest.json").as_uri())
    assert caught.value.field == "manifest.json"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``tmp_path`` served over HTTP on a free local port; its URL."""
    with serving_directory(tmp_path) as url:
        yield url


def test_a_feed_over_http_is_read_then_found_unchanged(tmp_path: Path, served: str) -> None:
    _write_feed(tmp_path, _alpha(), _beta())

    items, job = _read(served)

    documents = {item.origin: item for item in items if isinstance(item, Document)}
    assert documents[BETA].url == f"{served}{BETA}.json"
    assert ("md5", MD5) in _values(items)
    # The server answers 304 for the unchanged manifest: nothing else is fetched.
    again, _ = _read(served, job.state)
    assert again == [Unchanged()]
