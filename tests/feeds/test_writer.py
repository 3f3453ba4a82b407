"""The writer process of large feed runs: it writes what it is sent, and its failures fail the
run with a clear message instead of hanging or losing batches silently."""

from __future__ import annotations

import pytest

from qalqan.errors import StoreError
from qalqan.feeds import subscriptions
from qalqan.feeds.values import Counts, PreparedBatch, ValueBatches
from qalqan.feeds.writer import ProcessWriter
from qalqan.intel.warninglists import WarninglistIndex
from qalqan.store import feeds as feeds_store
from qalqan.store.clock import now_us
from qalqan.testing import TestNode


def _batches(node: TestNode) -> ValueBatches:
    with node.instance.begin() as conn:
        feed = subscriptions.add_feed(
            conn,
            node.principals["admin@a.test"],
            subscriptions.FeedSpec("w", "text", "https://feeds.example/w.txt"),
        )
    counts = Counts(dict.fromkeys(feeds_store.COUNTS, 0))
    return ValueBatches(
        node.instance,
        feed,
        "identity--7d4c6ab1-0b2e-4e6e-9c11-3c2f5f4b5a61",
        now_us(),
        WarninglistIndex.compile([]),
        counts,
        lambda *_: None,
    )


def test_a_dead_writer_fails_the_next_submit(node: TestNode) -> None:
    writer = ProcessWriter(_batches(node))
    writer._process.kill()
    writer._process.wait()
    with pytest.raises(StoreError, match="writer process stopped"):
        writer.submit(PreparedBatch())
    writer.close()


def test_a_batch_the_database_refuses_is_an_error_not_a_hang(node: TestNode) -> None:
    batches = _batches(node)
    writer = ProcessWriter(batches)
    twice = (
        1,
        "192.0.2.1",
        "ip",
        "indicator--1b0c1f0e-5a9b-4c5e-8d6f-7a8b9c0d1e2f",
        None,
        "d",
        None,
    )
    writer.submit(PreparedBatch(values=[twice, twice]))
    with pytest.raises(StoreError, match="feed writer failed"):
        writer.drain()
    writer.close()
