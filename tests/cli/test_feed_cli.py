"""``qalqan feed``, ``qalqan warninglist`` and ``qalqan worker``, run for real as subprocesses."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from .test_cli import Cli


class FeedCli(Cli):
    """As ``Cli``, sharing the test session's compiled warninglists."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["QALQAN_WARNINGLIST_CACHE"] = os.environ["QALQAN_WARNINGLIST_CACHE"]
        return env


@pytest.fixture
def qalqan(tmp_path: Path) -> FeedCli:
    cli = FeedCli(tmp_path / "data")
    cli.init = cli.json("init")
    return cli


def test_feed_lifecycle(qalqan: FeedCli, tmp_path: Path) -> None:
    feed = tmp_path / "drop.txt"
    feed.write_text("; DROP-style\n203.0.113.0/24 ; SBL1\nevil-domain.example\n999.1.1.1\n")
    added = qalqan.json(
        "feed", "add", "drop", "--source", "text", "--url", feed.as_uri(),
        "--tlp", "green", "--expire-after", "0s", "--schedule", "1h",
    )  # fmt: skip
    assert added["schedule"] == "1h"
    first = qalqan.json("feed", "run", "drop")
    assert (first["new"], first["rejected"]) == (2, 1)
    assert first["errors"] == [
        {"line": 4, "field": "value", "reason": first["errors"][0]["reason"], "value": "999.1.1.1"}
    ]
    assert qalqan.json("feed", "run", "drop")["new"] == 0
    feed.write_text("203.0.113.0/24\n")
    assert qalqan.json("feed", "run", "drop")["expired"] == 1
    shown = qalqan.json("feed", "show", "drop")
    assert [r["expired"] for r in shown["runs"]] == [1, 0, 0]
    listed = qalqan.json("feed", "list")
    assert [f["name"] for f in listed] == ["drop"]
    human = qalqan.ok("feed", "show", "drop").stdout
    assert "drop" in human
    assert qalqan.json("feed", "disable", "drop")["enabled"] is False
    assert qalqan.json("feed", "enable", "drop")["enabled"] is True
    changed = qalqan.json("feed", "set", "drop", "--expire-after", "never", "--schedule", "off")
    assert (changed["expire_after"], changed["schedule"]) == (None, None)
    assert qalqan.json("feed", "remove", "drop") == {"removed": "drop", "id": added["id"]}
    assert qalqan.json("feed", "list") == []


def test_failed_runs_exit_non_zero_and_say_why(qalqan: FeedCli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    qalqan.ok("feed", "add", "gone", "--source", "text", "--url", missing.as_uri())
    result = qalqan("feed", "run", "gone", "--json")
    assert result.returncode == 1
    report = orjson.loads(result.stdout)
    assert report["status"] == "failed"
    assert "cannot read" in report["error"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("feed", "add", "x", "--source", "nope", "--url", "https://f.example/x"), "unknown feed"),
        (
            (
                "feed",
                "add",
                "x",
                "--source",
                "text",
                "--url",
                "https://f.example/x",
                "--schedule",
                "often",
            ),
            "schedule",
        ),
        (
            (
                "feed",
                "add",
                "x",
                "--source",
                "csv",
                "--url",
                "https://f.example/x",
                "--option",
                "columns",
            ),
            "KEY=VALUE",
        ),
        (("feed", "run"), "--all"),
        (("feed", "show", "nothing"), "no feed"),
        (("warninglist", "add", "/nonexistent.json"), "no such file"),
    ],
)
def test_bad_input_is_one_clear_line(qalqan: FeedCli, args: tuple[str, ...], words: str) -> None:
    assert words in qalqan.fails(*args)


def test_warninglists_and_worker(qalqan: FeedCli, tmp_path: Path) -> None:
    own = tmp_path / "ours.json"
    own.write_text(
        orjson.dumps(
            {
                "name": "Government ranges",
                "type": "cidr",
                "list": ["192.0.2.0/24"],
                "matching_attributes": ["ip-dst"],
            }
        ).decode()
    )
    assert qalqan.json("warninglist", "add", str(own))["entries"] == 1
    checked = qalqan.json("warninglist", "check", "192.0.2.55", "8.8.8.8", "exa mple")
    assert checked[0]["list"] == "Government ranges"
    assert checked[1]["list"]
    assert "error" in checked[2]
    assert [w["name"] for w in qalqan.json("warninglist", "list")] == ["Government ranges"]
    feed = tmp_path / "f.txt"
    feed.write_text("192.0.2.1\n198.18.0.1\n")
    qalqan.ok(
        "feed", "add", "due", "--source", "text", "--url", feed.as_uri(), "--schedule", "10m"
    )  # fmt: skip
    result = qalqan.ok("worker", "--once")
    assert "due: ok" in result.stdout
    runs = qalqan.json("feed", "show", "due")["runs"]
    assert runs[0]["trigger"] == "schedule"
    assert runs[0]["warninglisted"] >= 1
    qalqan.ok("warninglist", "remove", "Government ranges")
    assert qalqan.json("warninglist", "list") == []
