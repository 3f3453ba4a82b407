"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse

from qalqan import __version__
from qalqan.api.limits import BodyLimit
from qalqan.api.problems import install_handlers
from qalqan.api.routers import (
    admin,
    attack,
    cases,
    correlation,
    detections,
    evidence,
    exports,
    feeds,
    health,
    notify,
    objects,
    rfas,
    scores,
    search,
    sightings,
    stats,
    taxii,
)
from qalqan.detect.jobs import SweepJobs
from qalqan.instance import Instance
from qalqan.interop.taxii import server as taxii_server
from qalqan.settings import Settings

__all__ = ["app_from_environment", "create_app"]

API_PREFIX = "/api/v1"


def create_app(instance: Instance) -> FastAPI:
    """The app serving ``instance``: REST API under ``/api/v1``, OpenAPI docs at ``/docs``."""
    app = FastAPI(
        title="Qalqan",
        version=__version__,
        summary="Threat intelligence sharing under TLP 2.0 and distribution rules",
        openapi_url="/openapi.json",
        docs_url="/docs",
    )
    app.state.instance = instance
    install_handlers(app)
    for module in (
        health,
        objects,
        correlation,
        search,
        sightings,
        notify,
        scores,
        attack,
        stats,
        admin,
        feeds,
        taxii,
        exports,
        detections,
        cases,
        evidence,
        rfas,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    taxii_server.install(app)
    _install_sweeps(app, instance)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    app.add_middleware(
        BodyLimit,
        limit=instance.settings.max_body_bytes,
        exempt=frozenset(
            {API_PREFIX + detections.SWEEPS_PATH, API_PREFIX + evidence.EVIDENCE_PATH}
        ),
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _without_422(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _install_sweeps(app: FastAPI, instance: Instance) -> None:
    """Background sweeps of uploaded logs, which live and stop with the app."""
    settings = instance.settings
    jobs = SweepJobs(
        instance.engine,
        settings.data_dir / "uploads",
        stored_hits=settings.sweep_stored_hits,
    )
    app.state.sweep_jobs = jobs
    running = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        jobs.open()
        async with running(served) as state:
            try:
                yield state
            finally:
                await run_in_threadpool(jobs.close)

    app.router.lifespan_context = lifespan


def _without_422(document: dict[str, Any]) -> dict[str, Any]:
    """Drop the framework's default 422 responses: invalid input is answered with a 400
    problem document, which each operation documents itself."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def app_from_environment() -> FastAPI:
    """An app for the instance the environment names (for multi-worker servers)."""
    return create_app(Instance.open(Settings(), create=False))
