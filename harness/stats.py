"""Statistics over repeated training runs, as plain functions of arrays.

Notation: R runs, n test examples; ``correct`` is a boolean (R, n) matrix, ``predictions`` an
integer (R, n) matrix of predicted classes, ``labels`` (n,). References: Jordan 2023,
"On the Variance of Neural Network Training with respect to Test Sets and Distributions" (Paper B).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as st


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval (NaN bounds when there is too little data)."""

    value: float
    low: float
    high: float

    def covers(self, x: float) -> bool:
        return self.low <= x <= self.high


@dataclass(frozen=True)
class MeanSummary:
    mean: Estimate          # Student-t interval
    bootstrap: Estimate     # percentile bootstrap of the mean, as a check
    std: float
    n: int


def mean_ci(x: np.ndarray, level: float = 0.95) -> Estimate:
    x = np.asarray(x, dtype=float)
    m = float(x.mean()) if len(x) else float("nan")
    if len(x) < 2:
        return Estimate(m, float("nan"), float("nan"))
    half = st.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return Estimate(m, m - half, m + half)


def bootstrap_mean_ci(x: np.ndarray, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> Estimate:
    x = np.asarray(x, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return Estimate(float(x.mean()) if len(x) else float("nan"), float("nan"), float("nan"))
    res = st.bootstrap((x,), np.mean, confidence_level=level, n_resamples=resamples, method="percentile",
                       random_state=np.random.default_rng(seed), vectorized=True)
    return Estimate(float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high))


def summarize(x: np.ndarray, level: float = 0.95) -> MeanSummary:
    x = np.asarray(x, dtype=float)
    return MeanSummary(mean_ci(x, level), bootstrap_mean_ci(x, level),
                       float(x.std(ddof=1)) if len(x) > 1 else float("nan"), len(x))


@dataclass(frozen=True)
class Difference:
    diff: Estimate          # mean(a) - mean(b), Welch interval
    t: float
    p: float


def welch(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> Difference:
    """Difference of means with Welch's unequal-variance t-test and its Welch-Satterthwaite interval."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    if se == 0:
        return Difference(Estimate(d, d, d), float("inf") if d else float("nan"), 0.0 if d else 1.0)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = d / se
    half = st.t.ppf(0.5 + level / 2, df) * se
    return Difference(Estimate(d, d - half, d + half), float(t), float(2 * st.t.sf(abs(t), df)))


def epochs_to_reach(epochs: np.ndarray, mean_acc: np.ndarray, target: float) -> float:
    """Epochs at which a variant's accuracy curve first reaches ``target``, by linear interpolation
    between grid points; NaN when it never does within the grid (or starts above it)."""
    order = np.argsort(epochs)
    e, a = np.asarray(epochs, float)[order], np.asarray(mean_acc, float)[order]
    if a[0] >= target:
        return float(e[0]) if a[0] == target else float("nan")
    for i in range(1, len(e)):
        if a[i] >= target:
            return float(e[i - 1] + (target - a[i - 1]) * (e[i] - e[i - 1]) / (a[i] - a[i - 1]))
    return float("nan")


def equivalent_epochs(curve: dict[float, np.ndarray], target_runs: np.ndarray, level: float = 0.95,
                      resamples: int = 1000, seed: int = 0) -> Estimate:
    """Epochs the weaker variant needs to match the mean of ``target_runs``; bootstrap over runs.

    ``curve`` maps each epoch count of the weaker variant to its runs' accuracies.
    """
    epochs = np.array(sorted(curve))
    point = epochs_to_reach(epochs, np.array([np.mean(curve[e]) for e in epochs]), float(np.mean(target_runs)))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        means = np.array([rng.choice(curve[e], len(curve[e])).mean() for e in epochs])
        draws.append(epochs_to_reach(epochs, means, rng.choice(target_runs, len(target_runs)).mean()))
    draws = np.array(draws)
    if np.isnan(draws).mean() > 1 - level:     # too often out of the grid for a bounded interval
        return Estimate(point, float("nan"), float("nan"))
    lo, hi = np.nanquantile(draws, [0.5 - level / 2, 0.5 + level / 2])
    return Estimate(point, float(lo), float(hi))


def test_set_variance(accuracy: np.ndarray) -> float:
    """Variance over runs of test-set accuracy (ddof=1)."""
    return float(np.var(np.asarray(accuracy, float), ddof=1))


def independent_errors_variance(correct: np.ndarray) -> float:
    """What the test-set variance would be if examples erred independently: (1/n^2) sum eps_i(1-eps_i)."""
    eps = 1 - np.asarray(correct, float).mean(0)
    return float((eps * (1 - eps)).sum() / eps.size**2)


def distribution_variance(correct: np.ndarray, level: float = 0.95, resamples: int = 500,
                          seed: int = 0) -> Estimate:
    """Paper B, Eq. 3: n/(n-1) [Var_runs(test error) - (1/n^2) sum_i Var_runs(error_i)], both ddof=1.

    Unbiased, so it can be negative from noise: reported as is, with a bootstrap-over-runs interval.
    """
    err = 1 - np.asarray(correct, dtype=np.float32)          # R x n
    r, n = err.shape
    if r < 3:
        return Estimate(float("nan"), float("nan"), float("nan"))

    def estimate(weights: np.ndarray) -> np.ndarray:
        """Estimator for each row of resampling counts (B x R), vectorised."""
        m = weights @ err / r                                   # B x n: resampled mean error per example
        run_err = err.mean(1)                                   # R
        mean_e = weights @ run_err / r
        var_e = (weights @ run_err**2 / r - mean_e**2) * r / (r - 1)
        per_example = (m * (1 - m)).sum(1) * r / (r - 1)        # errors are 0/1: E[x^2] = E[x]
        return n / (n - 1) * (var_e - per_example / n**2)

    point = float(estimate(np.ones((1, r), np.float32))[0])
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, resamples, 100):
        b = min(100, resamples - start)
        draws.append(estimate(rng.multinomial(r, np.full(r, 1 / r), size=b).astype(np.float32)))
    lo, hi = np.quantile(np.concatenate(draws), [0.5 - level / 2, 0.5 + level / 2])
    return Estimate(point, float(lo), float(hi))


def class_frequencies(predictions: np.ndarray, classes: int = 10) -> np.ndarray:
    """q[x, c]: fraction of runs predicting class c on example x (n x classes)."""
    predictions = np.asarray(predictions)
    counts = np.zeros((predictions.shape[1], classes))
    for c in range(classes):
        counts[:, c] = (predictions == c).sum(0)
    return counts / predictions.shape[0]


@dataclass(frozen=True)
class Calibration:
    table: list[dict]       # per bin: low, high, pairs, mean_q, fraction
    cace: float


def classwise_calibration(predictions: np.ndarray, labels: np.ndarray, bins: int = 10,
                          classes: int = 10) -> Calibration:
    """Reliability of the ensemble's class frequencies: bin (x, c) pairs by q_c(x), compare mean q
    with the fraction whose label is c; CACE = sum_bins |fraction - mean q| * pairs / n."""
    q = class_frequencies(predictions, classes)
    hit = np.asarray(labels)[:, None] == np.arange(classes)[None, :]
    which = np.minimum((q * bins).astype(int), bins - 1).ravel()
    q, hit = q.ravel(), hit.ravel()
    n = len(labels)
    table, cace = [], 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            mean_q, fraction = float(q[m].mean()), float(hit[m].mean())
            cace += abs(fraction - mean_q) * m.sum() / n
            table.append(dict(low=b / bins, high=(b + 1) / bins, pairs=int(m.sum()), mean_q=mean_q, fraction=fraction))
    return Calibration(table, float(cace))


def mean_pairwise_disagreement(predictions: np.ndarray, classes: int = 10) -> float:
    """Fraction of test examples on which two distinct runs disagree, averaged over all pairs."""
    predictions = np.asarray(predictions)
    r = predictions.shape[0]
    counts = class_frequencies(predictions, classes) * r
    agree_pairs = (counts * (counts - 1)).sum(1) / (r * (r - 1))
    return float(1 - agree_pairs.mean())


def mean_error(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(predictions) != np.asarray(labels)[None, :]).mean())


def split_half_correlation(correct: np.ndarray) -> float:
    """Correlation across runs of accuracy on even- vs odd-indexed test examples: near 0 when runs
    differ only by independent per-example noise, positive when whole runs are better or worse."""
    correct = np.asarray(correct, float)
    even, odd = correct[:, 0::2].mean(1), correct[:, 1::2].mean(1)
    if even.std() == 0 or odd.std() == 0:
        return float("nan")
    return float(np.corrcoef(even, odd)[0, 1])


def std_ci(x: np.ndarray, level: float = 0.95, resamples: int = 1000, seed: int = 0) -> Estimate:
    """Standard deviation across runs (ddof=1) with a percentile bootstrap-over-runs interval."""
    x = np.asarray(x, float)
    if len(x) < 3:
        return Estimate(float(x.std(ddof=1)) if len(x) == 2 else float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = rng.choice(x, (resamples, len(x))).std(1, ddof=1)
    lo, hi = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2])
    return Estimate(float(x.std(ddof=1)), float(lo), float(hi))


def signed_sqrt(v: float) -> float:
    """A variance estimate shown as a std, keeping the sign of a negative (noise-driven) estimate."""
    return float(np.sign(v) * np.sqrt(abs(v)))
