"""Every estimator against simulated runs whose true answer is known."""
import numpy as np
import pytest

from harness import stats

N_EXAMPLES = 2000


def independent_runs(rng, runs, n=N_EXAMPLES, shared_sd=0.0):
    """Per-example error rates p_i; optionally a per-run shift delta_r ~ N(0, shared_sd^2) of every
    rate, which makes the true distribution-wise variance shared_sd^2."""
    p = rng.beta(0.5, 4.0, n)                          # mean error ~11%, like a CIFAR run
    delta = rng.normal(0, shared_sd, (runs, 1))
    return rng.random((runs, n)) >= np.clip(p + delta, 0, 1)     # correct matrix


def test_independent_errors_prediction_matches_empirical_std():
    rng = np.random.default_rng(0)
    correct = independent_runs(rng, 4000)
    empirical = np.sqrt(stats.test_set_variance(correct.mean(1)))
    predicted = np.sqrt(stats.independent_errors_variance(correct))
    assert abs(predicted / empirical - 1) < 0.05


def test_distribution_variance_ci_covers_zero_for_independent_errors():
    rng = np.random.default_rng(1)
    covered = sum(stats.distribution_variance(independent_runs(rng, 100, n=1000), resamples=200, seed=i).covers(0)
                  for i in range(100))
    assert covered >= 90


def test_distribution_variance_recovers_a_shared_run_effect():
    rng = np.random.default_rng(2)
    sd = 0.004                                          # 0.4 points, true variance 1.6e-5
    est = stats.distribution_variance(independent_runs(rng, 800, n=5000, shared_sd=sd), resamples=300)
    assert est.covers(sd**2), est
    assert est.low > 0
    assert stats.split_half_correlation(independent_runs(rng, 800, n=5000, shared_sd=sd)) > 0.3


def test_split_half_near_zero_without_shared_effect():
    rng = np.random.default_rng(3)
    assert abs(stats.split_half_correlation(independent_runs(rng, 1000))) < 0.1


def ensemble(rng, runs, n, sharpen=1.0):
    """Labels drawn from p(x); each run predicts from p(x)^sharpen (renormalized): sharpen=1 is
    class-wise calibrated by construction, larger values are overconfident."""
    p = rng.dirichlet(np.full(10, 0.3), n)
    labels = np.array([rng.choice(10, p=row) for row in p])
    q = p**sharpen
    q /= q.sum(1, keepdims=True)
    cum = q.cumsum(1)
    preds = (rng.random((runs, n, 1)) > cum[None]).sum(2).clip(0, 9)
    return preds, labels


def test_calibrated_ensemble_has_small_cace_and_disagreement_equal_to_error():
    rng = np.random.default_rng(4)
    preds, labels = ensemble(rng, 200, 5000)
    cal = stats.classwise_calibration(preds, labels)
    assert cal.cace < 0.03
    for row in cal.table:
        if row["pairs"] > 500:
            assert abs(row["fraction"] - row["mean_q"]) < 0.05
    assert stats.mean_pairwise_disagreement(preds) == pytest.approx(stats.mean_error(preds, labels), abs=0.01)

    bad_preds, bad_labels = ensemble(rng, 200, 5000, sharpen=4.0)
    bad = stats.classwise_calibration(bad_preds, bad_labels)
    assert bad.cace > 3 * cal.cace and bad.cace > 0.08
    assert stats.mean_pairwise_disagreement(bad_preds) < stats.mean_error(bad_preds, bad_labels) - 0.05


def test_pairwise_disagreement_against_brute_force():
    rng = np.random.default_rng(5)
    preds = rng.integers(0, 3, (6, 50))
    brute = np.mean([(preds[i] != preds[j]).mean() for i in range(6) for j in range(6) if i != j])
    assert stats.mean_pairwise_disagreement(preds) == pytest.approx(brute)


def test_mean_ci_covers_true_mean_about_95_percent():
    rng = np.random.default_rng(6)
    hits_t = hits_boot = 0
    for i in range(400):
        x = rng.normal(0.94, 0.0015, 30)
        hits_t += stats.mean_ci(x).covers(0.94)
        hits_boot += stats.bootstrap_mean_ci(x, resamples=500, seed=i).covers(0.94)
    assert 0.92 <= hits_t / 400 <= 0.98
    assert 0.89 <= hits_boot / 400 <= 0.98       # percentile bootstrap runs a little narrow at n=30


def test_welch_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.941, 0.0015, 200), rng.normal(0.940, 0.0025, 100)
    d = stats.welch(a, b)
    assert d.p < 0.01 and d.diff.covers(0.001)
    false_positives = sum(stats.welch(rng.normal(0, 1, 40), rng.normal(0, 3, 20)).p < 0.05 for _ in range(400))
    assert 8 <= false_positives <= 35          # about 5% of 400


def test_equivalent_epochs_interpolates_a_known_curve():
    rng = np.random.default_rng(8)
    acc = lambda e: 0.95 - 0.3 * np.exp(-e / 3)          # noqa: E731
    curve = {e: acc(e) + rng.normal(0, 0.001, 50) for e in (4.0, 6.0, 8.0, 10.0, 12.0)}
    target = acc(9.0) + rng.normal(0, 0.001, 50)
    est = stats.equivalent_epochs(curve, target, resamples=300)
    linear_truth = stats.epochs_to_reach(np.array(list(curve)), acc(np.array(list(curve))), acc(9.0))
    assert est.covers(linear_truth) and 8.5 < est.value < 9.5
    assert np.isnan(stats.epochs_to_reach(np.array([4.0, 6.0]), np.array([0.5, 0.6]), 0.9))
