"""Write a campaign's ``report.md`` from its store alone: ``python -m harness.report OUT_DIR``."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats, store
from .cli import Parser, fail

LEVELS = (0, 1, 2)


@dataclass
class LoadedCampaign:
    """Everything an analysis needs, read back from an output folder."""

    out: Path
    manifest: dict
    runs: pd.DataFrame
    predictions: np.ndarray      # uint8 (runs, 3, n)
    labels: np.ndarray           # (n,)
    failures: pd.DataFrame

    @property
    def figures(self) -> Path:
        return self.out / "figures"

    def correct(self, mask: np.ndarray, level: int) -> np.ndarray:
        return self.predictions[np.asarray(mask), level] == self.labels[None, :]


def load_campaign(out: str | Path) -> LoadedCampaign:
    out = Path(out)
    manifest = store.read_manifest(out)
    runs, predictions = store.load(out)
    labels = store.load_labels(out)
    if predictions.shape[0] and predictions.shape[2] != len(labels):
        raise store.StoreError(f"{out}: predictions cover {predictions.shape[2]} examples, labels {len(labels)}")
    return LoadedCampaign(out, manifest, runs, predictions, labels, store.load_failures(out))


def pct(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f}"


def ci(e: stats.Estimate, digits: int = 2) -> str:
    """'94.01 [93.99, 94.03]' in percentage points."""
    if not np.isfinite(e.low):
        return pct(e.value, digits)
    return f"{pct(e.value, digits)} [{pct(e.low, digits)}, {pct(e.high, digits)}]"


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "_no runs_"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def header(c: LoadedCampaign) -> str:
    m, runs = c.manifest, c.runs
    smoke = m.get("preset") == "smoke"
    devices = ", ".join(sorted(runs["device_name"].unique())) if len(runs) else "none yet"
    lines = [f"# {m['study']}" + (" — SMOKE preset" if smoke else ""), "", m.get("description", ""), "",
             f"- **Data:** {m.get('data_description')} (`{m.get('data_source')}`)"]
    if "JPEG copy" in str(m.get("data_description")):
        lines.append("  - JPEG copy: accuracies run about 3.4 points below real CIFAR-10; comparisons between "
                     "variants remain meaningful, absolute numbers are not CIFAR-10 results.")
    lines += [f"- **Preset:** {m.get('preset')}" + (" — tiny configurations for a CPU; not the study's real "
                                                    "grid, numbers are not comparable to the papers" if smoke else ""),
              f"- **Device:** {devices}",
              f"- **Runs:** {len(runs)} finished, {len(c.failures)} failed, {m.get('seeds')} seeds per cell, "
              f"{c.labels.size} test examples each",
              f"- **Code:** {m.get('code_version')}, torch {m.get('torch')}; report written "
              f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"]
    return "\n".join(lines)


def accuracy_table(c: LoadedCampaign) -> str:
    """Per cell: n, mean accuracy with 95% t-interval at TTA 0 and 2, std, training seconds."""
    rows = []
    order = [g["label"] for g in c.manifest.get("grid", [])]
    for cell in sorted(c.runs["cell"].unique(), key=lambda x: order.index(x) if x in order else len(order)):
        part = c.runs[c.runs["cell"] == cell]
        s0, s2 = stats.summarize(part["acc_tta0"]), stats.summarize(part["acc_tta2"])
        rows.append({"cell": cell, "n": s2.n, "TTA 0 mean % [95% CI]": ci(s0.mean), "TTA 2 mean % [95% CI]": ci(s2.mean),
                     "TTA 2 bootstrap CI": f"[{pct(s2.bootstrap.low)}, {pct(s2.bootstrap.high)}]",
                     "TTA 2 std (pts)": pct(s2.std, 3), "train s/run": f"{part['train_seconds'].mean():.2f}"})
    return "## Accuracy per cell\n\n" + markdown_table(rows)


def failures_section(c: LoadedCampaign) -> str:
    if c.failures.empty:
        return ""
    rows = [{"cell": r["cell"], "seed": r["seed"], "error": str(r["error"])[:160]} for _, r in c.failures.iterrows()]
    return "## Failed runs\n\n" + markdown_table(rows)


def write_report(out: str | Path, study=None) -> Path:
    """Rebuild report.md (and its figures) from the store; written under a temporary name."""
    c = load_campaign(out)
    if study is None:
        from studies import STUDIES
        study = STUDIES.get(c.manifest.get("study"))
        if study is None:
            raise store.StoreError(f"{out}: manifest names unknown study {c.manifest.get('study')!r}")
    sections = [header(c), accuracy_table(c)]
    if len(c.runs):
        sections += study.report(c)
    sections.append(failures_section(c))
    text = "\n\n".join(s for s in sections if s) + "\n"
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
