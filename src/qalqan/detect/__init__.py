"""Detection: read logs, match them against the indicators an org may see and against Sigma
rules, and report what hit.

``events`` is the common shape every log reader produces and every matcher consumes;
``readers`` turn files into batches of events; ``plan`` and ``matcher`` are the IOC sweep;
``sigma`` compiles and runs Sigma rules; ``sweep`` ties a run together and records it.
"""

__all__: list[str] = []
