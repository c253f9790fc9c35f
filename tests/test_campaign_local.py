"""Campaign semantics with the in-process backend: failures, retries, the shared store, mixing."""

import dataclasses
import sys

import numpy as np
import pytest

from harness import store
from harness.report.writer import write_report
from harness.run import campaign
from harness.run.backends import LocalBackend
from harness.run.worker import Outcome
from harness.spec.grid import Base, Cell, Study


def broken_study() -> Study:
    good = Base().config("smoke", epochs=1.0)
    bad = Base().config("smoke", epochs=1.0, batch_size=5000)  # more than the 2,000 training images
    return Study(
        "tta_variance",
        "one good cell, one that cannot train",
        lambda preset, base: [Cell({"cell": "good"}, good), Cell({"cell": "bad"}, bad)],
        lambda c: [],
    )


def one_cell_study(name: str, factors: dict, **overrides) -> Study:
    cfg = Base().config("smoke", epochs=1.0, **overrides)
    return Study(name, "one cell", lambda preset, base: [Cell(factors, cfg)], lambda c: [])


def test_a_run_that_keeps_failing_is_recorded_and_the_campaign_goes_on(cifar, tmp_path):
    study = broken_study()
    outcomes = []
    backend = LocalBackend(cifar.source, None, "cpu", False)
    summary = campaign.run(
        study, "smoke", 2, tmp_path, cifar, backend, retries=1, progress=False, on_outcome=outcomes.append
    )
    assert (summary.trained, summary.failed, summary.retries, summary.recovered) == (2, 2, 2, 0)
    assert len(outcomes) == 6, "2 good + 2 bad runs x 2 attempts"
    failures = store.load_failures(tmp_path)
    assert sorted(failures["seed"]) == [0, 1] and set(failures["cell"]) == {"cell=bad"}
    # the root cause, complete, with where it was raised (defect 11)
    assert (
        failures["error"]
        .str.match(r"^ValueError: .*cannot fill one batch of 5000.* \(at \w+\.py:\d+ in \w+\)$")
        .all()
    )
    frame, _ = store.load(tmp_path)
    assert set(frame["cell"]) == {"cell=good"}
    report = write_report(tmp_path, study).read_text()
    assert "## Failed runs" in report and "2 finished, 2 failed" in report

    again = campaign.run(
        study,
        "smoke",
        2,
        tmp_path,
        cifar,
        LocalBackend(cifar.source, None, "cpu", False),
        retries=0,
        progress=False,
    )
    assert (again.trained, again.skipped, again.failed) == (0, 2, 2), "failed runs are retried on resume"


class FlakyBackend(LocalBackend):
    """Fails each run's first ``failures`` attempts (as a crashing worker would), then trains it."""

    def __init__(self, *args, failures: int = 2):
        super().__init__(*args)
        self.failures, self.attempts = failures, {}

    def run(self, queue):
        while queue:
            spec = queue.popleft()
            self.attempts[spec.key] = self.attempts.get(spec.key, 0) + 1
            if self.attempts[spec.key] <= self.failures:
                yield Outcome(spec, None, f"RuntimeError: flaky attempt {self.attempts[spec.key]}", {})
            else:
                queue.appendleft(spec)
                yield from super().run(type(queue)([queue.popleft()]))


def test_a_worker_failing_twice_then_succeeding_is_retried_and_stored_once(cifar, tmp_path):
    study = one_cell_study("tta_variance", {"epochs": 1.0})
    backend = FlakyBackend(cifar.source, None, "cpu", False, failures=2)
    summary = campaign.run(study, "smoke", 1, tmp_path, cifar, backend, retries=2, progress=False)
    assert (summary.trained, summary.failed, summary.retries, summary.recovered) == (1, 0, 2, 1)
    assert "2 retries (1 runs recovered)" in summary.line()
    frame, preds = store.load(tmp_path)
    assert len(frame) == 1 and preds.shape[0] == 1 and not store.failed_keys(tmp_path)
    assert backend.attempts == {frame["key"][0]: 3}


def test_a_campaign_that_never_retries_records_the_failure(cifar, tmp_path):
    backend = FlakyBackend(cifar.source, None, "cpu", False, failures=1)
    summary = campaign.run(
        one_cell_study("tta_variance", {"epochs": 1.0}),
        "smoke",
        1,
        tmp_path,
        cifar,
        backend,
        retries=0,
        progress=False,
    )
    assert (summary.trained, summary.failed, summary.retries) == (0, 1, 0)
    frame, preds = store.load(tmp_path)  # zero finished runs: empty but well formed
    assert len(frame) == 0 and preds.shape == (0, 3, 0)
    assert {"key", "cell", "seed", "acc_tta0", "acc_tta1", "acc_tta2"} <= set(frame.columns)
    assert store.load_failures(tmp_path)["error"].tolist() == ["RuntimeError: flaky attempt 1"]


def test_a_run_trained_for_one_study_is_never_trained_again_for_another(cifar, tmp_path):
    root = tmp_path / "store"
    first = campaign.run(
        one_cell_study("tta_variance", {"epochs": 1.0}),
        "smoke",
        2,
        tmp_path / "a",
        cifar,
        LocalBackend(cifar.source, None, "cpu", False),
        progress=False,
        store_root=root,
    )
    assert first.trained == 2
    other = one_cell_study("flip_vs_alternating", {"flip": "alternating", "epochs": 1.0})
    second = campaign.run(
        other,
        "smoke",
        2,
        tmp_path / "b",
        cifar,
        LocalBackend(cifar.source, None, "cpu", False),
        progress=False,
        store_root=root,
    )
    assert (second.trained, second.skipped) == (0, 2)
    a, preds_a = store.load(tmp_path / "a")
    b, preds_b = store.load(tmp_path / "b")
    assert list(a["key"]) == list(b["key"]) and np.array_equal(preds_a, preds_b)
    assert set(b["cell"]) == {"flip=alternating, epochs=1.0"} and set(b["study"]) == {"flip_vs_alternating"}
    assert set(a["cell"]) == {"epochs=1.0"}
    assert len(store.load(root)[0]) == 2


def test_other_data_in_the_same_store_stops_before_training(cifar, tmp_path):
    """Defect 2: two test classes swapped is another data set; it must not join the store."""
    study = one_cell_study("tta_variance", {"epochs": 1.0})
    campaign.run(
        study, "smoke", 1, tmp_path, cifar, LocalBackend(cifar.source, None, "cpu", False), progress=False
    )
    labels = cifar.test_labels.copy()
    labels[cifar.test_labels == 3], labels[cifar.test_labels == 5] = 5, 3
    swapped = dataclasses.replace(cifar, test_labels=labels)
    assert swapped.fingerprint != cifar.fingerprint
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(
        campaign.MixedStoreError, match=f"holds runs on data {cifar.fingerprint}.*is {swapped.fingerprint}"
    ):
        campaign.run(
            study,
            "smoke",
            2,
            tmp_path,
            swapped,
            LocalBackend(cifar.source, None, "cpu", False),
            progress=False,
        )
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_local_backend_needs_no_ray_and_ray_backend_says_how_to_do_without(
    monkeypatch, tmp_path, data_source, capsys
):
    from harness.cli.study import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as on a GPU box without Ray: import fails
    args = [
        "tta_variance",
        "--seeds",
        "1",
        "--preset",
        "smoke",
        "--data",
        data_source,
        "--no-report",
        "--store",
        str(tmp_path / "store"),
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    assert "pass --backend local" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "store").exists()
    assert main([*args, "--out", str(tmp_path / "b"), "--backend", "local"]) == 0
    assert len(store.load(tmp_path / "b")[0]) == 1
