"""What a run's numbers depend on beyond its key: the method's code and the data it saw.

The run key (``TrainConfig.key``) names what was asked for. ``method_version`` names the code that
did it (a hash of the ``airbench_core`` sources' syntax trees, so comments and docstrings do not count) and the data fingerprint (``Cifar10.fingerprint``)
the decoded images; both are kept in every record so a store never pools runs silently.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

import airbench_core

CORE_DIR = Path(airbench_core.__file__).resolve().parent


@lru_cache(maxsize=1)
def method_version() -> str:
    """Hash of every ``airbench_core/*.py`` file (name and normalised syntax tree): any edit to what
    the method does changes it; comments, docstrings, blank lines and formatting do not, and edits to
    the harness, studies or tests do not either."""
    h = hashlib.sha256()
    for path in sorted(CORE_DIR.glob("*.py")):
        h.update(path.name.encode() + b"\0" + normalised_source(path.read_bytes(), path.name) + b"\0")
    return h.hexdigest()[:12]


def normalised_source(source: bytes, name: str = "<source>") -> bytes:
    """The code's syntax tree without docstrings, dumped without line numbers: equal for two sources
    that differ only in comments, docstrings or layout. Unparsable code falls back to its bytes."""
    try:
        tree = ast.parse(source, filename=name)
    except (SyntaxError, ValueError):
        return source
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=True, include_attributes=False).encode()
