"""The version of a piece of code: a hash of its files' normalised syntax trees (comments, docstrings
and layout do not count). Kept apart from the registry so that resolving a method can pin the version
of the code it imported (``harness.spec.methods``) and ``harness.spec.identity`` can name it."""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path


def files_version(files: Sequence[Path]) -> str:
    """12 hex digits of the files' names and normalised syntax trees, as they are on disk now."""
    paths = tuple(files)
    return _hash(paths, tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in paths))


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
