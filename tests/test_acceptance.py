"""The GPU acceptance command's plumbing, on the CPU with a tiny configuration: the numbers it
prints and writes are the ones its own per-run records give."""

import json

import numpy as np
import pytest
from scipy import stats as st

from harness.bench import main as bench_main


def test_acceptance_writes_paired_differences_and_intervals_recomputable_from_its_runs(
    data_source, tmp_path, capsys
):
    out = tmp_path / "acceptance.json"
    assert (
        bench_main(
            [
                "acceptance",
                "--data",
                data_source,
                "--runs",
                "2",
                "--device",
                "cpu",
                "--mode",
                "pack2",
                "--throughput-runs",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert sum(line.startswith("run ") for line in printed.splitlines()) == 4  # a line per run, as it goes
    result = json.loads(out.read_text())
    runs = result["runs"]
    assert [(r["seed"], r["flip"]) for r in runs] == [
        (s, f) for s in range(2) for f in ("alternating", "random")
    ]
    for level in range(3):
        alt = np.array([r[f"tta{level}"] for r in runs if r["flip"] == "alternating"])
        rnd = np.array([r[f"tta{level}"] for r in runs if r["flip"] == "random"])
        summary = result["accuracy"]["alternating"][f"tta{level}"]
        half = st.t.ppf(0.975, 1) * alt.std(ddof=1) / np.sqrt(2)
        assert np.isclose(summary["mean"], 100 * alt.mean()) and np.isclose(
            summary["high"], 100 * (alt.mean() + half)
        )
        assert np.isclose(summary["std"], 100 * alt.std(ddof=1))
        d = alt - rnd  # paired by seed, not Welch
        diff = result["alternating_minus_random"][f"tta{level}"]
        half = st.t.ppf(0.975, 1) * d.std(ddof=1) / np.sqrt(2)
        assert np.isclose(diff["mean"], 100 * d.mean()) and np.isclose(diff["low"], 100 * (d.mean() - half))
    for key in ("train_s", "eval_s", "wall_s"):
        assert np.isclose(result["seconds_per_run"][key], np.mean([r[key] for r in runs]))
    assert all(r["train_s"] + r["eval_s"] <= r["wall_s"] for r in runs)
    assert [t["mode"] for t in result["throughput"]] == ["eager (the runs above)", "pack2"]
    alt = np.array([r["tta2"] for r in runs if r["flip"] == "alternating"])
    assert np.isclose(result["throughput"][0]["tta2"]["value"], 100 * alt.mean())
    assert np.isclose(result["throughput"][0]["runs_per_hour"], result["eager_runs_per_gpu_hour"])
    # pack2 trains the same seeds of the same (alternating) config: equal up to summation order
    assert abs(result["throughput"][0]["tta2"]["value"] - result["throughput"][1]["tta2"]["value"]) <= 0.5
    assert all(c["passed"] for c in result["checks"])


def test_acceptance_refuses_cuda_where_there_is_none(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        return
    assert bench_main(["acceptance", "--device", "cuda", "--out", str(tmp_path / "a.json")]) == 2
    assert "no CUDA" in capsys.readouterr().err and not (tmp_path / "a.json").exists()


def test_every_record_is_the_run_of_its_own_flip_and_seed(data_source, tmp_path, monkeypatch):
    """A spy in place of train(): each record must come from a run trained with the flip and the seed it is
    labelled with, so the paired difference is alternating − random of the same seed. Instant: no training."""
    import importlib

    train_module = importlib.import_module(
        "airbench_core.train"
    )  # the package exports a function of that name
    from harness.bench.acceptance import run_acceptance

    trained = []

    def fake_train(config, seed, *args, **kwargs):
        trained.append((config.flip, seed))
        acc = 0.5 + 0.01 * (seed % 7) + (0.03 if config.flip == "random" else 0.0) + 0.001 * (seed % 7) ** 2
        return train_module.RunResult(
            config, seed, (acc, acc, acc), 1.0, 0.5, 2.0, config.epochs, 10, np.zeros((3, 1), np.uint8)
        )

    monkeypatch.setattr(train_module, "train", fake_train)
    result = run_acceptance(data_source, None, 3, "cpu", "tiny", [], 0, tmp_path / "a.json")
    assert trained[1:] == [(f, s) for s in range(3) for f in ("alternating", "random")]  # [0] is the warm-up
    assert [(r["seed"], r["flip"]) for r in result["runs"]] == [(s, f) for f, s in trained[1:]]
    diff = result["alternating_minus_random"]["tta2"]
    # same seed: d is exact, and differences that never vary give no interval (not a zero-width one)
    assert diff["mean"] == pytest.approx(-3.0) and np.isnan(diff["low"]) and np.isnan(diff["high"])
    assert json.loads((tmp_path / "a.json").read_text())["accuracy"]["random"]["tta2"][
        "mean"
    ] == pytest.approx(100 * np.mean([0.53 + 0.01 * s + 0.001 * s * s for s in range(3)]))
