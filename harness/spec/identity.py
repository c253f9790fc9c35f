"""What a run's numbers depend on beyond its key: the method's code and the data it saw.

The run key (``TrainConfig.key``) names what was asked for. ``method_version`` names the code that
did it (a hash of the ``airbench_core`` sources) and the data fingerprint (``Cifar10.fingerprint``)
the decoded images; both are kept in every record so a store never pools runs silently.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import airbench_core

CORE_DIR = Path(airbench_core.__file__).resolve().parent


@lru_cache(maxsize=1)
def method_version() -> str:
    """Hash of every ``airbench_core/*.py`` file (name and bytes): any edit to the method changes it;
    edits to the harness, studies or tests do not."""
    h = hashlib.sha256()
    for path in sorted(CORE_DIR.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]

