"""Persistence: the schema, its migrations, and the SQL of every area (the only place that
writes SQL)."""

__all__: list[str] = []
