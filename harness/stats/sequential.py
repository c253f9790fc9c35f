"""Adaptive seeds: an anytime-valid confidence sequence for a paired difference, and when to stop.

A t-interval read after every round of seeds rejects a true null far more often than its level;
a confidence sequence (CS) stays valid however often it is looked at. This module implements the
asymptotic CS of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas (2021, "Time-uniform central limit
theory and asymptotic confidence sequences", arXiv 2103.06476), two-sided at level alpha, for the
mean of the per-seed differences d_1, d_2, ... (variant minus baseline, same seed). After t pairs,
with running mean d̄_t and running std s_t (ddof 1):

    d̄_t ± s_t · sqrt( 2(tρ² + 1)/(t²ρ²) · log( sqrt(tρ² + 1)/α ) )

This is the paper's two-sided form (Theorem 2.2: the two-sided normal mixture already bounds both
sides, so α, not α/2, goes in the log; α/2 there, as this module once had, makes a 97.5% sequence
labelled 95%). At small t the running std is plugged in for σ, so each margin is widened by
:func:`student_factor` (a Student-t calibration that tends to 1), which keeps early looks honest at
the small per-comparison α that a Bonferroni correction over many comparisons needs.

ρ > 0 is fixed before any data: :func:`rho2_for` picks the ρ that makes the boundary tightest at a
planned number of seeds t*. The decision of a comparison (:func:`decide`) is a pure function of its
differences in seed order: the first t >= min_seeds at which the sequence excludes 0 (better or
worse) or lies wholly inside [−P, P] (equal within ±P); at M seeds without either, undecided. Because the
CS holds at every t simultaneously, checking every prefix is as valid as checking after each round,
and a driver killed mid-campaign recomputes the same decisions from the stored runs alone.

The sequence is asymptotic (it rests on the running std): with min_seeds = 10 and normal or
heavy-tailed symmetric differences it covers >= 95% under monitoring at every seed (tests), but
strongly skewed differences (gamma(2), skewness 1.4) fell to about 93.5% in simulation. Differences
of two runs with the same seed are close to symmetric.

Against a fixed-n design: with the true difference at the planned one the sequence is wider than a
t-interval at the same n, so at *equal power* the adaptive campaign wins only when the power is high
(M large); it also spends few seeds when the effect is larger than planned, or clearly null.

Everything on the confidence sequence is numpy and vectorised over leading axes, so thousands of
simulated campaigns cost milliseconds; only the fixed-n comparison design uses scipy (noncentral t).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.stats.betting import betting_cs
from harness.stats.text import cell, plain

BETTER, WORSE, EQUAL, UNDECIDED, RUNNING = "better", "worse", "equal", "undecided", "running"
ASYMPTOTIC, BETTING = "asymptotic", "betting"
SEQUENCES = (ASYMPTOTIC, BETTING)
# paired differences of accuracies in points lie in [-100, 100]: the range the betting sequence bets on
POINTS_RANGE = (-100.0, 100.0)
OUTCOMES = (RUNNING, BETTER, WORSE, EQUAL, UNDECIDED)  # index = outcome code in vectorised results


# --------------------------------------------------------------------------- the confidence sequence


def rho2_for(t_star: float, alpha: float = 0.05) -> float:
    """ρ² that minimises the two-sided boundary at t = t* (Waudby-Smith et al. 2021, Sec. 2).

    With a = α and u = t*ρ² + 1, the squared margin at t* is (s²/t*)·u(log u − 2 log a)/(u − 1);
    setting its derivative to zero gives u − log u = 1 − 2 log a, i.e. u = −W₋₁(−a²/e) (Lambert W,
    lower branch), so ρ² = (−W₋₁(−a²/e) − 1)/t*. Solved by Newton's method from the paper's closed-form
    approximation u ≈ 1 + L + log(1 + L), L = 2 log(1/a).
    """
    if not t_star > 0 or not 0 < alpha < 1:
        raise ValueError(f"need t* > 0 and 0 < alpha < 1, got t*={t_star}, alpha={alpha}")
    big_l = -2.0 * math.log(alpha)
    target = 1.0 + big_l
    u = 1.0 + big_l + math.log1p(big_l)
    for _ in range(100):
        step = (u - math.log(u) - target) / (1.0 - 1.0 / u)
        u -= step
        if abs(step) < 1e-14 * u:
            break
    return (u - 1.0) / t_star


def cs_margin(t: np.ndarray | float, sd: np.ndarray | float, rho2: float, alpha: float = 0.05) -> np.ndarray:
    """Half-width of the two-sided CS after t pairs whose running std is ``sd`` (broadcasts)."""
    t = np.asarray(t, dtype=float)
    return np.asarray(sd) * np.sqrt(
        2.0 * (t * rho2 + 1.0) / (t**2 * rho2) * np.log(np.sqrt(t * rho2 + 1.0) / alpha)
    )


def running_mean_sd(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running mean and std (ddof 1) along the last axis; the std is nan at t = 1.

    Computed from running sums of deviations from the first value, which keeps the variance
    accurate when the differences share a large offset.
    """
    d = np.asarray(d, dtype=float)
    t = np.arange(1, d.shape[-1] + 1, dtype=float)
    centred = d - d[..., :1]
    s1 = np.cumsum(centred, axis=-1)
    s2 = np.cumsum(centred**2, axis=-1)
    mean = d[..., :1] + s1 / t
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(t > 1, (s2 - s1**2 / t) / (t - 1), np.nan)
    return mean, np.sqrt(np.maximum(var, 0.0))


def student_factor(t: np.ndarray, rho2: float, alpha: float) -> np.ndarray:
    """Small-sample correction of the boundary: at each t the margin is c_t · s_t/√t with c_t a normal
    quantile (s_t is treated as σ); the factor t_{t-1}⁻¹(Φ(c_t))/c_t gives the same pointwise tail under a
    Student t instead. It tends to 1 as t grows (1.09 at t = 10 for one comparison; 1.3 at α/10), so
    the sequence keeps its asymptotic validity, and at small t with a small α (Bonferroni over many
    comparisons) it no longer overshoots: 10 null variants at min 10 seeds gave 7.3% family-wise
    error without it."""
    from scipy import special  # only where the correction is asked for

    t = np.asarray(t, dtype=float)
    c = cs_margin(t, 1.0, rho2, alpha) * np.sqrt(t)
    with np.errstate(invalid="ignore", divide="ignore"):
        tail = special.ndtr(-c)
        student = -special.stdtrit(np.maximum(t - 1, 1), tail)
    return np.where(t > 1, student / c, np.nan)


def confidence_sequence(
    d: np.ndarray, rho2: float, alpha: float = 0.05, student: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, lower, upper) after each t = 1..T along the last axis (nan bounds at t = 1); with
    ``student`` the small-sample correction of :func:`student_factor`."""
    mean, sd = running_mean_sd(d)
    t = np.arange(1, mean.shape[-1] + 1)
    margin = cs_margin(t, sd, rho2, alpha)
    if student:
        margin = margin * student_factor(t, rho2, alpha)
    return mean, mean - margin, mean + margin


def betting_sequence(d: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(running mean, lower, upper) of the betting sequence for differences in points, in the shape of
    :func:`confidence_sequence` (whose bounds are nan at t = 1; the betting bounds exist from t = 1)."""
    d = np.asarray(d, dtype=float)
    lower, upper = betting_cs(d, *POINTS_RANGE, alpha)
    mean = np.cumsum(d, axis=-1) / np.arange(1, d.shape[-1] + 1)
    return mean, lower, upper


# --------------------------------------------------------------------------- the decision rule


@dataclass(frozen=True)
class Rule:
    """When a comparison stops. Units of ``precision`` are those of the differences (points)."""

    precision: float  # P: decided equal when the whole CS lies inside [-P, P]
    max_seeds: int  # M: undecided at M seeds
    alpha: float = 0.05  # family-wise, over the study's comparisons
    min_seeds: int = 10  # no decision before: the CS is asymptotic, s_t is noisy early
    # (simulated coverage under monitoring at every seed, normal differences, with the Student-t
    #  correction: min_seeds 10 -> 98%; 5 -> 97.7%; 4 with M = 20 -> 98.7%; 4000 campaigns each.)
    planned_seeds: float | None = None  # t*, where the CS is tightest; default sqrt(min_seeds * M)
    comparisons: int = 1  # k: each sequence at alpha/k (Bonferroni: family-wise error <= alpha)
    student: bool = True  # small-sample correction of the boundary (student_factor)
    # "asymptotic" (the default: at airbench's spread it holds under the contaminated scenarios of
    # harness.bench coverage and decides in tens of seeds) or "betting" (harness.stats.betting: valid
    # for any shape of bounded differences, but bets capped by the range [-100, 100] points make it
    # far wider, so it rarely decides within M); measured in docs/statistics-robustness.md
    kind: str = ASYMPTOTIC

    def __post_init__(self) -> None:
        if not (isinstance(self.comparisons, int) and self.comparisons >= 1):
            raise ValueError(f"comparisons must be a positive integer, got {self.comparisons}")
        if not self.precision > 0:
            raise ValueError(f"precision must be positive, got {self.precision}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 2 <= self.min_seeds <= self.max_seeds:
            raise ValueError(f"need 2 <= min_seeds <= max_seeds, got {self.min_seeds} and {self.max_seeds}")
        if self.kind not in SEQUENCES:
            raise ValueError(f"the sequence must be one of {', '.join(SEQUENCES)}, got {self.kind!r}")
        if self.planned_seeds is not None and not self.planned_seeds > 0:
            raise ValueError(f"planned_seeds must be positive, got {self.planned_seeds}")

    @property
    def t_star(self) -> float:
        return self.planned_seeds or math.sqrt(self.min_seeds * self.max_seeds)

    @property
    def sequence_alpha(self) -> float:
        """α of each comparison's sequence: α/k over the study's k comparisons (Bonferroni)."""
        return self.alpha / self.comparisons

    @property
    def rho2(self) -> float:
        return rho2_for(self.t_star, self.sequence_alpha)

    def sequence(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, lower, upper) of each comparison's sequence under this rule, along the last axis."""
        if self.kind == BETTING:
            return betting_sequence(d, self.sequence_alpha)
        return confidence_sequence(d, self.rho2, self.sequence_alpha, self.student)

    def record(self) -> dict[str, Any]:
        """The rule as the manifest keeps it from the first round on (a resume must bring the same)."""
        return {
            "alpha": self.alpha,
            "precision": self.precision,
            "min_seeds": self.min_seeds,
            "max_seeds": self.max_seeds,
            "planned_seeds": self.t_star,
            "rho2": round(self.rho2, 12),
            "comparisons": self.comparisons,
            "student": self.student,
            **({"sequence": self.kind} if self.kind != ASYMPTOTIC else {}),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Rule:
        """The rule a manifest recorded (older manifests: no ρ/t* or k stored, the defaults of then)."""
        return cls(
            float(record["precision"]),
            int(record["max_seeds"]),
            alpha=float(record.get("alpha", 0.05)),
            min_seeds=int(record.get("min_seeds", 10)),
            planned_seeds=record.get("planned_seeds"),
            comparisons=int(record.get("comparisons", 1)),
            student=bool(record.get("student", False)),
            kind=str(record.get("sequence", ASYMPTOTIC)),
        )

    def short(self) -> str:
        return (
            f"α = {self.alpha:g} over k = {self.comparisons}, P = {self.precision:g}, min = {self.min_seeds}, "
            f"max = {self.max_seeds}, "
            + (f"ρ² = {self.rho2:.4g}" if self.kind == ASYMPTOTIC else "betting sequence")
        )

    def describe(self) -> str:
        a = self.sequence_alpha
        per = (
            f"Bonferroni over the study's k = {self.comparisons} comparisons: each sequence at α/k = {a:.4g} "
            f"({100 * (1 - a):.4g}%), so at most {100 * self.alpha:g}% chance that any comparison's sequence "
            f"misses its true difference"
            if self.comparisons > 1
            else f"one comparison, α = {a:g}"
        )
        method = (
            f"Asymptotic CS of Waudby-Smith et al. (2021, α in the log), ρ² = {self.rho2:.4g}, tightest at "
            f"t* = {self.t_star:.0f} seeds{', with a Student-t small-sample correction' if self.student else ''}"
            if self.kind == ASYMPTOTIC
            else "Betting CS for bounded means (Waudby-Smith & Ramdas 2024) on the range [−100, 100] points, "
            "valid whatever the shape of the differences"
        )
        return (
            f"{100 * (1 - self.alpha):g}% (family-wise) confidence sequences for the mean paired difference "
            f"(variant − baseline, same seed), two-sided; {per}. {method}, fixed before the first round and "
            f"valid however often it is looked at. A comparison stops at the first t ≥ {self.min_seeds} seeds where the sequence "
            f"excludes 0 (better or worse) or lies wholly inside [−{self.precision:g}, {self.precision:g}] "
            f"(equal within ±{self.precision:g}); at M = {self.max_seeds} seeds without either it is "
            f"undecided."
        )


def first_decision(
    mean: np.ndarray, lower: np.ndarray, upper: np.ndarray, rule: Rule
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised rule over the last axis: (seeds used, outcome code into OUTCOMES).

    Seeds used is the first t >= min_seeds where the rule fires; RUNNING (code 0) with t = T when it
    has not fired within the T seeds given and T < M; UNDECIDED at M.
    """
    n = mean.shape[-1]
    t = np.arange(1, n + 1)
    look = (t >= rule.min_seeds) & (t <= rule.max_seeds)
    excludes = look & ((lower > 0) | (upper < 0))
    inside = look & (lower >= -rule.precision) & (upper <= rule.precision)  # equivalence by inclusion
    fires = excludes | inside
    fired = fires.any(axis=-1)
    first = np.where(fired, fires.argmax(axis=-1), min(n, rule.max_seeds) - 1)

    def pick(a: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, first[..., None], axis=-1)[..., 0]

    at_lower, at_upper = pick(lower), pick(upper)
    code = np.where(at_lower > 0, 1, np.where(at_upper < 0, 2, 3))
    code = np.where(fired, code, np.where(first + 1 >= rule.max_seeds, 4, 0))
    return first + 1, code


@dataclass(frozen=True)
class ComparisonState:
    """Where one comparison stands; recomputed from its paired differences alone."""

    name: str
    seeds: int  # paired seeds available (0..seeds-1)
    seeds_used: int  # seeds behind the decision (== seeds while running)
    outcome: str  # one of OUTCOMES
    mean: float  # at seeds_used
    lower: float
    upper: float
    sequence: tuple[tuple[int, float, float, float], ...] = field(
        repr=False
    )  # (t, mean, lower, upper), t >= 2

    @property
    def decided(self) -> bool:
        return self.outcome in (BETTER, WORSE, EQUAL)

    @property
    def running(self) -> bool:
        return self.outcome == RUNNING

    @property
    def decision(self) -> tuple[str, int, float, float, float]:
        """What a resumed driver must reproduce: outcome, seeds used, mean and interval at that point."""
        return self.outcome, self.seeds_used, self.mean, self.lower, self.upper


def decide(name: str, differences: Sequence[float] | np.ndarray, rule: Rule) -> ComparisonState:
    """State of one comparison from its per-seed differences in seed order (seeds 0, 1, 2, ...).

    Differences past M are ignored; so are differences past the decision (the sequence kept after it
    is still valid, but the decision is the first time the rule fired, whatever arrived later).
    """
    d = np.asarray(differences, dtype=float)[: rule.max_seeds]
    if d.ndim != 1 or not np.isfinite(d).all():
        raise ValueError(f"{name}: differences must be a 1-d array of finite numbers")
    if len(d) == 0:
        return ComparisonState(name, 0, 0, RUNNING, math.nan, math.nan, math.nan, ())
    mean, lower, upper = rule.sequence(d)
    used, code = first_decision(mean, lower, upper, rule)
    i = int(used) - 1
    sequence = tuple((t + 1, float(mean[t]), float(lower[t]), float(upper[t])) for t in range(1, len(d)))
    return ComparisonState(
        name,
        len(d),
        int(used),
        OUTCOMES[int(code)],
        float(mean[i]),
        float(lower[i]),
        float(upper[i]),
        sequence,
    )


def decide_all(
    differences: Mapping[str, Sequence[float] | np.ndarray], rule: Rule
) -> dict[str, ComparisonState]:
    return {name: decide(name, d, rule) for name, d in differences.items()}


def paired_differences(baseline: Mapping[int, float], variant: Mapping[int, float]) -> np.ndarray:
    """variant − baseline for seeds 0, 1, 2, ... while both runs exist (stops at the first gap).

    A round trained in parallel can finish out of order, and a killed driver leaves gaps; using the
    contiguous prefix keeps the differences in seed order, so the decision never depends on timing.
    """
    out = []
    seed = 0
    while seed in baseline and seed in variant:
        out.append(float(variant[seed]) - float(baseline[seed]))
        seed += 1
    return np.asarray(out, dtype=float)


# --------------------------------------------------------------------------- rounds


def _round_targets(seeds: Sequence[int], rule: Rule, workers: int, baseline_seeds: int) -> list[int]:
    """Seed counts after the next round for comparisons still running (given their current counts).

    The smallest common increment k whose runs (new variant seeds, plus baseline seeds not yet
    trained) fill every worker; the first round brings every comparison to min_seeds.
    """

    def targets(k: int) -> list[int]:
        return [min(rule.max_seeds, max(rule.min_seeds, n + k)) for n in seeds]

    def runs(ts: list[int]) -> int:
        return sum(t - n for t, n in zip(ts, seeds)) + max(0, max(ts) - baseline_seeds)

    for k in range(1, rule.max_seeds + 1):
        ts = targets(k)
        if runs(ts) >= workers:
            return ts
    return targets(rule.max_seeds)


def next_round(
    states: Mapping[str, ComparisonState], rule: Rule, workers: int, baseline_seeds: int | None = None
) -> dict[str, int]:
    """How many more seeds each running comparison gets next round ({} when all have stopped).

    Seeds go only to comparisons still running; the round is sized so that its runs (variant runs
    plus the baseline runs they need) keep ``workers`` workers busy. ``baseline_seeds``: contiguous
    baseline seeds already trained (default: as many as the comparison furthest along).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    running = [s for s in states.values() if s.running]
    if not running:
        return {}
    if baseline_seeds is None:
        baseline_seeds = max(s.seeds for s in states.values())
    targets = _round_targets([s.seeds for s in running], rule, workers, baseline_seeds)
    return {s.name: t - s.seeds for s, t in zip(running, targets) if t > s.seeds}


def plan_round(
    differences: Mapping[str, Sequence[float] | np.ndarray],
    rule: Rule,
    workers: int,
    baseline_seeds: int | None = None,
) -> tuple[dict[str, ComparisonState], dict[str, int]]:
    """One step of the driver: every comparison's state from its stored differences, and the next round."""
    states = decide_all(differences, rule)
    return states, next_round(states, rule, workers, baseline_seeds)


def replay(
    differences: Mapping[str, Sequence[float] | np.ndarray], rule: Rule, workers: int
) -> list[dict[str, ComparisonState]]:
    """The rounds a driver with ``workers`` workers would run, given these stored differences.

    Each entry is the state of every comparison after one round, computed from the prefix of its
    differences trained by then. It ends when every comparison has stopped, or when the next round
    needs differences not yet stored (a campaign to resume). The report renders this history.
    """
    arrays = {name: np.asarray(d, dtype=float) for name, d in differences.items()}
    counts = dict.fromkeys(arrays, 0)
    history: list[dict[str, ComparisonState]] = []
    states = {name: decide(name, arrays[name][:0], rule) for name in arrays}
    while True:
        extra = next_round(states, rule, workers)
        if not extra or any(counts[n] + k > len(arrays[n]) for n, k in extra.items()):
            return history
        for name, k in extra.items():
            counts[name] += k
        states = {name: decide(name, arrays[name][: counts[name]], rule) for name in arrays}
        history.append(states)


# --------------------------------------------------------------------------- planning by simulation


def round_ends(rule: Rule, workers: int, comparisons: int = 1) -> np.ndarray:
    """Seed counts at the end of each round while ``comparisons`` comparisons all keep running."""
    ends, n = [], 0
    while n < rule.max_seeds:
        n = _round_targets([n] * comparisons, rule, workers, n)[0]
        ends.append(n)
    return np.asarray(ends)


@dataclass(frozen=True)
class Simulation:
    """Simulated campaigns of one comparison (one row each)."""

    seeds_used: np.ndarray  # seeds behind the decision
    seeds_trained: np.ndarray  # seeds trained: the end of the round in which it stopped
    outcome: np.ndarray  # codes into OUTCOMES

    def share(self, outcome: str) -> float:
        return float(np.mean(self.outcome == OUTCOMES.index(outcome)))

    @property
    def expected_seeds(self) -> float:
        return float(self.seeds_trained.mean())


def simulate(
    delta: float, sd: float, rule: Rule, workers: int = 2, campaigns: int = 4000, seed: int = 0
) -> Simulation:
    """Campaigns of one comparison whose per-seed differences are Normal(delta, sd), vectorised."""
    rng = np.random.default_rng(seed)
    d = rng.normal(delta, sd, size=(campaigns, rule.max_seeds))
    mean, lower, upper = rule.sequence(d)
    used, code = first_decision(mean, lower, upper, rule)
    ends = round_ends(rule, workers)
    trained = ends[np.searchsorted(ends, used)]
    return Simulation(used, trained, code)


def expected_seeds(
    delta: float, sd: float, rule: Rule, workers: int = 2, campaigns: int = 4000, seed: int = 0
) -> float:
    """Mean seeds a comparison trains (rounds included) when the true difference is ``delta``."""
    return simulate(delta, sd, rule, workers, campaigns, seed).expected_seeds


def fixed_seeds(delta: float, sd: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Smallest n for which a two-sided paired t-test at alpha has the given power."""
    if delta == 0 or not 0 < power < 1:
        raise ValueError("need a nonzero difference and 0 < power < 1")
    from scipy import stats

    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    n = max(2, math.floor((z * sd / delta) ** 2))  # the normal approximation never overshoots
    from harness.stats.estimators import t_test_power  # scipy: loaded only when planning

    while t_test_power(delta, sd, n, alpha=alpha) < power:
        n += 1
    return n


@dataclass(frozen=True)
class Benchmark:
    """Adaptive seeds against the fixed-n design, for one true difference."""

    delta: float
    sd: float
    rule: Rule
    workers: int
    campaigns: int
    expected_seeds: float  # mean seeds trained by the adaptive campaign
    power: float  # share of campaigns decided in the true direction
    fixed_80: int  # fixed-n paired t-test with 80% power
    fixed_equal_power: int  # fixed-n paired t-test with the adaptive rule's power

    @property
    def ratio_equal_power(self) -> float:
        return self.expected_seeds / self.fixed_equal_power

    @property
    def ratio_80(self) -> float:
        return self.expected_seeds / self.fixed_80

    def describe(self) -> str:
        return (
            f"true difference {self.delta:g} (sd of differences {self.sd:.4g}), M = {self.rule.max_seeds}, "
            f"{self.workers} workers, {self.campaigns} simulated campaigns: adaptive seeds "
            f"{self.expected_seeds:.1f} on average, decided {'better' if self.delta > 0 else 'worse'} in "
            f"{100 * self.power:.1f}%; a fixed-n paired t-test needs {self.fixed_equal_power} seeds for that "
            f"power (ratio {self.ratio_equal_power:.2f}) and {self.fixed_80} for 80% power "
            f"(ratio {self.ratio_80:.2f})"
        )


def benchmark(
    delta: float, sd: float, rule: Rule, workers: int = 2, campaigns: int = 4000, seed: int = 0
) -> Benchmark:
    sim = simulate(delta, sd, rule, workers, campaigns, seed)
    power = sim.share(BETTER if delta > 0 else WORSE)
    # a simulated power of 1 only says "at least about 1 - 1/campaigns": size the fixed design for that
    matched = min(power, 1 - 1 / campaigns)
    equal = fixed_seeds(delta, sd, matched, rule.alpha) if matched > rule.alpha else 2
    return Benchmark(
        delta,
        sd,
        rule,
        workers,
        campaigns,
        sim.expected_seeds,
        power,
        fixed_seeds(delta, sd, 0.8, rule.alpha),
        equal,
    )


# --------------------------------------------------------------------------- report text


def _fmt(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:+.3f}"


def _thin(rows: list[tuple[int, ComparisonState]], max_rows: int) -> list[tuple[int, ComparisonState]]:
    """At most max_rows rows, spaced evenly in log(seeds), always keeping the first and the last."""
    if len(rows) <= max_rows:
        return rows
    seeds = np.log([s.seeds_used for _, s in rows])
    marks = np.linspace(seeds[0], seeds[-1], max_rows)
    keep = sorted({int(np.abs(seeds - m).argmin()) for m in marks} | {0, len(rows) - 1})
    return [rows[i] for i in keep]


def render(
    history: Sequence[Mapping[str, ComparisonState]], rule: Rule, unit: str = "points", max_rows: int = 12
) -> str:
    """Markdown: the rule, each comparison's outcome, and its sequence over the rounds.

    ``history``: the states after each round (:func:`replay`); the last entry is the current state.
    Each sequence runs to the round in which the comparison stopped, thinned to about max_rows rows.
    """
    lines = [
        "## Adaptive seeds: the verdict",
        "",
        f"Rule ({unit}; fixed at the first round and kept in the manifest: "
        f"{rule.short()}): {rule.describe()}",
        "",
    ]
    if not history:
        return "\n".join(lines + ["No round has finished yet.", ""])
    final = history[-1]
    level = f"{100 * (1 - rule.sequence_alpha):.4g}%"
    lines += [
        f"| comparison | outcome | seeds used | seeds trained | mean difference | {level} confidence sequence |",
        "|---|---|---:|---:|---:|---|",
    ]
    for s in final.values():
        lines.append(
            f"| {cell(s.name)} | {s.outcome} | {s.seeds_used} | {s.seeds} | {_fmt(s.mean)} | "
            f"[{_fmt(s.lower)}, {_fmt(s.upper)}] |"
        )
    for name in final:
        rounds = [(r, states[name]) for r, states in enumerate(history, 1) if states[name].seeds]
        stop = next((i for i, (_, s) in enumerate(rounds) if not s.running), len(rounds) - 1)
        shown = _thin(rounds[: stop + 1], max_rows)
        note = "" if len(shown) == stop + 1 else f" ({len(shown)} of {stop + 1} rounds shown)"
        lines += [
            "",
            f"### {plain(name)}: sequence over rounds{note}",
            "",
            "| round | seeds | mean difference | lower | upper | width | state |",
            "|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r, s in shown:
            lines.append(
                f"| {r} | {s.seeds_used} | {_fmt(s.mean)} | {_fmt(s.lower)} | {_fmt(s.upper)} | "
                f"{s.upper - s.lower:.3f} | {s.outcome} |"
            )
    return "\n".join(lines) + "\n"
