"""``qalqan serve`` as a real server: a subprocess on a free loopback port, a real HTTP client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from qalqan.testing import bundle, indicator

QALQAN = Path(sys.executable).parent / "qalqan"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A served, initialised SQLite node: (base URL, admin API key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QALQAN_")}
    env["QALQAN_DATA_DIR"] = str(tmp_path / "data")
    init = subprocess.run(
        [str(QALQAN), "init", "--json"], env=env, capture_output=True, check=True, timeout=60
    )
    key = orjson.loads(init.stdout)["api_key"]
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [str(QALQAN), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/api/v1/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer within 30 s"
            time.sleep(0.1)
        yield base, key
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)
        log.close()


def test_a_served_node_takes_and_gives_intelligence(served: tuple[str, str]) -> None:
    base, key = served
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        obj = indicator("http://evil.example/x", kind="url")
        r = client.post("/api/v1/objects?tlp=green&distribution=node", json=bundle(obj))
        assert r.status_code == 201, r.text
        page = client.get("/api/v1/objects", params={"type": "indicator"}).json()
        assert [item["id"] for item in page["items"]] == [obj["id"]]
        found = client.get("/api/v1/observables", params={"value": "hxxp://evil[.]example/x"})
        assert [item["id"] for item in found.json()["items"]] == [obj["id"]]
        exported = client.get("/api/v1/export/stix")
        assert exported.headers["content-type"].startswith("application/stix+json")
        assert obj["id"] in {o["id"] for o in exported.json()["objects"]}
        assert client.get("/openapi.json").json()["info"]["title"] == "Qalqan"
        unauthenticated = httpx.get(f"{base}/api/v1/objects", timeout=10)
        assert unauthenticated.status_code == 401


def test_a_served_node_refuses_oversized_bodies(served: tuple[str, str]) -> None:
    base, key = served
    huge = b'{"type":"bundle","objects":[' + b" " * (101 * 1024 * 1024) + b"]}"
    r = httpx.post(
        f"{base}/api/v1/objects",
        content=huge,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"
