"""Every result a method returns is checked before it is stored (issue 28.7): a bad result is a failed
run whose error names the failed check, a method that raises (SystemExit included) or returns None
is a failed run, and the campaign goes on to the next run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from airbench_core.simulated import SimulatedConfig, SimulatedData, labels, train
from harness import store
from harness.run import campaign
from harness.run.backends import LocalBackend
from harness.run.checks import result_problem
from harness.spec.grid import Cell, Study
from harness.spec.methods import find_method

N = 200
Y = labels(N)


def good():
    return train(SimulatedConfig(run_seconds=0.0, n_test=N), seed=3)


def test_a_good_simulated_result_passes_every_check():
    assert result_problem(good(), Y) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(accuracy=(float("nan"), 0.9, 0.9)), "accuracy nan at TTA level 0 is not a finite fraction"),
        (dict(accuracy=(7.0, 0.9, 0.9)), "accuracy 7.0 at TTA level 0 is not a finite fraction in [0, 1]"),
        (dict(train_seconds=-1.0), "train_seconds -1.0 is not a finite number >= 0"),
        (dict(wall_seconds=float("inf")), "wall_seconds inf is not a finite number >= 0"),
        (
            dict(predictions=np.zeros((3, N // 2), np.uint8)),
            f"predictions have shape (3, {N // 2}), expected (3, {N})",
        ),
        (dict(predictions=np.zeros((2, N), np.uint8)), f"predictions have shape (2, {N}), expected (3, {N})"),
        (
            dict(predictions=np.full((3, N), 200, np.uint8), accuracy=(1.0, 1.0, 1.0)),
            "predictions hold class 200",
        ),
        (dict(predictions=np.full((3, N), 0.5)), "predictions are float64"),
    ],
)
def test_each_bad_result_names_the_check_it_fails(change, message):
    assert message in result_problem(dataclasses.replace(good(), **change), Y)


def test_an_accuracy_its_own_predictions_contradict_fails():
    r = good()
    claimed = dataclasses.replace(r, accuracy=(1.0, r.accuracy[1], r.accuracy[2]))
    problem = result_problem(claimed, Y)
    assert (
        "accuracy 1 at TTA level 0 differs from" in problem and "recomputed from its predictions" in problem
    )
    assert f"{r.accuracy[0]:.6g}" in problem


def test_none_is_not_a_result():
    assert "train returned NoneType, not an airbench_core.RunResult" in result_problem(None, Y)


BAD_METHOD = """
import dataclasses, sys
import numpy as np
from airbench_core.method import Method
from airbench_core.simulated import SimulatedConfig, train as simulated_train

def train(config, seed, data=None, device="cpu", save_logits=False):
    r = simulated_train(config, seed, data, device, save_logits)
    if seed == 0:
        return dataclasses.replace(r, accuracy=(float("nan"),) * 3)
    if seed == 1:
        return dataclasses.replace(r, predictions=r.predictions[:2])
    if seed == 2:
        sys.exit(3)
    if seed == 3:
        return None
    if seed == 4:
        return dataclasses.replace(r, train_seconds=-5.0)
    return r

METHOD = Method(name="bad", defaults=SimulatedConfig(run_seconds=0.0, n_test=200), train=train,
                sources=(__file__,))
"""


def run_bad(folder: Path, seeds: int) -> campaign.Summary:
    path = folder / "bad_method.py"
    path.write_text(BAD_METHOD)
    spec = f"{path}:METHOD"
    method = find_method(spec)
    study = Study("bad", "bad results", grid=lambda preset, base: [Cell({"m": "bad"}, method.defaults, spec)])
    data = SimulatedData(N)
    backend = LocalBackend("", None, "cpu", False, method=method, method_data=data)
    return campaign.run(study, "full", seeds, folder / "out", data, backend, retries=0, progress=False)


def test_bad_results_become_failed_runs_naming_their_check_and_the_campaign_goes_on(tmp_path):
    summary = run_bad(tmp_path, 6)
    assert (summary.trained, summary.failed) == (1, 5)
    runs, preds = store.load(tmp_path / "out")
    assert list(runs["seed"]) == [5] and preds.shape == (1, 3, N)
    errors = dict(
        zip(store.load_failures(tmp_path / "out")["seed"], store.load_failures(tmp_path / "out")["error"])
    )
    assert "InvalidResult: accuracy nan at TTA level 0" in errors[0]
    assert "InvalidResult: predictions have shape (2, 200)" in errors[1]
    assert errors[2].startswith("SystemExit: 3")
    assert "train returned NoneType" in errors[3]
    assert "InvalidResult: train_seconds -5.0" in errors[4]


def sleepers(seconds: dict[str, float]) -> Study:
    """Cells of the simulated method whose runs sleep the given seconds (a hung run: a long sleep)."""
    sim = find_method("simulated")
    cells = [
        Cell({"run": name}, sim.config(run_seconds=s, n_test=N), "simulated") for name, s in seconds.items()
    ]
    return Study("sleepers", "runs that hang", grid=lambda preset, base: cells, presets=("full",))


def test_an_attempt_past_the_run_timeout_is_stopped_its_worker_replaced_and_counted_failed(tmp_path):
    data = SimulatedData(N)
    backend = LocalBackend(
        "", None, "cpu", False, method=find_method("simulated"), method_data=data, run_timeout=0.5
    )
    summary = campaign.run(
        sleepers({"quick": 0.0, "hung": 600.0}), "full", 2, tmp_path, data, backend, retries=1, progress=False
    )
    # a hung run that was not stopped would finish after 600 s as a trained run: here every attempt of
    # it failed (2 seeds x 2 attempts) and its worker was replaced each time
    assert (summary.trained, summary.failed, summary.retries, summary.restarts) == (2, 2, 2, 4)
    failures = store.load_failures(tmp_path)
    assert set(failures["cell"]) == {"run=hung"}
    assert all(
        e.startswith("RunTimeout: the attempt ran past --run-timeout 0.5 s") for e in failures["error"]
    )
    assert set(store.load(tmp_path)[0]["cell"]) == {"run=quick"}


def test_the_default_run_timeout_comes_from_the_plan():
    from harness.stats.planning import run_timeout

    assert run_timeout(np.array([2.0, 45.0]), measured=True) == 450.0  # 10x the longest measured run
    assert run_timeout(np.array([2.0]), measured=True) == 300.0  # at least 5 minutes
    assert run_timeout(np.array([2.65, 80.0]), measured=False) == 8000.0  # 100x a reference figure
    assert run_timeout(np.array([2.65]), measured=False) == 3600.0  # at least an hour


def test_a_bad_run_timeout_is_one_line_exit_2():
    from helpers import study_cli

    r = study_cli("tta_variance", "--run-timeout", "-5", "--dry-run")
    assert r.returncode == 2 and "--run-timeout" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_the_class_check_reads_the_datasets_k():
    """A K = 100 dataset's class 42 is a class; on CIFAR-10 (K = 10) it is not."""
    y = np.full(N, 42, np.uint8)
    r = dataclasses.replace(good(), predictions=np.full((3, N), 42, np.uint8), accuracy=(1.0, 1.0, 1.0))
    assert result_problem(r, y, classes=100) is None
    assert "predictions hold class 42, expected classes 0 to 9" in result_problem(r, y)
    assert "expected classes 0 to 19" in result_problem(r, y, classes=20)
