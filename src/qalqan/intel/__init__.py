"""Use cases of intelligence: import, read, revoke."""
