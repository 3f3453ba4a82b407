"""Evidence of a case: files stored once by their SHA-256, never executed or rendered, with a
chain of custody (who collected, uploaded, transferred and downloaded each item, when and how).

:mod:`qalqan.evidence.storage` keeps the bytes; :mod:`qalqan.evidence.service` keeps the items
and their custody, and decides with :mod:`qalqan.policy.evidence` who may touch them.
"""

from __future__ import annotations

__all__: list[str] = []
