"""Pure types and functions of the intelligence domain: no I/O."""

__all__: list[str] = []
