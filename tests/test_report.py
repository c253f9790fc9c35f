"""End to end: a smoke flip_vs_alternating campaign on the JPEG copy, its report, and a rebuild."""
import struct
import subprocess
import sys

import pytest

from harness.report import load_campaign
from helpers import ROOT, study_cli


def png_size(path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    return struct.unpack(">II", raw[16:24])


def tables(report: str) -> list[str]:
    return [line for line in report.splitlines() if line.startswith("|")]


@pytest.fixture(scope="module")
def smoke_campaign(tmp_path_factory, data_source):
    out = tmp_path_factory.mktemp("flip") / "out"
    r = study_cli("flip_vs_alternating", "--seeds", "2", "--preset", "smoke", "--backend", "local",
                  "--out", str(out), "--store", str(out.parent / "store"), "--data", data_source, timeout=600)
    assert r.returncode == 0, r.stderr
    return out


def test_report_has_tables_figures_and_provenance(smoke_campaign):
    report = (smoke_campaign / "report.md").read_text()
    assert "SMOKE preset" in report and "CIFAR-10 (JPEG copy)" in report and "**Device:** cpu" in report
    assert "12 finished, 0 failed" in report
    assert "## Differences between flip modes" in report and "alternating − random" in report
    assert "## Equivalent-epoch speedup" in report
    assert len([l for l in tables(report) if l.startswith("| flip=")]) == 6
    for stem in ("accuracy_vs_epochs",):
        w, h = png_size(smoke_campaign / "figures" / f"{stem}.png")
        assert w > 400 and h > 300
        assert (smoke_campaign / "figures" / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"
        assert f"figures/{stem}.png" in report


def test_harness_report_rebuilds_the_same_tables(smoke_campaign):
    before = (smoke_campaign / "report.md").read_text()
    (smoke_campaign / "report.md").unlink()
    r = subprocess.run([sys.executable, "-m", "harness.report", str(smoke_campaign)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert tables((smoke_campaign / "report.md").read_text()) == tables(before)


def test_loaded_campaign_aligns_predictions_labels_and_accuracy(smoke_campaign):
    c = load_campaign(smoke_campaign)
    assert c.predictions.shape == (12, 3, 1000) and c.labels.shape == (1000,)
    recomputed = (c.predictions[:, 2] == c.labels).mean(1)
    assert (abs(recomputed - c.runs["acc_tta2"].to_numpy()) < 1e-9).all()


def test_report_on_a_folder_that_is_not_a_campaign(tmp_path):
    r = subprocess.run([sys.executable, "-m", "harness.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no manifest" in r.stderr


@pytest.mark.parametrize("study", ["tta_variance", "calibration", "ablation", "variance_vs_epochs"])
def test_every_study_reports_from_simulated_runs(study, tmp_path):
    """Each study's analysis runs on a store of simulated records (no training)."""
    from harness.simulate import simulated_campaign
    from harness.report import write_report
    from studies import STUDIES
    out = simulated_campaign(tmp_path, STUDIES[study], runs_per_cell=6)
    text = write_report(out).read_text()
    assert f"# {study}" in text and "![" in text
    for png in (out / "figures").glob("*.png"):
        assert png_size(png)[0] > 300
