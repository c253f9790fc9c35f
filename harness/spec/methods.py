"""The method registry: every method a study may train, built-in or a researcher's own, found one way.

A method spec (a study file's ``method``, ``--method``) is one of
- a built-in name: ``airbench94``, ``airbench95``, ``airbench96``, ``airbench94_muon``, ``airbench96_faster``;
- ``package.module:NAME``: an importable module's attribute (an installed package, or a module on
  ``PYTHONPATH``);
- ``path/to/file.py:NAME``: a Python file imported by its path (relative to the working directory).

``NAME`` must be an :class:`airbench_core.method.Method`. The built-ins are themselves entries of the
second form (``airbench_core.methods:AIRBENCH94``, ``airbench_core.muon:METHOD``, ...): a built-in
whose module this checkout lacks is left out of the list. Resolving a method imports its module, not
torch (a method module keeps torch inside its functions), so listing methods stays instant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from airbench_core.method import Method
from harness.spec.errors import UserError
from harness.spec.sources import files_version

DEFAULT_METHOD = "airbench94"
# Built-in names -> where they live; the optional ones exist once their modules do.
BUILTINS: dict[str, str] = {
    "airbench94": "airbench_core.methods:AIRBENCH94",
    "airbench95": "airbench_core.methods:AIRBENCH95",
    "airbench96": "airbench_core.methods:AIRBENCH96",
    "airbench94_muon": "airbench_core.muon:METHOD",
    "airbench96_faster": "airbench_core.faster:METHOD",
    "simulated": "airbench_core.simulated:METHOD",  # sleeps and synthetic predictions: the harness's own cost
}
FORMS = "a built-in name, package.module:NAME or path/to/file.py:NAME"


# A method module that blocks while it imports (input(), a lock, a network wait) ends after this many
# seconds with one line; long enough for a module that imports torch on a slow disk.
def _import_timeout(default: float = 60.0) -> float:
    """$AIRBENCH_METHOD_IMPORT_TIMEOUT in seconds; the default where it is unset or not a positive number."""
    try:
        value = float(os.environ.get("AIRBENCH_METHOD_IMPORT_TIMEOUT", default))
    except ValueError:
        return default
    return value if 0 < value < 1e6 else default


IMPORT_TIMEOUT_S = _import_timeout()
T = TypeVar("T")


class MethodError(UserError):
    """A method spec that names nothing usable: one line, with a 'did you mean' where one fits."""


class ImportTimeout(BaseException):
    """Raised into a method module's import that outlived IMPORT_TIMEOUT_S (a BaseException, so the
    module's own ``except Exception`` cannot swallow it)."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise ImportTimeout into the ``with`` block after ``seconds`` (a SIGALRM timer; only in the
    main thread, where signals are delivered, and only when no one else uses the timer)."""
    usable = (
        seconds > 0
        and threading.current_thread() is threading.main_thread()
        and hasattr(signal, "setitimer")
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
    )
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise ImportTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_user_code(spec: str, what: str, run: Callable[[], T]) -> T:
    """Run a user's module import: whatever it raises or does instead of finishing (sys.exit,
    os._exit aside; blocking past IMPORT_TIMEOUT_S) becomes a MethodError naming ``what``. Ctrl-C
    stays Ctrl-C."""
    try:
        with _deadline(IMPORT_TIMEOUT_S):
            return run()
    except KeyboardInterrupt:
        raise
    except MethodError:
        raise
    except ImportTimeout:
        raise MethodError(
            f"method {spec}: importing {what} did not finish within {IMPORT_TIMEOUT_S:g} s (does it wait "
            "for input, a lock or the network at import?)"
        ) from None
    except SystemExit as exc:
        raise MethodError(
            f"method {spec}: importing {what} called sys.exit({exc.code!r}); a method module must not exit"
        ) from None
    except BaseException as exc:
        raise MethodError(f"method {spec}: importing {what} failed: {type(exc).__name__}: {exc}") from None


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def builtin_names() -> list[str]:
    """The built-in methods this checkout has (an optional one appears once its module exists)."""
    return [name for name, target in BUILTINS.items() if _module_exists(target.partition(":")[0])]


def is_file_spec(spec: str) -> bool:
    left = spec.rpartition(":")[0]
    return left.endswith(".py") or "/" in left or "\\" in left


def file_module_name(path: Path) -> str:
    """One module name per file path, so a file imported twice is one module."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"_airbench_method_{stem}_{digest}"


def _import_file(path: Path, spec: str) -> types.ModuleType:
    name = file_module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise MethodError(f"method {spec}: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # dataclasses and type hints look their module up while it loads
    loader = loader_spec.loader
    try:
        _run_user_code(spec, str(path), lambda: loader.exec_module(module))
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import_module(module_name: str, spec: str) -> types.ModuleType:
    return _run_user_code(spec, module_name, lambda: _import_named(module_name, spec))


def _import_named(module_name: str, spec: str) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise MethodError(
                f"method {spec}: no module named {module_name} (install its package, or put it on "
                "PYTHONPATH; a file is given as path/to/file.py:NAME)"
            ) from None
        raise MethodError(
            f"method {spec}: importing {module_name} failed: ModuleNotFoundError: {exc}"
        ) from None
    except Exception as exc:
        raise MethodError(
            f"method {spec}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from None


def find_method(spec: str, base_dir: str | None = None) -> Method:
    """The Method a spec names (see the module's doc); a MethodError (one line) when it names none.
    ``base_dir`` resolves a relative file path (default: the working directory)."""
    if not isinstance(spec, str) or not spec:
        raise MethodError(f"method: expected {FORMS}, got {spec!r}")
    return _find(spec, str(Path(base_dir).resolve()) if base_dir else str(Path.cwd()))


@lru_cache(maxsize=64)
def _find(spec: str, base_dir: str) -> Method:
    if spec in BUILTINS:
        target = BUILTINS[spec]
        if not _module_exists(target.partition(":")[0]):
            raise MethodError(
                f"method {spec}: not in this checkout ({target.partition(':')[0]} is missing); "
                f"choose from {', '.join(builtin_names())}"
            )
        return _find(target, base_dir)
    left, sep, attr = spec.rpartition(":")
    if not sep or not left or not attr:
        close = difflib.get_close_matches(spec, list(BUILTINS), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise MethodError(
            f"unknown method {spec!r} ({hint}expected {FORMS}; built-ins: {', '.join(builtin_names())})"
        )
    if is_file_spec(spec):
        # relative: to the driver's working directory, else (a Ray working_dir copy) to this process's
        path = Path(left)
        tried = [path] if path.is_absolute() else [Path(base_dir) / path, Path.cwd() / path]
        path = next((p for p in tried if p.is_file()), tried[0]).resolve()
        if not path.is_file():
            raise MethodError(f"method {spec}: no file {path}")
        module = _import_file(path, spec)
    else:
        module = _import_module(left, spec)
    if not hasattr(module, attr):
        names = [n for n, v in vars(module).items() if isinstance(v, Method)]
        close = difflib.get_close_matches(attr, names, n=1) or names[:1]
        hint = f" (did you mean {left}:{close[0]}?)" if close else " (it defines no Method)"
        raise MethodError(f"method {spec}: {left} has no attribute {attr}{hint}")
    method = getattr(module, attr)
    if not isinstance(method, Method):
        raise MethodError(
            f"method {spec}: {attr} is a {type(method).__name__}, not an airbench_core.method.Method"
        )
    if not dataclasses.is_dataclass(method.defaults) or isinstance(method.defaults, type):
        raise MethodError(
            f"method {spec}: its defaults must be an instance of a config dataclass, "
            f"got {type(method.defaults).__name__}"
        )
    imported_version(method)  # the code just imported is the code this process runs: pin its version
    return method


def list_methods() -> list[tuple[str, Method]]:
    """(built-in name, method) for every built-in this checkout has."""
    return [(name, find_method(name)) for name in builtin_names()]


def source_files(method: Method) -> list[Path]:
    """The files whose bytes make the method's version: its ``sources``, else the file of its ``train``."""
    if method.sources:
        return sorted(Path(p).resolve() for p in method.sources)
    try:
        file = inspect.getsourcefile(method.train)
    except (TypeError, OSError):
        return []
    return [Path(file).resolve()] if file else []


# id(method) -> (method, version of its sources when this process first resolved it); the method is
# held so that its id is never reused by another object.
_PINNED: dict[int, tuple[Method, str]] = {}


def imported_version(method: Method) -> str:
    """The version (``harness.spec.sources.files_version``) of the method's sources as they were when
    this process first resolved the method: the code it runs, whatever the files on disk say now."""
    held = _PINNED.get(id(method))
    if held is None or held[0] is not method:
        held = _PINNED[id(method)] = (method, files_version(source_files(method)))
    return held[1]
