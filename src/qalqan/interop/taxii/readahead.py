"""Read-ahead for clients that page through a collection.

TAXII clients page in sequence: they ask for a page, parse it, then ask for the one after it.
While a client parses page *n*, the server would sit idle; instead, having answered page *n*, it
prepares page *n + 1* in a background thread, so that the next request only authenticates,
finds the collection, and picks the page up. The prepared page is the same query with the
same policy filter, for the same user, org and groups, run a few milliseconds earlier: pages
are keyset pages on ``date_added``, so objects written in between come after it and nothing is
repeated or skipped. Pages are kept briefly (``_TTL_S``) and few at a time (``_MAX_PAGES``),
so memory stays bounded; a page nobody asks for is dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

__all__ = ["PreparedPage", "ReadAhead"]

_TTL_S = 5.0
_MAX_PAGES = 16
_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class PreparedPage:
    """A rendered page and what is needed to prepare the one after it."""

    body: bytes
    headers: dict[str, str]
    following: Any  # the query of the next page, or None on the last page


class ReadAhead:
    """Pages prepared in advance, by key, for one app; :meth:`close` it when the app stops."""

    def __init__(self, workers: int = 2) -> None:
        self._pages: OrderedDict[Hashable, tuple[float, Future[PreparedPage]]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="taxii-read-ahead")
        self._closed = False

    def prepare(self, key: Hashable, render: Callable[[], PreparedPage]) -> None:
        """Start rendering the page ``key`` in the background (not once closed)."""
        with self._lock:
            if self._closed or key in self._pages:
                return
            self._pages[key] = (time.monotonic(), self._pool.submit(render))
            while len(self._pages) > _MAX_PAGES:
                _, (_, dropped) = self._pages.popitem(last=False)
                dropped.cancel()

    def take(self, key: Hashable) -> PreparedPage | None:
        """The page prepared for ``key`` (waiting for it if it is still being rendered), or
        None when there is none, it is too old, or rendering it failed."""
        with self._lock:
            entry = self._pages.pop(key, None)
        if entry is None:
            return None
        started, future = entry
        if time.monotonic() - started > _TTL_S:
            future.cancel()
            return None
        try:
            return future.result(timeout=_WAIT_S)
        except Exception:  # the request then renders the page itself
            return None

    def close(self) -> None:
        """Drop the prepared pages and wait for renders under way: none may touch the database
        after the app that started it has stopped."""
        with self._lock:
            self._closed = True
            self._pages.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
