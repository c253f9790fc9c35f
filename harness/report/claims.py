"""Claims and time read from a frame of runs: the verdict in the field's own words, time per GPU
model, time comparisons, and the accuracy-against-seconds table and figure.

Used by ``harness.claim`` (any store or study folder, imported runs included) and by a study file's
report when it has a ``[claim]`` table. Times are never pooled across device models: every time
row is one model (``cpu: <model>`` for CPU runs), and each worker's first run (its warm-up:
compilation, caches, cuDNN's autotuning) is left out unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.page import markdown_table
from harness.spec.claim import ClaimSpec
from harness.stats import claims as cs
from harness.stats.estimators import Estimate, isotonic_rows, paired, welch
from harness.store.scale import ACCURACY_SCALE, accuracy_points  # noqa: F401  (ACCURACY_SCALE: re-exported)

NAN = float("nan")
FIXED, ADAPTIVE, BOTH = "fixed", "adaptive", "both"  # which readings of a claim are valid


def run_seconds(runs: pd.DataFrame) -> np.ndarray:
    """The paper's timer per run: train_seconds + eval_seconds (whitening, training, final TTA)."""
    if "train_seconds" not in runs or not len(runs):
        return np.full(len(runs), np.nan)
    train = pd.to_numeric(runs["train_seconds"], errors="coerce").to_numpy(float)
    evals = (
        pd.to_numeric(runs["eval_seconds"], errors="coerce").fillna(0.0).to_numpy(float)
        if "eval_seconds" in runs
        else 0.0
    )
    return train + evals


def device_models(runs: pd.DataFrame) -> pd.Series:
    """Each run's device model: the recorded one, else the device name (older runs), CPU runs as
    "cpu: <model>" ("cpu: unknown model" before models were recorded)."""
    names = (
        runs["device_name"].astype("object").where(runs["device_name"].notna(), "unknown")
        if "device_name" in runs
        else pd.Series("unknown", index=runs.index, dtype="object")
    )
    names = names.astype(str).where(names.astype(str).str.lower() != "cpu", "cpu: unknown model")
    if "device_model" in runs:
        model = runs["device_model"]
        return model.where(model.notna() & (model.astype(str) != ""), names).astype(str)
    return names


def warmups(runs: pd.DataFrame) -> np.ndarray:
    """Runs from a worker's first call (flagged by the worker; older runs are not flagged)."""
    if "warmup" not in runs or not len(runs):
        return np.zeros(len(runs), bool)
    return runs["warmup"].astype("boolean").fillna(False).to_numpy(bool)


def seeds_of(runs: pd.DataFrame) -> np.ndarray | None:
    """The runs' seeds, or None when some have none (imported unseeded runs)."""
    if "seed" not in runs or not len(runs):
        return None
    seeds = pd.to_numeric(runs["seed"], errors="coerce")
    return None if seeds.isna().any() else seeds.to_numpy(np.int64)


def _fmt(e: Estimate, digits: int = 2) -> str:
    return f"[{e.low:.{digits}f}, {e.high:.{digits}f}]" if np.isfinite(e.low) else "[n too small]"


# --------------------------------------------------------------------------- time


@dataclass(frozen=True)
class TimeRow:
    label: str
    model: str
    summary: cs.TimeSummary
    warmup_excluded: int


def time_rows(runs: pd.DataFrame, by: str = "cell", include_warmup: bool = False) -> list[TimeRow]:
    """Seconds per run for each (``by`` value, device model), warm-up runs left out by default."""
    if not len(runs):
        return []
    secs = run_seconds(runs)
    models = device_models(runs).to_numpy()
    labels = np.asarray(runs[by].astype(str)) if by in runs else np.full(len(runs), "runs")
    warm = warmups(runs)
    rows = []
    for label in dict.fromkeys(labels):
        for model in dict.fromkeys(models[labels == label]):
            mask = (labels == label) & (models == model) & np.isfinite(secs)
            keep = mask if include_warmup else mask & ~warm
            if keep.any():
                rows.append(
                    TimeRow(
                        label,
                        model,
                        cs.time_summary(secs[keep]),
                        int((mask & warm).sum()) if not include_warmup else 0,
                    )
                )
    return rows


def time_table(rows: list[TimeRow]) -> str:
    return markdown_table(
        [
            {
                "cell": r.label,
                "device model": r.model,
                "n": r.summary.n,
                "mean s/run [95% CI]": f"{r.summary.mean.value:.4g} [{r.summary.mean.low:.4g}, {r.summary.mean.high:.4g}]",
                "sd (s)": f"{r.summary.sd:.3g}",
                "CV": f"{100 * r.summary.cv:.1f}%" if np.isfinite(r.summary.cv) else "n/a",
                "warm-up runs left out": r.warmup_excluded,
            }
            for r in rows
        ]
    )


def time_section(runs: pd.DataFrame, baseline: str | None = None, include_warmup: bool = False) -> str:
    """Seconds per run per cell and device model, and each cell against ``baseline`` on one model."""
    rows = time_rows(runs, include_warmup=include_warmup)
    if not rows:
        return "## Time per run\n\nNo run recorded its seconds."
    warm = sum(r.warmup_excluded for r in rows)
    text = (
        "## Time per run\n\nSeconds per run = train_seconds + eval_seconds (whitening, training and the "
        "final TTA evaluation: the paper's timer), per cell and device model, never pooled across "
        "models. "
        + (
            f"Each worker's first run (warm-up: compilation, caches) is left out: {warm} runs."
            if warm
            else "No run here is a worker's first (warm-up) run, or none was flagged."
        )
        + "\n\n"
        + time_table(rows)
    )
    comparisons = time_comparison_rows(runs, baseline, include_warmup) if baseline else []
    if comparisons:
        text += (
            f"\n\nAgainst {baseline} on the same device model (paired by seed where the seeds match, "
            "Welch otherwise):\n\n" + markdown_table(comparisons)
        )
    return text


def _kept(runs: pd.DataFrame, include_warmup: bool) -> pd.DataFrame:
    return runs if include_warmup else runs[~warmups(runs)]


def time_comparison_rows(runs: pd.DataFrame, baseline: str, include_warmup: bool = False) -> list[dict]:
    runs = _kept(runs, include_warmup)
    models = device_models(runs)
    out = []
    for model in dict.fromkeys(models):
        here = runs[(models == model).to_numpy()]
        base = here[here["cell"].astype(str) == baseline]
        if len(base) < 2:
            continue
        for cell in dict.fromkeys(here["cell"].astype(str)):
            if cell == baseline:
                continue
            other = here[here["cell"].astype(str) == cell]
            if len(other) < 2:
                continue
            c = cs.time_comparison(run_seconds(other), run_seconds(base), seeds_of(other), seeds_of(base))
            out.append(
                {
                    "cell": cell,
                    "device model": model,
                    "difference s [95% CI]": f"{c.difference.diff.value:+.3f} {_fmt(c.difference.diff, 3)}",
                    "ratio [95% CI]": f"{c.ratio.value:.3f}× {_fmt(c.ratio, 3)}",
                    "test": f"paired, {c.difference.n} pairs" if c.paired else "Welch (seeds differ)",
                }
            )
    return out


# --------------------------------------------------------------------------- accuracy against seconds


def accuracy_seconds_frame(
    runs: pd.DataFrame, level: int = 2, by: str = "cell", include_warmup: bool = False
) -> pd.DataFrame:
    """One row per (``by`` value, device model): accuracy and seconds, each with its 95% CI."""
    runs = _kept(runs, include_warmup)
    if not len(runs):
        return pd.DataFrame(
            columns=["label", "model", "n", "acc", "acc_low", "acc_high", "sec", "sec_low", "sec_high"]
        )
    acc, secs = accuracy_points(runs, level), run_seconds(runs)
    models = device_models(runs).to_numpy()
    labels = runs[by].astype(str).to_numpy()
    rows = []
    for label in dict.fromkeys(labels):
        for model in dict.fromkeys(models[labels == label]):
            mask = (labels == label) & (models == model) & np.isfinite(acc) & np.isfinite(secs)
            if not mask.any():
                continue
            a, s = cs.time_summary(acc[mask]).mean, cs.time_summary(secs[mask]).mean
            rows.append(
                dict(
                    label=label,
                    model=model,
                    n=int(mask.sum()),
                    acc=a.value,
                    acc_low=a.low,
                    acc_high=a.high,
                    sec=s.value,
                    sec_low=s.low,
                    sec_high=s.high,
                )
            )
    return pd.DataFrame(rows)


def accuracy_seconds_table(frame: pd.DataFrame, level: int = 2, adaptive: bool = False) -> str:
    """Accuracy and seconds per cell and device model; after adaptive stopping the accuracy's mean
    only (a t-interval read after stopping is not valid: the verdict's sequence is)."""
    return markdown_table(
        [
            {
                "cell": r["label"],
                "device model": r["model"],
                "n": int(r["n"]),
                f"TTA-{level} accuracy %" + ("" if adaptive else " [95% CI]"): f"{r['acc']:.2f}"
                + ("" if adaptive else f" {_fmt(Estimate(r['acc'], r['acc_low'], r['acc_high']))}"),
                "seconds per run [95% CI]": f"{r['sec']:.4g} [{r['sec_low']:.4g}, {r['sec_high']:.4g}]",
            }
            for _, r in frame.iterrows()
        ]
    )


def accuracy_seconds_figure(
    frame: pd.DataFrame,
    folder: Path,
    name: str,
    stamp: str,
    spec: ClaimSpec | None,
    level: int = 2,
    adaptive: bool = False,
) -> str:
    from harness.report import figures
    from harness.report.page import figure_block

    path = figures.accuracy_vs_seconds(
        frame,
        folder,
        name,
        f"TTA-{level} accuracy against seconds per run",
        stamp,
        target=spec.accuracy if spec else None,
        seconds=spec.seconds if spec else None,
    )
    return figure_block(
        path,
        (
            f"Mean TTA-{level} accuracy (no interval: runs were added until decided, so a fixed-n interval "
            "is not valid; the verdict's sequence is) against mean seconds per run (train + eval) with "
            "their 95% interval"
            if adaptive
            else f"Mean TTA-{level} accuracy against mean seconds per run (train + eval), each with its "
            "95% t-interval"
        )
        + ", one point per cell and one panel per device model. Warm-up runs left out"
        + (f"; dashed: the claimed {spec.accuracy:g}%" if spec else "")
        + (f"; dotted: the time to beat, {spec.seconds:g} s" if spec and spec.seconds else "")
        + ".",
    )


# --------------------------------------------------------------------------- the claim


@dataclass(frozen=True)
class ClaimVerdict:
    """What a claim says, in lines; ``outcome``: holds, fails or undecided (by the valid reading)."""

    lines: list[str]
    outcome: str
    fixed: cs.FixedClaim | None
    sequence: cs.SequentialClaim | None

    def text(self) -> str:
        return "\n".join(self.lines)


def _time_line(secs: np.ndarray, model: str, spec: ClaimSpec, reading: str) -> str:
    t = cs.time_summary(secs)
    half = t.mean.half_width
    line = (
        f"{t.mean.value:.3g} s ± {half:.2g} (95% CI) per run (train + eval) on {model}, n = {t.n}"
        if np.isfinite(half)
        else f"{t.mean.value:.3g} s per run (train + eval) on {model}, n = {t.n}"
    )
    if spec.seconds is None or t.n < 2 or not t.sd > 0:
        return line
    from scipy import stats as st

    p = max(float(st.ttest_1samp(secs, spec.seconds, alternative="less").pvalue), 1e-300)
    upper = t.mean.value + float(st.t.ppf(1 - spec.alpha, t.n - 1)) * t.sd / np.sqrt(t.n)
    beats = "beats" if upper < spec.seconds else "does not beat"
    tail = (
        f'; one-sided p {"< 1e-300" if p <= 1e-300 else f"= {p:.3g}"} against "mean ≥ {spec.seconds:g} s"'
        if reading != ADAPTIVE
        else ""
    )
    return f"{line}; upper bound {upper:.3g} s: {beats} {spec.seconds:g} s{tail}"


def claim_verdict(
    claimed: pd.DataFrame,
    spec: ClaimSpec,
    reading: str = BOTH,
    rule: cs.ClaimRule | None = None,
    reference: pd.DataFrame | None = None,
    include_warmup: bool = False,
) -> ClaimVerdict:
    """The claim about ``claimed`` (its runs in seed order, then store order), in the readings that
    are valid for how the runs were collected: ``fixed`` (seeds fixed in advance), ``adaptive``
    (added until decided: the sequence only; a fixed-n p-value is never printed), ``both``
    (imported or unknown: both, each saying when it is valid)."""
    if "seed" in claimed and seeds_of(claimed) is not None:
        claimed = claimed.sort_values("seed", kind="stable")
    acc = accuracy_points(claimed, spec.tta_level)
    acc = acc[np.isfinite(acc)]
    pct = "%"
    lines = [f"claim: {spec.statement()}"]
    if not len(acc):
        return ClaimVerdict(lines + [f"no runs with TTA-{spec.tta_level} accuracy"], cs.UNDECIDED, None, None)
    fixed = cs.fixed_claim(acc, spec.accuracy, spec.alpha) if reading != ADAPTIVE else None
    rule = rule or cs.ClaimRule(spec.alpha, 1, len(acc))  # runs already collected: no more will come
    seq = rule.decide(acc, spec.accuracy) if reading != FIXED else None
    used = acc[: seq.n] if reading == ADAPTIVE and seq is not None else acc  # the runs the decision used
    ci = cs.time_summary(used).mean
    head = f"mean {used.mean():.2f}{pct} (95% CI {_fmt(ci)}) over n = {len(used)} runs"
    if fixed is not None:
        valid = " (valid if the number of runs was fixed in advance)" if reading == BOTH else ""
        p = (
            ("< 1e-300" if fixed.p == 0 else f"{fixed.p:.3g}")
            if np.isfinite(fixed.p)
            else "n/a (fewer than 2 distinct runs)"
        )
        lines.append(
            f'fixed-n{valid}: {head}; one-sided p = {p} against "mean ≤ {spec.accuracy:.2f}{pct}"; '
            f"{100 * (1 - spec.alpha):g}% lower bound {fixed.lower:.2f}{pct}: "
            + ("holds" if fixed.holds else f"does not hold at α = {spec.alpha:g}")
        )
    if seq is not None:
        valid = " (valid however the runs were collected)" if reading == BOTH else ""
        lines.append(
            f"anytime-valid{valid}: {head if fixed is None else f'after n = {seq.n} runs'}; "
            f"{100 * (1 - spec.alpha):g}% one-sided confidence sequences: lower {seq.lower:.2f}{pct}, "
            f"upper {seq.upper:.2f}{pct}: {seq.outcome}"
            + (f" at n = {seq.n}" if seq.outcome in (cs.HOLDS, cs.FAILS) else "")
        )
    if fixed is not None and seq is not None and (fixed.holds != (seq.outcome == cs.HOLDS)):
        lines.append(
            "the two readings disagree: near the target the anytime-valid sequence needs more runs; "
            "trust the fixed-n reading only if the number of runs was fixed before looking"
        )
    timed = _kept(claimed, include_warmup)
    secs, models = run_seconds(timed), device_models(timed).to_numpy()
    for model in dict.fromkeys(models[np.isfinite(secs)]):
        lines.append("time: " + _time_line(secs[(models == model) & np.isfinite(secs)], model, spec, reading))
    warm = int(warmups(claimed).sum())
    if warm and not include_warmup:
        lines.append(f"({warm} warm-up runs, each a worker's first, left out of the times)")
    if reference is not None:
        lines += reference_lines(claimed, reference, spec, include_warmup)
    if seq is not None:
        outcome = seq.outcome
    else:
        outcome = cs.HOLDS if fixed is not None and fixed.holds else cs.UNDECIDED
    return ClaimVerdict(lines, outcome, fixed, seq)


def reference_lines(
    claimed: pd.DataFrame, reference: pd.DataFrame, spec: ClaimSpec, include_warmup: bool = False
) -> list[str]:
    """Against the reference method on each GPU model both ran on: accuracy difference and time ratio."""
    if not len(reference):
        return [f"reference {spec.reference}: no runs of it in reach"]
    a, b = _kept(claimed, include_warmup), _kept(reference, include_warmup)
    ma, mb = device_models(a).to_numpy(), device_models(b).to_numpy()
    lines = []
    shared = [m for m in dict.fromkeys(ma) if m in set(mb)]
    if not shared:
        return [
            f"reference {spec.reference}: no runs on the same device model ({', '.join(dict.fromkeys(mb))})"
        ]
    for model in shared:
        x, y = a[ma == model], b[mb == model]
        ax, ay = accuracy_points(x, spec.tta_level), accuracy_points(y, spec.tta_level)
        sx, sy = seeds_of(x), seeds_of(y)
        if (
            sx is not None
            and sy is not None
            and len(sx) == len(sy)
            and np.array_equal(np.sort(sx), np.sort(sy))
        ):
            matched, d = True, paired(ax[np.argsort(sx)], ay[np.argsort(sy)])
        else:
            matched, d = False, welch(ax, ay)
        how = f"paired by seed, {d.n} pairs" if matched else "Welch: runs do not pair by seed"
        text = (
            f"reference {spec.reference} on {model}: accuracy {d.diff.value:+.3f} points {_fmt(d.diff, 3)} "
            f"(p = {d.p:.3g}, {how})"
        )
        tx, ty = run_seconds(x), run_seconds(y)
        if np.isfinite(tx).sum() >= 2 and np.isfinite(ty).sum() >= 2:
            c = cs.time_comparison(tx, ty, sx, sy)
            text += f"; time {c.ratio.value:.3f}× {_fmt(c.ratio, 3)} of the reference's"
        lines.append(text)
    return lines


# --------------------------------------------------------------------------- time to target

PAPER_TARGET = 94.0  # the paper's headline accuracy (TTA 2), the default target


def curve_of(runs: pd.DataFrame, level: int = 2) -> cs.Curve:
    """One method's (or flip mode's) runs over its grid of epochs, in points and seconds."""
    acc, secs = accuracy_points(runs, level), run_seconds(runs)
    epochs = runs["epochs"].astype(float).to_numpy()
    seeds = runs["seed"].astype(int).to_numpy()
    grid = sorted(set(epochs.tolist()))
    return cs.Curve(
        accuracy={e: acc[epochs == e] for e in grid},
        seeds={e: seeds[epochs == e] for e in grid},
        seconds={e: secs[epochs == e] for e in grid},
    )


def reachable_target(curves: dict[str, cs.Curve], wanted: float) -> tuple[float, str]:
    """``wanted`` when every curve's best mean reaches it; else a target inside every curve's grid:
    midway between the highest first-length mean and the lowest best mean (0.1 points), and why."""
    means = {  # each mode's curve as time to target reads it: made monotone (isotonic fit)
        name: isotonic_rows(
            np.array([float(np.mean(np.asarray(c.accuracy[e]))) for e in c.epochs]), c.sizes()
        )[0]
        for name, c in curves.items()
    }
    top = min(float(m[-1]) for m in means.values())
    if top >= wanted:
        return wanted, f"target {wanted:g}% (the paper's TTA-2 accuracy)"
    first = max(float(m[0]) for m in means.values())
    why = (
        f"these runs cannot reach {wanted:g}% (the lowest best mean of a mode is {top:.2f}%: a smoke "
        "preset, the JPEG copy or too short a grid)"
    )
    if first < top:
        used = float(np.round((first + top) / 2, 1))
        return used, f"target {used:g}%: {why}, so the target lies midway between the highest " + (
            "first-length mean and that, inside every mode's grid"
        )
    used = float(np.floor(top * 10) / 10)
    return used, (
        f"target {used:g}%: {why}, and no target lies inside every mode's grid (a mode's first length "
        f"already scores {first:.2f}%), so the target is that lowest best mean"
    )


def _bound(e: Estimate, digits: int = 2, unit: str = "") -> str:
    if not np.isfinite(e.value):
        return "before the grid" if e.value < 0 else "beyond the grid"
    if not (np.isfinite(e.low) or np.isfinite(e.high)) and np.isnan(e.low):
        return f"{e.value:.{digits}f}{unit} [n too small]"
    low = f"{e.low:.{digits}f}" if np.isfinite(e.low) else "−∞"
    high = f"{e.high:.{digits}f}" if np.isfinite(e.high) else "∞"
    return f"{e.value:.{digits}f}{unit} [{low}, {high}]"


def time_to_target_section(
    runs: pd.DataFrame,
    by: str,
    order: list[str],
    level: int = 2,
    wanted: float = PAPER_TARGET,
    resamples: int = 1000,
    min_runs: int = 20,
) -> str:
    """Per device model: epochs and seconds each ``by`` value (flip mode, method) needs to reach the
    target, and the first against the second as a ratio of seconds with its bootstrap interval."""
    runs = runs[~warmups(runs)]
    if not len(runs) or "epochs" not in runs:
        return ""
    models = device_models(runs)
    text = [
        f"## Time to target (TTA {level})\n\nThe training length at which a mode's mean accuracy reaches the "
        "target (its curve made monotone and interpolated in log-epochs, as for equivalent epochs) times "
        "its measured seconds per epoch (train + eval seconds / epochs, over all its runs); 95% bootstrap "
        "intervals over seeds, resampled jointly across modes and lengths; ±∞: the bootstrap left the grid. "
        f"Per device model; warm-up runs left out. Below {min_runs} runs per cell the interval is "
        "'n too small'."
    ]
    for model in dict.fromkeys(models):
        here = runs[(models == model).to_numpy()]
        names = [m for m in order if (here[by].astype(str) == m).any()]
        curves = {m: curve_of(here[(here[by].astype(str) == m).to_numpy()], level) for m in names}
        curves = {m: c for m, c in curves.items() if len(c.epochs) >= 2}
        if not curves:
            continue
        target, why = reachable_target(curves, wanted)
        small = min(len(np.asarray(c.accuracy[e])) for c in curves.values() for e in c.epochs) < min_runs
        rows = []
        for name, c in curves.items():
            t = cs.time_to_target(c, target, resamples=resamples)
            ep, sec = (
                (t.epochs, t.seconds)
                if not small
                else (Estimate(t.epochs.value, NAN, NAN), Estimate(t.seconds.value, NAN, NAN))
            )
            rows.append(
                {
                    by: name,
                    "epochs to target [95% CI]": _bound(ep),
                    "seconds per epoch": f"{t.seconds_per_epoch:.4g}",
                    "seconds to target [95% CI]": _bound(sec, 3),
                }
            )
        text.append(f"**{model}**, {why}.\n\n{markdown_table(rows)}")
        if len(curves) >= 2:
            (a, ca), (b, cb) = list(curves.items())[:2]
            r = cs.time_to_target_ratio(ca, cb, target, resamples=resamples)
            if small:
                r = Estimate(r.value, NAN, NAN)
            text.append(
                f"{a} reaches {target:g}% in {_bound(r, 2, '×')} the time of {b} on {model}."
                if np.isfinite(r.value)
                else f"{a} against {b}: no ratio, a curve does not reach {target:g}% on the grid."
            )
    return "\n\n".join(text)
