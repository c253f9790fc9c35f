"""Campaign semantics with the in-process backend: failures are recorded and the campaign goes on."""
from harness import campaign, store
from harness.backends import LocalBackend
from harness.grid import Cell, Study
from harness.report import write_report
from studies.base import base_config


def broken_study() -> Study:
    good = base_config("smoke", epochs=1.0)
    bad = base_config("smoke", epochs=1.0, batch_size=5000)       # more than the 2,000 training images
    return Study("tta_variance", "one good cell, one that cannot train",
                 lambda preset: [Cell({"cell": "good"}, good), Cell({"cell": "bad"}, bad)],
                 lambda c: [])


def test_a_run_that_keeps_failing_is_recorded_and_the_campaign_goes_on(cifar, tmp_path):
    study = broken_study()
    attempts = []
    backend = LocalBackend(cifar.source, None, "cpu", False)
    summary = campaign.run(study, "smoke", 2, tmp_path, cifar, backend, retries=1, progress=False,
                           on_outcome=attempts.append)
    assert (summary.trained, summary.failed) == (2, 2) and len(attempts) == 4
    failures = store.load_failures(tmp_path)
    assert sorted(failures["seed"]) == [0, 1] and set(failures["cell"]) == {"cell=bad"}
    assert failures["error"].str.contains("cannot fill one batch of 5000").all()
    frame, _ = store.load(tmp_path)
    assert set(frame["cell"]) == {"cell=good"}
    report = write_report(tmp_path, study).read_text()
    assert "## Failed runs" in report and "2 finished, 2 failed" in report

    again = campaign.run(study, "smoke", 2, tmp_path, cifar, LocalBackend(cifar.source, None, "cpu", False),
                         retries=0, progress=False)
    assert (again.trained, again.skipped, again.failed) == (0, 2, 2), "failed runs are retried on resume"


def test_local_backend_needs_no_ray_and_ray_backend_says_how_to_do_without(monkeypatch, tmp_path, data_source,
                                                                          capsys):
    import sys

    from harness.study import main
    monkeypatch.setitem(sys.modules, "ray", None)          # as on a GPU box without Ray: import fails
    args = ["tta_variance", "--seeds", "1", "--preset", "smoke", "--data", data_source, "--no-report"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    assert "pass --backend local" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert main([*args, "--out", str(tmp_path / "b"), "--backend", "local"]) == 0
    assert len(store.load(tmp_path / "b")[0]) == 1
