"""The REST API: FastAPI app factory, auth dependencies, one router per area."""

from qalqan.api.app import create_app

__all__ = ["create_app"]
