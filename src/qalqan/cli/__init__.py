"""The ``qalqan`` command: an admin console working on the local data dir."""

__all__: list[str] = []
