"""Issue 28 items 5, 6 and 10: pairing as compare does it, shared stored runs, no t-intervals after
adaptive stopping, diverged runs named; every number a table or figure prints checked against an
independent computation (scipy), and every drawn interval against its point and its table."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT
from scipy import stats as st

from harness import stats
from harness.stats import sequential as seq

SMOKE_FILE = ROOT / "studies" / "examples" / "smoke_half_epochs.toml"


def two_cells(seeds_a, seeds_b, acc_a, acc_b):
    runs = pd.concat(
        [
            pd.DataFrame({"cell": "a", "seed": seeds_a, "acc_tta2": acc_a}),
            pd.DataFrame({"cell": "b", "seed": seeds_b, "acc_tta2": acc_b}),
        ],
        ignore_index=True,
    )
    return SimpleNamespace(runs=runs), (runs["cell"] == "a").to_numpy(), (runs["cell"] == "b").to_numpy()


def table_rows(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    head = [h.strip() for h in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


@pytest.mark.parametrize("shared", [2, 3])
def test_study_reports_pair_only_identical_seed_sets(shared):
    """Old: pairs on any 2+ shared seeds: 100 vs 100 runs sharing 3 seeds gave p = 0.057 on 3 pairs,
    and 2 shared seeds printed "n too small"; now Welch on all 200 runs, as compare does."""
    from harness.report.sections import compare

    rng = np.random.default_rng(0)
    a = 0.9410 + rng.normal(0, 0.0015, 100)
    b = 0.9400 + rng.normal(0, 0.0015, 100)
    c, ma, mb = two_cells(np.r_[0:shared, 100 : 200 - shared], np.r_[0:shared, 300 : 400 - shared], a, b)
    comp = compare(c, ma, mb, 2, 2, {"c": "a − b"}, "a − b")
    ref = st.ttest_ind(a, b, equal_var=False)
    assert not comp.result.paired and comp.result.n == 200
    assert comp.result.p == pytest.approx(ref.pvalue, rel=1e-9) and comp.result.t == pytest.approx(
        ref.statistic
    )
    assert comp.result.p < 1e-3
    # identical seed sets: paired, with the paired t of scipy
    c, ma, mb = two_cells(np.arange(100), np.arange(100)[::-1], a, b[::-1])
    comp = compare(c, ma, mb, 2, 2, {"c": "a − b"}, "a − b")
    ref = st.ttest_rel(a, b)
    assert comp.result.paired and comp.result.p == pytest.approx(ref.pvalue, rel=1e-9)


def test_comparison_table_numbers_match_scipy_and_holm():
    """Difference, its sign, t, p, Holm and the interval bounds, each against an independent value."""
    from harness.report.sections import Comparison, comparison_table

    rng = np.random.default_rng(1)
    comps, refs = [], []
    for name, shift in (("up", 0.002), ("down", -0.0015), ("flat", 0.0)):
        x, y = 0.94 + shift + rng.normal(0, 0.001, 12), 0.94 + rng.normal(0, 0.001, 12)
        comps.append(Comparison({"comparison": name}, name, stats.paired(x, y)))
        refs.append((x - y, st.ttest_rel(x, y)))
    text = comparison_table(comps, "three")[0]
    rows = table_rows(text)
    p = np.array([r.pvalue for _, r in refs])
    holm = np.minimum(1, np.maximum.accumulate((len(p) - np.arange(len(p))) * np.sort(p)))[
        np.argsort(np.argsort(p))
    ]
    assert "Pairing: paired t where the two sides hold exactly the same seeds" in text
    for row, (d, ref), h in zip(rows, refs, holm):
        point, bounds = row["difference (pts) [95% CI]"].split(" [")
        low, high = (float(v) for v in bounds.rstrip("]").split(", "))
        half = st.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        assert float(point) == pytest.approx(100 * d.mean(), abs=6e-4)
        assert low == pytest.approx(100 * (d.mean() - half), abs=6e-4)
        assert high == pytest.approx(100 * (d.mean() + half), abs=6e-4)
        assert low <= float(point) <= high
        assert float(row["t"]) == pytest.approx(ref.statistic, abs=6e-3)
        assert np.sign(float(row["t"])) == np.sign(d.mean())  # t's sign is the difference's direction
        assert row["p"] == p_shown(ref.pvalue) and row["Holm p"] == p_shown(h)


def p_shown(p: float) -> str:
    from harness.report.page import p_text

    return p_text(p)


def test_compare_detects_two_folders_reading_the_same_stored_runs():
    """Old: treated as independent samples, with a test and no warning."""
    from harness.report.compare import Side, compare_cells, render

    rng = np.random.default_rng(2)
    acc = 0.94 + rng.normal(0, 0.001, 10)
    runs = pd.DataFrame(
        {"cell": "c", "seed": range(10), "acc_tta2": acc, "key": [f"k{i}" for i in range(10)]}
    )
    other = runs.assign(cell="d", key=[f"d{i}" for i in range(10)])
    a = Side("A", pd.concat([runs, other], ignore_index=True))
    b = Side(
        "B",
        pd.concat(
            [runs, other.assign(acc_tta2=acc + 0.001, key=[f"e{i}" for i in range(10)])], ignore_index=True
        ),
    )
    comps = compare_cells(a, b, 2)
    assert [c.labels["cell"] for c in comps] == ["d"]  # c reads the same runs: no test
    text = render(a, b, 2, comps)
    assert "**The same runs, no test:** c: the same runs (10 stored runs read by both sides)" in text
    half = Side("B", runs.assign(key=[f"k{i}" if i < 4 else f"x{i}" for i in range(10)]))
    assert compare_cells(a, half, 2) == []
    assert "c: 4 of its 10 + 10 runs are the same stored runs" in render(a, half, 2, [])


def test_compare_caption_states_its_rule(tmp_path, monkeypatch):
    from harness.report import compare as cmp
    from harness.report import figures

    captured = {}
    monkeypatch.setattr(
        figures, "forest", lambda rows, *a, **k: captured.setdefault("rows", rows) is None or "x.png"
    )
    rng = np.random.default_rng(3)
    a = cmp.Side(
        "A", pd.DataFrame({"cell": "c", "seed": range(8), "acc_tta2": 0.94 + rng.normal(0, 0.001, 8)})
    )
    b = cmp.Side(
        "B", pd.DataFrame({"cell": "c", "seed": range(1, 9), "acc_tta2": 0.94 + rng.normal(0, 0.001, 8)})
    )
    comps = cmp.compare_cells(a, b, 2)
    block = cmp.forest_figure(tmp_path, a, b, 2, comps)
    assert "exactly the same seeds, Welch's test on every run" in block
    assert "where both sides hold the seed" not in block  # the old caption's misstatement
    drawn = captured["rows"].iloc[0]
    r = comps[0].result
    assert not r.paired and (drawn["low"], drawn["diff"], drawn["high"]) == pytest.approx(
        (100 * r.diff.low, 100 * r.diff.value, 100 * r.diff.high)
    )


def adaptive_campaign(tmp_path, runs_per_cell: int = 16, sequence: str = seq.ASYMPTOTIC):
    """The smoke study file's two cells, simulated, as an adaptive campaign decided under its rule."""
    from harness.report import experiment
    from harness.report.campaign import campaign_from
    from harness.run.simulate import simulated_runs
    from harness.spec import studyfile

    sf = studyfile.load(str(SMOKE_FILE))
    study = experiment.as_study(sf)
    manifest, runs, preds, labels = simulated_runs(study, runs_per_cell, preset=experiment.FILE_PRESET, n=400)
    rule = seq.Rule(0.5, 20, min_seeds=4, comparisons=1, kind=sequence)
    manifest = {**manifest, "adaptive": {**rule.record(), "workers": 2}}
    return sf, campaign_from(tmp_path, manifest, runs, preds, labels, pd.DataFrame()), rule


def test_after_adaptive_stopping_the_forest_draws_the_verdicts_sequence(tmp_path, monkeypatch):
    """Old: the forest plot beside the verdict drew 95% t-intervals on the runs stopping chose."""
    from harness.report import experiment, figures
    from harness.run.adaptive import differences

    drawn = []
    real = figures.forest

    def spy(rows, *args, **kwargs):
        drawn.append((rows.copy(), args))
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(figures, "forest", spy)
    sf, c, rule = adaptive_campaign(tmp_path)
    text = "\n\n".join(b for b in experiment.report(sf, c) if isinstance(b, str))
    ((rows, args),) = drawn
    ((name, d),) = differences(sf, c.runs).items()
    state = seq.decide(name, d, rule)
    row = rows.iloc[0]
    assert (row["diff"], row["low"], row["high"]) == pytest.approx((state.mean, state.lower, state.upper))
    assert row["low"] <= row["diff"] <= row["high"]
    assert "confidence sequence" in args[-1] and "t-interval" not in args[-1]
    assert "not a t-interval" in text and "95% t-interval" not in text
    # the verdict table prints the same numbers the figure draws
    verdict_row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
    assert f"[{state.lower:+.3f}, {state.upper:+.3f}]" in verdict_row


def test_after_adaptive_stopping_the_cell_table_has_no_t_intervals(tmp_path):
    from harness.report.writer import accuracy_table, precision_section

    _, c, _ = adaptive_campaign(tmp_path)
    table = accuracy_table(c)
    assert "[95% CI]" not in table and "not valid" in table and "TTA 2 mean %" in table
    assert "CI half-width" not in precision_section(c, [])


def test_diverged_runs_are_named_in_the_cell_table_and_left_out_of_its_interval(tmp_path):
    from harness.report.campaign import campaign_from
    from harness.report.writer import accuracy_table
    from harness.run.simulate import simulated_runs
    from harness.spec.studies import find_study

    study = find_study("variance_vs_epochs")
    manifest, runs, preds, labels = simulated_runs(study, 12, n=400)
    cell = runs["cell"].iloc[0]
    rows = runs.index[runs["cell"] == cell]
    runs.loc[rows[5], "acc_tta2"] -= 0.3  # seed of that run diverged 30 points low
    seed = int(runs.loc[rows[5], "seed"])
    c = campaign_from(tmp_path, manifest, runs, preds, labels, pd.DataFrame())
    text = accuracy_table(c)
    assert f"{cell}: 1 diverged run (seed {seed})" in text and "**1 diverged run**" in text
    kept = runs.loc[rows.drop(rows[5]), "acc_tta2"].to_numpy()
    row = next(r for r in table_rows(text) if r["cell"] == cell)
    m = stats.mean_ci(kept)
    assert row["n"].startswith("11") and row["TTA 2 mean % [95% CI]"].startswith(f"{100 * m.value:.2f} [")
    clean = campaign_from(
        tmp_path, manifest, simulated_runs(study, 12, n=400)[1], preds, labels, pd.DataFrame()
    )
    assert "No run was flagged as diverged" in accuracy_table(clean)
