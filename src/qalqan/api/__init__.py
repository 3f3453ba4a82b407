"""The REST API: FastAPI app factory, auth dependencies, one router per area.

``create_app`` is imported on first use, so command-line tools that only need the API's
schemas do not pay for loading the web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qalqan.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from qalqan.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
