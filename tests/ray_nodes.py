"""Ray nodes started by a test and stopped by it alone: the benchmark's ``Node`` (``ray start ...
--block`` in its own process group, ended by signalling that group; ``ray stop`` would stop every
Ray on the machine), as a context manager."""

from __future__ import annotations

import os
from contextlib import contextmanager

from harness.bench.campaign import Node, free_port  # noqa: F401  (free_port: for the tests)


@contextmanager
def ray_node(*args: str, env: dict | None = None):
    """A ``ray start ... --block`` node for the ``with`` block; yields its process."""
    node = Node(*args, env=env or dict(os.environ))
    try:
        yield node.proc
    finally:
        node.stop()
