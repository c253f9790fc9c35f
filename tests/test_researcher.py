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
    from harness.run.campaign import method_versions

    _, runs, preds, _ = simulated_runs(study, seeds, preset, n, seed)
    versions = method_versions(study.cells(preset))  # runs of the method as it is: plans learn from them
    for record, p in zip(runs.to_dict("records"), preds):
        record.update(
            method_version=versions[record["method"]],
            device_name=device,
            wall_seconds=wall * (1 + 0.5 * record["seed"]),
            n_test=n,
            epochs_trained=record["epochs"],
            study=study_name or study.name,
        )
        store.write_run(root, record, p)
    store.note_identity(root, "simulated", "simulated")
    return runs


def file_study(path="studies/examples/smoke_half_epochs.toml"):
    from harness.report.experiment import as_study
    from harness.spec import studyfile
    from tests.helpers import ROOT

    return as_study(studyfile.load(str(ROOT / path)))


def dry_run(capsys, *args) -> str:
    from harness.cli.study import main

    assert main([*args, "--dry-run"]) == 0
    return capsys.readouterr().out


def cost(text: str) -> str:
    return re.search(r"cost: ([\d.]+ \S+-hours)", text).group(1)


def test_a_gpu_plan_never_prices_itself_from_cpu_smoke_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # as on a machine without a GPU
    study = find_study("flip_vs_alternating")
    root = tmp_path / "store"
    empty = dry_run(
        capsys, "flip_vs_alternating", "--seeds", "400", "--store", str(root), "--out", str(tmp_path / "a")
    )
    put_runs(root, study, 2)  # the README's smoke step, on a CPU
    after = dry_run(
        capsys, "flip_vs_alternating", "--seeds", "400", "--store", str(root), "--out", str(tmp_path / "a")
    )
    assert cost(after) == cost(empty) and cost(after).endswith("GPU-hours")
    assert "no runs of the same method and full preset on GPU (any model)" in after

    def precision(text):
        return next(line for line in text.splitlines() if line.startswith("with 400 seeds"))

    assert precision(after) == precision(empty) and "0.030 points" in precision(after)
    # the smoke plan on this CPU learns from those runs, names them, and is priced in CPU-hours
    smoke = dry_run(
        capsys,
        "flip_vs_alternating",
        "--seeds",
        "4",
        "--preset",
        "smoke",
        "--store",
        str(root),
        "--out",
        str(tmp_path / "b"),
    )
    assert cost(smoke).endswith("CPU-hours")
    assert "12 runs of the same method and smoke preset on CPU in this store" in smoke
    assert "pooled within cells over 12 runs of the same method, preset and device" in smoke


def test_gpu_runs_of_the_same_preset_price_a_gpu_plan(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    study = find_study("flip_vs_alternating")
    root = tmp_path / "store"
    put_runs(root, study, 2, preset="full", device="NVIDIA H200", wall=3.0)
    put_runs(root, study, 2, preset="smoke", device="cpu", wall=500.0)
    text = dry_run(
        capsys, "flip_vs_alternating", "--seeds", "400", "--store", str(root), "--out", str(tmp_path / "a")
    )
    assert "36 runs of the same method and full preset on GPU (any model) in this store (NVIDIA H200)" in text
    # the stored runs are of the method as it is: 36 done, and the 7164 to do priced from them
    assert "36 already done, 7164 to do" in text
    assert "7164 of 7164 runs from runs of the same config" in text


def test_one_store_holds_runs_on_two_test_sets_and_check_and_load_read_them_all(tmp_path, capsys):
    """The README's two CPU examples (1,000 and 500 test images) into one store."""
    from harness.cli.store import main as store_main
    from harness.store.compact import compact

    root = tmp_path / "store"
    flip = find_study("flip_vs_alternating")
    a = put_runs(root, flip, 2, n=1000)
    b = put_runs(root, file_study(), 3, preset="file", n=500, seed=1)
    for packed in (False, True):  # single-run files, then packs
        if packed:
            compact(root)
        assert store_main(["check", str(root)]) == 0
        out = capsys.readouterr().out
        assert (
            "2 test sets: n_test=500: 6 runs, predictions (6, 3, 500); n_test=1000: 12 runs, predictions (12, 3, 1000)"
            in out
        )
        frame, preds = store.load(root)
        assert len(frame) == 18 and set(preds) == {"n_test=1000", "n_test=500"}
        for name, p in preds.items():
            part = frame[frame["test_set"] == name]
            assert p.shape == (len(part), 3, int(name.split("=")[1]))
            truth = dict(
                zip(a["key"].tolist() + b["key"].tolist(), a["acc_tta2"].tolist() + b["acc_tta2"].tolist())
            )
            for key, acc in zip(part["key"], part["acc_tta2"]):
                assert acc == pytest.approx(100 * truth[key])  # load() gives percent
        small, p500 = store.load(root, test_set=500)
        assert len(small) == 6 and p500.shape == (6, 3, 500) and set(small["test_set"]) == {"n_test=500"}
        assert store.load_records(root, test_set="n_test=1000")["key"].tolist() == sorted(a["key"])
    with pytest.raises(store.StoreError, match="unknown test set"):
        store.load(root, test_set="half")
    # a study still counts only its own runs, on its one test set
    mine = study_folder(tmp_path / "mine", root, file_study(), 3, "file")
    frame, preds = store.load(mine)
    assert len(frame) == 6 and preds.shape == (6, 3, 500) and set(frame["test_set"]) == {"n_test=500"}


def study_folder(out, root, study, seeds, preset, n=500, seed=1, **extra):
    """A study folder counting ``seeds`` seeds of ``study`` from ``root`` (as a campaign writes it)."""
    import os

    from harness.run.campaign import study_keys
    from harness.spec.grid import expand

    manifest, _, _, labels = simulated_runs(
        study, seeds if isinstance(seeds, int) else max(seeds.values()), preset, n, seed
    )
    out.mkdir(parents=True, exist_ok=True)
    store.write_manifest(out, {**manifest, "store": os.path.relpath(root, out), **extra})
    store.write_study_keys(out, study_keys(expand(study.cells(preset), seeds)))
    store.write_labels(out, labels)
    return out


def file_campaign(tmp_path, seeds=12, path="studies/examples/smoke_half_epochs.toml", adaptive=True):
    """A study file's campaign of simulated runs (adaptive when asked), as the CLI leaves it."""
    from harness.report.experiment import manifest_entry
    from harness.spec import studyfile
    from tests.helpers import ROOT

    sf = studyfile.load(str(ROOT / path))
    study, root = file_study(path), tmp_path / "store"
    put_runs(root, study, seeds, preset="file", n=500, seed=1)
    extra = {"study_file": manifest_entry(sf, (ROOT / path).read_text(), {}, None)}
    if adaptive:
        extra["adaptive"] = {
            "precision": sf.adaptive.precision,
            "max_seeds": sf.adaptive.max_seeds,
            "min_seeds": sf.adaptive.min_seeds,
            "alpha": 0.05,
            "workers": 2,
        }
    return study_folder(tmp_path / study.name, root, study, seeds, "file", **extra)


def test_smoke_results_default_to_their_own_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    root = str(tmp_path / "store")
    smoke = dry_run(capsys, "flip_vs_alternating", "--seeds", "2", "--preset", "smoke", "--store", root)
    full = dry_run(capsys, "flip_vs_alternating", "--seeds", "2", "--store", root)
    assert f"output {'results/flip_vs_alternating-smoke'}\n" in smoke
    assert f"output {'results/flip_vs_alternating'}\n" in full


def test_a_study_files_report_has_a_forest_plot_and_its_confidence_sequences(tmp_path):
    from harness.report.writer import write_report

    out = file_campaign(tmp_path, seeds=12)
    text = write_report(out).read_text()
    figs = out / "figures"
    for name in ("against_baseline", "confidence_sequences"):
        assert f"(figures/{name}.png)" in text
        assert (figs / f"{name}.png").stat().st_size > 5000
        pdf = (figs / f"{name}.pdf").read_bytes()
        assert (b"/CIDFontType2" in pdf or b"/TrueType" in pdf) and b"/Type3" not in pdf, (
            "TrueType, not Type 3"
        )
    assert "★ and bold: the primary comparison (variant=half_epochs)" in text
    assert "decision point" in text and re.search(r"\*Figure \d+: Each cell against the baseline", text)


def test_figures_share_colours_across_a_report_and_skip_empty_series(tmp_path):
    import matplotlib.pyplot as plt
    import pandas as pd

    from harness.report import figures

    figures.reset_colours()
    assert figures.style("random") == figures.style("random") != figures.style("alternating")
    assert figures.palette(["alternating", "random"])["random"] == figures.style("random")[0]
    table = pd.DataFrame(
        {
            "estimate": ["a", "a", "empty", "empty"],
            "TTA": [0, 1, 0, 1],
            "value": [1.0, 2.0] + [np.nan] * 2,
            "low": [0.5, 1.5, np.nan, np.nan],
            "high": [1.5, 2.5, np.nan, np.nan],
        }
    )
    seen = {}
    real_save = figures.save

    def spy(fig, *args, **kwargs):
        seen["labels"] = figures._legend_entries(fig)[1]
        seen["size"] = tuple(fig.get_size_inches())
        plt.close(fig)
        return "x.png"

    figures.save = spy
    try:
        figures.estimate_lines(table, "TTA", "TTA", "std", tmp_path, "v", "t", "stamp")
    finally:
        figures.save = real_save
    assert seen["labels"] == ["a"] and seen["size"][0] == figures.ONE_COLUMN


def test_compare_draws_a_forest_plot_of_its_cells(tmp_path, capsys):
    from harness.cli.compare import main as compare_main

    a, b = (
        file_campaign(tmp_path / "a", seeds=5, adaptive=False),
        file_campaign(tmp_path / "b", seeds=5, adaptive=False),
    )
    assert compare_main([str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    text = (tmp_path / "cmp" / "report.md").read_text()
    assert "![B − A in TTA-2 accuracy" in text and "*Figure 1: B − A" in text
    assert (tmp_path / "cmp" / "figures" / "compare_forest.png").exists()
    assert (tmp_path / "cmp" / "figures" / "compare_forest.pdf").exists()


def study_file_page(tmp_path):
    from harness.cli.report import main as report_main

    out = file_campaign(tmp_path, seeds=12)
    assert report_main([str(out)]) == 0
    return out / "report.html"


def test_report_html_is_self_contained_with_figures_captions_sortable_tables_and_provenance(tmp_path):
    import html.parser

    page = study_file_page(tmp_path)
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and 'src="figures/' not in text, "nothing fetched"
    figures = re.findall(r'<figure><img src="data:image/png;base64,([^"]+)"', text)
    assert len(figures) == 3 and all(len(f) > 5000 for f in figures)
    # adaptive: the sequences (the verdict) come first, then the descriptive forest plot, then
    # accuracy against seconds
    assert text.count("<figcaption>Figure ") == 3 and re.search(
        r"<figcaption>Figure 2: Each cell against the baseline", text
    )
    assert text.count('<table class="sortable">') >= 3 and 'addEventListener("click"' in text
    for fact in (
        "Provenance",
        "Data:",
        "Method versions:",
        "Seeds:",
        "12 seeds (0–11)",
        "Store:",
        str(tmp_path / "store"),
    ):
        assert fact in text

    class Check(html.parser.HTMLParser):  # well formed: every opened block closed
        def __init__(self):
            super().__init__()
            self.stack = []

        def handle_starttag(self, tag, attrs):
            if tag not in ("img", "meta", "br"):
                self.stack.append(tag)

        def handle_endtag(self, tag):
            assert self.stack.pop() == tag

    check = Check()
    check.feed(text)
    assert check.stack == []


PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });
var realError = console.error; console.error = function (m) { window.__errors.push(String(m)); realError.apply(console, arguments); };
window.addEventListener("load", function () {
  var out = {errors: window.__errors.slice(), images: []};
  document.querySelectorAll("figure img").forEach(function (img) {
    out.images.push([img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width]);
  });
  var table = document.querySelectorAll("table.sortable")[0], th = table.tHead.rows[0].cells[COL];
  var column = function () { return Array.from(table.tBodies[0].rows).map(function (r) { return r.cells[COL].textContent; }); };
  out.before = column(); th.click(); out.ascending = column(); th.click(); out.descending = column();
  out.errors = out.errors.concat(window.__errors.slice(out.errors.length));
  var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(
    not __import__("shutil").which("chromium"), reason="needs Debian's chromium (.ci/run installs it)"
)
def test_report_html_in_headless_chromium_loads_renders_and_sorts(tmp_path):
    import html as html_mod
    import json
    import subprocess

    page = study_file_page(tmp_path)
    probe = tmp_path / "probe.html"  # the page, with a probe that records errors, sizes and a sort
    text = page.read_text()
    probe.write_text(text.replace("<head>", "<head>" + PROBE.replace("COL", "3"), 1))
    r = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,2000",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, re.S)
    assert found, r.stderr[-2000:]
    result = json.loads(html_mod.unescape(found.group(1)))
    assert result["errors"] == []
    # the forest plot, the confidence sequences and accuracy against seconds, each drawn at full size
    assert len(result["images"]) == 3 and all(
        w > 300 and h > 200 and shown > 300 for w, h, shown in result["images"]
    )

    def numbers(col):
        return [float(v.split()[0].replace("−", "-")) for v in col]

    assert numbers(result["ascending"]) == sorted(numbers(result["before"]))
    assert numbers(result["descending"]) == sorted(numbers(result["before"]), reverse=True)
    assert "Uncaught" not in r.stderr


def test_the_terminal_ends_with_the_verdicts_table(tmp_path, capsys):
    from harness.cli.study import print_verdicts

    out = file_campaign(tmp_path, seeds=12)
    print_verdicts(file_study(), out)
    text = capsys.readouterr().out
    assert text.startswith("verdicts (TTA-2 accuracy, points):")
    row = next(
        line for line in text.splitlines() if line.startswith("variant=half_epochs − variant=baseline")
    )
    assert re.search(r"primary, adaptive\s+-\d\.\d{3}\s+\[-\d\.\d{3}, [-+]\d\.\d{3}\]\s+worse\s+4$", row), row
    fixed = file_campaign(tmp_path / "fixed", seeds=12, adaptive=False)
    print_verdicts(file_study(), fixed)
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("variant=half_epochs − variant=baseline"))
    from harness.run.campaign import method_versions

    here = set(method_versions(file_study().cells("file")).values())
    assert lines[-1] == f"method versions: {', '.join(sorted(here))}"  # the table names the version it counts
    assert re.search(r"primary\s+-1\.500\s+\[-2\.169, -0\.831\]\s+worse\s+12$", row), row


def test_adaptive_rounds_count_each_run_once_and_bound_the_worst_case():
    from harness.run.adaptive import add, worst_case_runs
    from harness.run.campaign import Summary
    from harness.stats import sequential

    total = Summary(planned=0, skipped=0)
    add(total, Summary(planned=8, skipped=2, trained=6))  # 2 runs were in the store before
    add(total, Summary(planned=12, skipped=8, trained=4))  # the 8 of round 1 skipped again: not counted
    add(total, Summary(planned=16, skipped=13, trained=3))  # one more was in the store before
    assert (total.trained, total.skipped, total.planned) == (13, 3, 16)
    rule = sequential.Rule(0.5, 20, min_seeds=4)
    running = sequential.ComparisonState("a", 6, 6, sequential.RUNNING, 0, -1, 1, ())
    done = sequential.ComparisonState("b", 8, 4, sequential.WORSE, -2, -3, -1, ())
    assert worst_case_runs({"a": running, "b": done}, rule) == (20 - 6) + (20 - 8)
    assert worst_case_runs({"b": done}, rule) == 0


def test_export_writes_the_runs_a_study_counts_one_tidy_row_each(tmp_path):
    import pandas as pd

    from harness.cli.export import main as export_main

    out = file_campaign(tmp_path, seeds=6, adaptive=False)
    put_runs(tmp_path / "store", find_study("flip_vs_alternating"), 2)  # another study's runs: not counted
    assert export_main([str(out), "--format", "csv"]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 12 and list(runs.columns[:4]) == ["key", "study", "cell", "seed"]
    assert set(runs["cell"]) == {"variant=baseline", "variant=half_epochs"} and "config_json" not in runs
    assert {"acc_tta2", "epochs", "method_version", "test_set"} <= set(runs.columns)
    assert export_main([str(out), "--format", "parquet", "--predictions"]) == 0
    preds = pd.read_parquet(out / "predictions.parquet")
    assert len(preds) == 12 * 500 and preds["example"].max() == 499
    acc = preds.groupby("key")["correct_tta2"].mean()
    assert np.allclose(100 * acc.loc[runs["key"]].to_numpy(), runs["acc_tta2"].to_numpy())  # percent
    # a store: every run, whatever its test set
    assert (
        export_main(
            [str(tmp_path / "store"), "--format", "csv", "--predictions", "--to", str(tmp_path / "all.csv")]
        )
        == 0
    )
    everything = pd.read_csv(tmp_path / "all.csv")
    assert everything.groupby("test_set")["key"].nunique().to_dict() == {"n_test=1000": 12, "n_test=500": 12}


def test_a_refused_store_lock_leaves_no_lock_only_study_folder(tmp_path, data_source):
    from harness.cli.study import main
    from harness.store.lock import hold

    root, out = tmp_path / "store", tmp_path / "mine"
    root.mkdir()
    with hold(root, "store"):  # another driver writes to the store
        code = main(
            [
                "studies/examples/smoke_half_epochs.toml",
                "--seeds",
                "1",
                "--backend",
                "local",
                "--device",
                "cpu",
                "--store",
                str(root),
                "--out",
                str(out),
                "--data",
                data_source,
            ]
        )
    assert code == 2 and not out.exists()
