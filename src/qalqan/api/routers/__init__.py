"""One router per area of the REST API."""

__all__: list[str] = []
