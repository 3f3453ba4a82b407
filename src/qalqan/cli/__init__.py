"""The ``qalqan`` command: an admin console working on the local data dir."""
