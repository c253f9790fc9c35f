"""The static checks, pinned: loosening the import-linter contracts in pyproject.toml (a layer moved,
a forbidden module dropped, an exception added) fails here, not only in review; and the core's
modules import one another without a circle, lazy imports included; mypy stays strict where it must,
and pre-commit runs what CI runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]

LAYERS = [
    "harness.study | harness.compare | harness.export",
    "harness.bench",
    "harness.cli",
    "studies",
    "harness.report",
    "harness.run",
    "harness.store",
    "harness.spec",
    "harness.stats",
    "airbench_core",
]
# The only imports allowed to go up: `python -m harness.store|report` forwarding to its command line.
MAIN_FORWARDS = {
    "harness.store.__main__ -> harness.cli.store",
    "harness.report.__main__ -> harness.cli.report",
}
FORBIDDEN = {
    "harness.stats": {"torch", "ray", "pyarrow", "matplotlib", "seaborn"},
    "airbench_core": {"harness", "studies", "ray"},
}


@pytest.fixture(scope="module")
def linter() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def contracts_of(linter: dict, kind: str) -> list[dict]:
    return [c for c in linter["contracts"] if c["type"] == kind]


def test_layer_order_is_pinned(linter):
    (layers,) = contracts_of(linter, "layers")
    assert layers["layers"] == LAYERS
    assert set(layers.get("ignore_imports", [])) == MAIN_FORWARDS
    assert set(linter["root_packages"]) == {"airbench_core", "harness", "studies"}
    # Without external packages the forbidden contracts on torch, ray, ... would check nothing.
    assert linter["include_external_packages"] is True


def test_forbidden_modules_are_pinned(linter):
    found = {}
    for contract in contracts_of(linter, "forbidden"):
        for source in contract["source_modules"]:
            found.setdefault(source, set()).update(contract["forbidden_modules"])
        assert not contract.get("ignore_imports") and not contract.get("allow_indirect_imports")
    for source, modules in FORBIDDEN.items():
        assert modules <= found.get(source, set()), f"{source} may now import {modules - found[source]}"


def test_no_cycles_contract_covers_every_package(linter):
    (acyclic,) = contracts_of(linter, "acyclic_siblings")
    assert {"harness", "harness.*", "airbench_core", "studies"} <= set(acyclic["ancestors"])
    assert set(acyclic.get("ignore_imports", [])) <= MAIN_FORWARDS


def core_imports(path: Path) -> set[str]:
    """Sibling modules of airbench_core that `path` imports: statically, or by
    importlib.import_module on a constant name (the lazy imports import-linter cannot see)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airbench_core."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value.removeprefix("airbench_core").lstrip("."))
    return found - {""}


def test_core_modules_import_without_a_circle():
    # Old: muon.py's __getattr__ imported muon_train, which imported muon for its config.
    graph = {p.stem: core_imports(p) for p in (ROOT / "airbench_core").glob("*.py") if p.stem != "__init__"}
    assert "muon_config" in graph["muon_train"] and "muon" not in graph["muon_train"]
    for module, imported in graph.items():
        for other in imported:
            assert module not in graph.get(other, set()), f"airbench_core.{module} <-> {other}"


# ----------------------------------------------------------------------------- types and pre-commit

STRICT_FLAGS = {
    "disallow_untyped_defs",
    "disallow_incomplete_defs",
    "disallow_untyped_calls",
    "disallow_untyped_decorators",
    "disallow_any_generics",
    "disallow_subclassing_any",
    "check_untyped_defs",
    "warn_return_any",
    "no_implicit_reexport",
    "strict_equality",
    "extra_checks",
}


def test_mypy_is_strict_on_stats_spec_and_store_and_ignores_nothing_blanket():
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert set(mypy["files"]) == {"airbench_core", "harness", "studies"}
    assert not mypy.get("ignore_missing_imports") and not mypy.get("ignore_errors")
    strict = [o for o in mypy["overrides"] if {k for k, v in o.items() if v is True} >= STRICT_FLAGS]
    modules = {m for o in strict for m in o["module"]}
    assert {"harness.stats.*", "harness.spec.*", "harness.store.*"} <= modules
    for override in mypy["overrides"]:
        assert not override.get("ignore_errors")
        if override.get("ignore_missing_imports"):  # only libraries without types, never our code
            assert not any(
                m.split(".")[0] in {"harness", "airbench_core", "studies"} for m in override["module"]
            )


def test_pre_commit_runs_the_checks_ci_runs():
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h["entry"] for repo in config["repos"] for h in repo["hooks"]}
    assert {"ruff", "ruff-format", "mypy", "lint-imports"} <= set(hooks)
    ci = (ROOT / ".ci/run").read_text()
    for entry in hooks.values():
        assert entry.split()[0] in ci  # the same tools, configured once in pyproject.toml
    assert "\nmypy\n" in ci and "mkdocs build --strict" in ci
