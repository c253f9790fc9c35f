"""A betting confidence sequence for the mean of bounded observations: valid whatever their shape.

The asymptotic sequence of :mod:`harness.stats.sequential` rests on the running std and so on the
shape of the data: a few failed runs far below the rest break it. Accuracies are bounded, and for a
bounded mean Waudby-Smith & Ramdas ("Estimating means of bounded random variables by betting",
JRSS-B 2024) give sequences valid at every t at once under no other assumption.

For each candidate mean m (a grid over [lo, hi], as in the paper) a bettor who doubts m bets a
fraction λ_i of its capital that the next observation lands above m, and another that it lands below:

    K⁺_t(m) = Π_{i≤t} (1 + λ⁺_i(m)(y_i − m)),    K⁻_t(m) = Π_{i≤t} (1 − λ⁻_i(m)(y_i − m))

(y rescaled to [0, 1]). When m is the true mean both are nonnegative martingales, so by Ville's
inequality the hedged capital max(K⁺/2, K⁻/2) ever reaches 1/α with probability at most α: the
candidates it never rejects form a (1 − α) confidence sequence. The bets are the paper's predictable
plug-in (PrPl-EB) ones, λ_i = sqrt(2 log(2/α) / (σ̂²_{i−1} i log(1 + i))) with σ̂², μ̂ shrunk
towards 1/4 and 1/2, truncated at c/m (above) and c/(1 − m) (below), c = 1/2. One-sided sequences
use one bettor at level α (the other bound is then lo or hi).

Bounds are reported on the grid, rounded outwards (the largest rejected grid point below, the
smallest above), and intersected over time, so they only tighten. The price of making no
assumption: the bets are capped by the range [lo, hi] and not by the spread of the data, so when
the data spread over a small part of the range (paired accuracy differences of a few tenths of a
point in [−1, 1]) the sequence is far wider than the asymptotic one.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Side = Literal["two", "lower", "upper"]
SIDES: tuple[Side, ...] = ("two", "lower", "upper")
TRUNCATION = 0.5  # c: the largest fraction of its capital a bettor may stake (paper, Sec. 5)


def plugin_bets(y: NDArray[np.float64], log_level: float) -> NDArray[np.float64]:
    """λ_i before truncation, along the last axis: predictable (uses y_1..y_{i−1} only)."""
    n = y.shape[-1]
    i = np.arange(1, n + 1, dtype=float)
    mu = (0.5 + np.cumsum(y, axis=-1)) / (i + 1)  # μ̂_i, includes y_i (as in the paper)
    var = (0.25 + np.cumsum((y - mu) ** 2, axis=-1)) / (i + 1)  # σ̂²_i
    var_prev = np.concatenate([np.full(y.shape[:-1] + (1,), 0.25), var[..., :-1]], axis=-1)
    return np.sqrt(2.0 * log_level / (var_prev * i * np.log1p(i)))


def _check(y: NDArray[np.float64], lo: float, hi: float, alpha: float, side: str, grid: int) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"need finite lo < hi, got lo={lo}, hi={hi}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    if grid < 2:
        raise ValueError(f"grid must have at least 2 points, got {grid}")
    if y.ndim < 1 or y.shape[-1] == 0:
        raise ValueError("need at least one observation")
    if not np.isfinite(y).all() or (y < 0).any() or (y > 1).any():
        raise ValueError(f"observations must be finite and lie in [lo, hi] = [{lo:g}, {hi:g}]")


def betting_cs(
    x: ArrayLike,
    lo: float,
    hi: float,
    alpha: float,
    side: Side = "two",
    grid: int = 1000,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Running bounds (lower[t], upper[t]) after each observation t = 1..n for the mean of
    i.i.d. observations in [lo, hi]: a betting confidence sequence (Waudby-Smith & Ramdas,
    JRSS-B 2024, the hedged capital process, predictable plug-in bets), valid at level alpha
    under continuous monitoring whatever the shape; one-sided when side says so (then the
    other bound is lo or hi).

    ``x`` may have leading axes (independent sequences, e.g. simulated campaigns); observations run
    along the last one. ``grid``: candidate means, evenly spaced over [lo, hi] including both ends;
    the bounds are exact up to one grid step, rounded outwards. Cost O(size of x · grid).
    """
    y = (np.asarray(x, dtype=float) - lo) / (hi - lo)
    _check(y, lo, hi, alpha, side, grid)
    m = np.linspace(0.0, 1.0, grid)
    two = side == "two"
    log_level = math.log((2.0 if two else 1.0) / alpha)
    lam = plugin_bets(y, log_level)
    cap_up = TRUNCATION / np.maximum(m, 1e-300)  # λ⁺ ≤ c/m keeps 1 + λ⁺(y − m) ≥ 1 − c
    cap_down = TRUNCATION / np.maximum(1.0 - m, 1e-300)
    batch = y.shape[:-1]
    n = y.shape[-1]
    lower = np.zeros(batch + (n,))
    upper = np.ones(batch + (n,))
    log_up = np.zeros(batch + (grid,))
    log_down = np.zeros(batch + (grid,))
    want_lower, want_upper = side in ("two", "lower"), side in ("two", "upper")
    for t in range(n):
        yt = y[..., t, None]
        lt = lam[..., t, None]
        if want_lower:
            log_up += np.log1p(np.minimum(lt, cap_up) * (yt - m))
            # K⁺ falls as m rises: the rejected candidates are a prefix; the bound is its last point
            rejected = np.count_nonzero(log_up >= log_level, axis=-1) - 1
            lower[..., t] = np.where(rejected >= 0, m[np.maximum(rejected, 0)], 0.0)
        if want_upper:
            log_down += np.log1p(-np.minimum(lt, cap_down) * (yt - m))
            rejected = grid - np.count_nonzero(log_down >= log_level, axis=-1)  # a suffix, K⁻ rises with m
            upper[..., t] = np.where(rejected < grid, m[np.minimum(rejected, grid - 1)], 1.0)
    lower = np.maximum.accumulate(lower, axis=-1)  # the running intersection is also a sequence
    upper = np.minimum.accumulate(upper, axis=-1)
    return lo + (hi - lo) * lower, lo + (hi - lo) * upper
