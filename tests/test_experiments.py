"""A researcher's own experiments through the CLI: study files, --method/--set on built-in studies,
adaptive seeds decided from the store (and resumed after a killed driver), planning without data,
and comparing two campaigns."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config
from helpers import ROOT, sleeping_study, study_cli, wait_until_stored
from scipy import stats as st

from airbench_core import preset
from harness import store
from harness.cli.study import build_parser, resolve
from harness.spec.grid import SMOKE_SIZING, Cell, RunSpec
from harness.spec.studies import all_studies
from harness.stats.planning import DEFAULT_RUN_SD, DEFAULT_SECONDS_PER_EPOCH, adaptive_lines, cost_line
from harness.stats.sequential import Rule, expected_seeds

SMOKE_FILE = ROOT / "studies" / "examples" / "smoke_half_epochs.toml"


def adaptive_cmd(out: Path, root: Path, data_source: str, study: Path = SMOKE_FILE) -> list[str]:
    return [
        str(study),
        "--until",
        "decided",
        "--out",
        str(out),
        "--store",
        str(root),
        "--backend",
        "local",
        "--device",
        "cpu",
        "--data",
        data_source,
    ]


def decision(out: Path, variant: str = "half_epochs") -> tuple[str, ...]:
    """The outcome row of the report's adaptive table: comparison, outcome, seeds used, trained, mean, CS."""
    text = (out / "report.md").read_text()
    section = text[text.index("## Adaptive seeds") :]
    row = next(line for line in section.splitlines() if line.startswith(f"| variant={variant}"))
    return tuple(cell.strip() for cell in row.strip("|").split("|"))


def simulated_adaptive_study(folder: Path) -> Path:
    """An adaptive study of the simulated method (runs sleep 0.5 s; the variant is 2 points worse):
    what killing a driver mid-round tests is the rounds' bookkeeping in the store, not training."""
    return sleeping_study(
        folder,
        0.5,
        name="simulated_adaptive",
        top='primary = "worse"\n',
        tables="[variants.worse]\naccuracy = 0.92\n\n"
        "[adaptive]\nprecision = 0.5\nmax_seeds = 20\nmin_seeds = 4\n",
    )


@pytest.fixture(scope="module")
def decided(tmp_path_factory, data_source) -> Path:
    """The smoke study file run to its decision, uninterrupted."""
    tmp = tmp_path_factory.mktemp("adaptive")
    r = study_cli(*adaptive_cmd(tmp / "out", tmp / "store", data_source))
    assert r.returncode == 0, r.stderr
    return tmp / "out"


@pytest.mark.slow
def test_half_the_epochs_is_decided_worse_before_max_seeds(decided):
    name, outcome, used, trained, mean, sequence = decision(decided)
    manifest = json.loads((decided / "manifest.json").read_text())
    assert outcome == "worse" and int(used) < manifest["adaptive"]["max_seeds"] == 20
    low, high = map(float, re.findall(r"-?\d+\.\d+", sequence))
    assert low < float(mean) < high < 0
    frame, _ = store.load(decided)
    half = frame[frame["cell"] == "variant=half_epochs"].sort_values("seed")
    base = frame[frame["cell"] == "variant=baseline"].sort_values("seed")
    d = half["acc_tta2"].to_numpy()[: int(used)] - base["acc_tta2"].to_numpy()[: int(used)]  # percent
    assert float(mean) == pytest.approx(d.mean(), abs=1e-3)  # the decision is the store's numbers
    assert set(half["epochs"]) == {1.0} and set(base["epochs"]) == {2.0}
    assert "Rule (points; fixed at the first round" in (decided / "report.md").read_text()


@pytest.mark.slow
def test_the_documented_adaptive_verdict_is_what_the_report_says(decided, data_source):
    # docs/studies.md shows this section of the same command's report (python -m harness.bench docs
    # writes it); a changed wording, rule line or table layout fails here until it is regenerated.
    from harness.bench import docs

    report = docs.as_documented((decided / "report.md").read_text(), data_source)
    (shown,) = docs.documented("adaptive-verdict").values()
    assert docs.masked(docs.adaptive_verdict(report)) == docs.masked(shown)


@pytest.mark.slow
def test_a_killed_adaptive_driver_resumes_to_the_same_decision(tmp_path, data_source):
    study = simulated_adaptive_study(tmp_path)
    uninterrupted = study_cli(*adaptive_cmd(tmp_path / "whole", tmp_path / "whole_store", data_source, study))
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    out, root = tmp_path / "out", tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.study", *adaptive_cmd(out, root, data_source, study)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until_stored(proc, root, 3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_with = len(store.load_records(root))
    assert 3 <= killed_with < 8, "killed mid-round"
    r = study_cli(*adaptive_cmd(out, root, data_source, study))
    assert r.returncode == 0, r.stderr
    assert decision(out, "worse") == decision(tmp_path / "whole", "worse")
    assert decision(out, "worse")[1] == "worse"


def test_dry_run_plans_without_loading_data(tmp_path):
    r = study_cli(
        str(SMOKE_FILE),
        "--until",
        "decided",
        "--dry-run",
        "--data",
        str(tmp_path / "no-such-data"),
        "--out",
        str(tmp_path / "out"),
        "--store",
        str(tmp_path / "store"),
    )
    assert r.returncode == 0, r.stderr
    assert "variant=half_epochs" in r.stdout and "GPU-hours" in r.stdout
    assert "expected seeds per comparison" in r.stdout and "default 0.27 s per airbench94 epoch" in r.stdout
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()
    fixed = study_cli(
        "flip_vs_alternating",
        "--seeds",
        "30",
        "--dry-run",
        "--data",
        str(tmp_path / "none"),
        "--out",
        str(tmp_path / "out"),
        "--store",
        str(tmp_path / "store"),
    )
    assert fixed.returncode == 0, fixed.stderr
    # 30 seeds at the default 0.15-point sd: the t-interval half-width and the paired 80%-power difference
    assert "±0.056 points" in fixed.stdout and "detected with 80% power" in fixed.stdout


def test_method_and_set_change_every_cells_base_but_not_the_studys_factors():
    args = build_parser().parse_args(
        [
            "flip_vs_alternating",
            "--seeds",
            "2",
            "--method",
            "airbench95",
            "--set",
            "lr=13",
            "--set",
            "flip=none",
            "--preset",
            "smoke",
        ]
    )
    cells = resolve(args, all_studies()).study.cells("smoke")
    assert {c.config.lr for c in cells} == {13.0}
    assert {c.config.widths for c in cells} == {SMOKE_SIZING["widths"]}  # smoke sizing still applies
    assert (
        {c.factors["flip"] for c in cells}
        == {c.config.flip for c in cells}
        == {"none", "random", "alternating"}
    )
    full = resolve(
        build_parser().parse_args(["tta_variance", "--seeds", "2", "--method", "airbench95"]), all_studies()
    ).study.cells("full")
    assert full[0].config == preset("airbench95")


@pytest.mark.slow
def test_a_study_file_shares_runs_with_a_built_in_study_through_the_store(tta_smoke, tmp_path, data_source):
    """The file's baseline is the tta_variance smoke cell: its runs are found in the store, not retrained."""
    shutil.copytree(tta_smoke / "store", tmp_path / "store")
    shutil.copytree(tta_smoke / "out", tmp_path / "tta")
    root = tmp_path / "store"
    sizing = {k: list(v) if isinstance(v, tuple) else v for k, v in SMOKE_SIZING.items()}
    base = "\n".join(f"{k} = {json.dumps(v)}" for k, v in sizing.items())
    study_file = tmp_path / "shared.toml"
    study_file.write_text(
        f'method = "airbench94"\n\n[base]\n{base}\n\n[variants.no_lookahead]\nlookahead = false\n'
    )
    r = study_cli(
        str(study_file),
        "--seeds",
        "2",
        "--backend",
        "local",
        "--device",
        "cpu",
        "--data",
        data_source,
        "--store",
        str(root),
        "--out",
        str(tmp_path / "file"),
    )
    assert r.returncode == 0, r.stderr
    assert "2 trained, 2 already done" in r.stderr
    frame, _ = store.load(tmp_path / "file")
    assert len(frame) == 4 and sorted(frame["cell"].unique()) == ["variant=baseline", "variant=no_lookahead"]
    compared = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.compare",
            str(tmp_path / "tta"),
            str(tmp_path / "file"),
            "--out",
            str(tmp_path / "cmp"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compared.returncode == 0, compared.stderr
    assert (
        "No cell has at least two independent runs on both sides" in compared.stdout
    )  # their cell labels differ


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["flip_vs_alternating", "--seeds", "2", "--set", "lr=fast"], "--set lr: expected a number"),
        (
            ["flip_vs_alternating", "--seeds", "2", "--set", "nosuch=1"],
            "--set nosuch: unknown TrainConfig field",
        ),
        (
            ["flip_vs_alternating", "--until", "decided", "--precision", "0.1", "--max-seeds", "10"],
            "--until decided needs a study file",
        ),
        ([str(SMOKE_FILE), "--seeds", "3", "--until", "decided"], "drop --seeds"),
        ([str(SMOKE_FILE), "--seeds", "3", "--preset", "smoke"], "--preset applies to built-in studies"),
        ([str(SMOKE_FILE), "--seeds", "3", "--precision", "0.1"], "go with --until decided"),
        (["missing.toml", "--seeds", "3"], "missing.toml: cannot read"),
    ],
)
def test_experiment_mistakes_are_one_line(tmp_path, args, message):
    r = study_cli(*args, "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store"), "--dry-run")
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "store").exists()


def test_compare_two_method_versions_in_one_store(tmp_path):
    """A store that mixes versions holds each (config, seed) once, so the versions' seeds are disjoint:
    the comparison falls back to Welch's test, and its difference is the one planted."""
    from harness.run.simulate import simulated_runs
    from harness.spec.studies import find_study

    manifest, runs, preds, labels = simulated_runs(find_study("tta_variance"), 12, preset="smoke", n=200)
    folder = tmp_path / "mixed"
    store.write_labels(folder, labels)
    store.write_manifest(folder, manifest)
    for record, p in zip(runs.to_dict("records"), preds):
        newer = record["seed"] >= 6
        record.update(
            method_version="v2" if newer else "v1", acc_tta2=record["acc_tta2"] + (0.02 if newer else 0)
        )
        store.write_run(folder, record, p)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.compare",
            str(folder),
            "--versions",
            "v1",
            "v2",
            "--out",
            str(tmp_path / "cmp"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    acc = runs["acc_tta2"].to_numpy()
    planted = 100 * (acc[runs["seed"] >= 6].mean() + 0.02 - acc[runs["seed"] < 6].mean())
    assert planted > 0 and "Welch, 12 runs" in r.stdout and f"| {planted:.3f} [" in r.stdout
    assert (tmp_path / "cmp" / "report.md").read_text() in r.stdout


def specs(epochs: float, n: int) -> list[RunSpec]:
    return [RunSpec(Cell({"epochs": epochs}, tiny_config(epochs=epochs)), s) for s in range(n)]


def test_cost_line_sums_run_seconds_and_divides_the_wall_time_by_the_slots():
    plan = specs(100.0, 3) + specs(300.0, 3)
    # no runs stored: 1,200 epochs at the default 0.27 s = 324 s = 0.09 GPU-hours, 0.03 h on 3 slots
    assert pytest.approx(324) == 1200 * DEFAULT_SECONDS_PER_EPOCH
    assert cost_line(plan, store.empty_frame(), 3, "--workers").startswith(
        "cost: 0.09 GPU-hours, about 0.03 h wall on 3 slot(s) (--workers)"
    )

    # stored: config A twice (360 s and 540 s over 100 epochs), another config once (120 s over 10 epochs)
    def key(e):
        return json.dumps(tiny_config(epochs=e).to_dict(), sort_keys=True)

    records = pd.DataFrame(
        {
            "config_json": [key(100.0), key(100.0), key(10.0)],
            "wall_seconds": [360.0, 540.0, 120.0],
            "epochs_trained": [100.0, 100.0, 10.0],
        }
    )
    # A's runs take their mean, 450 s; the 300-epoch runs the store's mean 7 s per epoch: 2,100 s
    total = 3 * 450 + 3 * 2100
    line = cost_line(plan, records, 3, "--workers")
    assert line.startswith(
        f"cost: {total / 3600:.2f} GPU-hours, about {total / 3 / 3600:.2f} h wall on 3 slot(s)"
    )
    assert "3 of 6 runs from runs of the same config, the rest at its mean 7.000 s per epoch" in line


def test_adaptive_lines_simulate_the_rule_at_the_sd_of_a_paired_difference():
    rule = Rule(precision=0.05, max_seeds=40, min_seeds=10)
    text = adaptive_lines(rule, None, workers=2, campaigns=400)
    sd_diff = 100 * DEFAULT_RUN_SD * math.sqrt(2)  # two independent runs' difference, in points
    for delta in (0.0, 0.05, 0.1, 0.2):
        assert (
            f"true difference {delta:g} points: {expected_seeds(delta, sd_diff, rule, 2, 400):.1f} seeds"
            in text
        )
    # with runs in the store: their within-cell sd, pooled (two cells, sd 0.25 exactly)
    runs = pd.DataFrame({"cell": ["a"] * 3 + ["b"] * 3, "acc_tta2": [0.5, 0.75, 1.0, 0.25, 0.5, 0.75]})
    wide = Rule(precision=20.0, max_seeds=40, min_seeds=10)
    text = adaptive_lines(wide, runs, workers=2, campaigns=400)
    assert "run sd 25.000 points, pooled over 6 runs in this store" in text
    assert (
        f"true difference 40 points: {expected_seeds(40.0, 25 * math.sqrt(2), wide, 2, 400):.1f} seeds"
        in text
    )


def test_compare_pairs_two_folders_by_seed(tmp_path, capsys):
    """Two study folders holding the same cells and seeds: B − A paired by seed, its t-interval by hand."""
    from harness.cli.compare import main as compare_main
    from harness.run.simulate import simulated_runs
    from harness.spec.studies import find_study

    manifest, runs, preds, labels = simulated_runs(find_study("tta_variance"), 8, preset="smoke", n=200)
    for name in ("a", "b"):
        folder = tmp_path / name
        store.write_labels(folder, labels)
        store.write_manifest(folder, manifest)
        for record, p in zip(runs.to_dict("records"), preds):
            if name == "b":
                record["acc_tta2"] += 0.01 + 0.002 * record["seed"] ** 2
            store.write_run(folder, record, p)
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    d = 100 * (0.01 + 0.002 * np.arange(8) ** 2)
    half = st.t.ppf(0.975, 7) * d.std(ddof=1) / math.sqrt(8)
    assert "| paired, 8" in out and "Welch, 16" not in out
    assert f"{d.mean():.3f} [{d.mean() - half:.3f}, {d.mean() + half:.3f}]" in out


def test_adaptive_rounds_add_up_in_the_campaign_summary():
    from harness.run.adaptive import add
    from harness.run.campaign import Summary

    total = Summary(planned=0, skipped=0, slots=2)
    add(
        total,
        Summary(
            planned=8,
            skipped=1,
            trained=7,
            failed=0,
            retries=1,
            recovered=1,
            wall_seconds=10.0,
            train_seconds=8.0,
            slots=2,
        ),
    )
    # round 2's grid holds round 1's 8 runs (skipped again, counted once) and 4 new ones
    add(
        total,
        Summary(
            planned=12,
            skipped=8,
            trained=3,
            failed=1,
            retries=2,
            recovered=0,
            wall_seconds=5.0,
            train_seconds=4.0,
            slots=2,
            interrupted=True,
        ),
    )
    assert (total.planned, total.skipped, total.trained, total.failed, total.retries, total.recovered) == (
        12,
        1,
        10,
        1,
        3,
        1,
    )
    assert (total.wall_seconds, total.train_seconds, total.interrupted, total.slots) == (15.0, 12.0, True, 2)
