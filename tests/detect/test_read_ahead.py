"""Reading ahead of the matcher: order kept, reader errors raised in place, early stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from qalqan.detect.events import EventBatch, empty_frame
from qalqan.detect.sweep import read_ahead
from qalqan.errors import InvalidInput


def _batches(count: int, fail_at: int | None = None) -> Iterator[EventBatch]:
    for n in range(count):
        if n == fail_at:
            raise InvalidInput(f"batch {n} is unreadable")
        yield EventBatch(frame=empty_frame(), format="jsonl", bytes_read=n)


def test_batches_come_in_order() -> None:
    assert [b.bytes_read for b in read_ahead(_batches(20), depth=2)] == list(range(20))


def test_a_reader_error_is_raised_after_the_batches_before_it() -> None:
    ahead = read_ahead(_batches(10, fail_at=3))
    assert [next(ahead).bytes_read for _ in range(3)] == [0, 1, 2]
    with pytest.raises(InvalidInput, match="batch 3"):
        next(ahead)


def test_stopping_early_stops_the_reader() -> None:
    before = threading.active_count()
    ahead = read_ahead(_batches(1000))
    assert next(ahead).bytes_read == 0
    ahead.close()
    assert threading.active_count() == before
