"""The harness checks its own statistics: simulated campaigns whose truth is known, at the numbers of
runs reports use, and how often each interval covers the truth (or each decision errs).

Generative model, shaped like airbench runs (accuracies as fractions):

- per test example x a difficulty b_x ~ Normal(3.2, 1.8) on the logit scale (about 7% mean error, many
  examples always right, a few hard ones); per run a run effect u ~ Normal(0, 0.01) (the distribution-
  wise part); a run is right on x with probability sigmoid(b_x + u). Used for the distribution-wise
  variance (Paper B, Eq. 3), whose truth Var_u(E_b[sigmoid(b + u)]) is computed by quadrature.
- run accuracies of a cell: μ_cell + s_seed + e, with a per-seed effect s ~ Normal(0, 0.0008) shared
  by every cell trained with that seed and run noise e ~ Normal(0, 0.0012) (test-set std ≈ 0.14%):
  per-cell means, paired differences, Welch, the std.
- calibration: an ensemble that is class-wise calibrated by construction (labels drawn from the
  same per-example class distribution p(x) ~ Dirichlet(0.3) the runs predict from): the disagreement −
  error gap is 0 in expectation over test examples.
- adaptive decisions: per-seed differences in points, variant j − baseline for k variants that share
  the baseline's run (so they are correlated), each sequence at α/k.

Each row: quantity, n, nominal, achieved, Monte Carlo error sqrt(p(1−p)/campaigns) and whether it is
within tolerance: for an interval |achieved − nominal| ≤ 2% + 2·MC error (or only the lower side for
a sequence, which is conservative by design); for an error rate achieved ≤ nominal + 2·MC error. A
row below the n where a report refuses the interval is marked "refused" (it is measured, and shown,
but no report prints it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.stats import claims as cl
from harness.stats import estimators as est
from harness.stats import sequential as seq
from harness.stats.robust import diverged_mask

COVERAGE, AT_LEAST, AT_MOST = "coverage", "at least", "at most"


@dataclass(frozen=True)
class Row:
    quantity: str
    n: str
    nominal: float
    achieved: float
    campaigns: int
    kind: str = COVERAGE
    refused: bool = False  # the report prints "n too small" here instead of the interval
    caveat: str = ""  # not claimed by any report: why (measured and shown all the same)

    @property
    def claimed(self) -> bool:
        """A report relies on this row, so it must be within tolerance."""
        return not self.refused and not self.caveat

    @property
    def mc_error(self) -> float:
        p = min(max(self.achieved, 1 / self.campaigns), 1 - 1 / self.campaigns)
        return float(np.sqrt(p * (1 - p) / self.campaigns))

    @property
    def ok(self) -> bool:
        slack = 2 * self.mc_error
        if self.kind == AT_MOST:
            return self.achieved <= self.nominal + slack
        if self.kind == AT_LEAST:
            return self.achieved >= self.nominal - 0.02 - slack
        return abs(self.achieved - self.nominal) <= 0.02 + slack

    def cells(self) -> list[str]:
        target = {COVERAGE: "", AT_LEAST: "≥ ", AT_MOST: "≤ "}[self.kind]
        verdict = "refused (n too small)" if self.refused else ("ok" if self.ok else "OUT")
        if self.caveat:
            verdict = f"{verdict}, not claimed: {self.caveat}"
        return [
            self.quantity,
            self.n,
            f"{target}{100 * self.nominal:.1f}%",
            f"{100 * self.achieved:.1f}%",
            f"{100 * self.mc_error:.1f}%",
            verdict,
        ]


SEED_SD, RUN_SD = 0.0008, 0.0012


def _runs(
    rng: np.random.Generator, campaigns: int, cells: int, n: int, means: Sequence[float] | None = None
) -> np.ndarray:
    """(campaigns, cells, n) run accuracies: μ_cell + per-seed effect shared across cells + run noise."""
    mu = np.zeros(cells) if means is None else np.asarray(means, float)
    return (
        0.94
        + mu[None, :, None]
        + rng.normal(0, SEED_SD, (campaigns, 1, n))
        + rng.normal(0, RUN_SD, (campaigns, cells, n))
    )


def mean_rows(rng: np.random.Generator, campaigns: int, ns: tuple[int, ...] = (3, 5, 10, 40)) -> list[Row]:
    rows = []
    for n in ns:
        x = _runs(rng, campaigns, 1, n)[:, 0]
        hit = [est.mean_ci(r).covers(0.94) for r in x]
        rows.append(Row("per-cell mean (t)", str(n), 0.95, float(np.mean(hit)), campaigns))
    return rows


def paired_rows(
    rng: np.random.Generator, campaigns: int, ns: tuple[int, ...] = (3, 5, 10, 40), delta: float = 0.001
) -> list[Row]:
    rows = []
    for n in ns:
        x = _runs(rng, campaigns, 2, n, means=[delta, 0.0])
        hit = [est.paired(a, b).diff.covers(delta) for a, b in zip(x[:, 0], x[:, 1])]
        rows.append(Row("paired difference (t)", str(n), 0.95, float(np.mean(hit)), campaigns))
    return rows


def welch_rows(
    rng: np.random.Generator,
    campaigns: int,
    sizes: tuple[tuple[int, int], ...] = ((5, 5), (40, 8), (10, 3)),
    delta: float = 0.001,
) -> list[Row]:
    rows = []
    for na, nb in sizes:
        a = _runs(rng, campaigns, 1, na, means=[delta])[:, 0]
        b = 0.94 + rng.normal(0, np.hypot(SEED_SD, RUN_SD) * 1.5, (campaigns, nb))  # unequal variances
        hit = [est.welch(x, y).diff.covers(delta) for x, y in zip(a, b)]
        rows.append(Row("Welch difference", f"{na} + {nb}", 0.95, float(np.mean(hit)), campaigns))
    return rows


def std_rows(rng: np.random.Generator, campaigns: int, ns: tuple[int, ...] = (3, 5, 10, 40)) -> list[Row]:
    truth = np.hypot(SEED_SD, RUN_SD)
    rows = []
    for n in ns:
        x = _runs(rng, campaigns, 1, n)[:, 0]
        hit = [est.std_ci(r).covers(truth) for r in x]
        rows.append(Row("std across runs (χ²)", str(n), 0.95, float(np.mean(hit)), campaigns))
    return rows


DIFFICULTY = (3.2, 1.8)
RUN_EFFECT = 0.01


def true_distribution_variance() -> float:
    """Var_u(E_b[sigmoid(b + u)]) by Gauss-Hermite quadrature in b and u."""
    z, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    b = DIFFICULTY[0] + DIFFICULTY[1] * z
    m = (w[None, :] / (1 + np.exp(-(b[None, :] + RUN_EFFECT * z[:, None])))).sum(1)  # E_b at each u node
    mean = (w * m).sum()
    return float((w * (m - mean) ** 2).sum())


def distribution_variance_rows(
    rng: np.random.Generator,
    campaigns: int,
    ns: tuple[int, ...] = (10, 50, 100),
    examples: int = 2000,
    resamples: int = 300,
) -> list[Row]:
    truth = true_distribution_variance()
    rows = []
    for r in ns:
        hit = []
        for _ in range(campaigns):
            b = rng.normal(*DIFFICULTY, examples)
            u = rng.normal(0, RUN_EFFECT, (r, 1))
            correct = rng.random((r, examples)) < 1 / (1 + np.exp(-(b[None, :] + u)))
            hit.append(
                est.distribution_variance(correct, resamples=resamples, min_runs=0).variance.covers(truth)
            )
        rows.append(
            Row(
                "distribution-wise variance (Eq. 3, bootstrap)",
                str(r),
                0.95,
                float(np.mean(hit)),
                campaigns,
                refused=r < est.MIN_RUNS_DISTRIBUTION_VARIANCE,
            )
        )
    return rows


def calibrated_ensemble(
    rng: np.random.Generator, runs: int, examples: int, p: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions (runs, examples) and labels of a class-wise calibrated ensemble (10 classes) whose
    infinite version predicts class c on example x with frequency p[x, c] (default Dirichlet(0.3))."""
    p = rng.dirichlet(np.full(10, 0.3), examples) if p is None else p
    cum = p.cumsum(1)
    labels = (rng.random((examples, 1)) > cum).sum(1).clip(0, 9)
    preds = (rng.random((runs, examples, 1)) > cum[None]).sum(2).clip(0, 9)
    return preds.astype(np.uint8), labels


def gap_rows(
    rng: np.random.Generator,
    campaigns: int,
    ns: tuple[int, ...] = (10, 40),
    examples: int = 2000,
    resamples: int = 200,
) -> list[Row]:
    rows = []
    for r in ns:
        hit = []
        for _ in range(campaigns):
            preds, labels = calibrated_ensemble(rng, r, examples)
            gp = est.group_predictions([(np.arange(r), preds)], labels, est.run_groups(r, 64))
            hit.append(
                est.disagreement_gap(gp, resamples=resamples, seed=int(rng.integers(1 << 30))).covers(0.0)
            )
        rows.append(Row("disagreement − error (calibrated: 0)", str(r), 0.95, float(np.mean(hit)), campaigns))
    return rows


INFINITE_RUNS = 20000  # runs standing in for the infinite ensemble (its CACE moves < 0.001 beyond)


def cace_rows(
    rng: np.random.Generator,
    campaigns: int,
    ns: tuple[int, ...] = (10, 40),
    examples: int = 2000,
    resamples: int = 100,
) -> list[Row]:
    """CACE on calibrated ensembles: how often the bootstrap interval covers the infinite-ensemble
    value on the same test set (reports print no interval: it is here to show why), and how often an
    ensemble's raw CACE lies above the calibrated-null floor (it is calibrated: half the time, if the
    null is the floor; the old null, below the floor, was exceeded nearly always)."""
    rows = []
    for r in ns:
        hit, above = [], []
        for _ in range(campaigns):
            p = rng.dirichlet(np.full(10, 0.3), examples)
            preds, labels = calibrated_ensemble(rng, r, examples, p)
            truth = est.cace(rng.multinomial(INFINITE_RUNS, p), labels, INFINITE_RUNS)[0]
            gp = est.group_predictions([(np.arange(r), preds)], labels, est.run_groups(r, 64))
            cal = est.calibration(gp, resamples=resamples, seed=int(rng.integers(1 << 30)))
            hit.append(cal.cace.covers(truth))
            counts = est.class_counts(preds)  # the null even where reports refuse it, to show why
            null = est.calibrated_null_cace(counts, r, seed=int(rng.integers(1 << 30)))
            above.append(cal.cace_raw > null.value)
        rows.append(
            Row(
                "CACE bootstrap interval (infinite ensemble, same test set)",
                str(r),
                0.95,
                float(np.mean(hit)),
                campaigns,
                caveat="reports print no CACE interval",
            )
        )
        rows.append(
            Row(
                "calibrated ensembles above the calibrated-null floor",
                str(r),
                0.5,
                float(np.mean(above)),
                campaigns,
                refused=r < est.MIN_RUNS_CACE_NULL,
            )
        )
    return rows


def family_differences(
    rng: np.random.Generator,
    campaigns: int,
    k: int,
    seeds: int,
    deltas: Sequence[float] | None = None,
    sd: float = 0.15,
) -> np.ndarray:
    """(campaigns, k, seeds) per-seed differences in points, variant − baseline, the baseline's run
    shared by all k comparisons; runs with sd ``sd`` points."""
    true = np.zeros(k) if deltas is None else np.asarray(deltas, float)
    base = rng.normal(0, sd, (campaigns, 1, seeds))
    return true[None, :, None] + rng.normal(0, sd, (campaigns, k, seeds)) - base


def sequence_rows(rng: np.random.Generator, campaigns: int, max_seeds: int = 100) -> list[Row]:
    """Coverage of one sequence under monitoring at every seed from min_seeds to M (the truth 0.1)."""
    rule = seq.Rule(0.05, max_seeds)
    d = family_differences(rng, campaigns, 1, max_seeds, deltas=[0.1])[:, 0]
    _, lower, upper = rule.sequence(d)
    t = np.arange(1, max_seeds + 1) >= rule.min_seeds
    covered = ((lower[:, t] <= 0.1) & (upper[:, t] >= 0.1)).all(1)
    return [
        Row(
            "confidence sequence, every t ≥ 10 (conservative)",
            f"10..{max_seeds}",
            0.95,
            float(covered.mean()),
            campaigns,
            AT_LEAST,
        )
    ]


def decision_rows(rng: np.random.Generator, campaigns: int, max_seeds: int = 100) -> list[Row]:
    """Adaptive decisions: family-wise error with 10 null variants (each at α/10), and "equal within
    ±0.05" at a true difference of 0.06."""
    k = 10
    rule = seq.Rule(0.05, max_seeds, comparisons=k)
    d = family_differences(rng, campaigns, k, max_seeds)
    mean, lower, upper = rule.sequence(d)
    _, code = seq.first_decision(mean, lower, upper, rule)
    wrong = np.isin(code, [seq.OUTCOMES.index(seq.BETTER), seq.OUTCOMES.index(seq.WORSE)]).any(1)
    rows = [
        Row(
            f"adaptive: any of {k} null variants better/worse (FWER)",
            f"10..{max_seeds}",
            0.05,
            float(wrong.mean()),
            campaigns,
            AT_MOST,
        )
    ]
    rule1 = seq.Rule(0.05, 400, min_seeds=10)
    d = family_differences(rng, campaigns, 1, 400, deltas=[0.06], sd=0.1)[:, 0]
    mean, lower, upper = rule1.sequence(d)
    _, code = seq.first_decision(mean, lower, upper, rule1)
    rows.append(
        Row(
            'adaptive: "equal within ±0.05" at δ = 0.06',
            "10..400",
            0.05,
            float(np.mean(code == seq.OUTCOMES.index(seq.EQUAL))),
            campaigns,
            AT_MOST,
        )
    )
    return rows


@dataclass(frozen=True)
class Contamination:
    """A share of runs that failed to train: each lands uniformly between ``low`` and ``high`` points
    below where it would have been."""

    label: str
    share: float
    low: float
    high: float

    @property
    def mean_shift(self) -> float:
        """Expected shift of a run's accuracy in points (negative)."""
        return -self.share * (self.low + self.high) / 2

    def apply(self, rng: np.random.Generator, x: np.ndarray, scale: float = 0.01) -> np.ndarray:
        """``x`` with the failed runs moved down (``scale``: 0.01 for fractions, 1 for points)."""
        hit = rng.random(x.shape) < self.share
        return x - np.where(hit, rng.uniform(self.low, self.high, x.shape), 0.0) * scale


SCENARIOS = (
    Contamination("2% of runs 1-3 points low", 0.02, 1.0, 3.0),
    Contamination("5% of runs 1-3 points low", 0.05, 1.0, 3.0),
    Contamination("1% diverged, 5-10 points low", 0.01, 5.0, 10.0),
)


def _set_aside(x: np.ndarray) -> list[np.ndarray]:
    """Each campaign's runs without those flagged diverged (as the report sets them aside)."""
    flag = diverged_mask(x)
    return [row[~f] for row, f in zip(x, flag)]


def contaminated_interval_rows(
    rng: np.random.Generator, campaigns: int, c: Contamination, ns: tuple[int, ...] = (10, 40, 100)
) -> list[Row]:
    """Per-cell intervals on contaminated cells, the diverged runs set aside as the report does; the
    truth is the mean (or sd) of the runs that trained normally (the report counts the others)."""
    tag = f" [{c.label}]"
    rows = []
    for n in ns:
        x = c.apply(rng, _runs(rng, campaigns, 1, n)[:, 0])
        kept = _set_aside(x)
        hit = [est.mean_ci(r).covers(0.94) for r in kept]
        rows.append(
            Row("per-cell mean (t), diverged set aside" + tag, str(n), 0.95, float(np.mean(hit)), campaigns)
        )
        hit = [est.std_ci(r).covers(np.hypot(SEED_SD, RUN_SD)) for r in kept]
        rows.append(
            Row(
                "std across runs (χ²), diverged set aside" + tag, str(n), 0.95, float(np.mean(hit)), campaigns
            )
        )
        pair = _runs(rng, campaigns, 2, n, means=[0.001, 0.0])
        pair[:, 0] = c.apply(rng, pair[:, 0])
        keep = ~(diverged_mask(pair[:, 0]) | diverged_mask(pair[:, 1]))  # a pair goes with either run
        hit = [est.paired(a[k], b[k]).diff.covers(0.001) for a, b, k in zip(pair[:, 0], pair[:, 1], keep)]
        rows.append(
            Row(
                "paired difference (t), diverged set aside" + tag,
                str(n),
                0.95,
                float(np.mean(hit)),
                campaigns,
            )
        )
    a = c.apply(rng, _runs(rng, campaigns, 1, 40, means=[0.001])[:, 0])
    b = 0.94 + rng.normal(0, np.hypot(SEED_SD, RUN_SD) * 1.5, (campaigns, 8))
    hit = [est.welch(x, y).diff.covers(0.001) for x, y in zip(_set_aside(a), _set_aside(b))]
    rows.append(
        Row("Welch difference, diverged set aside" + tag, "40 + 8", 0.95, float(np.mean(hit)), campaigns)
    )
    return rows


def wrong_decision(code: np.ndarray, truth: np.ndarray | float, precision: float) -> np.ndarray:
    """True where a decision contradicts the true mean difference: better when it is ≤ 0, worse when
    it is ≥ 0, equal when it lies outside ±P (undecided and running are never wrong)."""
    better, worse, equal = (seq.OUTCOMES.index(o) for o in (seq.BETTER, seq.WORSE, seq.EQUAL))
    truth = np.asarray(truth, dtype=float)
    return np.asarray(
        ((code == better) & (truth <= 0))
        | ((code == worse) & (truth >= 0))
        | ((code == equal) & (np.abs(truth) > precision))
    )


def contaminated_sequence_rows(
    rng: np.random.Generator,
    campaigns: int,
    c: Contamination,
    max_seeds: int = 100,
    kind: str = seq.ASYMPTOTIC,
) -> list[Row]:
    """The adaptive sequence and decisions when the variants' runs fail now and then: the truth is
    the mean difference of all runs (a method that fails 1% of the time is worse by that much)."""
    tag = f" [{c.label}]"
    label = "" if kind == seq.ASYMPTOTIC else f" ({kind})"
    truth = c.mean_shift
    rule = seq.Rule(0.05, max_seeds, kind=kind)
    d = c.apply(rng, family_differences(rng, campaigns, 1, max_seeds)[:, 0], scale=1.0)
    _, lower, upper = rule.sequence(d)
    t = np.arange(1, max_seeds + 1) >= rule.min_seeds
    covered = ((lower[:, t] <= truth) & (upper[:, t] >= truth)).all(1)
    rows = [
        Row(
            f"confidence sequence{label}, every t ≥ 10" + tag,
            f"10..{max_seeds}",
            0.95,
            float(covered.mean()),
            campaigns,
            AT_LEAST,
            caveat="" if kind == seq.BETTING else "asymptotic bounds; reports name diverged runs",
        )
    ]
    k = 10
    rule = seq.Rule(0.05, max_seeds, comparisons=k, kind=kind)
    d = c.apply(rng, family_differences(rng, campaigns, k, max_seeds), scale=1.0)
    mean, lower, upper = rule.sequence(d)
    _, code = seq.first_decision(mean, lower, upper, rule)
    wrong = wrong_decision(code, truth, rule.precision).any(1)
    rows.append(
        Row(
            f"adaptive{label}: any of {k} variants decided wrongly (FWER)" + tag,
            f"10..{max_seeds}",
            0.05,
            float(wrong.mean()),
            campaigns,
            AT_MOST,
        )
    )
    return rows


def contaminated_rows(rng: np.random.Generator, campaigns: int, quick: bool = False) -> list[Row]:
    """Every interval and decision above, on contaminated runs (each scenario of SCENARIOS); the
    betting sequence beside the default asymptotic one, on fewer campaigns (it costs a grid)."""
    rows: list[Row] = []
    for c in SCENARIOS:
        rows += contaminated_interval_rows(rng, campaigns, c, ns=(10, 100) if quick else (10, 40, 100))
        rows += contaminated_sequence_rows(rng, campaigns, c)
        rows += contaminated_sequence_rows(rng, max(50, campaigns // 10), c, kind=seq.BETTING)
    return rows


@dataclass(frozen=True)
class Cost:
    """What a sequence costs and decides for one true difference (one comparison, M seeds)."""

    kind: str
    scenario: str
    delta: float
    decided: float  # share of campaigns decided (better, worse or equal) within M
    seeds: float  # mean seeds used
    wrong: float  # share decided wrongly (wrong_decision)
    campaigns: int


def sequence_costs(
    rng: np.random.Generator,
    campaigns: int,
    deltas: tuple[float, ...] = (0.0, 0.2, 0.5, 10.0),
    max_seeds: int = 100,
    precision: float = 0.05,
) -> list[Cost]:
    """The asymptotic and the betting sequence side by side on clean and contaminated runs: how often
    each decides within M seeds, after how many, and how often wrongly; the default is chosen on this."""
    out = []
    for c in (Contamination("clean", 0.0, 0.0, 0.0), *SCENARIOS):
        for delta in deltas:
            d = c.apply(
                rng, family_differences(rng, campaigns, 1, max_seeds, deltas=[delta])[:, 0], scale=1.0
            )
            for kind in seq.SEQUENCES:
                rule = seq.Rule(precision, max_seeds, kind=kind)
                mean, lower, upper = rule.sequence(d)
                used, code = seq.first_decision(mean, lower, upper, rule)
                decided = np.isin(code, [1, 2, 3])
                wrong = wrong_decision(code, delta + c.mean_shift, precision)
                out.append(
                    Cost(
                        kind,
                        c.label,
                        delta,
                        float(decided.mean()),
                        float(used.mean()),
                        float(wrong.mean()),
                        campaigns,
                    )
                )
    return out


def render_costs(costs: list[Cost]) -> str:
    head = ["sequence", "runs", "true δ (clean part)", "decided within M", "mean seeds", "wrong"]
    table = [head] + [
        [
            c.kind,
            c.scenario,
            f"{c.delta:g}",
            f"{100 * c.decided:.1f}%",
            f"{c.seeds:.1f}",
            f"{100 * c.wrong:.1f}%",
        ]
        for c in costs
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table)


def coverage_table(quick: bool = False, seed: int = 0) -> list[Row]:
    """Every row; ``quick``: fewer campaigns and examples (seconds, for the tests)."""
    rng = np.random.default_rng(seed)
    c = 200 if quick else 4000
    heavy = 40 if quick else 400
    return (
        mean_rows(rng, c)
        + paired_rows(rng, c)
        + welch_rows(rng, c)
        + std_rows(rng, c)
        + gap_rows(rng, heavy, ns=(10,) if quick else (10, 40), examples=1000 if quick else 2000)
        + distribution_variance_rows(
            rng,
            heavy,
            ns=(100,) if quick else (10, 50, 100),
            examples=1000 if quick else 2000,
            resamples=200 if quick else 400,
        )
        + equivalent_epochs_rows(
            rng, heavy * 2, ns=(20,) if quick else (10, 20, 40), resamples=200 if quick else 500
        )
        + cace_rows(
            rng, 10 if quick else 100, ns=(10,) if quick else (10, 40, 100), examples=1000 if quick else 2000
        )
        + sequence_rows(rng, c)
        + decision_rows(rng, c)
        + contaminated_rows(rng, c, quick)
        + claim_rows(rng, c)
        + claim_sequence_rows(rng, 200 if quick else 2000)
        + time_rows(rng, c)
        + time_to_target_rows(rng, heavy, ns=(20,), resamples=200 if quick else 500)
    )


def render(rows: list[Row]) -> str:
    head = ["quantity", "n", "nominal", "achieved", "MC error", "verdict"]
    table = [head] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table)


EPOCH_GRID = (4.0, 6.0, 8.0, 10.0, 12.0)


def _curve(e: float | np.ndarray) -> np.ndarray:
    """Mean accuracy of the weaker variant after e epochs (saturating, like airbench's)."""
    return 0.945 - 0.12 / np.asarray(e, float)


def equivalent_epochs_rows(
    rng: np.random.Generator, campaigns: int, ns: tuple[int, ...] = (5, 10, 20), resamples: int = 500
) -> list[Row]:
    """Epochs the weaker variant needs to match a stronger one's mean (its 8-epoch runs at the weaker
    curve's 9.2-epoch value); seeds shared across cells. Truth: the same interpolation on the true means."""
    grid = np.array(EPOCH_GRID)
    target_mean = float(_curve(9.2))
    truth = float(est.epochs_to_reach(grid, _curve(grid), target_mean))
    rows = []
    for n in ns:
        hit = []
        for _ in range(campaigns):
            seed_effect = rng.normal(0, SEED_SD, n)
            curve = {e: _curve(e) + seed_effect + rng.normal(0, RUN_SD, n) for e in grid}
            target = target_mean + seed_effect + rng.normal(0, RUN_SD, n)
            seeds = {e: np.arange(n) for e in grid}
            eq = est.equivalent_epochs(
                curve,
                target,
                resamples=resamples,
                seed=int(rng.integers(1 << 30)),
                curve_seeds=seeds,
                target_seeds=np.arange(n),
                min_runs=0,
            )
            hit.append(eq.epochs.covers(truth))
        rows.append(
            Row(
                "equivalent epochs (bootstrap over seeds)",
                str(n),
                0.95,
                float(np.mean(hit)),
                campaigns,
                refused=n < est.MIN_RUNS_EQUIVALENT_EPOCHS,
            )
        )
    return rows


# --------------------------------------------------------------------------- claims and time


def claim_rows(rng: np.random.Generator, campaigns: int, ns: tuple[int, ...] = (10, 40)) -> list[Row]:
    """The one-sided fixed-n lower bound of a claim (points): covers the true mean ≥ 95% of the time."""
    rows = []
    for n in ns:
        x = 100 * _runs(rng, campaigns, 1, n)[:, 0]
        hit = [cl.fixed_claim(r, 94.0).lower <= 94.0 for r in x]
        rows.append(
            Row("claim: one-sided lower bound (fixed n, t)", str(n), 0.95, float(np.mean(hit)), campaigns)
        )
    return rows


def claim_sequence_rows(
    rng: np.random.Generator, campaigns: int, rounds: int = 20, per_round: int = 10
) -> list[Row]:
    """A claim exactly at its target (mean 94.00 points, 1% of runs diverged to 10%), its one-sided
    sequence looked at after every round of 10 runs up to 200: "holds" must come in ≤ α of campaigns."""
    n = rounds * per_round
    diverged = rng.random((campaigns, n)) < 0.01
    healthy = (94.0 - 0.01 * 10.0) / 0.99  # so that the mixture's mean is exactly 94.00
    x = np.where(diverged, 10.0, healthy + rng.normal(0, 0.15, (campaigns, n)))
    lower, _ = cl.claim_sequences(np.clip(x, 0, 100), 0.05)
    looks = lower[:, per_round - 1 :: per_round]
    return [
        Row(
            "claim: one-sided sequence, a look every 10 runs (type-I)",
            f"10..{n}",
            0.05,
            float((looks > 94.0).any(1).mean()),
            campaigns,
            AT_MOST,
        )
    ]


def time_rows(rng: np.random.Generator, campaigns: int, ns: tuple[int, ...] = (10, 40)) -> list[Row]:
    """Seconds per run (right-skewed: lognormal, mean 2.5 s, CV 5%): the t-interval of the mean."""
    sigma = np.sqrt(np.log(1 + 0.05**2))
    mu = np.log(2.5) - sigma**2 / 2
    rows = []
    for n in ns:
        x = rng.lognormal(mu, sigma, (campaigns, n))
        hit = [cl.time_summary(r).mean.covers(2.5) for r in x]
        rows.append(Row("time per run: mean (t)", str(n), 0.95, float(np.mean(hit)), campaigns))
    return rows


def time_to_target_rows(
    rng: np.random.Generator, campaigns: int, ns: tuple[int, ...] = (20,), resamples: int = 500
) -> list[Row]:
    """Seconds for a curve like the equivalent-epochs one to reach a fixed target, at 0.3 s per epoch
    with per-run noise; truth: the interpolation on the true means times the true rate."""
    grid = np.array(EPOCH_GRID)
    target = float(_curve(9.2))
    truth = float(est.epochs_to_reach(grid, _curve(grid), target)) * 0.3
    rows = []
    for n in ns:
        hit = []
        for _ in range(campaigns):
            seed_effect = rng.normal(0, SEED_SD, n)
            curve = cl.Curve(
                accuracy={e: _curve(e) + seed_effect + rng.normal(0, RUN_SD, n) for e in grid},
                seeds={e: np.arange(n) for e in grid},
                seconds={e: 0.3 * e * (1 + rng.normal(0, 0.02, n)) for e in grid},
            )
            t = cl.time_to_target(curve, target, resamples=resamples, seed=int(rng.integers(1 << 30)))
            hit.append(t.seconds.covers(truth))
        rows.append(
            Row("time to target (bootstrap over seeds)", str(n), 0.95, float(np.mean(hit)), campaigns)
        )
    return rows
