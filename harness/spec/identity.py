"""What a run's numbers depend on beyond its key: the method's code and the data it saw.

The run key (``Method.key``) names what was asked for. ``method_version`` names the code that did it
(a hash of the syntax trees of the files that define the method, its ``sources``, so comments,
docstrings and layout do not count) and the data fingerprint (``Cifar10.fingerprint``) the decoded
images; both are kept in every record so a store never pools runs silently. The paper's methods hash
the ``airbench_core`` files they are made of.
"""

from __future__ import annotations

from airbench_core.method import Method
from harness.spec.methods import DEFAULT_METHOD, find_method, imported_version, source_files
from harness.spec.sources import files_version, normalised_source  # noqa: F401  (re-exported)


def method_version(method: Method | str | None = None) -> str:
    """The version of the code this process runs for the method: the hash of its source files (name
    and normalised syntax tree) taken when ``find_method`` first imported it, so a long-lived worker
    reports the code it trains with, not a file edited on disk since. Any edit to what the method does
    changes it; comments, docstrings, blank lines and formatting do not, and neither do edits to the
    harness, studies or tests. ``method`` is a Method or a spec (default: airbench94)."""
    if not isinstance(method, Method):
        method = find_method(method or DEFAULT_METHOD)
    return imported_version(method)


def source_version(method: Method | str | None = None) -> str:
    """The version of the method's source files as they are on disk now (what a fresh import would
    run): differs from ``method_version`` once a file was edited after this process imported it."""
    if not isinstance(method, Method):
        method = find_method(method or DEFAULT_METHOD)
    return files_version(source_files(method))


def method_family(method: Method) -> str:
    """The name a method's runs are keyed (and versioned) under: airbench94/95/96 share ``airbench``."""
    return method.key_name or method.name
