"""Example outputs in the docs that cannot go stale: ``python -m harness.bench docs`` runs each
documented command and writes what it printed between the page's markers::

    <!-- example: NAME -->
    ```
    (written by the command, never by hand)
    ```
    <!-- /example -->

The tests compare each block with what the code prints now, numbers and paths masked
(``masked``), so a changed wording or layout fails a test until the docs are regenerated.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKER = re.compile(r"(<!-- example: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /example -->)", re.S)
DATA_SHOWN = "cifar10-jpeg.tar.gz"  # what the docs' commands name as --data
ROWS_SHOWN = 3  # rows of each long table an example shows before "..."


# ----------------------------------------------------------------------------- what each example shows


def sections(markdown: str) -> list[str]:
    """A Markdown page cut before each ``## `` heading (the first piece is what precedes them)."""
    return re.split(r"\n(?=## )", markdown)


def cut_tables(text: str, rows: int = ROWS_SHOWN) -> str:
    """Each Markdown table cut to its header and first ``rows`` rows, then "..."."""
    out: list[str] = []
    in_table = 0
    for line in text.splitlines():
        if line.startswith("|"):
            in_table += 1
            if in_table == rows + 3:
                out.append("...")
            if in_table >= rows + 3:
                continue
        else:
            in_table = 0
        out.append(line)
    return "\n".join(out)


def report_opening(report_md: str) -> str:
    """The smoke report's header and its first section (accuracy per cell), tables cut short."""
    return cut_tables("\n".join(sections(report_md)[:2]).rstrip())


def adaptive_verdict(report_md: str) -> str:
    """A study file's "Adaptive seeds: the verdict" section: the rule and the outcome table."""
    (section,) = [s for s in sections(report_md) if s.startswith("## Adaptive seeds: the verdict")]
    return section.split("\n### ")[0].strip()


def verdicts_table(stdout: str) -> str:
    """The short table a campaign prints at its end."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("verdicts ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start:end])


def whole(stdout: str) -> str:
    return stdout.strip()


# ----------------------------------------------------------------------------- the examples


@dataclass(frozen=True)
class Example:
    """One documented command, where its output goes, and which part of it the page shows."""

    name: str
    command: tuple[str, ...]  # as the docs show it; DATA_SHOWN is replaced by the real source
    pages: tuple[str, ...]  # README.md and docs/*.md, relative to the repository root
    shown: Callable[[str], str]  # the text shown, from the report (report_md) or the terminal
    from_report: str | None = None  # the study folder whose report.md is read; None: stdout
    figures: tuple[tuple[str, str], ...] = ()  # (figure file name in the folder, docs/ file)


SMOKE = ("python", "-m", "harness.study", "flip_vs_alternating", "--seeds", "2", "--preset", "smoke")
ADAPTIVE = (
    "python",
    "-m",
    "harness.study",
    "studies/examples/smoke_half_epochs.toml",
    "--until",
    "decided",
    "--backend",
    "local",
    "--device",
    "cpu",
)
EXAMPLES = (
    Example("verdicts", (*SMOKE, "--data", DATA_SHOWN), ("README.md",), verdicts_table),
    Example(
        "smoke-report",
        (*SMOKE, "--data", DATA_SHOWN),
        ("docs/index.md",),
        report_opening,
        from_report="results/flip_vs_alternating-smoke",
    ),
    Example(
        "adaptive-verdict",
        (*ADAPTIVE, "--data", DATA_SHOWN),
        ("docs/studies.md",),
        adaptive_verdict,
        from_report="results/smoke_half_epochs",
        figures=(
            ("against_baseline.png", "example_forest.png"),
            ("confidence_sequences.png", "example_sequences.png"),
        ),
    ),
    Example("coverage", ("python", "-m", "harness.bench", "coverage"), ("docs/statistics.md",), whole),
)


# ----------------------------------------------------------------------------- comparing, masked


def masked(text: str) -> list[str]:
    """What must not change between machines and runs: the wording and the structure. Numbers,
    paths, hashes and the padding that depends on their widths are masked."""
    text = re.sub(r"`?[\w.+~-]*(?:/[\w.+~-]{2,})+/?`?", "PATH", text)  # n/a is no path
    text = re.sub(r"\b[0-9a-f]{10,}(?:-dirty)?\b", "HASH", text)
    text = re.sub(
        r"\btorch [^\s;,]+", "torch VERSION", text
    )  # its build differs between machines  # versions; a checkout may be edited
    text = re.sub(r"[+\-−]?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?", "#", text)
    text = re.sub(r"-{3,}", "---", text)
    return [re.sub(r"\s+", " ", line).strip() for line in text.strip().splitlines()]


def blocks(page: str) -> dict[str, str]:
    """Each example block of a page, by name, without its code fence."""
    return {m["name"]: unfenced(m["body"]) for m in MARKER.finditer(page)}


def unfenced(body: str) -> str:
    lines = body.strip().splitlines()
    return "\n".join(lines[1:-1] if lines and lines[0].startswith("```") else lines)


def documented(name: str) -> dict[str, str]:
    """The text each page shows for example ``name``, by page."""
    (example,) = [e for e in EXAMPLES if e.name == name]
    return {page: blocks((ROOT / page).read_text(encoding="utf-8"))[name] for page in example.pages}


def write_block(page: Path, name: str, text: str) -> None:
    """Replace example ``name``'s block in ``page`` with ``text``, fenced."""
    content = page.read_text(encoding="utf-8")
    found = [m for m in MARKER.finditer(content) if m["name"] == name]
    if not found:
        raise SystemExit(f"{page}: no <!-- example: {name} --> marker")
    m = found[0]
    body = f"```\n{text.rstrip()}\n```\n"
    page.write_text(content[: m.start("body")] + body + content[m.end("body") :], encoding="utf-8")


# ----------------------------------------------------------------------------- regenerating


def run_command(command: tuple[str, ...], data: str, work: Path) -> str:
    """Run a documented command in ``work`` (a fresh folder: nothing trained before) on ``data``;
    its stdout."""
    argv = [sys.executable if c == "python" else c for c in command]
    argv = [data if c == DATA_SHOWN else c for c in argv]
    argv = [str(ROOT / c) if c.startswith("studies/") else c for c in argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r.stdout


def as_documented(text: str, data: str) -> str:
    """Output with the real data source and repository paths named as the docs' commands name them."""
    for shown, real in ((DATA_SHOWN, data), ("studies/", str(ROOT / "studies") + "/")):
        text = text.replace(real, shown)
    return text


def shown_text(example: Example, stdout: str, work: Path, data: str) -> str:
    """The part of the command's output the pages show."""
    source = (work / example.from_report / "report.md").read_text() if example.from_report else stdout
    return example.shown(as_documented(source, data))


def regenerate(names: list[str] | None, data: str) -> int:
    """Run the examples' commands (each once, for all the examples that show its output) and write
    their output and figures into the pages."""
    chosen = [e for e in EXAMPLES if names is None or e.name in names]
    for command in dict.fromkeys(e.command for e in chosen):
        with tempfile.TemporaryDirectory(prefix="docs-example-") as tmp:
            work = Path(tmp)
            print(" ".join(command), file=sys.stderr)
            stdout = run_command(command, data, work)
            for example in (e for e in chosen if e.command == command):
                text = shown_text(example, stdout, work, data)
                for page in example.pages:
                    write_block(ROOT / page, example.name, text)
                for figure, target in example.figures:
                    assert example.from_report is not None
                    shutil.copyfile(work / example.from_report / "figures" / figure, DOCS / target)
    return 0
