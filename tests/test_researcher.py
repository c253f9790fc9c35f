"""What a researcher sees (issue 18): plans from comparable runs only, one store holding many test-set
sizes, smoke folders of their own, figures for study files and comparisons, report.html, the
terminal's verdicts, and export. Simulated runs throughout: nothing here trains."""
from __future__ import annotations

import re

import numpy as np
import pytest

from harness import store
from harness.run.simulate import simulated_runs
from harness.spec.studies import find_study


def put_runs(root, study, seeds, preset="smoke", n=1000, device="cpu", wall=60.0, seed=0, study_name=None):
    """Simulated runs of ``study`` written into the store ``root`` as if trained on ``device``."""
    _, runs, preds, _ = simulated_runs(study, seeds, preset, n, seed)
    for record, p in zip(runs.to_dict("records"), preds):
        record.update(device_name=device, wall_seconds=wall * (1 + 0.5 * record["seed"]), n_test=n,
                      epochs_trained=record["epochs"], study=study_name or study.name)
        store.write_run(root, record, p)
    store.note_identity(root, "simulated", "simulated")
    return runs


def dry_run(capsys, *args) -> str:
    from harness.cli.study import main
    assert main([*args, "--dry-run"]) == 0
    return capsys.readouterr().out


def cost(text: str) -> str:
    return re.search(r"cost: ([\d.]+ \S+-hours)", text).group(1)


def test_a_gpu_plan_never_prices_itself_from_cpu_smoke_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")        # as on a machine without a GPU
    study = find_study("flip_vs_alternating")
    root = tmp_path / "store"
    empty = dry_run(capsys, "flip_vs_alternating", "--seeds", "400", "--store", str(root), "--out", str(tmp_path / "a"))
    put_runs(root, study, 2)                               # the README's smoke step, on a CPU
    after = dry_run(capsys, "flip_vs_alternating", "--seeds", "400", "--store", str(root), "--out", str(tmp_path / "a"))
    assert cost(after) == cost(empty) and cost(after).endswith("GPU-hours")
    assert "no runs of the same method and full preset on GPU (any model)" in after
    precision = lambda text: next(line for line in text.splitlines() if line.startswith("with 400 seeds"))
    assert precision(after) == precision(empty) and "0.030 points" in precision(after)
    # the smoke plan on this CPU learns from those runs, names them, and is priced in CPU-hours
    smoke = dry_run(capsys, "flip_vs_alternating", "--seeds", "4", "--preset", "smoke", "--store", str(root),
                    "--out", str(tmp_path / "b"))
    assert cost(smoke).endswith("CPU-hours")
    assert "12 runs of the same method and smoke preset on CPU in this store" in smoke
    assert "pooled within cells over 12 runs of the same method, preset and device" in smoke


def test_gpu_runs_of_the_same_preset_price_a_gpu_plan(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    study = find_study("flip_vs_alternating")
    root = tmp_path / "store"
    put_runs(root, study, 2, preset="full", device="NVIDIA H200", wall=3.0)
    put_runs(root, study, 2, preset="smoke", device="cpu", wall=500.0)
    text = dry_run(capsys, "flip_vs_alternating", "--seeds", "400", "--store", str(root), "--out", str(tmp_path / "a"))
    assert "36 runs of the same method and full preset on GPU (any model) in this store (NVIDIA H200)" in text
    assert "7164 of 7164 runs from runs of the same config" in text
