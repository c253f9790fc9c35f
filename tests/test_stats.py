"""Every estimator in harness.stats: exact values on small fixed arrays (answers computed here by
hand or with scipy), and simulations with known truth whose tolerances reject a z-interval or a
wrong df. All simulations are vectorised or tiny, so the file runs in seconds."""

import ast
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from harness import stats

ROOT = Path(__file__).resolve().parent.parent
X = np.array([0.9412, 0.9398, 0.9421, 0.9405, 0.9390])
Y = np.array([0.9401, 0.9395, 0.9410, 0.9382, 0.9391, 0.9377, 0.9399])


# ----------------------------------------------------------------------------- exact values


def test_mean_ci_uses_the_t_quantile():
    m, s = X.mean(), X.std(ddof=1)
    half = 2.7764451051977987 * s / np.sqrt(5)  # t_{0.975, 4}, from tables
    e = stats.mean_ci(X)
    assert e.value == pytest.approx(m, abs=1e-15)
    assert (e.low, e.high) == pytest.approx((m - half, m + half), abs=1e-12)
    assert (e.low, e.high) == pytest.approx(st.t.interval(0.95, 4, loc=m, scale=st.sem(X)), abs=1e-12)


def test_welch_df_p_and_interval_by_hand_and_scipy():
    va, vb = X.var(ddof=1) / 5, Y.var(ddof=1) / 7
    df = (va + vb) ** 2 / (va**2 / 4 + vb**2 / 6)
    d = stats.welch(X, Y)
    assert d.df == pytest.approx(df, rel=1e-12) and abs(d.df - 10) > 0.5  # not n_a + n_b - 2
    ref = st.ttest_ind(X, Y, equal_var=False)
    assert d.t == pytest.approx(ref.statistic, rel=1e-12) and d.p == pytest.approx(ref.pvalue, rel=1e-10)
    lo, hi = ref.confidence_interval(0.95)
    assert (d.diff.low, d.diff.high) == pytest.approx((lo, hi), abs=1e-12)
    half = st.t.ppf(0.975, df) * np.sqrt(va + vb)
    assert d.diff.high - d.diff.low == pytest.approx(2 * half, rel=1e-12)
    assert not d.paired


def test_paired_difference_matches_ttest_rel():
    a, b = X, X - np.array([0.0010, 0.0004, 0.0015, 0.0002, 0.0009])
    d = stats.paired(a, b)
    ref = st.ttest_rel(a, b)
    diffs = a - b
    half = 2.7764451051977987 * diffs.std(ddof=1) / np.sqrt(5)
    assert d.diff.value == pytest.approx(0.0008, abs=1e-15)
    assert (d.diff.low, d.diff.high) == pytest.approx((0.0008 - half, 0.0008 + half), abs=1e-12)
    assert d.t == pytest.approx(ref.statistic, rel=1e-10) and d.p == pytest.approx(ref.pvalue, rel=1e-10)
    assert d.df == 4 and d.n == 5 and d.paired
    assert d.correlation == pytest.approx(np.corrcoef(a, b)[0, 1])


def test_std_interval_is_chi_square():
    s = X.std(ddof=1)
    e = stats.std_ci(X)
    assert e.value == pytest.approx(s)
    assert e.low == pytest.approx(s * np.sqrt(4 / st.chi2.ppf(0.975, 4)), rel=1e-12)
    assert e.high == pytest.approx(s * np.sqrt(4 / st.chi2.ppf(0.025, 4)), rel=1e-12)
    small = stats.std_ci(np.array([0.0, 1.0, 1.9]))  # n = 3: no collapse to 0, a long upper tail
    assert small.low > 0.5 * small.value and small.high > 5 * small.value


def test_holm_by_hand():
    adjusted = stats.holm(np.array([0.01, 0.04, 0.03, 0.2]))
    # sorted 0.01*4 = 0.04, 0.03*3 = 0.09, 0.04*2 = 0.08 -> 0.09 (monotone), 0.2*1 = 0.2
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.2])
    with_nan = stats.holm(np.array([0.01, np.nan, 0.04]))
    assert with_nan[0] == pytest.approx(0.02) and np.isnan(with_nan[1]) and with_nan[2] == pytest.approx(0.04)
    assert stats.holm(np.array([0.6, 0.7]))[1] == 1.0 or stats.holm(np.array([0.6, 0.7])).max() <= 1.0


CORRECT = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 0]], bool)  # 4 runs x 3 examples


def test_distribution_variance_eq3_by_hand():
    err = 1 - CORRECT.astype(float)
    run_err = [row.mean() for row in err]  # 1/3, 2/3, 0, 2/3
    mean_run = sum(run_err) / 4
    var_runs = sum((e - mean_run) ** 2 for e in run_err) / 3
    per_example = 0.0
    for i in range(3):
        col = err[:, i]
        per_example += sum((v - col.mean()) ** 2 for v in col) / 3
    expected = 3 / 2 * (var_runs - per_example / 9)
    got = stats.distribution_variance(CORRECT, resamples=50).variance.value
    assert got == pytest.approx(expected, abs=1e-15)
    assert got != pytest.approx(var_runs - per_example / 9)  # the n/(n-1) factor is there
    grouped = stats.distribution_variance(CORRECT, resamples=50, max_groups=2).variance.value
    assert grouped == pytest.approx(expected, abs=1e-15)  # groups change the bootstrap, not the estimate


def test_independent_errors_prediction_by_hand():
    eps = 1 - CORRECT.mean(0)  # 1/4, 1/4, 3/4
    expected = sum(e * (1 - e) for e in eps) / 9 * 4 / 3  # R/(R-1)
    assert stats.independent_errors_variance(CORRECT) == pytest.approx(expected, abs=1e-15)


def test_split_half_interval_is_fisher_z():
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    y = 0.5 * x + rng.normal(size=20)
    r = np.corrcoef(x, y)[0, 1]
    e = stats.correlation_ci(x, y)
    half = 1.959963984540054 / np.sqrt(17)
    assert e.value == pytest.approx(r)
    assert (e.low, e.high) == pytest.approx((np.tanh(np.arctanh(r) - half), np.tanh(np.arctanh(r) + half)))


def test_pitman_morgan_by_hand():
    a, b = X, Y[:5]
    f, r = a.var(ddof=1) / b.var(ddof=1), np.corrcoef(a, b)[0, 1]
    t = (f - 1) * np.sqrt(3) / (2 * np.sqrt(f * (1 - r**2)))  # Pitman (1939), df n-2
    got = stats.pitman_morgan(a, b)
    assert got.p == pytest.approx(2 * st.t.sf(abs(t), 3), rel=1e-9)
    assert got.ratio == pytest.approx(np.sqrt(f))


# A hand-built ensemble: 4 runs, 4 examples, 2 classes. Class-0 frequencies 1, 3/4, 1/4, 1/2.
HAND_PREDS = np.array([[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1], [0, 1, 1, 1]])
HAND_LABELS = np.array([0, 1, 1, 0])


def test_cace_on_a_hand_built_ensemble():
    counts = stats.class_counts(HAND_PREDS, classes=2)
    assert counts.tolist() == [[4, 0], [3, 1], [1, 3], [2, 2]]
    # Pairs (q, hit): (1,1) (0,0) | (.75,0) (.25,1) | (.25,0) (.75,1) | (.5,1) (.5,0). Quantile edges of
    # q: 0, .25, .5, .75, 1, so bins {0}, (0,.25], (.25,.5], (.5,.75], (.75,1]; per bin |fraction - q|:
    # 0, |.5-.25|*2, 0, |.5-.75|*2, 0  ->  CACE = 1/4 (n = 4 examples).
    value, bins = stats.cace(counts, HAND_LABELS, runs=4)
    assert value == pytest.approx(0.25)
    assert bins["pairs"].tolist() == [1, 2, 2, 2, 1]
    # Class-wise (per class): class 0 pairs (1,1) (.75,0) (.25,0) (.5,1): (0 + .75 + .25 + .5)/4 = .375.
    assert stats.classwise_errors(counts, HAND_LABELS, runs=4) == pytest.approx([0.375, 0.375])


def reference_cace(q: np.ndarray, hit: np.ndarray, n: int) -> float:
    """The author's estimator written plainly: np.quantile edges (inverted CDF), q = 0 alone."""
    edges = np.unique(np.quantile(q, np.arange(0, 1.0001, 0.005), method="inverted_cdf"))
    edges = np.union1d(edges, [0.0])
    which = np.where(q == 0, -1, np.searchsorted(edges, q, side="left"))
    total = 0.0
    for b in np.unique(which):
        m = which == b
        total += abs(hit[m].mean() - q[m].mean()) * m.sum()
    return total / n


def test_cace_matches_a_plain_reference_implementation():
    rng = np.random.default_rng(1)
    preds, labels = ensemble(rng, 37, 400)
    counts = stats.class_counts(preds)
    hit = (labels[:, None] == np.arange(10)).ravel()
    expected = reference_cace((counts / 37).ravel(), hit, 400)
    assert stats.cace(counts, labels, 37)[0] == pytest.approx(expected, abs=1e-12)


def test_epochs_to_reach_monotone_log_interpolation_by_hand():
    e = np.array([2.0, 4.0, 8.0])
    assert stats.epochs_to_reach(e, np.array([0.90, 0.92, 0.94]), 0.93) == pytest.approx(4 * np.sqrt(2))
    # non-monotone means are pooled first: (.90, .93, .92, .95) -> (.90, .925, .925, .95)
    e4 = np.array([1.0, 2.0, 4.0, 8.0])
    assert stats.epochs_to_reach(e4, np.array([0.90, 0.93, 0.92, 0.95]), 0.93) == pytest.approx(4 * 2**0.2)
    assert stats.epochs_to_reach(e, np.array([0.90, 0.92, 0.94]), 0.89) == -np.inf  # before the grid
    assert stats.epochs_to_reach(e, np.array([0.90, 0.92, 0.94]), 0.95) == np.inf  # beyond it


def test_minimum_detectable_difference_solves_the_noncentral_t_power():
    d = stats.minimum_detectable_difference(1.0, 10)
    nc = d / (1.0 / np.sqrt(10))
    crit = st.t.ppf(0.975, 9)
    assert st.nct.sf(crit, 9, nc) + st.nct.cdf(-crit, 9, nc) == pytest.approx(0.8, abs=1e-6)
    unpaired = stats.minimum_detectable_difference(1.0, 10, paired=False, welch=False)  # pooled-df t-test
    nc = unpaired / np.sqrt(2 / 10)
    crit = st.t.ppf(0.975, 18)
    assert st.nct.sf(crit, 18, nc) + st.nct.cdf(-crit, 18, nc) == pytest.approx(0.8, abs=1e-6)


def test_pairwise_disagreement_against_brute_force():
    rng = np.random.default_rng(5)
    preds = rng.integers(0, 3, (6, 50))
    brute = np.mean([(preds[i] != preds[j]).mean() for i in range(6) for j in range(6) if i != j])
    assert stats.mean_pairwise_disagreement(preds) == pytest.approx(brute)
    labels = rng.integers(0, 3, 50)
    gp = stats.group_predictions(
        [(np.arange(6), preds.astype(np.uint8))], labels, stats.run_groups(6, 3), classes=3
    )
    cal = stats.calibration(gp, resamples=20)
    assert cal.disagreement == pytest.approx(brute) and cal.error == pytest.approx((preds != labels).mean())


# ----------------------------------------------------------------------------- simulations with known truth


def test_paired_interval_covers_95_percent_and_is_narrower_than_welch():
    rng = np.random.default_rng(10)
    sims, n, rho, truth = 1000, 8, 0.7, 0.3
    z = rng.normal(size=(sims, n, 2))
    a = truth + z[..., 0]
    b = rho * z[..., 0] + np.sqrt(1 - rho**2) * z[..., 1]
    paired = [stats.paired(a[i], b[i]) for i in range(sims)]
    welch = [stats.welch(a[i], b[i]) for i in range(sims)]
    coverage = np.mean([p.diff.covers(truth) for p in paired])
    assert 0.93 <= coverage <= 0.97
    assert np.mean([p.diff.half_width for p in paired]) < 0.8 * np.mean([w.diff.half_width for w in welch])
    # the same tolerance rejects a z-interval on these data
    d = a - b
    z_half = 1.96 * d.std(1, ddof=1) / np.sqrt(n)
    assert not 0.93 <= np.mean(np.abs(d.mean(1) - truth) <= z_half) <= 0.97


def test_welch_interval_coverage_rejects_pooled_df():
    rng = np.random.default_rng(11)
    sims, truth = 2000, 0.5
    a = truth + 3 * rng.normal(size=(sims, 5))
    b = rng.normal(size=(sims, 15))
    results = [stats.welch(a[i], b[i]) for i in range(sims)]
    assert 0.935 <= np.mean([r.diff.covers(truth) for r in results]) <= 0.965
    se = np.sqrt(a.var(1, ddof=1) / 5 + b.var(1, ddof=1) / 15)
    wrong = np.abs(a.mean(1) - b.mean(1) - truth) <= st.t.ppf(0.975, 18) * se  # df n_a + n_b - 2
    assert wrong.mean() < 0.935


def test_mean_and_std_intervals_cover_at_small_n():
    rng = np.random.default_rng(6)
    x = rng.normal(0.94, 0.0015, (2000, 5))
    cover_t = np.mean([stats.mean_ci(row).covers(0.94) for row in x])
    cover_sd = np.mean([stats.std_ci(row).covers(0.0015) for row in x])
    assert 0.935 <= cover_t <= 0.965 and 0.935 <= cover_sd <= 0.965
    z_cover = np.mean(np.abs(x.mean(1) - 0.94) <= 1.96 * x.std(1, ddof=1) / np.sqrt(5))
    assert z_cover < 0.935
    boot = np.mean(
        [
            stats.bootstrap_mean_ci(
                np.random.default_rng(i).normal(0.94, 0.0015, 30), resamples=500, seed=i
            ).covers(0.94)
            for i in range(300)
        ]
    )
    assert 0.88 <= boot <= 0.98  # percentile bootstrap runs a little narrow at n=30


def test_holm_controls_family_wise_error_under_the_global_null():
    rng = np.random.default_rng(12)
    families, tests, n = 4000, 10, 12
    shared = rng.normal(size=(families, 1, n))
    d = 0.5 * shared + rng.normal(size=(families, tests, n))  # correlated tests, all nulls true
    t = d.mean(2) / (d.std(2, ddof=1) / np.sqrt(n))
    p = 2 * st.t.sf(np.abs(t), n - 1)
    fwer = np.mean([(stats.holm(row) < 0.05).any() for row in p])
    assert fwer <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / families)
    assert (p < 0.05).any(1).mean() > 0.2  # unadjusted: far above 5%


@pytest.mark.parametrize(("n", "sd"), [(10, 1.0), (5, 0.3)])
def test_power_formula_matches_simulated_power(n, sd):
    rng = np.random.default_rng(13)
    delta = stats.minimum_detectable_difference(sd, n)
    d = delta + sd * rng.normal(size=(20000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / np.sqrt(n))
    simulated = np.mean(2 * st.t.sf(np.abs(t), n - 1) < 0.05)
    assert abs(simulated - 0.8) <= 0.03
    half = stats.t_test_power(delta / 2, sd, n)
    d2 = delta / 2 + sd * rng.normal(size=(20000, n))
    t2 = d2.mean(1) / (d2.std(1, ddof=1) / np.sqrt(n))
    assert abs(np.mean(2 * st.t.sf(np.abs(t2), n - 1) < 0.05) - half) <= 0.03


def test_runs_to_exclude_zero_scales_with_the_squared_standard_error():
    assert stats.runs_to_exclude_zero(0.033, 0.0285, 400) == pytest.approx(
        np.ceil(400 * (1.959964 * 0.0285 / 0.033) ** 2), abs=1
    )
    at80 = stats.runs_to_exclude_zero(0.033, 0.0285, 400, power=0.8)
    assert at80 / stats.runs_to_exclude_zero(0.033, 0.0285, 400) == pytest.approx(
        ((1.96 + 0.8416) / 1.96) ** 2, rel=0.01
    )
    assert stats.runs_to_exclude_zero(-0.01, 0.02, 400) == np.inf


N_EXAMPLES = 2000


def independent_runs(rng, runs, n=N_EXAMPLES, shared_sd=0.0, p=None):
    """Per-example error rates p_i; optionally a per-run shift delta_r ~ N(0, shared_sd^2) of every
    rate, which makes the true distribution-wise variance shared_sd^2."""
    p = rng.beta(0.5, 4.0, n) if p is None else p
    delta = rng.normal(0, shared_sd, (runs, 1))
    return rng.random((runs, n)) >= np.clip(p + delta, 0, 1)  # correct matrix


def test_unbiased_independent_errors_prediction_within_one_percent():
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 4.0, 500)
    truth = (p * (1 - p)).sum() / 500**2
    reps, r = 4000, 5
    correct = rng.random((reps, r, 500)) >= p
    eps = 1 - correct.mean(1)
    plug_in = (eps * (1 - eps)).sum(1) / 500**2
    unbiased = np.array([stats.independent_errors_variance(c) for c in correct])
    assert abs(unbiased.mean() / truth - 1) < 0.01
    assert abs(plug_in.mean() / truth - 1) > 0.1  # (R-1)/R = 0.8: biased low


def test_independent_errors_prediction_matches_empirical_std():
    rng = np.random.default_rng(0)
    correct = independent_runs(rng, 4000)
    empirical = np.sqrt(stats.test_set_variance(correct.mean(1)))
    predicted = np.sqrt(stats.independent_errors_variance(correct))
    assert abs(predicted / empirical - 1) < 0.05


def test_distribution_variance_ci_covers_zero_for_independent_errors():
    rng = np.random.default_rng(1)
    covered = [
        stats.distribution_variance(
            independent_runs(rng, 100, n=1000), resamples=300, seed=i
        ).variance.covers(0)
        for i in range(100)
    ]
    assert np.mean(covered) >= 0.9


def test_distribution_variance_recovers_a_shared_run_effect():
    rng = np.random.default_rng(2)
    sd = 0.004  # 0.4 points, true variance 1.6e-5
    correct = independent_runs(rng, 800, n=5000, shared_sd=sd)
    est = stats.distribution_variance(correct, resamples=500)
    assert est.variance.covers(sd**2), est
    assert est.variance.low > 0 and est.runs_to_exclude_zero() < 800
    assert stats.split_half_correlation(correct).low > 0.15  # true r about 1/3 here


def test_split_half_near_zero_without_shared_effect_and_its_interval_covers():
    rng = np.random.default_rng(3)
    assert stats.split_half_correlation(independent_runs(rng, 1000)).covers(0)
    x = rng.normal(size=(1000, 30))
    y = 0.5 * x + np.sqrt(0.75) * rng.normal(size=(1000, 30))
    coverage = np.mean([stats.correlation_ci(a, b).covers(0.5) for a, b in zip(x, y)])
    assert 0.93 <= coverage <= 0.97


def ensemble(rng, runs, n, sharpen=1.0):
    """Labels drawn from p(x); each run predicts from p(x)^sharpen (renormalized): sharpen=1 is
    class-wise calibrated by construction, larger values are overconfident."""
    p = rng.dirichlet(np.full(10, 0.3), n)
    labels = (rng.random((n, 1)) > p.cumsum(1)).sum(1).clip(0, 9)
    q = p**sharpen
    q /= q.sum(1, keepdims=True)
    preds = (rng.random((runs, n, 1)) > q.cumsum(1)[None]).sum(2).clip(0, 9)
    return preds.astype(np.uint8), labels


def calibration_of(preds, labels, resamples=100):
    gp = stats.group_predictions([(np.arange(len(preds)), preds)], labels, stats.run_groups(len(preds), 32))
    return stats.calibration(gp, resamples=resamples)


def test_cace_near_zero_when_calibrated_and_clearly_above_when_overconfident():
    rng = np.random.default_rng(4)
    good = calibration_of(*ensemble(rng, 200, 10000))
    bad = calibration_of(*ensemble(rng, 200, 10000, sharpen=4.0))
    # CACE is a fraction in [0, 10]; with n = 10,000 examples its finite-sample floor is about 0.05
    assert good.cace.value < 0.08 and good.cace.value < 0.1 * bad.cace.value
    assert bad.cace.value > 0.5 and bad.cace.low > 5 * good.cace.high
    assert max(e.value for e in good.classwise) < 0.03
    assert min(e.low for e in bad.classwise) > 3 * max(e.value for e in good.classwise)
    assert good.cace_half > good.cace.value  # fewer runs, more upward bias
    assert good.gap.covers(0) and abs(good.disagreement - good.error) < 0.005
    assert bad.gap.high < -0.05  # overconfident runs agree too much


def test_equivalent_epoch_bounds_cover_the_truth_inside_and_beyond_the_grid():
    rng = np.random.default_rng(8)
    grid = (4.0, 6.0, 8.0, 12.0, 16.0)
    acc = lambda e: 0.90 + 0.02 * np.log(e)  # noqa: E731 - linear in log-epochs
    results = {}
    for truth in (10.0, 20.0, 3.0):
        hits, one_sided = 0, 0
        for i in range(150):
            curve = {e: acc(e) + rng.normal(0, 0.0015, 25) for e in grid}
            target = acc(truth) + rng.normal(0, 0.0015, 25)
            est = stats.equivalent_epochs(curve, target, resamples=400, seed=i)
            hits += est.epochs.covers(truth)
            one_sided += (
                (est.epochs.high == np.inf) if truth > 16 else (est.epochs.low == -np.inf) if truth < 4 else 0
            )
        results[truth] = (hits / 150, one_sided / 150)
    assert results[10.0][0] >= 0.9
    assert results[20.0][0] >= 0.9 and results[20.0][1] >= 0.9  # "> 16", not a finite understated bound
    assert results[3.0][0] >= 0.9 and results[3.0][1] >= 0.9  # "< 4": reached before the grid
    # just beyond the grid with noisy runs: some bootstrap draws land inside it, the rest beyond; the
    # upper bound must stay open ("> 16"), not shrink to the draws that happen to fall inside
    hits = finite_points = 0
    for i in range(150):
        curve = {e: acc(e) + rng.normal(0, 0.004, 25) for e in grid}
        est = stats.equivalent_epochs(curve, acc(17.0) + rng.normal(0, 0.004, 25), resamples=400, seed=i)
        hits += est.epochs.covers(17.0)
        finite_points += bool(np.isfinite(est.epochs.value))
    assert hits / 150 >= 0.9 and finite_points >= 10


def test_equivalent_epochs_pairs_seeds_across_cells():
    rng = np.random.default_rng(9)
    grid = (4.0, 8.0, 16.0)
    seed_effect = rng.normal(0, 0.003, 40)
    curve = {e: 0.9 + 0.02 * np.log(e) + seed_effect + rng.normal(0, 0.0005, 40) for e in grid}
    target = 0.9 + 0.02 * np.log(10.0) + seed_effect + rng.normal(0, 0.0005, 40)
    seeds = np.arange(40)
    joint = stats.equivalent_epochs(curve, target, curve_seeds=dict.fromkeys(grid, seeds), target_seeds=seeds)
    apart = stats.equivalent_epochs(curve, target)
    assert joint.epochs.covers(10.0)
    assert joint.epochs.half_width < 0.5 * apart.epochs.half_width


def test_no_harness_module_imports_studies():
    for path in (ROOT / "harness").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            assert not any(n == "studies" or n.startswith("studies.") for n in names), (
                f"{path.name} imports studies"
            )


def test_registry_finds_every_builtin_study():
    from harness.spec.studies import all_studies, find_study

    names = list(all_studies())
    assert names[:2] == ["flip_vs_alternating", "tta_variance"] and len(names) == 7
    assert names[-2:] == ["datasets", "derandomized"]
    assert find_study("ablation").name == "ablation" and find_study("nope") is None


def test_planned_precision_uses_the_store_sd_or_the_stated_default():
    import pandas as pd

    from harness.stats.planning import DEFAULT_RUN_SD, planned_precision

    default = planned_precision(400)
    assert default.sd == DEFAULT_RUN_SD and "default" in default.sd_source
    assert default.detectable == pytest.approx(
        stats.minimum_detectable_difference(DEFAULT_RUN_SD * np.sqrt(2), 400)
    )
    assert default.half_width == pytest.approx(st.t.ppf(0.975, 399) * DEFAULT_RUN_SD / 20)
    runs = pd.DataFrame({"cell": ["a"] * 3 + ["b"] * 3 + ["c"], "acc_tta2": [1, 2, 3, 10, 10, 13, 5.0]})
    planned = planned_precision(10, runs)
    assert planned.sd == pytest.approx(np.sqrt((2 + 6) / 4)) and "6 runs" in planned.sd_source
    assert "10 seeds per cell" in planned.line()
