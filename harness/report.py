"""Write a campaign's ``report.md`` from its store alone: ``python -m harness.report OUT_DIR``.

The page's shared pieces live here, written once: the header (provenance, method versions, data
fingerprints), the per-cell table, the precision section and the failures. Each study adds its
own sections (``studies/<name>.py``), found by name through harness.studies_registry.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

# Analyses multiply small, skinny matrices; OpenBLAS's threads only contend for the cores there (a
# 100 x 10,000 Gram matrix took 0.3 s with threads on a busy 2-core machine, 3 ms with one).
# Effective only when this entry point imports numpy first; set the variable to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import stats, store
from .cli import Parser, fail
from .page import (SMALL_N, ComparisonPrecision, VariancePrecision, ci, markdown_table, n_text, number_figures,
                   pct)
from .studies_registry import find_study

LEVELS = (0, 1, 2)
VERSION_COLUMNS = ("method_version", "data_fingerprint")


@dataclass
class LoadedCampaign:
    """Everything an analysis needs, read back from an output folder.

    ``runs`` holds each (cell, seed) once; ``rows`` maps its rows into ``predictions`` (uint8
    (stored runs, 3, n)), which is shared, never copied whole, so subsets are cheap."""

    out: Path
    manifest: dict
    runs: pd.DataFrame
    predictions: np.ndarray
    rows: np.ndarray
    labels: np.ndarray
    failures: pd.DataFrame
    duplicates: int = 0
    version: str | None = None       # the method version this view is restricted to, if split

    @property
    def figures(self) -> Path:
        return self.out / "figures"

    @property
    def smoke(self) -> bool:
        return self.manifest.get("preset") == "smoke"

    def stamp(self, what: str) -> str:
        """Provenance printed inside every figure: preset (SMOKE in capitals), data, n."""
        preset = "SMOKE preset (tiny CPU configs, not paper numbers)" if self.smoke else \
            f"{self.manifest.get('preset')} preset"
        version = f" · method {self.version}" if self.version else ""
        return f"{preset} · data: {self.manifest.get('data_description')}{version} · {what}"

    def figure_name(self, name: str) -> str:
        return f"{name}_{self.version}" if self.version else name

    def subset(self, mask: np.ndarray, version: str | None = None) -> "LoadedCampaign":
        mask = np.asarray(mask, bool)
        return replace(self, runs=self.runs[mask].reset_index(drop=True), rows=self.rows[mask],
                       version=version if version is not None else self.version)

    def mask(self, **where) -> np.ndarray:
        m = np.ones(len(self.runs), bool)
        for k, v in where.items():
            m &= (self.runs[k] == v).to_numpy()
        return m

    def preds(self, mask: np.ndarray, level: int) -> np.ndarray:
        """uint8 (runs in mask, n): only this subset is copied out of the store's array."""
        return self.predictions[self.rows[np.asarray(mask, bool)], level]

    def correct(self, mask: np.ndarray, level: int) -> np.ndarray:
        return self.preds(mask, level) == self.labels[None, :]

    def chunks(self, mask: np.ndarray, level: int, size: int = 256) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions within the mask, uint8 predictions) in chunks, for statistics built up by
        counting: the subset is never held whole in a wider type."""
        rows = self.rows[np.asarray(mask, bool)]
        for start in range(0, len(rows), size):
            yield np.arange(start, min(start + size, len(rows))), self.predictions[rows[start:start + size], level]


def unique_runs(runs: pd.DataFrame) -> np.ndarray:
    """Positions of the rows to count: each (cell, seed) once per method version, the first by run key."""
    if not len(runs) or not {"cell", "seed"} <= set(runs.columns):
        return np.arange(len(runs))
    order = np.argsort(runs["key"].to_numpy(), kind="stable") if "key" in runs else np.arange(len(runs))
    unit = [c for c in ("method_version", "cell", "seed") if c in runs.columns]
    first = ~runs.iloc[order].duplicated(unit, keep="first").to_numpy()
    return np.sort(order[first])


def campaign_from(out: Path, manifest: dict, runs: pd.DataFrame, predictions: np.ndarray, labels: np.ndarray,
                  failures: pd.DataFrame) -> LoadedCampaign:
    keep = unique_runs(runs)
    return LoadedCampaign(Path(out), manifest, runs.iloc[keep].reset_index(drop=True), predictions, keep,
                          np.asarray(labels), failures, duplicates=len(runs) - len(keep))


def load_campaign(out: str | Path) -> LoadedCampaign:
    out = Path(out)
    manifest = store.read_manifest(out)
    runs, predictions = store.load(out)
    labels = store.load_labels(out)
    if predictions.shape[0] and predictions.shape[2] != len(labels):
        raise store.StoreError(f"{out}: predictions cover {predictions.shape[2]} examples, labels {len(labels)}")
    return campaign_from(out, manifest, runs, predictions, labels, store.load_failures(out))


# ----------------------------------------------------------------------------- shared page pieces

def distinct(runs: pd.DataFrame, column: str) -> list[str]:
    """The distinct values of a record column; ['unknown'] for stores written before it existed."""
    if column not in runs.columns or not len(runs):
        return ["unknown"]
    values = runs[column].fillna("unknown").astype(str)
    return sorted(values.unique())


def header(c: LoadedCampaign) -> str:
    m, runs = c.manifest, c.runs
    devices = ", ".join(sorted(runs["device_name"].astype(str).unique())) if "device_name" in runs and len(runs) \
        else "none yet"
    lines = [f"# {m.get('study')}" + (" — SMOKE preset" if c.smoke else ""), "", m.get("description", ""), "",
             f"- **Data:** {m.get('data_description')} (`{m.get('data_source')}`)"]
    if "JPEG copy" in str(m.get("data_description")):
        lines.append("  - JPEG copy: accuracies run about 3.4 points below real CIFAR-10; comparisons between "
                     "variants remain meaningful, absolute numbers are not CIFAR-10 results.")
    lines += [f"- **Preset:** {m.get('preset')}" + (" — tiny configurations for a CPU; not the study's real "
                                                    "grid, numbers are not comparable to the papers" if c.smoke else ""),
              f"- **Device:** {devices}",
              f"- **Runs:** {len(runs)} finished, {len(c.failures)} failed, {m.get('seeds')} seeds per cell, "
              f"{c.labels.size} test examples each"
              + (f"; {c.duplicates} duplicate (cell, seed) records not counted" if c.duplicates else ""),
              f"- **Method versions:** {', '.join(distinct(runs, 'method_version'))}",
              f"- **Data fingerprints:** {', '.join(distinct(runs, 'data_fingerprint'))}",
              f"- **Code:** {m.get('code_version')}, torch {m.get('torch')}; report written "
              f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
              "- **Pairing:** runs of different cells with the same seed share their initialization, data-order "
              "and augmentation streams, so cells are compared seed by seed (paired t), as are TTA levels of "
              "the same runs; Welch's test only where runs do not pair."]
    return "\n".join(lines)


def cell_order(c: LoadedCampaign) -> list[str]:
    order = [g["label"] for g in c.manifest.get("grid", [])]
    cells = list(dict.fromkeys(c.runs["cell"])) if "cell" in c.runs else []
    return sorted(cells, key=lambda x: order.index(x) if x in order else len(order))


def accuracy_table(c: LoadedCampaign) -> str:
    """Per cell: n, mean accuracy with 95% t-interval at TTA 0 and 2, std with chi-square CI."""
    rows = []
    for cell in cell_order(c):
        part = c.runs[c.runs["cell"] == cell]
        s0, s2 = stats.summarize(part["acc_tta0"]), stats.summarize(part["acc_tta2"])
        rows.append({"cell": cell, "n": n_text(s2.n), "TTA 0 mean % [95% CI]": ci(s0.mean),
                     "TTA 2 mean % [95% CI]": ci(s2.mean),
                     "TTA 2 bootstrap CI": f"[{pct(s2.bootstrap.low)}, {pct(s2.bootstrap.high)}]",
                     "TTA 2 std (pts) [95% CI]": ci(s2.std, 3), "train s/run": f"{part['train_seconds'].mean():.2f}"})
    note = (f"\n\nMeans with Student-t intervals; stds with chi-square intervals. ⚠ marks cells with fewer than "
            f"{SMALL_N} runs, whose intervals are wide and whose p-values deserve little weight."
            if rows else "")
    return "## Accuracy per cell\n\n" + markdown_table(rows) + note


def precision_section(c: LoadedCampaign, notes: list) -> str:
    """What the runs can resolve: per-cell CI half-widths, each comparison's minimum detectable
    difference at 80% power, and what the distribution-wise std's interval allows."""
    cells = []
    for cell in cell_order(c):
        acc = c.runs.loc[c.runs["cell"] == cell, "acc_tta2"].to_numpy()
        m = stats.mean_ci(acc)
        cells.append({"cell": cell, "n": n_text(len(acc)), "TTA 2 CI half-width (pts)": pct(m.half_width, 3),
                      "TTA 2 std (pts)": pct(stats.std_ci(acc).value, 3)})
    parts = ["## Precision: what these runs can resolve",
             "Two-sided α = 0.05. Minimum detectable difference: the true difference a t-test of this size finds "
             "with 80% power, from the observed sd (of per-seed differences when paired).",
             markdown_table(cells)]
    small = [r["cell"] for r in cells if "⚠" in r["n"]]
    if small:
        parts.append(f"**⚠ Fewer than {SMALL_N} runs in {len(small)} cell(s)** ({', '.join(small)}): intervals "
                     "are wide and p-values rest on very few runs; treat every comparison involving them as a "
                     "pilot, not a result.")
    comparisons = [x for x in notes if isinstance(x, ComparisonPrecision)]
    if comparisons:
        parts.append(markdown_table([{"comparison": x.comparison, "n": f"{x.n} {'pairs' if x.paired else 'runs'}",
                                      "sd (pts)": pct(x.sd, 3), "CI half-width (pts)": pct(x.half_width, 3),
                                      "detectable at 80% power (pts)": pct(x.detectable, 3)} for x in comparisons]))
    variances = [x for x in notes if isinstance(x, VariancePrecision)]
    if variances:
        parts.append("Distribution-wise std (Paper B, Eq. 3): runs needed for its interval to exclude 0 if the "
                     "true value were the one observed (and for 80% power to do so), with the standard error "
                     "shrinking as 1/√runs.")
        parts.append(markdown_table([{"where": x.where, "runs": x.runs, "distribution-wise std (pts) [95% CI]":
                                      ci(x.std, 3),
                                      "runs to exclude 0": runs_text(x.runs_to_exclude_zero),
                                      "runs for 80% power": runs_text(x.runs_for_power)} for x in variances]))
    return "\n\n".join(parts)


def runs_text(r: float) -> str:
    if np.isnan(r):
        return "n/a (too few runs)"
    return "never (estimate ≤ 0)" if not np.isfinite(r) else f"{int(r):,}"


def failures_section(c: LoadedCampaign) -> str:
    if c.failures.empty:
        return ""
    rows = [{"cell": r.get("cell"), "seed": r.get("seed"), "error": str(r.get("error"))[:160]}
            for _, r in c.failures.iterrows()]
    return "## Failed runs\n\n" + markdown_table(rows)


def study_blocks(c: LoadedCampaign, study) -> tuple[list[str], list]:
    """The study's own sections, and the precision notes it hands back."""
    sections, notes = [], []
    for block in study.report(c):
        (sections if isinstance(block, str) else notes).append(block)
    return sections, notes


def render_report(c: LoadedCampaign, study) -> str:
    """The whole page. Several method versions in one store: each analysis per version."""
    sections = [header(c)]
    if not len(c.runs):
        sections.append("## No finished runs\n\nNothing to analyse yet: no run of this campaign has finished.")
    else:
        versions = distinct(c.runs, "method_version")
        views = [(None, c)] if len(versions) == 1 else \
            [(v, c.subset(c.runs["method_version"].fillna("unknown").astype(str) == v, v)) for v in versions]
        for version, view in views:
            if version is not None:
                sections.append(f"# Method version {version}\n\nRuns of this method version only: versions are "
                                "never pooled.")
            own, notes = study_blocks(view, study)
            sections += [accuracy_table(view), *own, precision_section(view, notes)]
    sections.append(failures_section(c))
    return number_figures("\n\n".join(s for s in sections if s) + "\n")


def write_report(out: str | Path, study=None) -> Path:
    """Rebuild report.md (and its figures) from the store; written under a temporary name."""
    c = load_campaign(out)
    if study is None:
        from .experiment import from_manifest      # experiment builds on this module: imported when needed
        study = find_study(c.manifest.get("study")) or from_manifest(c.manifest)
        if study is None:
            raise store.StoreError(f"{out}: manifest names unknown study {c.manifest.get('study')!r}")
    text = render_report(c, study)
    path = Path(out) / "report.md"
    store.atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m harness.report", description="Rebuild OUT_DIR/report.md and figures from the store.")
    p.add_argument("out_dir", type=Path, help="a campaign's output folder")
    args = p.parse_args(argv)
    try:
        print(write_report(args.out_dir))
    except store.StoreError as exc:
        return fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
