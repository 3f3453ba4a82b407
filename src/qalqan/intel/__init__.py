"""Use cases of intelligence: import, read, revoke."""

__all__: list[str] = []
