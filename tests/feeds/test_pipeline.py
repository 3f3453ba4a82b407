"""Feed runs end to end on a real store: counts, deduplication, expiry, warninglists, failures."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from qalqan.domain.principal import Role
from qalqan.errors import Conflict
from qalqan.feeds import subscriptions
from qalqan.feeds.fetch import FetchLimits
from qalqan.feeds.pipeline import RunReport
from qalqan.intel.reading import search_observables
from qalqan.intel.warninglists import WarninglistIndex, parse_list
from qalqan.store import feeds as feeds_store
from qalqan.store.clock import now_us
from qalqan.store.tables import indicator_scores, object_versions, observables
from qalqan.testing import TestNode

DATA = Path(__file__).parent / "data"
ADMIN = "admin@a.test"


@pytest.fixture(scope="module")
def index() -> WarninglistIndex:
    return WarninglistIndex.compile(
        [
            parse_list(
                {
                    "name": "Public resolvers",
                    "type": "cidr",
                    "list": ["8.8.8.8/32", "1.1.1.1"],
                    "matching_attributes": ["ip-dst"],
                }
            ),
            parse_list(
                {
                    "name": "Big sites",
                    "type": "hostname",
                    "list": ["example.com"],
                    "matching_attributes": ["domain", "url"],
                }
            ),
        ]
    )


def add(node: TestNode, name: str, url: str, **spec: Any) -> feeds_store.FeedRecord:
    spec.setdefault("source", "text")
    with node.instance.begin() as conn:
        return subscriptions.add_feed(
            conn, node.principals[ADMIN], subscriptions.FeedSpec(name=name, url=url, **spec)
        )


def run(
    node: TestNode, name: str, index: WarninglistIndex, limits: FetchLimits | None = None
) -> RunReport:
    return subscriptions.run_now(
        node.instance, node.principals[ADMIN], name, index, trigger="cli", limits=limits
    )


def versions(node: TestNode) -> list[dict[str, Any]]:
    with node.instance.begin() as conn:
        rows = conn.execute(
            select(object_versions.c.content, object_versions.c.is_latest)
            .where(object_versions.c.type == "indicator")
            .order_by(object_versions.c.date_added)
        )
        return [{**orjson.loads(c), "_latest": latest} for c, latest in rows]


def latest(node: TestNode) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in versions(node) if v["_latest"]}


def write(path: Path, *lines: str) -> str:
    path.write_text("\n".join(lines) + "\n")
    return path.as_uri()


def test_text_feed_counts_rejects_and_warninglists(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    url = write(
        tmp_path / "drop.txt",
        "; a DROP-style list",
        "203.0.113.0/24 ; SBL1",
        "198.51.100.23",
        "hxxp://bad[.]example/x.exe # defanged",
        "d41d8cd98f00b204e9800998ecf8427e",
        "8.8.8.8 ; a resolver",
        "999.1.1.1",
        "exa mple.com",
        "0123456789abcdef0123456789abcde",
        "=cmd|' /C calc'!A0",
        "198.51.100.23",
    )
    add(node, "drop", url, expire_after_seconds=0)
    report = run(node, "drop", index)
    counts = report.counts
    assert report.status == "ok", report.error
    assert counts["new"] == 5
    assert counts["warninglisted"] == 1
    assert counts["rejected"] == 4
    assert counts["duplicates"] == 1
    assert [e["line"] for e in report.errors] == [7, 8, 9, 10]
    assert all(e["reason"] for e in report.errors)
    stored = latest(node)
    assert stored["203.0.113.0/24"]["pattern"] == "[ipv4-addr:value = '203.0.113.0/24']"
    assert stored["203.0.113.0/24"]["description"] == "SBL1"
    assert (
        stored["http://bad.example/x.exe"]["pattern"] == "[url:value = 'http://bad.example/x.exe']"
    )
    flagged = stored["8.8.8.8"]["x_qalqan_warninglist"]
    assert flagged["list"] == "Public resolvers"
    assert "8.8.8.8" in flagged["reason"]
    with node.instance.begin() as conn:
        listed = conn.execute(
            select(observables.c.value).where(observables.c.warninglist.is_not(None))
        ).scalars()
        assert list(listed) == ["8.8.8.8"]


def test_rerun_changes_nothing_but_last_seen(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    url = write(tmp_path / "f.txt", "192.0.2.1", "evil.example", "192.0.2.0/28")
    add(node, "f", url, expire_after_seconds=0)
    first = run(node, "f", index)
    before = versions(node)
    second = run(node, "f", index)
    assert second.counts["new"] == 0
    assert second.counts["unchanged"] == 3
    assert second.counts["expired"] == 0
    assert versions(node) == before
    with node.instance.begin() as conn:
        seen = {v.last_seen for v in feeds_store.iter_values(conn, first.feed_id)}
    assert seen == {second.started_at}


def test_rerun_of_rewritten_file_with_same_values_creates_nothing(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    url = write(path, "192.0.2.1", "evil.example")
    add(node, "f", url, expire_after_seconds=0)
    run(node, "f", index)
    write(path, "# reordered, with a comment", "evil.example", "192.0.2.1", "192.0.2.1")
    report = run(node, "f", index)
    assert report.counts["new"] == 0
    assert report.counts["unchanged"] == 2
    assert report.counts["duplicates"] == 1
    assert len(versions(node)) == 2


def test_dropped_value_expires_and_comes_back(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    url = write(path, "192.0.2.1", "evil.example")
    add(node, "f", url, expire_after_seconds=0)
    run(node, "f", index)
    write(path, "evil.example")
    report = run(node, "f", index)
    assert report.counts["expired"] == 1
    assert report.counts["unchanged"] == 1
    gone = latest(node)["192.0.2.1"]
    assert gone["valid_until"] == gone["modified"] > gone["valid_from"]
    assert len(versions(node)) == 3  # the expiry is a new version; nothing is deleted
    # Still expired on the next run; no second expiry version.
    assert run(node, "f", index).counts["expired"] == 0
    write(path, "evil.example", "192.0.2.1")
    back = run(node, "f", index)
    assert back.counts["updated"] == 1
    revived = latest(node)["192.0.2.1"]
    assert "valid_until" not in revived
    assert revived["id"] == gone["id"]


def test_values_kept_until_expire_after_has_passed(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    url = write(path, "192.0.2.1", "evil.example")
    add(node, "f", url, expire_after_seconds=7 * 86400)
    run(node, "f", index)
    write(path, "evil.example")
    assert run(node, "f", index).counts["expired"] == 0
    assert "valid_until" not in latest(node)["192.0.2.1"]


def test_changed_context_is_a_new_version_of_the_same_indicator(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    url = write(path, "192.0.2.1 ; botnet C2")
    add(node, "f", url)
    run(node, "f", index)
    first = latest(node)["192.0.2.1"]
    write(path, "192.0.2.1 ; ransomware C2")
    assert run(node, "f", index).counts["updated"] == 1
    second = latest(node)["192.0.2.1"]
    assert second["id"] == first["id"]
    assert second["description"] == "ransomware C2"
    assert second["modified"] > first["modified"]
    assert second["created"] == first["created"]


def test_failed_fetch_leaves_indicators_untouched(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    url = write(path, "192.0.2.1", "evil.example")
    add(node, "f", url, expire_after_seconds=0)
    run(node, "f", index)
    before = versions(node)
    path.unlink()
    report = run(node, "f", index)
    assert report.status == "failed"
    assert "cannot read" in (report.error or "")
    assert versions(node) == before
    with node.instance.begin() as conn:
        feed, runs = subscriptions.runs_of(conn, node.principals[ADMIN], "f")
    assert runs[0].status == "failed"
    assert runs[0].error == report.error
    assert feed.state  # the last good run's state is kept


def test_binary_garbage_fails_with_a_clear_message(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes(range(256)) * 40)
    add(node, "g", path.as_uri())
    report = run(node, "g", index)
    assert report.status == "failed"
    assert "binary data" in (report.error or "")


def test_encodings_and_huge_lines(node: TestNode, index: WarninglistIndex, tmp_path: Path) -> None:
    wide = tmp_path / "utf16.txt"
    wide.write_text("192.0.2.7\r\nevil.example\r\n", encoding="utf-16")
    add(node, "wide", wide.as_uri())
    assert run(node, "wide", index).counts["new"] == 2
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(b"192.0.2.8 ; caf\xe9\n" + b"x" * 3_000_000 + b"\n192.0.2.9\n")
    add(node, "latin", latin.as_uri())
    report = run(node, "latin", index)
    assert report.counts["new"] == 2
    assert report.counts["rejected"] == 1
    assert report.errors[0]["line"] == 2
    assert "longer than" in report.errors[0]["reason"]
    assert latest(node)["192.0.2.8"]["description"] == "café"


def test_truncated_file_keeps_the_good_rows(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    path = tmp_path / "cut.txt"
    path.write_bytes(b"192.0.2.10\n192.0.2.11\n192.0.2.1")
    add(node, "cut", path.as_uri())
    report = run(node, "cut", index)
    assert report.counts["new"] == 3


def test_drop_action_keeps_warninglisted_values_out(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    url = write(tmp_path / "f.txt", "8.8.8.8", "www.example.com", "192.0.2.1")
    add(node, "f", url, on_warninglist="drop")
    report = run(node, "f", index)
    assert report.counts["warninglisted"] == 2
    assert report.counts["dropped"] == 2
    assert list(latest(node)) == ["192.0.2.1"]


def test_feed_handling_applies_and_policy_filters(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    from qalqan.domain.handling import TLP, Distribution

    node.add_org("CERT-B")
    node.add_user("b@b.test", "CERT-B")
    node.add_user("a2@a.test", "CERT-A")
    url = write(tmp_path / "f.txt", "192.0.2.1")
    add(node, "private", url, tlp=TLP.AMBER, distribution=Distribution.ORGANIZATION)
    run(node, "private", index)
    stored = latest(node)["192.0.2.1"]
    assert stored["object_marking_refs"] == [
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
    ]
    with node.instance.begin() as conn:
        mine = search_observables(conn, node.principals["a2@a.test"], "192.0.2.1")
        theirs = search_observables(conn, node.principals["b@b.test"], "192.0.2.1")
    assert len(mine.hits) == 1
    assert theirs.hits == []


def test_csv_feed_in_urlhaus_format(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    target = tmp_path / "urlhaus.csv"
    shutil.copy(DATA / "csv_urlhaus.csv", target)
    add(
        node,
        "urlhaus",
        target.as_uri(),
        source="csv",
        options={"columns": "url=url,first_seen=dateadded,labels=tags,threat=threat"},
        confidence=80,
    )
    report = run(node, "urlhaus", index)
    assert report.counts["new"] == 3
    assert report.counts["rejected"] == 2
    assert {e["line"] for e in report.errors} == {12, 13}
    loader = latest(node)["https://evil-cdn.example/payload/loader.exe"]
    assert loader["labels"] == ["exe", "AsyncRAT", "malware_download"]
    assert loader["valid_from"] == "2026-11-27T09:41:03.000000Z"
    assert loader["confidence"] == 80
    assert loader["x_qalqan_context"]["urlhaus_link"] == "https://urlhaus.example/url/3301000/"


def test_only_one_run_of_a_feed_at_a_time(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    feed = add(node, "f", write(tmp_path / "f.txt", "192.0.2.1"))
    with node.instance.begin() as conn:
        assert feeds_store.claim(conn, feed.id, "elsewhere", now_us(), now_us() + 60_000_000)
    with pytest.raises(Conflict, match="running already"):
        run(node, "f", index)


def test_scheduled_feed_runs_when_due(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    from qalqan.feeds.schedule import run_due

    add(node, "due", write(tmp_path / "f.txt", "192.0.2.1"), schedule_seconds=3600)
    add(node, "manual", write(tmp_path / "g.txt", "192.0.2.2"))
    reports = run_due(node.instance, "test-worker")
    assert [r.feed for r in reports] == ["due"]
    assert run_due(node.instance, "test-worker") == []  # next run in an hour
    with node.instance.begin() as conn:
        feed = feeds_store.get_feed(conn, "due")
    assert feed.next_run_at is not None
    assert feed.next_run_at > now_us() + 3000 * 1_000_000


def test_access_rules(node: TestNode, tmp_path: Path) -> None:
    from qalqan.errors import Forbidden, NotFound

    node.add_org("CERT-B")
    node.add_user("oa@b.test", "CERT-B", Role.ORG_ADMIN)
    node.add_user("an@b.test", "CERT-B", Role.ANALYST)
    node.add_user("rd@b.test", "CERT-B", Role.READER)
    url = write(tmp_path / "f.txt", "192.0.2.1")
    add(node, "a-feed", url)
    with node.instance.begin() as conn:
        org_admin = node.principals["oa@b.test"]
        with pytest.raises(Forbidden, match="files of the server"):
            subscriptions.add_feed(conn, org_admin, subscriptions.FeedSpec("b", "text", url))
        with pytest.raises(Forbidden):
            subscriptions.add_feed(
                conn,
                node.principals["an@b.test"],
                subscriptions.FeedSpec("b", "text", "https://feeds.example/b.txt"),
            )
        subscriptions.add_feed(
            conn, org_admin, subscriptions.FeedSpec("b-feed", "text", "https://feeds.example/b")
        )
        assert [f.name for f in subscriptions.feeds_for(conn, org_admin)] == ["b-feed"]
        assert [f.name for f in subscriptions.feeds_for(conn, node.principals["an@b.test"])] == [
            "b-feed"
        ]
        assert subscriptions.feeds_for(conn, node.principals["rd@b.test"]) == []
        assert len(subscriptions.feeds_for(conn, node.principals[ADMIN])) == 2
        with pytest.raises(NotFound):
            subscriptions.feed_for(conn, org_admin, "a-feed")
        with pytest.raises(Forbidden):
            subscriptions.remove_feed(conn, node.principals["an@b.test"], "b-feed")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"name": "bad name"}, "name"),
        ({"source": "nope"}, "source"),
        ({"url": "ftp://x.example/f"}, "url"),
        ({"url": "file://relative/path"}, "url"),
        ({"confidence": 101}, "confidence"),
        ({"schedule_seconds": 1}, "schedule"),
        ({"on_warninglist": "ignore"}, "on_warninglist"),
        ({"source": "csv", "options": {"columns": "colour=1"}}, "options"),
        ({"options": {"nonsense": "1"}}, "options"),
    ],
)
def test_bad_feed_definitions_name_the_field(
    node: TestNode, spec: dict[str, Any], field: str
) -> None:
    from qalqan.errors import InvalidInput

    values: dict[str, Any] = {"name": "ok", "source": "text", "url": "https://feeds.example/f"}
    values.update(spec)
    with node.instance.begin() as conn, pytest.raises(InvalidInput) as caught:
        subscriptions.add_feed(conn, node.principals[ADMIN], subscriptions.FeedSpec(**values))
    assert caught.value.context.get("field") == field


def test_removing_a_feed_keeps_its_indicators(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    add(node, "f", write(tmp_path / "f.txt", "192.0.2.1"))
    run(node, "f", index)
    with node.instance.begin() as conn:
        subscriptions.remove_feed(conn, node.principals[ADMIN], "f")
        assert conn.execute(select(func.count()).select_from(object_versions)).scalar()
    assert "192.0.2.1" in latest(node)


def test_runs_of_several_batches_write_in_a_child_process(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    from qalqan.feeds.pipeline import run_feed

    values = [f"192.0.2.{i}" for i in range(1, 30)]
    # Duplicates across batches, including ones whose first batch is still being written.
    url = write(tmp_path / "f.txt", *values, *values[:5], "8.8.8.8", "bad value", values[-1])
    feed = add(node, "big", url, expire_after_seconds=0)
    report = run_feed(node.instance, feed, index, batch_size=4)
    assert report.status == "ok", report.error
    assert report.counts["new"] == 30
    assert report.counts["duplicates"] == 6
    assert report.counts["rejected"] == 1
    assert report.counts["warninglisted"] == 1
    assert len(latest(node)) == 30
    with node.instance.begin() as conn:
        feed = feeds_store.get_feed(conn, "big")
    write(tmp_path / "f.txt", *values[:10])
    again = run_feed(node.instance, feed, index, batch_size=4)
    assert (again.counts["unchanged"], again.counts["expired"]) == (10, 20)
    assert again.counts["new"] == 0


def test_values_a_feed_still_lists_do_not_decay(
    node: TestNode, index: WarninglistIndex, tmp_path: Path
) -> None:
    url = write(tmp_path / "f.txt", "192.0.2.1", "192.0.2.2")
    add(node, "alive", url)
    run(node, "alive", index)
    month_ago = now_us() - 45 * 86_400 * 1_000_000
    with node.instance.begin() as conn:
        # As if the scores had started 45 days ago: past an address's cut-off (about 19 days).
        conn.execute(
            update(indicator_scores).values(
                reset_at=month_ago, decays_at=month_ago + 19 * 86_400 * 1_000_000
            )
        )
    write(tmp_path / "f.txt", "192.0.2.1")  # the feed now lists only one of them
    run(node, "alive", index)
    with node.instance.begin() as conn:
        rows = dict(
            conn.execute(
                select(object_versions.c.name, indicator_scores.c.decays_at)
                .join(object_versions, object_versions.c.stix_id == indicator_scores.c.stix_id)
                .where(object_versions.c.is_latest.is_(True))
            ).all()
        )
    assert rows["192.0.2.1"] > now_us() + 10 * 86_400 * 1_000_000
    assert rows["192.0.2.2"] < now_us()
