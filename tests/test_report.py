"""Reports: their numbers recomputed from the stored runs (scipy, by hand), every study's page from
simulated stores, a real smoke campaign end to end, and the awkward folders (no runs, duplicate
records, several method versions)."""

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT
from scipy import stats as st

from harness import stats, store
from harness.report.campaign import campaign_from, load_campaign
from harness.report.writer import render_report, write_report
from harness.run.simulate import simulated_campaign, simulated_runs
from harness.spec.studies import find_study


def png_size(path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    return struct.unpack(">II", raw[16:24])


def tables(report: str) -> list[str]:
    return [line for line in report.splitlines() if line.startswith("|")]


def table_after(report: str, heading: str) -> list[dict]:
    """The first markdown table after ``heading``, as rows of column -> text."""
    lines = report[report.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append([c.strip() for c in line.strip("|").split("|")])
    return [dict(zip(block[0], row)) for row in block[2:]]


def interval(x: np.ndarray, digits: int = 2) -> str:
    """Mean and Student-t 95% interval in points, computed with scipy."""
    m = x.mean()
    lo, hi = st.t.interval(0.95, len(x) - 1, loc=m, scale=st.sem(x))
    if np.isnan(lo):  # runs that tie: scipy gives no interval, nor does the report
        return f"{100 * m:.{digits}f} [n too small]"
    return f"{100 * m:.{digits}f} [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


def holm_by_hand(p: list[float]) -> list[float]:
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, p[i] * (len(p) - rank)))
        out[i] = running
    return out


def stored_runs(out) -> pd.DataFrame:
    runs, _ = store.read_runs(out)  # fractions, as the store keeps them
    return runs.sort_values("key").drop_duplicates(["cell", "seed"], keep="first")


def check_accuracy_table(report: str, runs: pd.DataFrame) -> None:
    rows = table_after(report, "## Accuracy per cell")
    assert {r["cell"] for r in rows} == set(runs["cell"])
    for row in rows:
        part = runs[runs["cell"] == row["cell"]]
        assert row["n"].split()[0] == str(len(part))
        assert row["TTA 2 mean % [95% CI]"] == interval(part["acc_tta2"].to_numpy())
        assert row["TTA 0 mean % [95% CI]"] == interval(part["acc_tta0"].to_numpy())
        s = part["acc_tta2"].std(ddof=1)
        n = len(part)
        lo, hi = (
            s * np.sqrt((n - 1) / st.chi2.ppf(0.975, n - 1)),
            s * np.sqrt((n - 1) / st.chi2.ppf(0.025, n - 1)),
        )
        expected = (
            f"{100 * s:.3f} [{100 * lo:.3f}, {100 * hi:.3f}]" if s > 0 else "0.000 [n too small]"
        )  # ties: no interval
        assert row["TTA 2 std (pts) [95% CI]"] == expected


def check_flip_differences(report: str, runs: pd.DataFrame) -> None:
    """Every paired difference, its interval, sign, p and Holm p, recomputed with scipy."""
    rows = table_after(report, "## Differences between flip modes")
    assert rows
    family = []
    for row in rows:
        a, b = row["comparison"].split(" − ")
        level, epochs = int(row["TTA"]), float(row["epochs"])

        def pick(mode):
            return runs[(runs["flip"] == mode) & (runs["epochs"] == epochs)][["seed", f"acc_tta{level}"]]

        both = pick(a).merge(pick(b), on="seed")
        d = (both.iloc[:, 1] - both.iloc[:, 2]).to_numpy()
        if len(d) < stats.MIN_PAIRS:  # too few pairs for a t-interval that covers: none, and no p
            assert row["difference (pts) [95% CI]"] == f"{100 * d.mean():.3f} [n too small]"
            assert row["p"] == "n/a" and row["Holm p"] in ("–", "n/a", "primary (unadjusted)")
            assert row["test"].startswith(f"paired, {len(d)}")
            continue
        res = st.ttest_rel(both.iloc[:, 1], both.iloc[:, 2])
        lo, hi = res.confidence_interval(0.95)
        assert row["difference (pts) [95% CI]"] == f"{100 * d.mean():.3f} [{100 * lo:.3f}, {100 * hi:.3f}]"
        assert row["difference (pts) [95% CI]"].startswith("-") == (d.mean() < 0)
        assert row["test"].startswith(f"paired, {len(d)}")
        assert row["p"] == f"{res.pvalue:.2g}"
        if row["Holm p"] != "primary (unadjusted)":
            family.append((row, res.pvalue))
    assert sum(r["Holm p"] == "primary (unadjusted)" for r in rows) == 1
    for (row, _), adjusted in zip(family, holm_by_hand([p for _, p in family])):
        assert row["Holm p"] == f"{adjusted:.2g}"


@pytest.fixture
def smoke_campaign(flip_smoke) -> Path:
    """The study folder of the suite's shared flip_vs_alternating smoke campaign (read-only)."""
    return flip_smoke / "out"


def test_smoke_report_numbers_recomputed_from_the_store(smoke_campaign, cifar):
    report = (smoke_campaign / "report.md").read_text()
    assert (
        "SMOKE preset" in report
        and f"**Data:** {cifar.description}, K = 10 (" in report
        and "**Device:** cpu" in report
    )
    assert "12 finished, 0 failed" in report and "**Method versions:**" in report
    runs = stored_runs(smoke_campaign)
    check_accuracy_table(report, runs)
    check_flip_differences(report, runs)
    assert "## Equivalent-epoch speedup" in report and "## Precision: what these runs can resolve" in report
    assert "Fewer than 10 runs" in report
    # the differences figure draws intervals only: with 2 seeds per cell there are none (n too small)
    drawn = "Differences in test accuracy between flip modes" in report
    assert drawn == (smoke_campaign / "figures" / "flip_differences.png").exists()
    for stem in ("accuracy_vs_epochs", "flip_differences")[: 2 if drawn else 1]:
        w, h = png_size(smoke_campaign / "figures" / f"{stem}.png")
        assert w > 400 and h > 300
        assert (smoke_campaign / "figures" / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"
        assert f"figures/{stem}.png" in report
    assert re.findall(r"\*Figure (\d+):", report) == ["1", "2"][: 2 if drawn else 1]  # numbered in order


def test_harness_report_rebuilds_the_same_tables(smoke_campaign, tmp_path):
    folder = (
        shutil.copytree(smoke_campaign.parent, tmp_path / "c") / "out"
    )  # the shared campaign stays as it is
    before = (folder / "report.md").read_text()
    (folder / "report.md").unlink()
    r = subprocess.run(
        [sys.executable, "-m", "harness.report", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert tables((folder / "report.md").read_text()) == tables(before)


def test_loaded_campaign_aligns_predictions_labels_and_accuracy(smoke_campaign):
    c = load_campaign(smoke_campaign)
    assert c.predictions.shape == (12, 3, 1000) and c.labels.shape == (1000,)
    recomputed = (c.preds(np.ones(12, bool), 2) == c.labels).mean(1)
    assert (abs(recomputed - c.runs["acc_tta2"].to_numpy()) < 1e-9).all()


def test_report_on_a_folder_that_is_not_a_campaign(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "harness.report", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no manifest" in r.stderr


@pytest.mark.parametrize(
    "study",
    [
        "flip_vs_alternating",
        "tta_variance",
        "calibration",
        "ablation",
        "variance_vs_epochs",
        "datasets",
        "derandomized",
    ],
)
def test_a_folder_with_zero_finished_runs_gives_a_valid_report(study, tmp_path):
    manifest, _, _, labels = simulated_runs(find_study(study), 1)
    store.write_manifest(tmp_path, manifest)
    store.write_labels(tmp_path, labels)
    r = subprocess.run(
        [sys.executable, "-m", "harness.report", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "report.md").read_text()
    assert f"# {study}" in text and "0 finished" in text and "## No finished runs" in text


@pytest.mark.parametrize(
    "study",
    [
        "flip_vs_alternating",
        "tta_variance",
        "calibration",
        "ablation",
        "variance_vs_epochs",
        "datasets",
        "derandomized",
    ],
)
def test_every_study_reports_from_simulated_runs(study, tmp_path):
    """Each study's page from a store of simulated records (no training): tables recomputed,
    every figure present, captioned and numbered."""
    out = simulated_campaign(tmp_path, find_study(study), runs_per_cell=12)
    text = write_report(out).read_text()
    runs = stored_runs(out)
    assert f"# {study}" in text and "## Precision: what these runs can resolve" in text
    check_accuracy_table(text, runs)
    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", text)
    assert figures and len(re.findall(r"\*Figure \d+:", text)) == len(figures)
    for fig in figures:
        assert png_size(out / fig)[0] > 300 and (out / fig.replace(".png", ".pdf")).exists()
    if study == "flip_vs_alternating":
        check_flip_differences(text, runs)
    if study == "ablation":
        base = runs[(runs["variant"] == "baseline") & (runs["epochs"] == runs["epochs"].max())]
        assert (
            f"baseline's mean TTA-2 accuracy at {runs['epochs'].max():g} epochs "
            f"({100 * base['acc_tta2'].mean():.2f}%, {len(base)} runs)"
        ) in text
    if study in ("tta_variance", "variance_vs_epochs"):
        assert "runs to exclude 0" in text and "distribution-wise std" in text
    if study == "datasets":
        assert "does flipping help at all? (random − none)" in text and "K = 10" in text
    if study == "derandomized":
        assert "alternating translation − baseline" in text and "flip switch at epoch 1 − baseline" in text
        assert "Equivalent epochs of each variant" in text
    if study == "calibration":
        assert "CACE at R/2" in text and "a fraction in [0, 2]" in text and "class 9" in text


def test_duplicate_records_are_counted_once(tmp_path):
    study = find_study("tta_variance")
    manifest, runs, preds, labels = simulated_runs(study, 5)
    doubled = pd.concat([runs, runs.assign(acc_tta2=0.0)], ignore_index=True)
    c = campaign_from(tmp_path, manifest, doubled, np.concatenate([preds, preds]), labels, pd.DataFrame())
    assert len(c.runs) == 5 and c.duplicates == 5 and (c.runs["acc_tta2"] > 0).all()
    text = render_report(c, study)
    assert "5 finished" in text and "5 duplicate (cell, seed) records not counted" in text


def test_several_method_versions_are_listed_and_analysed_apart(tmp_path):
    study = find_study("variance_vs_epochs")
    m, old, p_old, labels = simulated_runs(study, 4, method_version="aaaa1111")
    _, new, p_new, _ = simulated_runs(study, 6, seed=1, method_version="bbbb2222")
    runs = pd.concat([old, new], ignore_index=True)
    c = campaign_from(tmp_path, m, runs, np.concatenate([p_old, p_new]), labels, pd.DataFrame())
    assert len(c.runs) == 20  # (version, cell, seed) is the unit
    text = render_report(c, study)
    assert "**Method versions:** aaaa1111, bbbb2222" in text and "**Data fingerprints:** simulated" in text
    assert "# Method version aaaa1111" in text and "# Method version bbbb2222" in text
    first = table_after(text, "# Method version aaaa1111")
    assert {r["n"] for r in first} == {"4 ⚠"}
    second = table_after(text, "# Method version bbbb2222")
    assert {r["n"] for r in second} == {"6 ⚠"}


def test_old_stores_without_version_columns_say_unknown(tmp_path):
    study = find_study("tta_variance")
    manifest, runs, preds, labels = simulated_runs(study, 3)
    c = campaign_from(
        tmp_path,
        manifest,
        runs.drop(columns=["method_version", "data_fingerprint"]),
        preds,
        labels,
        pd.DataFrame(),
    )
    text = render_report(c, study)
    assert "**Method versions:** unknown" in text and "**Data fingerprints:** unknown" in text


def test_a_campaign_whose_every_run_failed_gives_a_valid_report(tmp_path):
    study = find_study("tta_variance")
    manifest, runs, _, labels = simulated_runs(study, 2)
    store.write_manifest(tmp_path, manifest)
    store.write_labels(tmp_path, labels)
    for record in runs.to_dict("records"):
        store.write_failure(tmp_path, record, "RuntimeError: out of memory")
    text = write_report(tmp_path).read_text()
    assert "0 finished, 2 failed" in text and "## No finished runs" in text
    assert len(table_after(text, "## Failed runs")) == 2 and "out of memory" in text


def test_several_data_fingerprints_are_analysed_apart(tmp_path):
    study = find_study("variance_vs_epochs")
    m, old, p_old, labels = simulated_runs(study, 4)
    _, new, p_new, _ = simulated_runs(study, 6, seed=1)
    runs = pd.concat([old, new.assign(data_fingerprint="otherdata123")], ignore_index=True)
    c = campaign_from(tmp_path, m, runs, np.concatenate([p_old, p_new]), labels, pd.DataFrame())
    assert len(c.runs) == 20  # (version, data, cell, seed) is the unit
    text = render_report(c, study)
    version = old["method_version"].iloc[0]
    assert f"# Method version {version}, data otherdata123" in text
    assert {r["n"] for r in table_after(text, f"# Method version {version}, data otherdata123")} == {"6 ⚠"}
    assert {r["n"] for r in table_after(text, f"# Method version {version}, data simulated")} == {"4 ⚠"}
