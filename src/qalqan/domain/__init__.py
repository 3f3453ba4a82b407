"""Pure types and functions of the intelligence domain: no I/O."""
