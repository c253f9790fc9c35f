"""Write a campaign's ``report.md`` from its store alone.

The page's shared pieces live here, written once: the header (provenance, method versions, data
fingerprints), the per-cell table, the precision section and the failures. Each study adds its
own sections (``studies/<name>.py``), found by name through ``harness.spec.studies``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from harness import stats, store
from harness.report.campaign import (
    LoadedCampaign,
    cell_order,
    distinct,
    identity_views,
    load_campaign,
    versions_line,
)
from harness.report.page import (
    SMALL_N,
    Block,
    ComparisonPrecision,
    VariancePrecision,
    ci,
    markdown_table,
    n_text,
    number_figures,
    pct,
)
from harness.report.sections import PAIRING_RULE
from harness.spec.studies import find_study
from harness.stats.robust import K_DIVERGED, MIN_RUNS_DIVERGED, Diverged, diverged
from harness.stats.text import code, one_line, plain


def fmt3(values: list) -> str:
    return "(" + ", ".join(f"{float(v):.4f}" for v in values) + ")"


def header(c: LoadedCampaign) -> str:
    m, runs = c.manifest, c.runs
    devices = (
        ", ".join(sorted(runs["device_name"].astype(str).unique()))
        if "device_name" in runs and len(runs)
        else "none yet"
    )
    lines = [
        f"# {plain(m.get('study'))} — {plain(c.data_name)}" + (" — SMOKE preset" if c.smoke else ""),
        "",
        plain(m.get("description", "")),
        "",
        f"- **Data:** {plain(c.data_name)} (`{code(m.get('data_source'))}`)"
        + (
            f"; inputs normalised with the training set's per-channel mean {fmt3(m['data_mean'])} "
            f"and std {fmt3(m['data_std'])}"
            if m.get("data_mean") and m.get("data_std")
            else ""
        ),
    ]
    if "JPEG copy" in str(m.get("data_description")):
        lines.append(
            "  - JPEG copy: accuracies run about 3.4 points below real CIFAR-10; comparisons between "
            "variants remain meaningful, absolute numbers are not CIFAR-10 results."
        )
    lines += [
        f"- **Preset:** {plain(m.get('preset'))}"
        + (
            " — tiny configurations for a CPU; not the study's real "
            "grid, numbers are not comparable to the papers"
            if c.smoke
            else ""
        ),
        f"- **Device:** {devices}",
        f"- **Runs:** {len(runs)} finished, {len(c.failures)} failed, {plain(m.get('seeds'))} seeds per cell, "
        f"{c.labels.size} test examples each"
        + (f"; {c.duplicates} duplicate (cell, seed) records not counted" if c.duplicates else ""),
        f"- **Method versions:** {plain(versions_line(c))}",
        f"- **Data fingerprints:** {plain(', '.join(distinct(runs, 'data_fingerprint')))}",
        f"- **Code:** {plain(m.get('code_version'))}, torch {plain(m.get('torch'))}; report written "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "- **Pairing:** runs of different cells with the same seed share their initialization, data-order "
        f"and augmentation streams; comparisons use {PAIRING_RULE} (TTA levels of the same runs always pair).",
    ]
    return "\n".join(lines)


def diverged_runs(c: LoadedCampaign) -> dict[str, Diverged]:
    """Per cell, its runs flagged diverged on TTA-2 accuracy (points), by seed."""
    out = {}
    for cell in cell_order(c):
        part = c.runs[c.runs["cell"] == cell]
        out[cell] = diverged(100 * part["acc_tta2"].to_numpy(), part["seed"].to_numpy())
    return out


def diverged_note(flagged: dict[str, Diverged]) -> str:
    """How many runs were flagged diverged and which, per cell; or that none was."""
    rule = (
        f"a run more than {K_DIVERGED:g} robust sds (1.4826 · MAD) below its cell's median TTA-2 accuracy, "
        f"in cells of at least {MIN_RUNS_DIVERGED} runs"
    )
    lines = [f"- {cell}: {d.note()}" for cell, d in flagged.items() if d.count]
    if not lines:
        return f"No run was flagged as diverged ({rule})."
    total = sum(d.count for d in flagged.values())
    return (
        f"**{total} diverged run{'s' if total > 1 else ''}** ({rule}): left out of the per-cell intervals and "
        "comparisons above, and named here; the runs stay in the store and in the campaign's counts.\n\n"
        + "\n".join(lines)
    )


def accuracy_table(c: LoadedCampaign) -> str:
    """Per cell: n, mean accuracy with 95% t-interval at TTA 0 and 2, std with chi-square CI; runs
    flagged diverged set aside and named; after adaptive stopping, means and stds without intervals."""
    adaptive = bool(c.manifest.get("adaptive"))
    flagged = diverged_runs(c)
    rows = []
    for cell in cell_order(c):
        part = c.runs[c.runs["cell"] == cell]
        part = part[~part["seed"].isin(flagged[cell].seeds)]
        s0, s2 = stats.summarize(part["acc_tta0"]), stats.summarize(part["acc_tta2"])
        row = {"cell": cell, "n": n_text(s2.n)}
        if adaptive:  # the runs per cell depended on the data: no t-intervals
            row |= {
                "TTA 0 mean %": pct(s0.mean.value),
                "TTA 2 mean %": pct(s2.mean.value),
                "TTA 2 std (pts)": pct(s2.std.value, 3),
            }
        else:
            row |= {
                "TTA 0 mean % [95% CI]": ci(s0.mean),
                "TTA 2 mean % [95% CI]": ci(s2.mean),
                "TTA 2 bootstrap CI": f"[{pct(s2.bootstrap.low)}, {pct(s2.bootstrap.high)}]",
                "TTA 2 std (pts) [95% CI]": ci(s2.std, 3),
            }
        rows.append(row | {"train s/run": f"{part['train_seconds'].mean():.2f}"})
    if not rows:
        note = ""
    elif adaptive:
        note = (
            "\n\nMeans and stds only: the seeds per cell were chosen by adaptive stopping, after which "
            "t-intervals are not valid (the verdict is the confidence sequences). "
        )
    else:
        note = (
            f"\n\nMeans with Student-t intervals; stds with chi-square intervals. ⚠ marks cells with fewer than "
            f"{SMALL_N} runs, whose intervals are wide and whose p-values deserve little weight. "
        )
    if rows:
        note += diverged_note(flagged)
    return "## Accuracy per cell\n\n" + markdown_table(rows) + note


def precision_section(c: LoadedCampaign, notes: list) -> str:
    """What the runs can resolve: per-cell CI half-widths, each comparison's minimum detectable
    difference at 80% power, and what the distribution-wise std's interval allows."""
    cells = []
    adaptive = bool(c.manifest.get("adaptive"))
    flagged = diverged_runs(c)
    for cell in cell_order(c):
        part = c.runs[(c.runs["cell"] == cell) & ~c.runs["seed"].isin(flagged[cell].seeds)]
        acc = part["acc_tta2"].to_numpy()
        row = {"cell": cell, "n": n_text(len(acc))}
        if not adaptive:  # after adaptive stopping no t-interval, nor its width
            row["TTA 2 CI half-width (pts)"] = pct(stats.mean_ci(acc).half_width, 3)
        cells.append(row | {"TTA 2 std (pts)": pct(stats.std_ci(acc).value, 3)})
    parts = [
        "## Precision: what these runs can resolve",
        "Two-sided α = 0.05. Minimum detectable difference: the true difference a t-test of this size finds "
        "with 80% power, from the observed sd (of per-seed differences when paired).",
        markdown_table(cells),
    ]
    small = [r["cell"] for r in cells if "⚠" in r["n"]]
    if small:
        parts.append(
            f"**⚠ Fewer than {SMALL_N} runs in {len(small)} cell(s)** ({plain(', '.join(small))}): intervals "
            "are wide and p-values rest on very few runs; treat every comparison involving them as a "
            "pilot, not a result."
        )
    comparisons = [x for x in notes if isinstance(x, ComparisonPrecision)]
    if comparisons:
        parts.append(
            markdown_table(
                [
                    {
                        "comparison": x.comparison,
                        "n": f"{x.n} {'pairs' if x.paired else 'runs'}",
                        "sd (pts)": pct(x.sd, 3),
                        "CI half-width (pts)": pct(x.half_width, 3),
                        "detectable at 80% power (pts)": pct(x.detectable, 3),
                    }
                    for x in comparisons
                ]
            )
        )
    variances = [x for x in notes if isinstance(x, VariancePrecision)]
    if variances:
        parts.append(
            "Distribution-wise std (Paper B, Eq. 3): runs needed for its interval to exclude 0 if the "
            "true value were the one observed (and for 80% power to do so), with the standard error "
            "shrinking as 1/√runs."
        )
        parts.append(
            markdown_table(
                [
                    {
                        "where": x.where,
                        "runs": x.runs,
                        "distribution-wise std (pts) [95% CI]": ci(x.std, 3),
                        "runs to exclude 0": runs_text(x.runs_to_exclude_zero),
                        "runs for 80% power": runs_text(x.runs_for_power),
                    }
                    for x in variances
                ]
            )
        )
    return "\n\n".join(parts)


def runs_text(r: float) -> str:
    if np.isnan(r):
        return "n/a (too few runs)"
    return "never (estimate ≤ 0)" if not np.isfinite(r) else f"{int(r):,}"


def failures_section(c: LoadedCampaign) -> str:
    if c.failures.empty:
        return ""
    rows = [
        {"cell": r.get("cell"), "seed": r.get("seed"), "error": str(r.get("error"))[:160]}
        for _, r in c.failures.iterrows()
    ]
    return "## Failed runs\n\n" + markdown_table(rows)


def study_blocks(c: LoadedCampaign, study) -> tuple[list[str], list]:
    """The study's own sections, and the precision notes it hands back."""
    sections: list[str] = []
    notes: list[Block] = []
    for block in study.report(c):
        (sections if isinstance(block, str) else notes).append(block)
    return sections, notes


def render_report(c: LoadedCampaign, study) -> str:
    """The whole page. Several method versions or data fingerprints in one store: each analysis per
    (version, data) pair."""
    from harness.report.figures import reset_colours

    reset_colours()  # one colour per meaning across this report's figures
    sections = [header(c)]
    if not len(c.runs):
        sections.append(
            "## No finished runs\n\nNothing to analyse yet: no run of this campaign has finished."
        )
    else:
        for version, view in identity_views(c):
            if version is not None:
                v, _, d = version.partition("_data-")
                sections.append(
                    f"# Method version {v}"
                    + (f", data {d}" if d else "")
                    + "\n\nRuns of this method version"
                    + (" on this data" if d else "")
                    + " only: versions and data are never pooled."
                )
            own, notes = study_blocks(view, study)
            sections += [accuracy_table(view), *own, precision_section(view, notes)]
    sections.append(failures_section(c))
    return number_figures("\n\n".join(s for s in sections if s) + "\n")


def write_report(out: str | Path, study=None, versions: dict[str, str] | None = None) -> Path:
    """Rebuild report.md (and its figures) from the store; written under a temporary name.
    ``versions`` ({method spec: version}) counts those versions instead of the manifest's."""
    c = load_campaign(out, versions)
    if study is None:
        from harness.report.experiment import (
            from_manifest,  # experiment builds on this module: imported when needed
        )

        study = find_study(c.manifest.get("study")) or from_manifest(c.manifest)
        if study is None:
            raise store.StoreError(f"{out}: manifest names unknown study {c.manifest.get('study')!r}")
    text = render_report(c, study)
    path = Path(out) / "report.md"
    store.atomic_write(path, lambda tmp: tmp.write_text(text))
    write_html(c, text)
    return path


def write_combined(outs: list[Path], into: Path) -> Path:
    """One page with a panel per study folder (the same study on several datasets, each trained
    into its own store): each panel is that folder's own analysis, under its dataset's name and K,
    with its figures linked where they are. Nothing is pooled across folders."""
    campaigns = [load_campaign(out) for out in outs]
    names = {c.manifest.get("study") for c in campaigns}
    if len(names) != 1:
        raise store.StoreError(
            f"folders of different studies ({', '.join(sorted(map(str, names)))}): one study per page"
        )
    (name,) = names
    study = find_study(name)
    if study is None:
        raise store.StoreError(f"{outs[0]}: manifest names unknown study {name!r}")
    into.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "panel": c.data_name,
            "source": f"`{c.manifest.get('data_source')}`",
            "runs": len(c.runs),
            "data fingerprint": ", ".join(distinct(c.runs, "data_fingerprint")),
            "study folder": f"`{c.out}`",
        }
        for c in campaigns
    ]
    sections = [
        f"# {name} — {len(campaigns)} datasets, one panel each",
        study.description,
        "Each panel is one study folder's own analysis (its runs, its store): datasets are never pooled.\n\n"
        + markdown_table(rows),
    ]
    for c in campaigns:
        link = os.path.relpath(c.figures.resolve(), into.resolve())
        own, _ = study_blocks(c, study) if len(c.runs) else (["No finished runs."], [])
        body = "\n\n".join(own).replace("](figures/", f"]({link}/")
        sections.append(f"# Panel: {c.data_name}\n\n{body.replace(chr(10) + '## ', chr(10) + '### ')}")
    text = number_figures("\n\n".join(sections) + "\n")
    path = into / "report.md"
    store.atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def provenance(c: LoadedCampaign) -> dict[str, str]:
    """What the browser page's provenance box names: data, method versions, seeds, store."""
    m, runs = c.manifest, c.runs
    seeds = sorted(set(runs["seed"].astype(int))) if len(runs) else []
    per_cell = m.get("seeds_per_cell")
    return {
        "Study": f"{plain(m.get('study'))} ({plain(m.get('preset'))} preset)",
        "Data": f"{plain(c.data_name)} (`{code(m.get('data_source'))}`), fingerprints "
        f"{plain(', '.join(distinct(runs, 'data_fingerprint')))}; {c.labels.size} test examples",
        "Method versions": plain(versions_line(c)),
        "Seeds": (
            f"{len(seeds)} seeds ({seeds[0]}–{seeds[-1]}), {len(runs)} runs counted" if seeds else "none yet"
        )
        + (f"; per cell: {plain(', '.join(f'{k} {v}' for k, v in per_cell.items()))}" if per_cell else ""),
        "Store": f"`{code(store.store_path(c.out, m))}`"
        if "store" in m
        else f"`{code(c.out)}` (runs held in the study folder)",
        "Code": f"{plain(m.get('code_version'))}, torch {plain(m.get('torch'))}",
        "Written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        + " by `python -m harness.report`",
    }


def write_html(c: LoadedCampaign, markdown: str) -> Path:
    """report.html beside report.md: figures inline, sortable tables, captions, provenance."""
    from harness.report.html import page

    text = page(
        f"{one_line(c.manifest.get('study'))} report ({one_line(c.data_name)})",
        markdown,
        Path(c.out),
        provenance(c),
    )
    path = Path(c.out) / "report.html"
    store.atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
