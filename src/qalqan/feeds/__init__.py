"""Feeds: subscriptions to the threat feeds an org already uses, kept current.

``sources/`` parse each kind (one module per kind), ``pipeline`` turns what they yield into
indicators (normalize, warninglists, deduplicate, store, expire), ``subscriptions`` manages feeds
with their access rules and ``schedule`` runs them when due.
"""

__all__: list[str] = []
