"""Adaptive seeds: the confidence sequence against hand values and simulation, the rule, resuming."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, special, stats

from harness.stats import t_test_power
from harness.stats.sequential import (
    BETTER,
    EQUAL,
    OUTCOMES,
    RUNNING,
    UNDECIDED,
    WORSE,
    Rule,
    benchmark,
    confidence_sequence,
    cs_margin,
    decide,
    decide_all,
    first_decision,
    fixed_seeds,
    next_round,
    paired_differences,
    plan_round,
    render,
    replay,
    rho2_for,
    round_ends,
    simulate,
)

RUN_SD = 0.15  # points: sd of one run's accuracy in the benchmark
DIFF_SD = RUN_SD * math.sqrt(2)  # paired difference of two independent runs


def monitored(d: np.ndarray, rule: Rule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CS at every look t = min_seeds..M (every t: stricter than looking after every round)."""
    mean, lower, upper = rule.sequence(d)
    looks = slice(rule.min_seeds - 1, rule.max_seeds)
    return mean[:, looks], lower[:, looks], upper[:, looks]


# --------------------------------------------------------------------------- exact values


def test_boundary_at_t_matches_hand_computation():
    # t = 20, s = 0.3, rho^2 = 0.1, alpha = 0.05 (two-sided, Waudby-Smith et al. Thm 2.2: alpha in the log;
    # it was alpha/2 = 0.025 here, a 97.5% sequence labelled 95%):
    # 2(t rho^2 + 1)/(t^2 rho^2) = 2*3/40 = 0.15; log(sqrt(3)/0.05) = log(34.6410162) = 3.5450382;
    # 0.15 * 3.5450382 = 0.5317557; sqrt = 0.7292158; times s: 0.2187647
    assert cs_margin(20, 0.3, 0.1, 0.05) == pytest.approx(0.2187647, abs=1e-7)
    # mean and ddof-1 std of these five: 0.16 and sqrt(0.212/4) = 0.2302173
    d = np.array([0.1, 0.3, -0.2, 0.4, 0.2])
    mean, lower, upper = confidence_sequence(d, rho2=0.1)
    half = 0.2302173 * math.sqrt(2 * 1.5 / 2.5 * math.log(math.sqrt(1.5) / 0.05))
    assert mean[-1] == pytest.approx(0.16)
    assert (lower[-1], upper[-1]) == pytest.approx((0.16 - half, 0.16 + half), abs=1e-6)
    assert np.isnan(lower[0]) and np.isnan(upper[0])


def test_rho_is_the_one_that_makes_the_boundary_tightest_at_t_star():
    for t_star, alpha in [(32, 0.05), (200, 0.05), (10, 0.1)]:
        rho2 = rho2_for(t_star, alpha)
        numeric = optimize.minimize_scalar(
            lambda r: cs_margin(t_star, 1.0, r, alpha),
            bounds=(1e-6, 50),
            method="bounded",
            options={"xatol": 1e-10},
        ).x
        a = alpha
        lambert = (-special.lambertw(-a * a / math.e, k=-1).real - 1) / t_star
        assert rho2 == pytest.approx(numeric, rel=1e-4)
        assert rho2 == pytest.approx(lambert, rel=1e-10)
    # the paper's closed-form approximation is close
    approx = (2 * math.log(20) + math.log(1 + 2 * math.log(20))) / 32
    assert rho2_for(32) == pytest.approx(approx, rel=0.05)


def test_fixed_design_matches_power_tables():
    # paired / one-sample t-test, two-sided alpha 0.05, 80% power (G*Power): d = 0.5 -> 34, 0.8 -> 15, 0.3 -> 90
    assert fixed_seeds(0.5, 1.0) == 34
    assert fixed_seeds(0.8, 1.0) == 15
    assert fixed_seeds(-0.3, 1.0) == 90
    assert t_test_power(0.5, 1.0, 34) >= 0.8 > t_test_power(0.5, 1.0, 33)


# --------------------------------------------------------------------------- simulation: validity


@pytest.mark.parametrize(
    ("delta", "tails", "seed"), [(0.0, "normal", 11), (0.1, "normal", 12), (0.1, "t5", 13)]
)
def test_coverage_under_continuous_monitoring(delta, tails, seed):
    rule = Rule(precision=0.01, max_seeds=200)
    rng = np.random.default_rng(seed)
    shape = (2000, rule.max_seeds)
    noise = rng.normal(size=shape) if tails == "normal" else rng.standard_t(5, size=shape) / math.sqrt(5 / 3)
    _, lower, upper = monitored(delta + DIFF_SD * noise, rule)
    always_covered = ((lower <= delta) & (delta <= upper)).all(axis=1).mean()
    print(
        f"\nCS coverage of {delta} ({tails} differences) over 2000 campaigns looked at after every seed "
        f"10..200: {always_covered:.4f}"
    )
    assert always_covered >= 0.95


def test_t_interval_read_after_every_round_rejects_a_true_null_too_often():
    rule = Rule(precision=0.01, max_seeds=200)
    d = np.random.default_rng(12).normal(0.0, DIFF_SD, size=(2000, rule.max_seeds))
    mean, lower, upper = monitored(d, rule)
    t = np.arange(rule.min_seeds, rule.max_seeds + 1)
    _, running_sd = _running_sd(d)  # the t-interval, computed independently of the module
    half = stats.t.ppf(0.975, t - 1) * running_sd[:, rule.min_seeds - 1 :] / np.sqrt(t)
    rounds = slice(None, None, 2)  # a round of 2 seeds per look (4 workers, one comparison)
    t_rejects = (np.abs(mean) > half)[:, rounds].any(axis=1).mean()
    cs_rejects = ((lower > 0) | (upper < 0))[:, rounds].any(axis=1).mean()
    print(
        f"\ntrue null, looked at every 2 seeds from 10 to 200: t-interval rejects in {t_rejects:.3f} "
        f"of 2000 campaigns, the confidence sequence in {cs_rejects:.3f}"
    )
    assert t_rejects > 0.10
    assert cs_rejects <= 0.05


def _running_sd(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(1, d.shape[1] + 1)
    mean = np.cumsum(d, axis=1) / t
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (np.cumsum(d * d, axis=1) - t * mean**2) / (t - 1)
    return mean, np.sqrt(var)


# --------------------------------------------------------------------------- simulation: efficiency


def test_adaptive_seeds_beat_the_fixed_design_of_equal_power():
    rule = Rule(precision=0.05, max_seeds=100)
    result = benchmark(0.1, DIFF_SD, rule, workers=2, campaigns=4000, seed=3)
    print("\n" + result.describe())
    assert result.power >= 0.8
    assert result.fixed_80 == fixed_seeds(0.1, DIFF_SD) == 38
    assert result.fixed_equal_power >= result.fixed_80
    assert result.expected_seeds < result.fixed_equal_power
    assert result.ratio_equal_power < 0.85


def test_simulated_null_is_rarely_decided_and_rounds_add_seeds():
    rule = Rule(precision=0.05, max_seeds=100)
    null = simulate(0.0, DIFF_SD, rule, workers=2, campaigns=4000, seed=4)
    assert null.share(BETTER) + null.share(WORSE) <= 0.05
    wide = simulate(0.1, DIFF_SD, rule, workers=16, campaigns=4000, seed=5)
    assert (wide.seeds_trained >= wide.seeds_used).all()
    assert set(np.unique(wide.seeds_trained)) <= set(round_ends(rule, workers=16))
    assert (
        wide.expected_seeds > simulate(0.1, DIFF_SD, rule, workers=2, campaigns=4000, seed=5).expected_seeds
    )


# --------------------------------------------------------------------------- the rule on constructed data


def wiggle(level: float, amplitude: float, n: int) -> np.ndarray:
    return level + amplitude * np.resize([1.0, -1.0, 0.5, -0.5], n)


def test_decision_outcomes_on_constructed_data():
    rule = Rule(precision=0.05, max_seeds=30, min_seeds=5)
    assert decide("up", wiggle(1.0, 0.2, 12), rule).outcome == BETTER
    down = decide("down", wiggle(-1.0, 0.2, 12), rule)
    assert (down.outcome, down.seeds_used, down.seeds) == (WORSE, 5, 12)
    assert down.upper < 0 and down.mean == pytest.approx(wiggle(-1.0, 0.2, 5).mean())
    flat = decide("flat", wiggle(0.0, 0.01, 12), rule)
    assert (flat.outcome, flat.seeds_used) == (EQUAL, 5) and flat.upper - flat.lower < 0.1
    noisy = decide("noisy", wiggle(0.0, 1.0, 40), rule)
    assert (noisy.outcome, noisy.seeds_used, noisy.seeds) == (UNDECIDED, 30, 30)
    assert noisy.lower < 0 < noisy.upper and noisy.upper - noisy.lower >= 0.1
    early = decide("early", wiggle(0.0, 1.0, 4), rule)
    assert (early.outcome, early.seeds_used) == (RUNNING, 4) and early.running and not early.decided
    # excluding 0 wins over being narrow; the first firing is kept whatever arrives later
    assert decide("tight", wiggle(0.5, 0.001, 8), rule).outcome == BETTER
    later = decide("later", np.concatenate([wiggle(1.0, 0.2, 5), np.full(20, -5.0)]), rule)
    assert (later.outcome, later.seeds_used) == (BETTER, 5)


def test_vectorised_rule_agrees_with_one_comparison_at_a_time():
    rule = Rule(precision=0.08, max_seeds=60, min_seeds=8)
    d = np.random.default_rng(6).normal(0.05, 0.2, size=(300, 60))
    used, code = first_decision(*rule.sequence(d), rule)
    one_by_one = [decide(str(i), row, rule) for i, row in enumerate(d)]
    assert [(s.seeds_used, s.outcome) for s in one_by_one] == [
        (int(u), OUTCOMES[c]) for u, c in zip(used, code)
    ]
    assert {OUTCOMES[c] for c in code} >= {BETTER, EQUAL}


def test_next_round_fills_workers_and_feeds_only_running_comparisons():
    rule = Rule(precision=0.05, max_seeds=100)
    start = decide_all({"a": [], "b": []}, rule)
    assert next_round(start, rule, workers=1) == {"a": 10, "b": 10}
    states = {
        "a": decide("a", wiggle(0.0, 1.0, 10), rule),
        "b": decide("b", wiggle(0.0, 1.0, 10), rule),
        "done": decide("done", wiggle(1.0, 0.1, 12), rule),
    }
    assert states["done"].outcome == BETTER
    # 2 running comparisons at 10 seeds, baseline at 12: k more seeds cost 2k variant runs + max(0, 10+k-12)
    assert next_round(states, rule, workers=8, baseline_seeds=12) == {"a": 4, "b": 4}  # 8 + 2 >= 8
    assert next_round(states, rule, workers=8, baseline_seeds=10) == {"a": 3, "b": 3}  # 6 + 3 >= 8
    near_cap = {"a": decide("a", wiggle(0.0, 1.0, 98), rule)}
    assert next_round(near_cap, rule, workers=16) == {"a": 2}
    assert next_round({"done": states["done"]}, rule, workers=4) == {}


def test_paired_differences_stop_at_the_first_missing_seed():
    baseline = {0: 90.0, 1: 90.5, 2: 91.0, 4: 90.0}
    variant = {0: 90.5, 1: 90.0, 2: 91.5, 3: 92.0, 4: 91.0}
    assert paired_differences(baseline, variant).tolist() == [0.5, -0.5, 0.5]


# --------------------------------------------------------------------------- resuming


def test_killed_driver_resumes_to_the_same_decisions():
    rule = Rule(precision=0.03, max_seeds=80)
    rng = np.random.default_rng(7)
    truth = {"big": 0.3, "small": -0.15, "none": 0.0}
    accuracy = {name: 90 + delta + rng.normal(0, RUN_SD, rule.max_seeds) for name, delta in truth.items()}
    baseline = 90 + rng.normal(0, RUN_SD, rule.max_seeds)
    workers = 6

    def drive(stored: dict[str, dict[int, float]], killed_in_round: int | None = None) -> dict:
        """The driver loop: states from the store alone, then train the next round in any order."""
        rounds = 0
        while True:
            diffs = {n: paired_differences(stored["baseline"], stored[n]) for n in truth}
            states, extra = plan_round(
                diffs,
                rule,
                workers,
                baseline_seeds=len(paired_differences(stored["baseline"], stored["baseline"])),
            )
            if not extra:
                return states
            todo = [("baseline", s) for s in range(max(states[n].seeds + k for n, k in extra.items()))]
            todo += [(n, s) for n, k in extra.items() for s in range(states[n].seeds, states[n].seeds + k)]
            order = rng.permutation(len(todo))  # runs finish in any order
            if rounds == killed_in_round:
                order = order[: len(order) // 2]  # killed: half the round stored
            for i in order:
                name, seed = todo[i]
                stored[name][seed] = (baseline if name == "baseline" else accuracy[name])[seed]
            if rounds == killed_in_round:
                return states
            rounds += 1

    uninterrupted = drive({n: {} for n in ["baseline", *truth]})
    assert [uninterrupted[n].outcome for n in truth] == [BETTER, WORSE, UNDECIDED]
    for killed_in_round in (0, 3, 7):
        store = {n: {} for n in ["baseline", *truth]}
        drive(store, killed_in_round)
        assert len(store["big"]) > 0
        resumed = drive(store)
        assert {n: s.decision for n, s in resumed.items()} == {
            n: s.decision for n, s in uninterrupted.items()
        }
        # and the state recomputed from everything stored equals the one reached round by round
        full = {n: paired_differences(store["baseline"], store[n]) for n in truth}
        assert {n: decide(n, d, rule).decision for n, d in full.items()} == {
            n: s.decision for n, s in resumed.items()
        }


def test_replay_rebuilds_the_rounds_from_stored_differences():
    rule = Rule(precision=0.05, max_seeds=40)
    rng = np.random.default_rng(8)
    stored = {"a": rng.normal(0.5, 0.2, 40), "b": rng.normal(0.0, 0.2, 40)}
    history = replay(stored, rule, workers=4)
    assert all(not s.running for s in history[-1].values())
    assert history[-1]["a"].outcome == BETTER and history[-1]["b"].seeds_used == 40
    for states in history:  # each round's state is the decision on a prefix
        for name, s in states.items():
            assert s.decision == decide(name, stored[name][: s.seeds], rule).decision
    partial = replay({"a": stored["a"][:5], "b": stored["b"][:25]}, rule, workers=4)
    assert partial == []  # round 1 needs 10 seeds of each
    text = render(history, rule)
    assert "Waudby-Smith" in text and "| a | better |" in text and "| b | undecided | 40 |" in text
    assert "### b: sequence over rounds" in text and text.count("\n| ") > 8


def test_equal_fires_when_the_sequence_is_narrower_than_2p_and_not_otherwise():
    rule = Rule(precision=0.05, max_seeds=30, min_seeds=5)
    d = np.array([1.0, -1.0, 0.5, -0.5, 0.0])  # mean 0: the sequence never excludes 0
    _, lower, upper = rule.sequence(d)
    width = upper[-1] - lower[-1]  # scales with the differences
    for ratio, outcome in ((1.5, EQUAL), (1.98, EQUAL), (2.02, RUNNING), (3.0, RUNNING)):
        state = decide("x", d * ratio * rule.precision / width, rule)
        assert (state.outcome, state.seeds_used) == (outcome, 5), ratio
