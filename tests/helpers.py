"""Helpers shared by the harness tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def study_cli(
    *args: str, timeout: int = 300, env: dict | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """Run ``python -m harness.study`` as a user would, from the project root."""
    return module_cli("harness.study", *args, timeout=timeout, env=env, **kwargs)


def module_cli(
    module: str, *args: str, timeout: int = 300, env: dict | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """Run ``python -m MODULE`` (harness.study, harness.store, harness.claim...) as a user would."""
    env = {**(env or os.environ), "PYTHONPATH": str(ROOT), **one_thread_under_xdist()}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
        **kwargs,
    )


def one_thread_under_xdist() -> dict:
    """Under pytest-xdist several test processes share the cores: a CLI they start trains on one thread
    (OpenMP threads beyond the cores spin against each other)."""
    return {"OMP_NUM_THREADS": "1"} if os.environ.get("PYTEST_XDIST_WORKER") else {}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under a folder with its size and modification time, to prove nothing changed."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def stored_runs(root: Path) -> int:
    """Rows in the store's run files and packs: runs that finish together are group-committed to a
    small pack, not a file each, so counting ``runs/*.parquet`` alone can miss every run."""
    import pyarrow.parquet as pq

    from harness.store import run_files

    rows = 0
    for path in run_files(root):
        # compaction may fold a file into a pack between glob and read
        with contextlib.suppress(FileNotFoundError):
            rows += pq.ParquetFile(path).metadata.num_rows
    return rows


def wait_until_stored(proc: subprocess.Popen, root: Path, n: int) -> None:
    """Block until the campaign has stored n runs: the deterministic point to signal it at."""
    while stored_runs(root) < n:
        assert proc.poll() is None, "the campaign ended before storing enough runs"
        time.sleep(0.05)


def sleeping_study(
    folder: Path,
    run_seconds: float,
    tables: str = "[grid]\naccuracy = [0.94]\n",
    top: str = "",
    name: str = "sleeping",
) -> Path:
    """A study file of the simulated method (each run sleeps ``run_seconds``, no torch in the workers),
    for tests of what surrounds training (kills, clusters, schedulers): its path. ``top``: more
    top-level keys; ``tables``: what follows ``[base]`` (default one grid cell)."""
    path = Path(folder) / f"{name}.toml"
    path.write_text(
        f'method = "simulated"\n{top}\n[base]\nrun_seconds = {run_seconds}\nn_test = 1000\n\n{tables}'
    )
    return path


# Same run up to float summation order: grouped or compiled kernels add in another order, and training
# steps amplify the first step's rounding differences. Measured on the tests' tiny configs (torch 2.14,
# CPU): saved fp16 logits (|logit| up to ~2.6) of packed vs separate runs differ by at most 1e-3 (one
# fp16 step), compiled vs eager by at most 0.015; near-ties flip about one prediction in 1,500 after 20
# steps and 8 in 1,500 after 40 (test_fidelity's 4 epochs: a 22%-accurate network has many near-ties),
# which moves an accuracy on 500 test images by 0.006. The bounds reject a different run (another init,
# order or augmentation), whose logits differ by O(1) and whose predictions disagree on far more than 1%.
LOGIT_TOL = 0.05
PREDICTION_AGREEMENT = 0.99
ACCURACY_TOL = 0.01  # what 1% of predictions flipped can move an accuracy by


def assert_same_run(reference, other) -> None:
    """Two RunResults of one seed are the same run up to float summation order (with logits saved)."""
    assert reference.seed == other.seed
    assert (reference.predictions == other.predictions).mean() >= PREDICTION_AGREEMENT
    assert np.abs(reference.logits.astype(float) - other.logits.astype(float)).max() <= LOGIT_TOL
    assert np.allclose(reference.accuracy, other.accuracy, rtol=0, atol=ACCURACY_TOL)
