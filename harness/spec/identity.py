"""What a run's numbers depend on beyond its key: the method's code and the data it saw.

The run key (``Method.key``) names what was asked for. ``method_version`` names the code that did it
(a hash of the syntax trees of the files that define the method, its ``sources``, so comments,
docstrings and layout do not count) and the data fingerprint (``Cifar10.fingerprint``) the decoded
images; both are kept in every record so a store never pools runs silently. The paper's methods hash
the ``airbench_core`` files they are made of.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

from airbench_core.method import Method
from harness.spec.methods import DEFAULT_METHOD, find_method, source_files


def method_version(method: Method | str | None = None) -> str:
    """Hash of the method's source files (name and normalised syntax tree): any edit to what the
    method does changes it; comments, docstrings, blank lines and formatting do not, and neither do
    edits to the harness, studies or tests. ``method`` is a Method or a spec (default: airbench94)."""
    if not isinstance(method, Method):
        method = find_method(method or DEFAULT_METHOD)
    files = tuple(source_files(method))
    return _hash(files, tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in files))


@lru_cache(maxsize=64)
def _hash(paths: tuple[Path, ...], stamps: tuple[tuple[int, int], ...]) -> str:
    """(``stamps``, the files' modification times and sizes, make an edited file a new cache entry.)"""
    h = hashlib.sha256()
    for path in paths:
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
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=True, include_attributes=False).encode()


def method_family(method: Method) -> str:
    """The name a method's runs are keyed (and versioned) under: airbench94/95/96 share ``airbench``."""
    return method.key_name or method.name
