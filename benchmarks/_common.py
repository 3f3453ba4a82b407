"""What the benchmarks share: result rows, latency statistics, seeded identifiers and a server.

Every benchmark returns :class:`Row` values for the final table: Qalqan's figure, the baseline
measured in the same run, their ratio, and whether the target of the issue is met.
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

__all__ = [
    "Context",
    "Latency",
    "Row",
    "measure_latency",
    "running_server",
    "seeded_uuid",
    "stix_stamp",
]

_SERVER_START_TIMEOUT_S = 60.0

T = TypeVar("T")


@dataclass
class Context:
    """One run of the benchmarks: its size, its scratch directory and what benchmarks share.

    ``shared`` builds a costly fixture (such as the million-object store) once for every
    benchmark that asks for it; ``resources`` closes what those fixtures opened.
    """

    quick: bool
    work_dir: Path
    resources: ExitStack = field(default_factory=ExitStack)
    _shared: dict[str, Any] = field(default_factory=dict)

    def size(self, full: int, quick: int) -> int:
        """The full size, or the smoke-test size under ``--quick``."""
        return quick if self.quick else full

    def shared(self, key: str, build: Callable[[Context], T]) -> T:
        """The fixture ``key``, built by ``build`` on first use."""
        if key not in self._shared:
            self._shared[key] = build(self)
        value: T = self._shared[key]
        return value


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the final table.

    ``ratio`` is always "how many times better Qalqan is than the baseline" (a rate divided by
    the baseline's rate, or the baseline's time divided by Qalqan's time).
    """

    benchmark: str
    metric: str
    qalqan: str
    baseline: str
    ratio: float | None
    target: str
    met: bool


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency statistics of repeated calls, in milliseconds."""

    count: int
    p50: float
    p95: float
    mean: float

    @classmethod
    def of(cls, samples_s: list[float]) -> Latency:
        millis = [s * 1000 for s in samples_s]
        p95 = statistics.quantiles(millis, n=20, method="inclusive")[18] if len(millis) > 1 else 0
        return cls(len(millis), statistics.median(millis), p95, statistics.fmean(millis))

    def __str__(self) -> str:
        return f"p50 {self.p50:7.2f} ms  p95 {self.p95:7.2f} ms  (n={self.count})"


def measure_latency(call: Callable[[int], object], repeats: int, warmup: int = 5) -> Latency:
    """Time ``call(i)`` for i in ``range(repeats)``, after ``warmup`` untimed calls."""
    for i in range(warmup):
        call(i)
    samples = []
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
    return Latency.of(samples)


def seeded_uuid(rng: random.Random) -> str:
    """An RFC 4122 version 4 UUID drawn from ``rng`` (version and variant bits set)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def stix_stamp(rng: random.Random) -> str:
    """A STIX timestamp in 2024-2025, with milliseconds."""
    seconds = 1_704_067_200 + rng.randrange(2 * 365 * 86_400)
    moment = time.gmtime(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{rng.randrange(1000):03d}Z"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(data_dir: Path) -> Iterator[str]:
    """Serve the instance in ``data_dir`` with ``qalqan serve`` in a child process on a free
    loopback port; yields its base URL and stops the process on exit.

    A separate process keeps the client's work off the server's interpreter lock, as in real use.
    """
    port = _free_port()
    env = {**os.environ, "QALQAN_DATA_DIR": str(data_dir), "QALQAN_LOG_LEVEL": "warning"}
    env.pop("QALQAN_DATABASE_URL", None)
    log_path = data_dir / "server.log"
    command = [
        sys.executable,
        "-c",
        "from qalqan.cli.main import run; run()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(base_url, process, log_path)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + _SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base_url}/api/v1/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not start in time:\n{log_path.read_text()[-2000:]}")
