"""The TAXII 2.1 server: collections bound to the handling rules, served at ``/taxii2/``."""

__all__: list[str] = []
