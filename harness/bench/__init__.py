"""Benchmarks: speed and memory goals live here, never in a test's assertion.

``python -m harness.bench analysis|throughput|acceptance|store|adaptive|cli|coverage|campaign``.
Public names: ``main`` (the command line), ``bench_throughput`` and ``parse_mode`` (fast paths).
"""

from harness.bench.cli import main
from harness.bench.throughput import bench_throughput, parse_mode

__all__ = ["main", "bench_throughput", "parse_mode"]
