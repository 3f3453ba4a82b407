"""Each source kind through a whole feed run on a real store: MISP feed, report, STIX, TAXII."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from qalqan.domain.handling import TLP, Distribution
from qalqan.feeds import subscriptions
from qalqan.feeds.pipeline import RunReport
from qalqan.intel.warninglists import WarninglistIndex
from qalqan.store.tables import object_versions
from qalqan.testing import TestNode

from .taxii_server import PASSWORD, USERNAME, running_taxii_server
from .test_source_misp import _alpha, _beta, _write_feed

DATA = Path(__file__).parent / "data"
ADMIN = "admin@a.test"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"


@pytest.fixture(scope="module")
def index() -> WarninglistIndex:
    return WarninglistIndex.compile([])


def add(node: TestNode, name: str, source: str, url: str, **spec: Any) -> None:
    with node.instance.begin() as conn:
        subscriptions.add_feed(
            conn,
            node.principals[ADMIN],
            subscriptions.FeedSpec(name=name, source=source, url=url, **spec),
        )


def run(node: TestNode, name: str, index: WarninglistIndex) -> RunReport:
    report = subscriptions.run_now(
        node.instance, node.principals[ADMIN], name, index, trigger="cli"
    )
    assert report.status == "ok", report.error
    return report


def latest(node: TestNode, type_name: str) -> list[dict[str, Any]]:
    with node.instance.begin() as conn:
        rows = conn.execute(
            select(object_versions.c.content).where(
                object_versions.c.type == type_name, object_versions.c.is_latest.is_(True)
            )
        ).scalars()
        return [orjson.loads(c) for c in rows]


def test_misp_feed_directory(node: TestNode, index: WarninglistIndex, tmp_path: Path) -> None:
    url = _write_feed(tmp_path, _alpha(), _beta())
    add(
        node,
        "misp",
        "misp-feed",
        url,
        tlp=TLP.GREEN,
        distribution=Distribution.SHARING_GROUP,
        sharing_group=node.add_group("partners", "CERT-A", []),
        expire_after_seconds=0,
    )
    first = run(node, "misp", index)
    assert first.counts["new"] >= 8
    indicators = {i["name"]: i for i in latest(node, "indicator")}
    # The event's tlp:amber and the attribute's TLP:RED raise the feed's GREEN.
    assert indicators["evil.example.com"]["object_marking_refs"] == [AMBER]
    assert indicators["198.51.100.7"]["object_marking_refs"] == [RED]
    assert indicators["198.51.100.7"]["description"] == "c2 server"
    assert indicators["http://evil.example.com/x.exe"]["x_qalqan_detect"] is False
    reports = {r["name"]: r for r in latest(node, "report")}
    assert set(reports) == {"Campaign Alpha", "Campaign Beta"}
    alpha_ids = {i["id"] for i in indicators.values() if i["name"] in ("evil.example.com",)}
    assert alpha_ids <= set(reports["Campaign Alpha"]["object_refs"])

    second = run(node, "misp", index)
    assert second.counts["new"] == 0
    assert second.counts["expired"] == 0

    # Beta leaves the feed: its values expire, Alpha's stay.
    for leftover in tmp_path.glob("*.json"):
        leftover.unlink()
    _write_feed(tmp_path, _alpha())
    third = run(node, "misp", index)
    assert third.counts["expired"] == 2  # the MD5 and the e-mail address
    assert third.counts["new"] == 0
    after = {i["name"]: i for i in latest(node, "indicator")}
    assert "valid_until" in after["phisher@example.org"]
    assert "valid_until" not in after["evil.example.com"]


def test_html_report(node: TestNode, index: WarninglistIndex, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    shutil.copy(DATA / "report_campaign.html", target)
    add(node, "reports", "report", target.as_uri())
    report = run(node, "reports", index)
    assert report.counts["new"] >= 3
    indicators = {i["name"]: i["id"] for i in latest(node, "indicator")}
    assert "http://bad.example.com/x.exe" in indicators
    (document,) = latest(node, "report")
    assert set(document["object_refs"]) == set(indicators.values())
    assert run(node, "reports", index).counts["new"] == 0


def test_stix_bundle(node: TestNode, index: WarninglistIndex, tmp_path: Path) -> None:
    target = tmp_path / "bundle.json"
    shutil.copy(DATA / "stix_bundle.json", target)
    add(node, "bundle", "stix", target.as_uri(), tlp=TLP.AMBER)
    first = run(node, "bundle", index)
    assert first.counts["new"] == 5
    assert first.counts["rejected"] == 0
    with node.instance.begin() as conn:
        tlps = set(conn.execute(select(object_versions.c.tlp, object_versions.c.source)))
    assert (int(TLP.AMBER), "node") not in tlps
    assert any(tlp == int(TLP.AMBER) and source.startswith("feed:") for tlp, source in tlps)
    document = orjson.loads(target.read_bytes())
    document["objects"].append({"type": "indicator", "id": "indicator--nope"})
    target.write_bytes(orjson.dumps(document))
    second = run(node, "bundle", index)
    assert second.counts["new"] == 0
    assert second.counts["unchanged"] == 5
    assert second.counts["rejected"] == 1
    assert second.errors[0]["line"] == 5


def test_taxii_collection(node: TestNode, index: WarninglistIndex) -> None:
    with running_taxii_server() as server:
        add(
            node,
            "partner-taxii",
            "taxii",
            server.collection_url(),
            options={"username": USERNAME, "password": PASSWORD, "page_size": 2},
        )
        first = run(node, "partner-taxii", index)
        assert first.counts["new"] == 5
        assert run(node, "partner-taxii", index).counts["new"] == 0
        stamp = "2026-01-02T00:00:00.000Z"
        server.add_objects(
            [
                {
                    "type": "indicator",
                    "spec_version": "2.1",
                    "id": "indicator--0b7c2d1e-9a3f-4c5e-8d6f-7a8b9c0d1e2f",
                    "created": stamp,
                    "modified": stamp,
                    "pattern": "[domain-name:value = 'later.example.com']",
                    "pattern_type": "stix",
                    "valid_from": stamp,
                }
            ]
        )
        third = run(node, "partner-taxii", index)
        assert third.counts["new"] == 1
    with node.instance.begin() as conn:
        feed, _ = subscriptions.runs_of(conn, node.principals[ADMIN], "partner-taxii")
    assert feed.options["password"] == PASSWORD  # kept for the next poll...
    from qalqan.api.feed_schemas import FeedPublic

    assert FeedPublic.of(feed).options["password"] == "***"  # ...never shown


def test_stix_feed_flags_warninglisted_observables(node: TestNode, tmp_path: Path) -> None:
    from qalqan.intel.warninglists import parse_list
    from qalqan.store.tables import observables

    resolvers = WarninglistIndex.compile(
        [
            parse_list(
                {
                    "name": "Resolvers",
                    "type": "cidr",
                    "list": ["8.8.8.8/32"],
                    "matching_attributes": ["ip-dst"],
                }
            )
        ]
    )
    stamp = "2026-01-01T00:00:00.000Z"
    bundle = {
        "type": "bundle",
        "id": "bundle--4f3c2b1a-0e9d-4c8b-a7f6-e5d4c3b2a190",
        "objects": [
            {
                "type": "indicator",
                "spec_version": "2.1",
                "id": f"indicator--4f3c2b1a-0e9d-4c8b-a7f6-e5d4c3b2a19{n}",
                "created": stamp,
                "modified": stamp,
                "pattern": f"[ipv4-addr:value = '{address}']",
                "pattern_type": "stix",
                "valid_from": stamp,
            }
            for n, address in enumerate(("8.8.8.8", "203.0.113.77"))
        ],
    }
    target = tmp_path / "bundle.json"
    target.write_bytes(orjson.dumps(bundle))
    add(node, "bundle", "stix", target.as_uri())
    report = run(node, "bundle", resolvers)
    assert (report.counts["new"], report.counts["warninglisted"]) == (2, 1)
    with node.instance.begin() as conn:
        flagged = dict(conn.execute(select(observables.c.value, observables.c.warninglist)).all())
    assert flagged == {"8.8.8.8": "Resolvers", "203.0.113.77": None}
