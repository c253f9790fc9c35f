"""A run record: one flat row per run, every config field its own column."""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airbench_core import RunResult

from airbench_core.method import config_dict
from harness.spec.grid import RunSpec


@lru_cache(maxsize=1)
def code_version() -> str:
    """git commit of the harness (with -dirty for local changes), else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("airbench-harness")
        except PackageNotFoundError:
            return "unknown"


def config_columns(spec: RunSpec) -> dict[str, Any]:
    """Every config field its own column; a list (widths) as one string, 64x256x256."""
    return {
        k: ("x".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
        for k, v in config_dict(spec.cell.config).items()
    }


def base_record(spec: RunSpec, context: dict[str, Any]) -> dict[str, Any]:
    """Identity of a run: key, study, cell, factors and config columns, plus campaign context."""
    row = {
        "key": spec.key,
        **context,
        "cell": spec.cell.label,
        "seed": spec.seed,
        "method": spec.cell.method_spec,
        "config_json": json.dumps(config_dict(spec.cell.config), sort_keys=True),
    }
    row.update(config_columns(spec))
    row.update({k: v for k, v in spec.cell.factors.items() if k not in row})
    return row


def run_record(
    spec: RunSpec, result: RunResult, worker: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    row = base_record(spec, context)
    row.update({f"acc_tta{i}": a for i, a in enumerate(result.accuracy)})
    row.update(
        train_seconds=result.train_seconds,
        eval_seconds=result.eval_seconds,
        wall_seconds=result.wall_seconds,
        epochs_trained=result.epochs,
        steps=result.steps,
        n_test=int(result.predictions.shape[1]),
        code_version=code_version(),
    )
    row.update(result.env)
    row.update(worker)  # the worker's own method_version and data_fingerprint win over the driver's
    return row
