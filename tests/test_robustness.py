"""Issue 28 items 1 and 4: the betting sequence offered for adaptive decisions beside the asymptotic
one, diverged runs flagged by a robust rule, plans from the same method and version; each checked on simulated runs whose truth is known."""

import numpy as np
import pandas as pd
import pytest

from harness.stats import coverage as cv
from harness.stats import sequential as seq
from harness.stats.robust import K_DIVERGED, MIN_RUNS_DIVERGED, diverged, diverged_mask


def test_rule_offers_the_betting_sequence_and_keeps_it_in_the_record():
    rule = seq.Rule(0.5, 60, kind=seq.BETTING)
    assert rule.record()["sequence"] == "betting"
    assert seq.Rule.from_record(rule.record()).record() == rule.record()
    old = seq.Rule(0.5, 60).record()
    assert "sequence" not in old  # manifests written before stay equal to their rule
    assert seq.Rule.from_record(old).kind == seq.ASYMPTOTIC
    assert "Betting CS" in rule.describe() and "betting" in rule.short()
    with pytest.raises(ValueError, match="sequence"):
        seq.Rule(0.5, 60, kind="bayes")


def test_betting_decides_a_large_difference_and_bounds_its_mean():
    rng = np.random.default_rng(5)
    d = rng.normal(30.0, 2.0, 60)  # differences in points
    state = seq.decide("v − b", d, seq.Rule(0.5, 60, kind=seq.BETTING))
    assert state.outcome == seq.BETTER and state.lower > 0 and state.lower < state.mean < state.upper
    mean, lower, upper = seq.Rule(0.5, 60, kind=seq.BETTING).sequence(d)
    assert np.allclose(mean, np.cumsum(d) / np.arange(1, 61))
    assert (lower >= -100).all() and (upper <= 100).all()


def test_betting_sequence_covers_the_mean_of_diverged_mixtures_where_the_asymptotic_one_does_not():
    """1% of runs 5-10 points low: the mean difference is -0.075 points. Watched at every seed."""
    rng = np.random.default_rng(6)
    c = cv.SCENARIOS[2]
    bet = cv.contaminated_sequence_rows(rng, 200, c, kind=seq.BETTING)
    asym = cv.contaminated_sequence_rows(rng, 1000, c)
    assert bet[0].achieved >= 0.95 and bet[1].achieved <= 0.05
    assert asym[0].achieved < 0.8  # the asymptotic bounds miss the mixture's mean (not claimed) ...
    assert asym[0].caveat and not asym[0].claimed
    assert asym[1].ok  # ... but its decisions stay within the family-wise 5% (the bar of issue 28)


def test_costs_show_why_the_asymptotic_sequence_is_the_default():
    costs = {(c.kind, c.scenario, c.delta): c for c in cv.sequence_costs(np.random.default_rng(7), 200)}
    fast = costs[(seq.ASYMPTOTIC, "clean", 0.5)]
    slow = costs[(seq.BETTING, "clean", 0.5)]
    assert fast.decided > 0.95 and fast.seeds < 20 and fast.wrong == 0
    assert slow.decided == 0 and slow.seeds == 100  # bets capped by the ±100-point range
    assert costs[(seq.BETTING, "clean", 10.0)].decided > 0.5  # it does decide, at the range's scale
    assert all(c.wrong <= 0.05 for c in costs.values())


def test_wrong_decision_is_judged_against_the_true_mean():
    code = np.array([seq.OUTCOMES.index(o) for o in (seq.BETTER, seq.WORSE, seq.EQUAL, seq.UNDECIDED)])
    assert cv.wrong_decision(code, -0.1, 0.05).tolist() == [True, False, True, False]
    assert cv.wrong_decision(code, 0.02, 0.05).tolist() == [False, True, False, False]


def test_diverged_runs_are_flagged_by_seed_and_clean_cells_rarely():
    rng = np.random.default_rng(8)
    x = 94 + rng.normal(0, 0.14, 40)
    x[[3, 17]] -= [2.0, 8.0]
    flagged = diverged(x, seeds=np.arange(100, 140))
    assert flagged.seeds == (103, 117) and flagged.count == 2 and len(flagged.kept) == 38
    assert "seeds 103, 117" in flagged.note() and flagged.threshold < 94 - 0.4
    clean = 94 + rng.normal(0, 0.14, (5000, 40))
    assert diverged_mask(clean).any(1).mean() < 0.01  # measured 0.2% at n = 40 (robust.py)
    few = x[: MIN_RUNS_DIVERGED - 1].copy()
    few[0] -= 9
    assert not diverged_mask(few).any() and diverged_mask(np.r_[few, 94.0]).any()  # too few to judge
    assert diverged(x[:10]).seeds == (3,)  # 2 points low is 14 sds: caught at n = 10 already
    assert K_DIVERGED == 5.0


def test_a_run_cannot_diverge_upwards():
    x = np.r_[np.full(9, 94.0) + np.linspace(-0.1, 0.1, 9), 99.0]
    assert not diverged_mask(x).any()


def test_tied_runs_flag_nothing():
    """More than half the runs tied (a 100-example smoke test set): a MAD of 0 judges nothing."""
    assert not diverged_mask([0.5] * 7 + [0.49, 0.51, 0.3]).any()


# ----------------------------------------------------------------------------- item 4: plans


def test_plans_learn_only_from_the_same_method_and_version():
    """Old: --method airbench95 with none stored took its sd from airbench94, muon and faster runs
    that shared the cell label "epochs=2.0" (sd 10.9 points)."""
    from harness.stats.planning import Device, comparable, pooled_sd

    rng = np.random.default_rng(9)
    rows = []
    for method, version, mean in (
        ("airbench94", "v1", 0.94),
        ("airbench94_muon", "v2", 0.80),
        ("airbench95", "v3", 0.95),
    ):
        for seed in range(6):
            rows.append(
                {
                    "method": method,
                    "method_version": version,
                    "cell": "epochs=2.0",
                    "seed": seed,
                    "preset": "full",
                    "device_name": "NVIDIA H100",
                    "acc_tta2": mean + rng.normal(0, 0.0015),
                }
            )
    records = pd.DataFrame(rows)
    mixed, _ = pooled_sd(records)
    assert mixed < 0.003  # a cell is one method and version, never pooled across them
    none = comparable(
        records[records["method"] != "airbench95"], "full", Device("gpu"), versions={"airbench95": "v3"}
    )
    assert len(none.runs) == 0 and "(method airbench95 at version v3)" in none.source
    same = comparable(records, "full", Device("gpu"), versions={"airbench95": "v3"})
    assert set(same.runs["method"]) == {"airbench95"} and len(same.runs) == 6
    edited = comparable(records, "full", Device("gpu"), versions={"airbench95": "v4"})
    assert len(edited.runs) == 0  # an edited method plans from its own version only


def test_adaptive_plan_prints_expected_and_worst_case_totals():
    """Old: the adaptive dry run priced only the first round."""
    from harness.stats.planning import adaptive_lines, adaptive_totals

    rule = seq.Rule(0.05, 40, min_seeds=10, comparisons=3)
    text = adaptive_lines(rule, None, workers=4, campaigns=300, seconds_per_run=36.0)
    assert "worst case (every comparison to M = 40 seeds): 160 runs, 1.6 GPU-hours" in text
    big = adaptive_totals(1.0, 0.21, rule, 4, 3, 300)  # decided at the first look, 10 seeds each
    assert 40 <= big <= 48  # 3 variants and the baseline at about 10 seeds (rounds may add a few)
    null = adaptive_totals(0.0, 0.21, rule, 4, 3, 300)
    assert null > big and null <= 160
    line = next(x for x in text.splitlines() if "every true difference is 0.2 points" in x)
    runs = float(line.split(": ")[1].split(" runs")[0])
    hours = float(line.split("runs, ")[1].split(" GPU")[0])
    assert hours == pytest.approx(runs * 36 / 3600, abs=0.006)  # hours are runs times seconds per run


# ----------------------------------------------------------------------------- item 2: CACE


def test_calibrated_null_is_the_floor_a_calibrated_ensemble_shows():
    """Old: labels redrawn from the observed finite-R frequencies, counts reused: 0.035 against a true
    floor of 0.29 at R = 10 here, and calibrated ensembles above its range in every case."""
    from harness import stats

    rng = np.random.default_rng(11)
    raw, null, above = [], [], []
    for _ in range(12):
        preds, labels = cv.calibrated_ensemble(rng, 10, 1000)
        counts = stats.class_counts(preds)
        value = stats.cace(counts, labels, 10)[0]
        ref = stats.calibrated_null_cace(counts, 10, seed=int(rng.integers(1 << 30)))
        raw.append(value)
        null.append(ref.value)
        above.append(value > ref.high)
        assert ref.low <= ref.value <= ref.high
    assert np.mean(null) == pytest.approx(np.mean(raw), abs=0.02)  # the floor, not far below it
    assert np.mean(above) <= 0.25


def test_calibration_report_prints_no_cace_interval_and_says_why(tmp_path):
    from harness.report.campaign import campaign_from
    from harness.run.simulate import simulated_runs
    from harness.spec.studies import find_study

    study = find_study("calibration")
    manifest, runs, preds, labels = simulated_runs(study, 6, n=400)
    c = campaign_from(tmp_path, manifest, runs, preds, labels, pd.DataFrame())
    text = "\n".join(b for b in study.report(c) if isinstance(b, str))
    assert (
        "CACE, bias-corrected (no interval, see text)" in text and "CACE, bias-corrected [95% CI]" not in text
    )
    assert "no interval: its bootstrap interval" in text and "calibrated infinite ensemble" in text
    assert "calibrated-null CACE (the floor)" in text and "[95% range]" not in text


def test_until_decided_takes_the_sequence_and_keeps_it_in_the_manifest_entry():
    from helpers import ROOT

    from harness.cli.study import build_parser, resolve
    from harness.spec.errors import UserError

    study = str(ROOT / "studies" / "examples" / "smoke_half_epochs.toml")
    target = resolve(build_parser().parse_args([study, "--until", "decided", "--sequence", "betting"]), {})
    assert target.rule.kind == seq.BETTING and target.rule.record()["sequence"] == "betting"
    assert resolve(build_parser().parse_args([study, "--until", "decided"]), {}).rule.kind == seq.ASYMPTOTIC
    with pytest.raises(UserError, match="--sequence go with --until decided"):
        resolve(build_parser().parse_args([study, "--seeds", "2", "--sequence", "betting"]), {})
