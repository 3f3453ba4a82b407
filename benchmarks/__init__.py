"""Qalqan's benchmarks: each measures one path and a baseline in the same run, and their ratio.

Run them all with ``python -m benchmarks``, one with ``python -m benchmarks import_bulk``, and a
small smoke test with ``--quick``.
"""
