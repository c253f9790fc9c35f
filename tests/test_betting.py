"""The betting confidence sequence: anytime coverage on skewed and contaminated bounded data, checked
by simulation against the known mean, and its bounds against a direct computation of the capital."""

import math

import numpy as np
import pytest

from harness.stats.betting import betting_cs, plugin_bets


def contaminated(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Accuracies: 95% of runs near 0.93 (skewed), 5% failed between 0.1 and 0.5; and the true mean."""
    good = 0.95 - rng.gamma(2.0, 0.01, size=shape)  # left-skewed, mean 0.93
    bad = rng.uniform(0.1, 0.5, size=shape)
    x = np.where(rng.random(shape) < 0.05, bad, good)
    return np.clip(x, 0, 1), 0.95 * 0.93 + 0.05 * 0.3


def miss_rate(lower: np.ndarray, upper: np.ndarray, mu: float) -> float:
    """Share of sequences that miss mu at any t (continuous monitoring)."""
    return float(((lower > mu) | (upper < mu)).any(axis=-1).mean())


@pytest.mark.parametrize("data", ["beta", "contaminated"])
def test_anytime_coverage_two_sided(data):
    rng = np.random.default_rng(1)
    shape = (600, 150)
    if data == "beta":
        x, mu = rng.beta(0.5, 5.0, size=shape), 0.5 / 5.5  # skewness about 1.9
    else:
        x, mu = contaminated(rng, shape)
    for alpha in (0.05, 0.2):
        lower, upper = betting_cs(x, 0.0, 1.0, alpha, grid=400)
        mc = math.sqrt(alpha * (1 - alpha) / shape[0])
        assert miss_rate(lower, upper, mu) <= alpha + 3 * mc
    # and it learns: after 150 observations the sequence is much narrower than the range
    assert np.median(upper[:, -1] - lower[:, -1]) < 0.25


def test_one_sided_bounds_cover_and_leave_the_other_side_open():
    rng = np.random.default_rng(2)
    x, mu = contaminated(rng, (600, 120))
    alpha = 0.1
    lower, upper = betting_cs(x, 0.0, 1.0, alpha, side="lower", grid=400)
    assert (upper == 1.0).all()
    assert (lower > mu).any(axis=-1).mean() <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / 600)
    assert np.median(lower[:, -1]) > 0.75  # a one-sided bound that says something
    lower2, upper2 = betting_cs(x, 0.0, 1.0, alpha, side="upper", grid=400)
    assert (lower2 == 0.0).all() and np.median(upper2[:, -1]) < 0.95
    # one-sided at α is tighter than the two-sided sequence at α (which spends α/2 a side)
    two_lower, _ = betting_cs(x, 0.0, 1.0, alpha, grid=400)
    assert np.mean(lower[:, -1]) > np.mean(two_lower[:, -1])


def test_bounds_match_a_direct_capital_computation_and_rescale():
    """Scalar loop, written independently from the paper's formulas, on the original scale [lo, hi]."""
    rng = np.random.default_rng(3)
    lo, hi, alpha, grid = -1.0, 1.0, 0.05, 201
    x = np.clip(rng.normal(0.3, 0.2, size=60), lo, hi)
    lower, upper = betting_cs(x, lo, hi, alpha, grid=grid)
    m_grid = np.linspace(lo, hi, grid)

    def capital(m: float, t: int) -> tuple[float, float]:
        """(max over s <= t of K+_s(m), max of K-_s(m)), on [lo, hi] directly."""
        up = down = 1.0
        best_up = best_down = 1.0
        mu_hat, ss = 0.5, 0.25  # on the rescaled [0, 1] scale, as the paper
        var_prev = 0.25
        total = 0.0
        for i in range(1, t + 1):
            y = (x[i - 1] - lo) / (hi - lo)
            mr = (m - lo) / (hi - lo)
            lam = math.sqrt(2 * math.log(2 / alpha) / (var_prev * i * math.log(1 + i)))
            up *= 1 + min(lam, 0.5 / mr if mr > 0 else math.inf) * (y - mr)
            down *= 1 - min(lam, 0.5 / (1 - mr) if mr < 1 else math.inf) * (y - mr)
            best_up, best_down = max(best_up, up), max(best_down, down)
            total += y
            mu_hat = (0.5 + total) / (i + 1)
            ss += (y - mu_hat) ** 2
            var_prev = ss / (i + 1)
        return best_up, best_down

    for t in (5, 20, 60):
        k_low = int(np.argmin(np.abs(m_grid - lower[t - 1])))
        k_up = int(np.argmin(np.abs(m_grid - upper[t - 1])))
        assert capital(m_grid[k_low], t)[0] >= 2 / alpha or lower[t - 1] == lo
        assert capital(m_grid[k_low + 1], t)[0] < 2 / alpha
        assert capital(m_grid[k_up], t)[1] >= 2 / alpha or upper[t - 1] == hi
        assert capital(m_grid[k_up - 1], t)[1] < 2 / alpha
    assert lower[-1] > 0.0 and upper[-1] < 0.6  # 60 observations around 0.3 say something
    assert (np.diff(lower) >= 0).all() and (np.diff(upper) <= 0).all()


def test_plugin_bets_are_predictable():
    y = np.array([0.2, 0.9, 0.4, 0.4])
    first = plugin_bets(y, math.log(40))
    changed = plugin_bets(np.array([0.2, 0.9, 0.4, 0.0]), math.log(40))
    assert np.array_equal(first, changed)  # the last bet never sees the last observation
    assert first[0] == pytest.approx(math.sqrt(2 * math.log(40) / (0.25 * 1 * math.log(2))))


@pytest.mark.parametrize(
    "args",
    [
        ([0.5, 1.2], 0.0, 1.0, 0.05, "two"),
        ([0.5, float("nan")], 0.0, 1.0, 0.05, "two"),
        ([0.5], 1.0, 0.0, 0.05, "two"),
        ([0.5], 0.0, 1.0, 1.5, "two"),
        ([0.5], 0.0, 1.0, 0.05, "both"),
        ([], 0.0, 1.0, 0.05, "two"),
    ],
)
def test_bad_arguments_raise(args):
    with pytest.raises(ValueError):
        betting_cs(*args)
