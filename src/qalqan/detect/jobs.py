"""Sweeps of uploaded logs, run in the background of the API server.

An upload is written to the node's data directory as it arrives (never held in memory), the
run is recorded as ``queued`` at once, and a small pool of worker threads sweeps it; the
upload is deleted when its run ends. The pool lives and stops with the app: at shutdown it
stops taking work and waits for the sweeps under way.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Engine

from qalqan.detect.sweep import SweepOptions, run_sweep
from qalqan.domain.principal import Principal
from qalqan.errors import QalqanError, Unavailable
from qalqan.store import detections as store
from qalqan.store.clock import now_us

__all__ = ["SweepJobs"]

_log = logging.getLogger(__name__)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class SweepJobs:
    """Queued sweeps of uploaded files."""

    def __init__(self, engine: Engine, upload_dir: Path, *, workers: int = 1, stored_hits: int):
        self._engine = engine
        self.upload_dir = upload_dir
        self._stored_hits = stored_hits
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep")
        self._lock = threading.Lock()
        self._closed = False
        self._running: dict[str, Future[None]] = {}

    def new_upload(self, name: str | None) -> tuple[str, Path]:
        """A run id and the file its upload goes to: named after the run and the name the
        client gave (reduced to safe characters, so it cannot point elsewhere), which hits
        then show."""
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        run_id = str(uuid.uuid4())
        stem = _SAFE_NAME.sub("_", Path(name or "upload.log").name)[-100:].lstrip(".")
        return run_id, self.upload_dir / f"{run_id}-{stem or 'upload.log'}"

    def submit(
        self, run_id: str, principal: Principal, options: SweepOptions, upload: Path
    ) -> None:
        """Record the run as queued and sweep ``upload`` in the background."""
        # Checked and recorded under the lock: once closed, no run is left queued that no
        # worker will take.
        with self._lock:
            if self._closed:
                upload.unlink(missing_ok=True)
                raise Unavailable("the server is shutting down; send the log again later")
            with self._engine.begin() as conn:
                store.create_run(
                    conn,
                    run_id=run_id,
                    principal=principal,
                    origin=options.origin,
                    files=[options.shown(str(options.paths[0]))],
                    options=options.to_dict(),
                    at=now_us(),
                    status="queued",
                )
            future = self._pool.submit(self._sweep, run_id, principal, options, upload)
            self._running[run_id] = future

    def _sweep(
        self, run_id: str, principal: Principal, options: SweepOptions, upload: Path
    ) -> None:
        try:
            run_sweep(
                self._engine,
                principal,
                options,
                run_id=run_id,
                stored_hits=self._stored_hits,
            )
        except QalqanError:
            pass  # recorded with the run, where its owner reads it
        except Exception:
            _log.exception("sweep %s failed", run_id)
        finally:
            upload.unlink(missing_ok=True)
            with self._lock:
                self._running.pop(run_id, None)

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        """Block until the run ends (for tests and for callers that want the result)."""
        with self._lock:
            future = self._running.get(run_id)
        if future is not None:
            future.result(timeout=timeout)

    def open(self) -> None:
        """Take work again after :meth:`close` (an app that is started once more)."""
        with self._lock:
            if self._closed:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._workers, thread_name_prefix="sweep"
                )
                self._closed = False

    def close(self) -> None:
        """Take no more work; wait for the sweeps under way."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=False)
