"""Claims of the field's form ("mean accuracy above T, in S seconds per run") and time as an outcome.

A claim "mean > T" is one-sided. With the number of runs fixed in advance it is the one-sided
t-test and lower bound the field uses (:func:`fixed_claim`). When runs are added until the answer
is known, a t-test read after every round rejects a true "mean ≤ T" far more often than α, so the
decision is an anytime-valid one-sided confidence sequence instead (:func:`sequential_claim`): the
betting sequence for a bounded mean (accuracies lie in [0, 100] points), valid however often it
is looked at and whatever the shape of the runs (diverged runs included).

Time: per-run seconds (train + eval) summarised with a t-interval of the mean (:func:`time_summary`),
two cells compared as a difference and a ratio of means (:func:`time_comparison`: paired by seed
where the seeds match, Welch otherwise), and time to a target accuracy (:func:`time_to_target`):
the training length at which the mean accuracy reaches the target (monotone fit, log-epoch
interpolation, as in equivalent epochs) times the measured seconds per epoch, bootstrapped over
seeds jointly across cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as st

from harness.stats.betting import TRUNCATION, betting_cs, plugin_bets
from harness.stats.estimators import Difference, Estimate, epochs_to_reach, mean_ci, paired, welch

Floats = npt.NDArray[np.float64]
NAN = float("nan")
HOLDS, FAILS, UNDECIDED, RUNNING = "holds", "fails", "undecided", "running"
ACCURACY_RANGE = (0.0, 100.0)  # points: the only range every run's accuracy is sure to lie in


def _floats(x: npt.ArrayLike) -> Floats:
    return np.asarray(x, dtype=np.float64).ravel()


# --------------------------------------------------------------------------- fixed-n claims


@dataclass(frozen=True)
class FixedClaim:
    """The one-sided t-test of "mean ≤ target" against "mean > target", and the 1−α lower bound."""

    n: int
    mean: float
    sd: float
    lower: float  # one-sided 1−α lower confidence bound of the mean
    p: float  # one-sided p-value against "mean ≤ target"
    target: float
    alpha: float

    @property
    def holds(self) -> bool:
        return bool(self.p < self.alpha)


def fixed_claim(x: npt.ArrayLike, target: float, alpha: float = 0.05) -> FixedClaim:
    """Valid when the number of runs was fixed before looking (scipy's ``ttest_1samp``, greater)."""
    v = _floats(x)
    n = len(v)
    mean = float(v.mean()) if n else NAN
    sd = float(v.std(ddof=1)) if n > 1 else NAN
    if n < 2 or not sd > 0:
        return FixedClaim(n, mean, sd, NAN, NAN, target, alpha)
    p = float(st.ttest_1samp(v, target, alternative="greater").pvalue)
    lower = mean - float(st.t.ppf(1 - alpha, n - 1)) * sd / np.sqrt(n)
    return FixedClaim(n, mean, sd, float(lower), p, target, alpha)


# --------------------------------------------------------------------------- anytime-valid claims


@dataclass(frozen=True)
class SequentialClaim:
    """Where the one-sided sequences stood when the claim stopped (or at its last run).

    ``lower``/``upper`` are the running 1−α lower and upper sequences: "holds" at the first t ≥
    min_runs with lower > target (type-I error ≤ α however often it is looked at), "fails" at the
    first with upper < target, "undecided" at max_runs without either, else "running"."""

    outcome: str
    n: int  # runs the decision used (where it stopped, or all so far)
    lower: float
    upper: float
    target: float
    alpha: float


def claim_sequences(
    x: npt.ArrayLike, alpha: float = 0.05, bounds: tuple[float, float] = ACCURACY_RANGE
) -> tuple[Floats, Floats]:
    """Running one-sided 1−α lower and upper sequences for the mean of runs in ``bounds`` (runs along
    the last axis; leading axes are independent campaigns)."""
    v = np.asarray(x, dtype=np.float64)
    lo, hi = bounds
    lower, _ = betting_cs(v, lo, hi, alpha, side="lower")
    _, upper = betting_cs(v, lo, hi, alpha, side="upper")
    return np.asarray(lower, np.float64), np.asarray(upper, np.float64)


def log_capital(
    x: npt.ArrayLike,
    target: float | Floats,
    alpha: float,
    side: str,
    bounds: tuple[float, float] = ACCURACY_RANGE,
) -> Floats:
    """The running log-capital of :func:`betting_cs`'s bettor that doubts the candidate mean
    ``target`` (side "lower": it bets on runs above it; "upper": below), with the same predictable
    plug-in bets and truncation: the claim's test of "mean ≤ target" (or "≥"), rejected once it
    reaches log(1/α). Candidates along a leading axis when ``target`` is an array. O(n) per
    candidate, with no Python loop over runs: what lets a claim over 100,000 runs decide at once."""
    lo, hi = bounds
    y = (np.asarray(x, dtype=np.float64) - lo) / (hi - lo)
    m = ((np.asarray(target, dtype=np.float64) - lo) / (hi - lo))[..., None]
    lam = plugin_bets(y, float(np.log(1.0 / alpha)))
    if side == "lower":
        steps = np.log1p(np.minimum(lam, TRUNCATION / np.maximum(m, 1e-300)) * (y - m))
    else:
        steps = np.log1p(-np.minimum(lam, TRUNCATION / np.maximum(1 - m, 1e-300)) * (y - m))
    return np.asarray(np.cumsum(steps, -1), np.float64)


GRID = 1000  # betting_cs's candidate means over [lo, hi]
BULK_FROM = 5_000  # above this many runs, the printed bounds come from log_capital (binary search)


def final_bounds(
    x: Floats, alpha: float, bounds: tuple[float, float] = ACCURACY_RANGE, grid: int = GRID
) -> tuple[float, float]:
    """The one-sided sequences' bounds after the last run. Up to BULK_FROM runs, betting_cs itself;
    beyond, the same bettors evaluated in bulk (a candidate is out once its capital ever reached
    1/α: the running intersection betting_cs keeps), since betting_cs steps through runs one by one."""
    lo, hi = bounds
    if len(x) <= BULK_FROM:
        lows, _ = betting_cs(x, lo, hi, alpha, side="lower", grid=grid)
        _, highs = betting_cs(x, lo, hi, alpha, side="upper", grid=grid)
        return float(lows[-1]), float(highs[-1])
    level = float(np.log(1.0 / alpha))
    m = np.linspace(lo, hi, grid)

    def out(i: int, side: str) -> bool:
        return bool(log_capital(x, float(m[i]), alpha, side, bounds).max() >= level)

    # the candidates a side has rejected are a prefix (lower) or a suffix (upper) of the grid at every
    # run, so their union over runs is too: a binary search finds its edge in log2(grid) bettors
    a, b = -1, grid  # lower: last rejected index in [-1, grid)
    while b - a > 1:
        mid = (a + b) // 2
        a, b = (mid, b) if out(mid, "lower") else (a, mid)
    lower = float(m[a]) if a >= 0 else lo
    a, b = -1, grid  # upper: first rejected index in (-1, grid]
    while b - a > 1:
        mid = (a + b) // 2
        a, b = (a, mid) if out(mid, "upper") else (mid, b)
    return lower, float(m[b]) if b < grid else hi


def sequential_claim(
    x: npt.ArrayLike,
    target: float,
    alpha: float = 0.05,
    min_runs: int = 10,
    max_runs: int | None = None,
    bounds: tuple[float, float] = ACCURACY_RANGE,
) -> SequentialClaim:
    """The claim's decision from its runs in the order they were run (a pure function of them, so
    a resumed campaign reaches the same decision): the first t ≥ min_runs at which the bettor against
    "mean ≤ target" reaches 1/α (holds), or the one against "mean ≥ target" does (fails). The bounds
    printed beside it are the betting sequences up to that run."""
    v = _floats(x)
    if not len(v):
        return SequentialClaim(RUNNING, 0, NAN, NAN, target, alpha)
    level = float(np.log(1.0 / alpha))
    t = np.arange(1, len(v) + 1)
    eligible = t >= min_runs
    if max_runs is not None:
        eligible &= t <= max_runs
    # decided where the printed bound passes the target: the grid's first candidate above it (below
    # it) rejected, as betting_cs's bounds are rounded outwards on its grid; once rejected, a candidate
    # stays out (the sequences are intersected over time)
    grid = np.linspace(*bounds, GRID)
    above = grid[min(int(np.searchsorted(grid, target, side="right")), GRID - 1)]
    below = grid[max(int(np.searchsorted(grid, target, side="left")) - 1, 0)]
    holds = eligible & (np.maximum.accumulate(log_capital(v, float(above), alpha, "lower", bounds)) >= level)
    fails = eligible & (np.maximum.accumulate(log_capital(v, float(below), alpha, "upper", bounds)) >= level)
    stop = holds | fails
    if stop.any():
        i = int(np.argmax(stop))
        outcome = HOLDS if holds[i] else FAILS
    elif max_runs is not None and len(v) >= max_runs:
        i, outcome = max_runs - 1, UNDECIDED
    else:
        i, outcome = len(v) - 1, RUNNING
    lower, upper = final_bounds(v[: i + 1], alpha, bounds)
    return SequentialClaim(outcome, i + 1, lower, upper, target, alpha)


# --------------------------------------------------------------------------- time as an outcome


@dataclass(frozen=True)
class TimeSummary:
    """Seconds per run: n, mean with its t-interval, sd and coefficient of variation."""

    n: int
    mean: Estimate
    sd: float
    cv: float


def time_summary(seconds: npt.ArrayLike, level: float = 0.95) -> TimeSummary:
    v = _floats(seconds)
    sd = float(v.std(ddof=1)) if len(v) > 1 else NAN
    mean = mean_ci(v, level)
    return TimeSummary(len(v), mean, sd, sd / mean.value if mean.value else NAN)


@dataclass(frozen=True)
class TimeComparison:
    """Cell a against cell b: the difference of mean seconds and the ratio mean_a / mean_b."""

    difference: Difference
    ratio: Estimate

    @property
    def paired(self) -> bool:
        return self.difference.paired


def _matched(
    a: Floats, b: Floats, seeds_a: npt.ArrayLike | None, seeds_b: npt.ArrayLike | None
) -> tuple[Floats, Floats] | None:
    """a and b reordered to pair by seed when both have the same set of distinct seeds, else None."""
    if seeds_a is None or seeds_b is None:
        return None
    sa, sb = np.asarray(seeds_a), np.asarray(seeds_b)
    if len(sa) != len(a) or len(sb) != len(b) or len(np.unique(sa)) != len(sa):
        return None
    if len(sa) != len(sb) or not np.array_equal(np.sort(sa), np.sort(sb)):
        return None
    return a[np.argsort(sa)], b[np.argsort(sb)]


def time_comparison(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    seeds_a: npt.ArrayLike | None = None,
    seeds_b: npt.ArrayLike | None = None,
    level: float = 0.95,
) -> TimeComparison:
    """Paired by seed where both cells ran the same seeds, Welch otherwise; the ratio's interval is
    the delta method on log(mean_a / mean_b) (with the pairs' covariance when paired)."""
    va, vb = _floats(a), _floats(b)
    pairs = _matched(va, vb, seeds_a, seeds_b)
    if pairs is not None and len(va) >= 2:
        pa, pb = pairs
        diff = paired(pa, pb, level)
        ma, mb = float(pa.mean()), float(pb.mean())
        cov = np.cov(pa, pb, ddof=1)
        var = (cov[0, 0] / ma**2 + cov[1, 1] / mb**2 - 2 * cov[0, 1] / (ma * mb)) / len(pa)
        df = float(len(pa) - 1)
    else:
        diff = welch(va, vb, level)
        ma, mb = float(va.mean()), float(vb.mean())
        ua = va.var(ddof=1) / (len(va) * ma**2) if len(va) > 1 else NAN
        ub = vb.var(ddof=1) / (len(vb) * mb**2) if len(vb) > 1 else NAN
        var = ua + ub
        df = (
            var**2 / (ua**2 / (len(va) - 1) + ub**2 / (len(vb) - 1))
            if len(va) > 1 and len(vb) > 1 and var > 0
            else NAN
        )
    ratio = ma / mb if mb else NAN
    if not (var > 0 and df > 0):
        return TimeComparison(diff, Estimate(ratio, NAN, NAN))
    half = float(st.t.ppf(0.5 + level / 2, df)) * float(np.sqrt(var))
    return TimeComparison(diff, Estimate(ratio, ratio * float(np.exp(-half)), ratio * float(np.exp(half))))


# --------------------------------------------------------------------------- time to target


@dataclass(frozen=True)
class Curve:
    """One method's (or flip mode's) runs over a grid of training lengths: per epoch count, the
    runs' accuracies, seeds and seconds (train + eval)."""

    accuracy: Mapping[float, npt.ArrayLike]
    seeds: Mapping[float, npt.ArrayLike]
    seconds: Mapping[float, npt.ArrayLike]

    @property
    def epochs(self) -> Floats:
        return np.array(sorted(self.accuracy), dtype=np.float64)

    def sizes(self) -> Floats:
        return np.array([len(_floats(self.accuracy[e])) for e in self.epochs], np.float64)

    def seconds_per_epoch(self) -> tuple[Floats, npt.NDArray[np.int64]]:
        """Every run's seconds / epochs, with its seed (pooled over the grid: one method's rate)."""
        rate = np.concatenate([_floats(self.seconds[e]) / e for e in self.epochs])
        seeds = np.concatenate([np.asarray(self.seeds[e], np.int64) for e in self.epochs])
        return rate, seeds


def _seed_means(
    values: Floats, seeds: npt.NDArray[np.int64], universe: npt.NDArray[np.int64], idx: npt.NDArray[np.int64]
) -> Floats:
    """Bootstrap draws of a cell's mean when seeds (``idx`` into ``universe``, one row per draw)
    are resampled jointly for every cell; a cell missing some seeds averages those it has."""
    total = np.zeros(len(universe))
    have = np.zeros(len(universe))
    pos = np.searchsorted(universe, seeds)
    np.add.at(total, pos, values)
    np.add.at(have, pos, 1.0)
    count = have[idx].sum(1)
    return np.asarray(
        np.where(count > 0, total[idx].sum(1) / np.maximum(count, 1), values.mean()), np.float64
    )


def _widen(draws: Floats, values: Floats) -> Floats:
    """The bootstrap spread of a mean is √((n−1)/n) of its standard error: widen the draws (as
    equivalent epochs does)."""
    n = len(values)
    return np.asarray(values.mean() + np.sqrt(n / max(n - 1, 1)) * (draws - values.mean()), np.float64)


def _target_draws(
    curve: Curve, target: float, universe: npt.NDArray[np.int64], idx: npt.NDArray[np.int64]
) -> tuple[float, Floats, float, Floats]:
    """(epochs to target, its draws, seconds per epoch, its draws)."""
    epochs = curve.epochs
    accs = [_floats(curve.accuracy[e]) for e in epochs]
    seeds = [np.asarray(curve.seeds[e], np.int64) for e in epochs]
    means = np.stack([_widen(_seed_means(a, s, universe, idx), a) for a, s in zip(accs, seeds)], 1)
    point = float(epochs_to_reach(epochs, np.array([a.mean() for a in accs]), target, curve.sizes()))
    draws = np.asarray(epochs_to_reach(epochs, means, target, curve.sizes()), np.float64)
    rate, rate_seeds = curve.seconds_per_epoch()
    rate_draws = _widen(_seed_means(rate, rate_seeds, universe, idx), rate)
    return point, draws, float(rate.mean()), rate_draws


@dataclass(frozen=True)
class TimeToTarget:
    """Epochs and seconds for a method's mean accuracy to reach ``target``; ±inf bounds: the
    bootstrap left the grid (one-sided, "> last epochs" or "< first")."""

    target: float
    epochs: Estimate
    seconds: Estimate
    seconds_per_epoch: float
    grid: tuple[float, ...]


def _interval(point: float, draws: Floats, level: float, lowest: float, highest: float) -> Estimate:
    lo, hi = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2], method="inverted_cdf")
    return Estimate(point, float(min(lo, highest)), float(max(hi, lowest)))


def _universe(*curves: Curve) -> npt.NDArray[np.int64]:
    return np.unique(np.concatenate([np.asarray(c.seeds[e], np.int64) for c in curves for e in c.epochs]))


def time_to_target(
    curve: Curve, target: float, level: float = 0.95, resamples: int = 1000, seed: int = 0
) -> TimeToTarget:
    universe = _universe(curve)
    idx = np.random.default_rng(seed).integers(0, len(universe), (resamples, len(universe)))
    point, draws, rate, rate_draws = _target_draws(curve, target, universe, idx)
    epochs = curve.epochs
    eq = _interval(point, draws, level, float(epochs[0]), float(epochs[-1]))
    secs = _interval(point * rate, draws * rate_draws, level, epochs[0] * rate, epochs[-1] * rate)
    return TimeToTarget(target, eq, secs, rate, tuple(float(e) for e in epochs))


def time_to_target_ratio(
    a: Curve, b: Curve, target: float, level: float = 0.95, resamples: int = 1000, seed: int = 0
) -> Estimate:
    """Seconds a needs to reach the target over the seconds b needs, with seeds resampled jointly
    for both (runs with one seed share their random streams). NaN bounds when more than
    (1−level)/2 of the draws leave either grid: the ratio is then not bounded on the data."""
    universe = _universe(a, b)
    idx = np.random.default_rng(seed).integers(0, len(universe), (resamples, len(universe)))
    pa, da, ra, rda = _target_draws(a, target, universe, idx)
    pb, db, rb, rdb = _target_draws(b, target, universe, idx)
    point = (pa * ra) / (pb * rb) if np.isfinite(pa) and np.isfinite(pb) else NAN
    ta, tb = da * rda, db * rdb
    finite = np.isfinite(ta) & np.isfinite(tb)
    if (1 - finite.mean()) > (1 - level) / 2:
        return Estimate(point, NAN, NAN)
    ratio = np.where(finite, ta / np.where(finite, tb, 1.0), np.nan)
    lo, hi = np.nanquantile(ratio, [0.5 - level / 2, 0.5 + level / 2])
    return Estimate(point, float(lo), float(hi))


@dataclass(frozen=True)
class ClaimRule:
    """How a claim is decided under adaptive runs, fixed at the first round (kept in the manifest):
    one-sided sequences at α, no decision before ``min_seeds`` runs, "undecided" at ``max_seeds``."""

    alpha: float
    min_seeds: int
    max_seeds: int

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 1 <= self.min_seeds <= self.max_seeds:
            raise ValueError(f"need 1 <= min_seeds <= max_seeds, got {self.min_seeds} and {self.max_seeds}")

    def record(self) -> dict[str, float | int | str]:
        return {
            "kind": "claim",
            "alpha": self.alpha,
            "min_seeds": self.min_seeds,
            "max_seeds": self.max_seeds,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> ClaimRule:
        return cls(float(str(record["alpha"])), int(str(record["min_seeds"])), int(str(record["max_seeds"])))

    def short(self) -> str:
        return f"claim (α = {self.alpha:g}, min {self.min_seeds}, max {self.max_seeds})"

    def describe(self) -> str:
        return (
            f"the claim is decided by one-sided betting confidence sequences at α = {self.alpha:g} "
            f"(valid however often they are looked at): it holds at the first n ≥ {self.min_seeds} runs "
            f"where the lower sequence exceeds the target, fails where the upper one falls below it, "
            f"and is undecided at {self.max_seeds} runs"
        )

    def decide(self, x: npt.ArrayLike, target: float) -> SequentialClaim:
        return sequential_claim(x, target, self.alpha, self.min_seeds, self.max_seeds)

    def next_runs(self, have: int, workers: int) -> int:
        """Runs the next round asks for in all: min_seeds first, then a quarter more (at least one
        per worker), never past max_seeds."""
        if have < self.min_seeds:
            return self.min_seeds
        return min(self.max_seeds, have + max(workers, -(-have // 4)))
