"""Claims ("X% in Y seconds"), time as an outcome, time to target, and runs imported from anywhere:
each statistic against simulated data whose truth is known, and the command lines end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from harness import store
from harness.report import claims as rc
from harness.spec.claim import ClaimSpec
from harness.stats import claims as cs
from tests.helpers import module_cli, sleeping_study, study_cli

# --------------------------------------------------------------------------- the statistics


def test_fixed_claim_is_scipys_one_sided_t_test_and_its_lower_bound_covers():
    rng = np.random.default_rng(0)
    x = 94.02 + rng.normal(0, 0.15, 50)
    c = cs.fixed_claim(x, 94.0)
    assert c.p == pytest.approx(st.ttest_1samp(x, 94.0, alternative="greater").pvalue, rel=1e-12)
    half = st.t.ppf(0.95, 49) * x.std(ddof=1) / np.sqrt(50)
    assert c.lower == pytest.approx(x.mean() - half)
    # the one-sided bound covers the true mean 95% of the time, and at the boundary p < α 5% of the time
    draws = 94.0 + rng.normal(0, 0.15, (1000, 20))
    claims = [cs.fixed_claim(d, 94.0) for d in draws]
    assert abs(np.mean([c.lower <= 94.0 for c in claims]) - 0.95) < 0.025
    assert abs(np.mean([c.holds for c in claims]) - 0.05) < 0.025


def test_the_sequence_keeps_its_error_at_the_boundary_under_monitoring_after_every_run():
    """Mean exactly at the target (runs of 90 or 98 points, mean 94), looked at after every run up to
    150: the claim "mean > 94" is declared in at most α of campaigns, where a t-test read after every
    run (from 10 on) declares it far more often."""
    rng = np.random.default_rng(1)
    x = np.where(rng.random((200, 150)) < 0.5, 90.0, 98.0)
    lower, _ = cs.claim_sequences(x, 0.05)
    holds = (lower[:, 9:] > 94.0).any(1)
    assert holds.mean() <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 200)
    t_reads = [any(cs.fixed_claim(r[:t], 94.0).holds for t in range(10, 151, 5)) for r in x[:100]]
    assert np.mean(t_reads) > 0.1  # why a t-test read repeatedly is never the verdict


def test_a_true_claim_holds_a_false_one_fails_and_a_close_one_is_undecided():
    rng = np.random.default_rng(2)
    good = 94.5 + rng.normal(0, 1.0, 300)
    assert cs.sequential_claim(good, 80.0, min_runs=5).outcome == cs.HOLDS
    assert cs.sequential_claim(good, 99.0, min_runs=5).outcome == cs.FAILS
    close = cs.sequential_claim(good, 94.5, min_runs=5, max_runs=300)
    assert close.outcome == cs.UNDECIDED and close.n == 300
    assert cs.sequential_claim(good[:20], 94.5, min_runs=5, max_runs=300).outcome == cs.RUNNING


def test_time_summary_and_ratio_cover_the_known_truth():
    rng = np.random.default_rng(3)
    hits_mean, hits_ratio_paired, hits_ratio_welch = [], [], []
    for _ in range(400):
        seed_effect = rng.normal(0, 0.05, 30)  # a seed's data order costs both methods alike
        a = 2.5 + seed_effect + rng.normal(0, 0.03, 30)
        b = 2.0 + seed_effect + rng.normal(0, 0.03, 30)
        hits_mean.append(cs.time_summary(a).mean.covers(2.5))
        seeds = np.arange(30)
        paired = cs.time_comparison(a, b, seeds, seeds[::-1][np.argsort(seeds[::-1])])
        assert paired.paired
        hits_ratio_paired.append(paired.ratio.covers(1.25))
        welch = cs.time_comparison(a[:15], b[15:])  # other seeds: independent runs
        assert not welch.paired
        hits_ratio_welch.append(welch.ratio.covers(1.25))
    for hits in (hits_mean, hits_ratio_paired, hits_ratio_welch):
        assert 0.92 <= np.mean(hits) <= 0.98


def _curve(rng, rate: float, shift: float, seeds: int = 30) -> cs.Curve:
    """Accuracy 94.5 − 12/e points after e epochs (shifted), seconds = rate × epochs (+ noise)."""
    grid = (4.0, 6.0, 8.0, 10.0, 12.0)
    seed_effect = rng.normal(0, 0.08, seeds)
    return cs.Curve(
        accuracy={e: 94.5 - 12 / e + shift + seed_effect + rng.normal(0, 0.12, seeds) for e in grid},
        seeds={e: np.arange(seeds) for e in grid},
        seconds={e: rate * e + rng.normal(0, 0.01, seeds) for e in grid},
    )


def test_time_to_target_and_its_ratio_recover_the_truth():
    """Truth: 94.5 − 12/e reaches 93.0 at e = 8 epochs (on the grid: interpolation exact there), so
    at 0.3 s per epoch, 2.4 s; the shifted curve reaches it at 12/1.7 ≈ 7.06 epochs, and the
    log-epoch interpolation between 6 and 8 gives the truth the method estimates."""
    rng = np.random.default_rng(4)
    covered, ratio_covered = [], []
    grid = np.array([4.0, 6.0, 8.0, 10.0, 12.0])
    truth_b = float(np.exp(np.interp(93.0, 94.5 - 12 / grid + 0.2, np.log(grid))))  # monotone: exact
    for i in range(60):
        a, b = _curve(rng, 0.3, 0.0), _curve(rng, 0.3, 0.2)
        t = cs.time_to_target(a, 93.0, resamples=300, seed=i)
        covered.append(t.seconds.covers(2.4))
        r = cs.time_to_target_ratio(b, a, 93.0, resamples=300, seed=i)
        ratio_covered.append(r.covers(truth_b / 8.0))
    assert t.seconds_per_epoch == pytest.approx(0.3, abs=0.01)
    assert np.mean(covered) >= 0.85 and np.mean(ratio_covered) >= 0.85
    assert r.value < 1  # the better curve gets there in less time


# --------------------------------------------------------------------------- time as an outcome


def _runs(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_time_rows_split_by_device_model_and_leave_warmups_out():
    runs = _runs(
        cell=["a"] * 6,
        train_seconds=[9.0, 2.0, 2.2, 3.0, 3.1, 3.2],
        eval_seconds=[0.5] * 6,
        device_name=["NVIDIA A100", "NVIDIA A100", "NVIDIA A100", "cpu", "cpu", "cpu"],
        warmup=[True, False, False, False, False, False],
    )
    rows = {r.model: r for r in rc.time_rows(runs)}
    assert set(rows) == {"NVIDIA A100", "cpu: unknown model"}  # never pooled: one row per model
    assert rows["NVIDIA A100"].summary.n == 2 and rows["NVIDIA A100"].warmup_excluded == 1
    assert rows["NVIDIA A100"].summary.mean.value == pytest.approx(2.6)  # train + eval, no warm-up
    assert {r.model: r.summary.n for r in rc.time_rows(runs, include_warmup=True)}["NVIDIA A100"] == 3
    assert "left out: 1 runs" in rc.time_section(runs)


def test_workers_number_their_runs_and_flag_the_first_call_as_warmup():
    from airbench_core.simulated import METHOD, SimulatedConfig
    from harness.run.method_worker import MethodWorker
    from harness.spec.grid import Cell, expand

    cell = Cell(
        {"variant": "baseline"},
        SimulatedConfig(run_seconds=0.0, n_test=100, device_model="GPU X"),
        "simulated",
    )
    worker = MethodWorker(METHOD)
    first = worker.run(expand([cell], 2)[:2])
    later = worker.run(expand([cell], 3)[2:])
    assert [o.worker["warmup"] for o in first + later] == [True, True, False]
    assert [o.worker["worker_run"] for o in first + later] == [0, 1, 2]
    assert first[0].result.env["device_model"] == "GPU X"


def test_cpu_runs_record_the_cpu_model():
    from airbench_core.device import device_model

    assert device_model("cpu").startswith("cpu: ") and len(device_model("cpu")) > 5
    assert device_model("NVIDIA H100 80GB HBM3") == "NVIDIA H100 80GB HBM3"


# --------------------------------------------------------------------------- import


def speedrun_log(path: Path, rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """A speedrun's log table: hundreds of runs from several processes, accuracy in percent,
    seconds, no seeds."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "process": rng.integers(0, 8, rows),
            "val_acc": np.round(94.03 + rng.normal(0, 0.14, rows), 4),
            "time_s": np.round(2.47 + rng.normal(0, 0.02, rows), 4),
            "gpu": "NVIDIA H100 80GB HBM3",
        }
    )
    frame.to_csv(path, index=False)
    return frame


def import_args(csv: Path, root: Path, *extra: str) -> list[str]:
    return [
        "import",
        str(csv),
        "--store",
        str(root),
        "--method",
        "muon_record",
        "--accuracy",
        "val_acc",
        "--seconds",
        "time_s",
        "--gpu",
        "gpu",
        *extra,
    ]


@pytest.mark.slow
def test_import_a_speedrun_log_then_claim_prints_n_mean_and_scipys_p(tmp_path):
    """The Bar: import a CSV of runs, then harness.claim prints n, the mean and the one-sided p that
    scipy.stats.ttest_1samp(..., alternative="greater") gives."""
    log = speedrun_log(tmp_path / "log.csv")
    root = tmp_path / "store"
    r = module_cli("harness.store", *import_args(tmp_path / "log.csv", root))
    assert r.returncode == 0, r.stderr
    assert "400 runs added" in r.stderr and "percent" in r.stderr
    r = module_cli(
        "harness.claim", str(root), "--method", "muon_record", "--accuracy", "94.0", "--seconds", "2.5"
    )
    assert r.returncode == 0, r.stderr
    p = st.ttest_1samp(log["val_acc"], 94.0, alternative="greater").pvalue
    fixed = next(line for line in r.stdout.splitlines() if line.startswith("fixed-n"))
    assert "n = 400 runs" in fixed and f"mean {log['val_acc'].mean():.2f}%" in fixed
    assert float(re.search(r"one-sided p = ([0-9.e-]+)", fixed).group(1)) == pytest.approx(p, rel=1e-2)
    assert "anytime-valid (valid however the runs were collected)" in r.stdout
    assert "on NVIDIA H100 80GB HBM3" in r.stdout and "beats 2.5 s" in r.stdout
    again = module_cli("harness.store", *import_args(tmp_path / "log.csv", root))
    assert "0 runs added" in again.stderr and len(store.load_records(root)) == 400  # twice adds nothing


def _import(tmp_path: Path, frame: pd.DataFrame, *extra: str, capsys=None):
    from harness.cli.store import main

    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    code = main(import_args(path, tmp_path / "store", *extra))
    return code, capsys.readouterr().err if capsys else ""


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda f: f.assign(val_acc=f["val_acc"].where(f.index != 6)),
            "row 7, column val_acc: missing value",
        ),
        (
            lambda f: f.assign(time_s=f["time_s"].where(f.index != 3, np.inf)),
            "row 4, column time_s: expected a finite number",
        ),
        (
            lambda f: f.assign(val_acc=f["val_acc"].where(f.index != 9, 101.5)),
            "row 10, column val_acc: 101.5 is outside [0, 100]",
        ),
        (
            lambda f: f.assign(seed=[0, 1, 2, 1] + list(range(4, len(f)))),
            "row 4, column seed: seed 1 appears twice (rows 2 and 4)",
        ),
    ],
)
def test_a_bad_row_is_one_line_exit_2_and_nothing_is_imported(tmp_path, capsys, change, expected):
    frame = change(speedrun_log(tmp_path / "log.csv", rows=50))
    extra = ("--seed", "seed") if "seed" in frame else ()
    code, err = _import(tmp_path, frame, *extra, capsys=capsys)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert "nothing imported" in err and "(scale: percent, detected from the values)" in err
    assert not list((tmp_path / "store").glob("external/*.parquet"))


def test_the_error_line_names_the_scale_it_detected(tmp_path, capsys):
    frame = speedrun_log(tmp_path / "log.csv", rows=20)
    frame["val_acc"] = frame["val_acc"] / 100
    frame.loc[5, "val_acc"] = 1.2  # a percent-looking typo among fractions: read as percent, fine
    code, err = _import(tmp_path, frame, "--scale", "fraction", capsys=capsys)
    assert (
        code == 2
        and "row 6, column val_acc: 1.2 is outside [0, 1]" in err
        and "(scale: fraction, as --scale says)" in err
    )


def test_imported_runs_keep_their_version_data_name_and_no_predictions(tmp_path, capsys):
    frame = speedrun_log(tmp_path / "log.csv", rows=30)
    code, _ = _import(tmp_path, frame, "--version", "v2025", "--data-name", "CIFAR-10 test", capsys=capsys)
    assert code == 0
    runs, preds = store.load(tmp_path / "store")
    assert len(runs) == 30 and preds.shape == (30, 3, 0) and set(runs["test_set"]) == {"external"}
    assert set(runs["method_version"]) == {"v2025"} and set(runs["data_source"]) == {"CIFAR-10 test"}
    assert runs["external"].all() and runs["seed"].isna().all()
    assert np.allclose(np.sort(runs["acc_tta2"]), np.sort(frame["val_acc"]))  # load(): percent, as logged
    kept = store.read_records(tmp_path / "store")  # the store keeps fractions
    assert np.allclose(np.sort(kept["acc_tta2"]), np.sort(frame["val_acc"]) / 100)
    ident = json.loads((tmp_path / "store" / "store.json").read_text())
    assert ident["data_fingerprints"] == [] and ident["external"][0]["method_version"] == "v2025"
    (tmp_path / "store" / "store.json").unlink()  # the guard rebuilt from the records lists imports apart
    rebuilt = store.read_identity(tmp_path / "store")
    assert rebuilt["data_fingerprints"] == [] and rebuilt["method_versions"] == []
    assert rebuilt["external"] == [
        {"method": ident["external"][0]["method"], "method_version": "v2025", "data": "CIFAR-10 test"}
    ]


def test_claim_against_a_reference_on_the_same_gpu_uses_welch_for_unseeded_runs(tmp_path, capsys):
    from harness.cli.claim import main as claim_main
    from harness.cli.store import main as store_main

    a, b = speedrun_log(tmp_path / "a.csv", 60, seed=1), speedrun_log(tmp_path / "b.csv", 60, seed=2)
    b["time_s"] = b["time_s"] * 1.2
    b.to_csv(tmp_path / "b.csv", index=False)
    root = tmp_path / "store"
    assert store_main(import_args(tmp_path / "a.csv", root)) == 0
    args = import_args(tmp_path / "b.csv", root)
    args[args.index("muon_record")] = "old_record"
    assert store_main(args) == 0
    capsys.readouterr()
    assert (
        claim_main([str(root), "--method", "muon_record", "--accuracy", "93.9", "--reference", "old_record"])
        == 0
    )
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("reference old_record"))
    assert "Welch" in line and "on NVIDIA H100 80GB HBM3" in line
    ratio = float(re.search(r"time ([0-9.]+)×", line).group(1))
    assert ratio == pytest.approx(a["time_s"].mean() / b["time_s"].mean(), rel=1e-3)


def test_claim_cli_mistakes_are_one_line_and_exit_2(tmp_path, capsys):
    from harness.cli.claim import main

    assert main([str(tmp_path), "--accuracy", "140"]) == 2
    assert "accuracy: expected a target in percent" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere"), "--accuracy", "94"]) == 2
    assert "no such store" in capsys.readouterr().err


# --------------------------------------------------------------------------- claim study files


CLAIM_STUDY = """[claim]
accuracy = {target}
seconds = 0.5

[adaptive]
max_seeds = {max_seeds}
min_seeds = 5
"""


def claim_study(folder: Path, target: float, max_seeds: int = 120) -> Path:
    return sleeping_study(
        folder,
        0.0,
        name=f"claim_{int(target)}",
        tables='seed_sd = 0.01\ndevice_model = "NVIDIA H100 80GB HBM3"\n\n'
        + CLAIM_STUDY.format(target=target, max_seeds=max_seeds),
    )


@pytest.mark.slow
@pytest.mark.parametrize(("target", "outcome"), [(80.0, "holds")])  # "fails": test_a_true_claim_holds_...
def test_a_claim_study_under_until_decided_decides_and_its_report_draws_accuracy_against_seconds(
    tmp_path, data_source, target, outcome
):
    study = claim_study(tmp_path, target)
    out = tmp_path / "out"
    r = study_cli(
        str(study),
        "--until",
        "decided",
        "--backend",
        "local",
        "--device",
        "cpu",
        "--data",
        data_source,
        "--out",
        str(out),
        "--store",
        str(tmp_path / "store"),
    )
    assert r.returncode == 0, r.stderr
    assert f"claim: mean > {target:g}%" in r.stdout and outcome in r.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["adaptive"]["kind"] == "claim"  # the rule, frozen at the first round
    report = (out / "report.md").read_text()
    assert f"## Claim: {outcome}" in report and "one-sided p" not in report  # no fixed-n p after stopping
    assert (
        "(figures/accuracy_vs_seconds.png)" in report
        and (out / "figures" / "accuracy_vs_seconds.pdf").exists()
    )
    assert "NVIDIA H100 80GB HBM3" in report
    runs = store.load_records(out)
    assert len(runs) < 120  # stopped before max_seeds
    acc = runs.sort_values("seed")["acc_tta2"].to_numpy()  # load_records: percent
    used = int(re.search(rf"{outcome} at n = (\d+)", report).group(1))
    assert cs.sequential_claim(acc, target, min_runs=5, max_runs=120).n == used  # the store's numbers
    r = module_cli("harness.claim", str(out), "--accuracy", str(target))  # the folder's own reading
    assert r.returncode == 0 and f"{outcome} at n = {used}" in r.stdout and "fixed-n" not in r.stdout


def test_claim_table_mistakes_name_the_file_and_key(tmp_path):
    from harness.spec import studyfile

    bad = tmp_path / "bad.toml"
    bad.write_text('method = "simulated"\n[claim]\naccuracy = 0.94\n')
    with pytest.raises(
        studyfile.StudyFileError, match=r"bad.toml: claim.accuracy: expected a target in percent"
    ):
        studyfile.load(bad)
    bad.write_text('method = "simulated"\n[claim]\naccuracy = 94.0\nsecs = 2\n')
    with pytest.raises(studyfile.StudyFileError, match=r"claim.secs: unknown key"):
        studyfile.load(bad)
    good = tmp_path / "good.toml"
    good.write_text(
        'method = "simulated"\n[claim]\naccuracy = 94.0\nseconds = 2.59\n[adaptive]\nmax_seeds = 50\n'
    )
    sf = studyfile.load(good)
    assert sf.claim == ClaimSpec(94.0, 2.59) and len(sf.cells) == 1 and sf.adaptive.max_seeds == 50


def test_a_fixed_seed_claim_reports_the_one_sided_t_test():
    rng = np.random.default_rng(5)
    runs = _runs(
        cell=["b"] * 40,
        seed=np.arange(40),
        acc_tta2=(94.05 + rng.normal(0, 0.15, 40)) / rc.ACCURACY_SCALE,
        train_seconds=2.4 + rng.normal(0, 0.01, 40),
        eval_seconds=0.07,
        device_name="NVIDIA A100",
    )
    v = rc.claim_verdict(runs, ClaimSpec(94.0, 2.5), rc.FIXED)
    p = st.ttest_1samp(rc.accuracy_points(runs), 94.0, alternative="greater").pvalue
    assert v.fixed.p == pytest.approx(p) and v.sequence is None and "anytime" not in v.text()
    assert "2.47 s" in v.text() and "beats 2.5 s" in v.text()


def test_bulk_bounds_and_decision_are_betting_cs_own():
    """Above BULK_FROM runs the printed bounds come from the same bettors evaluated in bulk: equal to
    betting_cs's last bounds; and the decision is the first run at which betting_cs's bound passes."""
    from harness.stats.betting import betting_cs

    rng = np.random.default_rng(6)
    x = np.where(rng.random(cs.BULK_FROM + 500) < 0.5, 90.0, 98.2)
    lower, _ = betting_cs(x, 0, 100, 0.05, side="lower")
    _, upper = betting_cs(x, 0, 100, 0.05, side="upper")
    assert cs.final_bounds(x, 0.05) == pytest.approx((lower[-1], upper[-1]))
    y = 94.5 + rng.normal(0, 1.0, 200)
    low, _ = betting_cs(y, 0, 100, 0.05, side="lower")
    first = int(np.argmax(low > 80.0)) + 1
    assert cs.sequential_claim(y, 80.0, min_runs=1).n == first  # where the printed bound passes 80


def test_record_checksums_built_by_column_are_record_crc():
    import pyarrow as pa

    rows = [
        {
            "key": "a",
            "seed": None,
            "acc": 0.94,
            "gpu": 'NVIDIA Ä100 "x"',
            "ok": True,
            "n": 3,
            "f": float("nan"),
        },
        {"key": "b", "seed": 2, "acc": 0.1 + 0.2, "gpu": "cpu: x", "ok": None, "n": 4, "f": float("inf")},
    ]
    table = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    assert store.record_crcs(table) == [store.record_crc(r) for r in table.to_pylist()]


def test_the_flip_study_reports_time_to_target_and_says_which_target_it_used():
    """The simulated flip study's runs do not reach the paper's 94%: the section says which target
    it used instead and why, gives seconds to target per flip mode and alternating against random."""
    from harness.run.simulate import simulated_runs
    from studies.flip_vs_alternating import STUDY

    _, runs, _, _ = simulated_runs(STUDY, 20, preset="full", n=1000)
    runs["device_name"] = "NVIDIA H100"
    runs["train_seconds"] = 0.3 * runs["epochs"]
    text = rc.time_to_target_section(runs, "flip", ["alternating", "random", "none"], resamples=200)
    assert "cannot reach 94%" in text and "**NVIDIA H100**, target" in text
    ratio = re.search(r"alternating reaches ([0-9.]+)% in ([0-9.]+)× \[([0-9.]+), ([0-9.]+)\]", text)
    assert ratio and float(ratio.group(3)) <= float(ratio.group(2)) <= float(ratio.group(4))
    assert "| alternating |" in text and "0.3 |" in text  # seconds per epoch as measured


@pytest.mark.parametrize(
    "argv",
    [
        ["harness.cli.claim", "/nowhere", "--accuracy", "0.94"],
        [
            "harness.cli.store",
            "import",
            "/nowhere.csv",
            "--store",
            "/tmp/x",
            "--method",
            "m",
            "--accuracy",
            "a",
        ],
    ],
)
def test_help_and_argument_errors_import_neither_torch_nor_ray(argv):
    code = (
        "import importlib, sys\n"
        f"main = importlib.import_module({argv[0]!r}).main\n"
        f"try:\n    code = main({argv[1:]!r})\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, 'torch' in sys.modules, 'ray' in sys.modules)\n"
    )
    import subprocess
    import sys

    from tests.helpers import ROOT

    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    code_, torch, ray = done.stdout.split()[-3:]
    assert code_ in ("0", "2") and torch == "False" and ray == "False", done.stdout + done.stderr
