"""A real TAXII 2.1 server for tests: medallion, the OASIS reference server, on 127.0.0.1.

``running_taxii_server()`` serves one API root (``api1``) holding a readable collection
(``COLLECTION_ID``, with ``SAMPLE_OBJECTS`` added at distinct past dates) and a write-only one
(``WRITE_ONLY_ID``), from medallion's in-memory backend, to one Basic-auth user. It runs on a
free port in a daemon thread and stops when the ``with`` block ends.

medallion 3 builds its app on a module-level Flask instance; to give each server its own state,
the helper configures a fresh Flask app with medallion's own ``set_config`` and
``register_blueprints`` and registers medallion's error handlers on it.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import medallion
from flask import Flask
from medallion.exceptions import BackendError, ProcessingError
from werkzeug.serving import WSGIRequestHandler, make_server

__all__ = [
    "API_ROOT",
    "COLLECTION_ID",
    "PASSWORD",
    "SAMPLE_OBJECTS",
    "USERNAME",
    "WRITE_ONLY_ID",
    "TaxiiServer",
    "running_taxii_server",
]

API_ROOT = "api1"
COLLECTION_ID = "d474a816-97f8-4963-901c-9dc86b5bf0e6"
WRITE_ONLY_ID = "779b5e61-8c9f-4b15-bd92-25fe7990bd3b"
USERNAME = "analyst"
PASSWORD = "correct horse battery staple"
TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"

_IDENTITY = "identity--405e863a-6abe-4608-bbf6-78007a40491f"
_MALWARE = "malware--a36ae358-2681-4591-9f16-b99dd5fe6485"
_INDICATOR = "indicator--a6ea625e-0832-46df-902d-e00204ae996e"


def _sdo(type_name: str, stix_id: str, created: str, **properties: Any) -> dict[str, Any]:
    common = {"type": type_name, "spec_version": "2.1", "id": stix_id}
    return {**common, "created": created, "modified": created, **properties}


SAMPLE_OBJECTS: list[dict[str, Any]] = [
    _sdo(
        "identity",
        _IDENTITY,
        "2024-05-01T08:00:00.000Z",
        name="CERT-Upstream",
        identity_class="organization",
    ),
    _sdo(
        "malware",
        _MALWARE,
        "2024-05-01T08:05:00.000Z",
        name="QakBot",
        malware_types=["trojan"],
        is_family=True,
    ),
    _sdo(
        "indicator",
        _INDICATOR,
        "2024-05-01T08:10:00.000Z",
        name="QakBot C2",
        pattern="[ipv4-addr:value = '198.51.100.77']",
        pattern_type="stix",
        valid_from="2024-05-01T08:10:00Z",
    ),
    _sdo(
        "indicator",
        "indicator--dd30baa6-7c66-414a-8b9c-044cf97e2106",
        "2024-05-01T08:15:00.000Z",
        name="QakBot delivery domain",
        pattern="[domain-name:value = 'invoices-portal.example']",
        pattern_type="stix",
        valid_from="2024-05-01T08:15:00Z",
    ),
    _sdo(
        "relationship",
        "relationship--6f1c2a3e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
        "2024-05-01T08:20:00.000Z",
        relationship_type="indicates",
        source_ref=_INDICATOR,
        target_ref=_MALWARE,
    ),
]
"""The objects of the readable collection, added one minute apart from 2024-05-01T10:00Z."""


def _date_added(position: int) -> str:
    return f"2024-05-01T10:{position:02d}:00.000000Z"


def _collection(collection_id: str, title: str, objects: list[dict[str, Any]]) -> dict[str, Any]:
    readable = collection_id != WRITE_ONLY_ID
    manifest = [
        {
            "id": obj["id"],
            "date_added": _date_added(position),
            "version": obj["modified"],
            "media_type": STIX_MEDIA_TYPE,
        }
        for position, obj in enumerate(objects)
    ]
    return {
        "id": collection_id,
        "title": title,
        "can_read": readable,
        "can_write": True,
        "media_types": [STIX_MEDIA_TYPE],
        "objects": [dict(obj) for obj in objects],
        "manifest": manifest,
    }


def _discovery(base_url: str) -> dict[str, Any]:
    return {
        "title": "Qalqan test TAXII server",
        "description": "medallion serving test data",
        "default": f"{base_url}{API_ROOT}/",
        "api_roots": [f"{base_url}{API_ROOT}/"],
    }


def _api_root() -> dict[str, Any]:
    """One API root with its two collections, as medallion's memory backend holds it."""
    return {
        "information": {
            "title": "Upstream sharing",
            "versions": [TAXII_MEDIA_TYPE],
            "max_content_length": 10_000_000,
        },
        "status": [],
        "collections": [
            _collection(COLLECTION_ID, "Indicators", SAMPLE_OBJECTS),
            _collection(WRITE_ONLY_ID, "Drop box", []),
        ],
    }


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's request handler without its access log on stderr."""

    def log(self, type: str, message: str, *args: Any) -> None:
        return


@dataclass(frozen=True)
class TaxiiServer:
    """A running test server; ``base_url`` ends with ``/``."""

    base_url: str

    def collection_url(self, collection_id: str = COLLECTION_ID) -> str:
        """The URL of a collection of the API root."""
        return f"{self.base_url}{API_ROOT}/collections/{collection_id}/"

    def add_objects(self, objects: list[dict[str, Any]]) -> None:
        """Add objects through the TAXII API (Add Objects): medallion dates them now."""
        response = httpx.post(
            self.collection_url() + "objects/",
            content=json.dumps({"objects": objects}),
            headers={"Accept": TAXII_MEDIA_TYPE, "Content-Type": TAXII_MEDIA_TYPE},
            auth=(USERNAME, PASSWORD),
            timeout=5,
        )
        assert response.status_code == 202, response.text
        assert response.json()["success_count"] == len(objects), response.text


def _app(max_page_size: int) -> Flask:
    app = Flask("qalqan-test-taxii")
    backend = {
        "module": "medallion.backends.memory_backend",
        "module_class": "MemoryBackend",
        "filename": io.StringIO(json.dumps({API_ROOT: _api_root()})),
        # The backend sweeps expired paging sessions on a timer thread it never stops; a day
        # keeps the sweep from ever running inside a test run.
        "check_interval": 24 * 3600,
    }
    config = {
        "users": {USERNAME: PASSWORD},
        "taxii": {"max_page_size": max_page_size},
        "backend": backend,
    }
    for part in ("users", "taxii", "backend"):
        medallion.set_config(app, part, config)
    medallion.register_blueprints(app)
    app.register_error_handler(ProcessingError, medallion.handle_processing_error)
    app.register_error_handler(BackendError, medallion.handle_backend_error)
    return app


@contextmanager
def running_taxii_server(max_page_size: int = 100) -> Iterator[TaxiiServer]:
    """Serve a fresh TAXII 2.1 server on 127.0.0.1 for the length of the block."""
    app = _app(max_page_size)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    base_url = f"http://127.0.0.1:{server.port}/"
    # Discovery names the server's own URL, known once the port is bound.
    backend: Any = app.medallion_backend  # type: ignore[attr-defined]  # set by medallion
    backend.data["/discovery"] = _discovery(base_url)
    # A short poll interval lets shutdown() return at once instead of after half a second.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield TaxiiServer(base_url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
