"""Benchmarks of the fake etcd discovery service against the real stack (issue 5).

Run them all with ``python -m bench`` (``--smoke`` for the smallest sizes); see
``bench/README.md`` for the measured table and what each group does.
"""
