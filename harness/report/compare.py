"""Compare two campaigns cell by cell (two study folders, or two method versions in one folder or
store); the command line is ``harness.cli.compare``.

Each cell present on both sides is compared at one TTA level, B − A: paired by seed only when the
two sides hold exactly the same seeds for that cell (same seed, same init/order/augmentation
streams), otherwise Welch's test on every run of both sides (pairing the shared seeds alone would
silently drop the other runs: 100 runs a side sharing 3 seeds would be judged on 3 pairs). The means
shown are over exactly the runs the difference uses, and each row says how it was compared.
p-values are Holm-adjusted over the table. The report goes to ``--out`` (default: a folder under
results/compare/).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import stats, store
from harness.report.page import markdown_table, n_text, pct
from harness.report.sections import PAIRING_RULE, Comparison, comparison_table, pairing
from harness.spec.errors import UserError
from harness.stats.text import plain
from harness.store.versions import choose_versions


@dataclass(frozen=True)
class Side:
    name: str  # as the report names it
    runs: pd.DataFrame  # one row per (cell, seed): cell, seed, acc_tta0..2
    store: Path | None = None  # the store its runs are read from (None: not known)


def cell_labels(runs: pd.DataFrame, folder: Path) -> pd.Series:
    """A study folder's rows carry its own cell labels; a store's rows are named by the study that
    trained them, so the same config trained by two studies stays two cells."""
    if (folder / "store.json").exists():
        return runs["study"].astype(str) + ": " + runs["cell"].astype(str)
    return runs["cell"].astype(str)


def store_of(folder: Path) -> Path:
    """The store a folder's runs live in: a study folder's own store, else the folder itself."""
    manifest = folder / "manifest.json"
    if manifest.exists():
        m = store.read_manifest(folder)
        if "store" in m:
            return store.store_path(folder, m)
    return folder.resolve()


def side(runs: pd.DataFrame, folder: Path, name: str) -> Side:
    runs = runs.assign(cell=cell_labels(runs, folder)).drop_duplicates(["cell", "seed"], keep="first")
    return Side(name, runs.reset_index(drop=True), store_of(folder))


def load_sides(folders: list[Path], versions: list[str] | None) -> tuple[Side, Side]:
    for f in folders:
        if not f.is_dir():
            raise UserError(f"{f}: no such folder (give two study folders, or one folder with --versions)")
        store.check_source(f)
    if versions:
        if len(folders) != 1:
            raise UserError("--versions compares two method versions inside one folder: give one folder")
        runs = store.read_records(folders[0])
        have = sorted(runs["method_version"].dropna().astype(str).unique()) if len(runs) else []
        for v in versions:
            if v not in have:
                raise UserError(
                    f"{folders[0]}: no runs of method version {v!r} (it holds: {', '.join(have) or 'none'})"
                )
        a, b = (
            side(runs[runs["method_version"].astype(str) == v], folders[0], f"version {v}") for v in versions
        )
        return a, b
    if len(folders) != 2:
        raise UserError("give two study folders A B, or one folder with --versions V1 V2")
    a, b = (side(current_runs(f), f, str(f)) for f in folders)
    return a, b


def current_runs(folder: Path) -> pd.DataFrame:
    """A folder's records; a study folder's of one version per method, the current one (as its
    report counts them), so a side never mixes an edited method's old and new runs."""
    runs = store.read_records(folder)
    if not (folder / "manifest.json").exists():
        return runs
    return runs[choose_versions(runs, store.read_manifest(folder)).mask].reset_index(drop=True)


def shared_runs(a: Side, b: Side) -> dict[str, tuple[int, int, int]]:
    """Cells whose two sides read stored runs in common (two study folders on one store, whose runs
    of one config and seed are one stored run), as cell -> (shared, runs in A, runs in B): those are
    not two samples, so they get no test."""
    if "key" not in a.runs or "key" not in b.runs:
        return {}
    if a.store is not None and b.store is not None and a.store != b.store:
        return {}  # two stores: runs of one key in each were trained (or copied) apart
    out = {}
    for cell in [c for c in dict.fromkeys(a.runs["cell"]) if c in set(b.runs["cell"])]:
        ka = set(a.runs.loc[a.runs["cell"] == cell, "key"].dropna())
        kb = set(b.runs.loc[b.runs["cell"] == cell, "key"].dropna())
        if ka & kb:
            out[cell] = (len(ka & kb), len(ka), len(kb))
    return out


def same_runs_text(shared: dict[str, tuple[int, int, int]]) -> str:
    """The report's line for cells that read the same stored runs on both sides."""
    if not shared:
        return ""
    parts = [
        f"{cell}: the same runs ({k} stored runs read by both sides)"
        if k == na == nb
        else f"{cell}: {k} of its {na} + {nb} runs are the same stored runs on both sides"
        for cell, (k, na, nb) in shared.items()
    ]
    return (
        "**The same runs, no test:** "
        + "; ".join(parts)
        + ". A run read by both sides is not an independent "
        "sample of each, so these cells are not compared."
    )


def compare_cells(a: Side, b: Side, level: int) -> list[Comparison]:
    """Every cell both sides hold, B − A, except those that read the same stored runs (shared_runs)."""
    column = f"acc_tta{level}"
    out = []
    shared = shared_runs(a, b)
    for cell in [c for c in dict.fromkeys(a.runs["cell"]) if c in set(b.runs["cell"]) and c not in shared]:
        xa = a.runs.loc[a.runs["cell"] == cell, ["seed", column]].sort_values("seed")
        xb = b.runs.loc[b.runs["cell"] == cell, ["seed", column]].sort_values("seed")
        is_paired, how = pairing(xa["seed"], xb["seed"])
        if is_paired and len(xa) >= 2:
            result = stats.paired(xb[column].to_numpy(), xa[column].to_numpy())
        elif len(xa) >= 2 and len(xb) >= 2:
            result = stats.welch(xb[column].to_numpy(), xa[column].to_numpy())
        else:
            continue
        # every run of each side is in the difference (paired: the same seeds on both), so the means are too
        out.append(
            Comparison(
                {
                    "cell": cell,
                    "A mean %": pct(xa[column].mean()),
                    "B mean %": pct(xb[column].mean()),
                    "how": how,
                },
                f"{cell}: B − A",
                result,
            )
        )
    return out


def forest_figure(out: Path, a: Side, b: Side, level: int, comparisons: list[Comparison]) -> str:
    """B − A per cell with its 95% CI, one row per cell; the figure's markdown with its caption."""
    from harness.report import figures
    from harness.report.page import figure_block

    figures.reset_colours()
    rows = pd.DataFrame(
        [
            {
                "label": comp.labels["cell"],
                "diff": 100 * comp.result.diff.value,
                "low": 100 * comp.result.diff.low,
                "high": 100 * comp.result.diff.high,
            }
            for comp in comparisons
        ]
    )
    n = min(comp.result.n for comp in comparisons)
    path = figures.forest(
        rows,
        out / "figures",
        "compare_forest",
        f"B − A per cell (TTA {level})",
        f"A: {a.name} · B: {b.name} · n ≥ {n} per cell",
        "B − A (points, 95% CI)",
    )
    return figure_block(
        path,
        f"B − A in TTA-{level} accuracy (points) for every cell both sides hold, with its "
        f"95% interval (unadjusted; {PAIRING_RULE}); "
        "zero line in black.",
    )


def render(a: Side, b: Side, level: int, comparisons: list[Comparison], figure: str | None = None) -> str:
    only_a = sorted(set(a.runs["cell"]) - set(b.runs["cell"]))
    only_b = sorted(set(b.runs["cell"]) - set(a.runs["cell"]))
    lines = [
        "# Comparison: B − A",
        "",
        f"- **A:** {plain(a.name)} ({len(a.runs)} runs)",
        f"- **B:** {plain(b.name)} ({len(b.runs)} runs)",
        f"- **Accuracy:** TTA level {level}, differences in points, B − A; paired by seed only where the "
        "two sides hold exactly the same seeds for a cell, otherwise Welch's test on every run of both sides "
        "(each row says which); the means are over exactly the runs the difference uses.",
        "",
    ]
    if comparisons:
        blocks = comparison_table(comparisons, family=f"every cell held by both sides, TTA {level}")
        lines.append(blocks[0])
        if figure:
            lines += ["", figure.replace("*Figure: ", "*Figure 1: ")]
        lines += [
            "",
            "Per-cell precision: the smallest true difference each comparison detects with 80% power.",
            "",
            markdown_table(
                [
                    {
                        "comparison": p.comparison,
                        "n": n_text(p.n),
                        "CI half-width (pts)": f"{100 * p.half_width:.3f}",
                        "detectable at 80% power (pts)": f"{100 * p.detectable:.3f}",
                    }
                    for p in blocks[1:]
                ]
            ),
        ]
    else:
        lines.append("No cell has at least two independent runs on both sides: nothing to compare.")
    same = same_runs_text(shared_runs(a, b))
    if same:
        lines += ["", same]
    for label, cells in (("Only in A", only_a), ("Only in B", only_b)):
        if cells:
            lines += ["", f"**{label}:** " + plain(", ".join(cells))]
    return "\n".join(lines) + "\n"


def default_out(a: Side, b: Side) -> Path:
    def slug(text: str) -> str:
        return "".join(ch if ch.isalnum() else "_" for ch in Path(text).name or text).strip("_")[:40]

    return Path("results") / "compare" / f"{slug(a.name)}-vs-{slug(b.name)}"
