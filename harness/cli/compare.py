"""``python -m harness.compare A B`` (two study folders) or ``python -m harness.compare FOLDER
--versions V1 V2`` (two method versions in one folder or store): B − A per cell, paired by seed
where both sides hold the same seeds, Welch otherwise, Holm over the table."""

from __future__ import annotations

import sys
from pathlib import Path

from harness import store
from harness.cli.common import Parser, UserError, fail, quiet_numerics
from harness.report.compare import compare_cells, default_out, forest_figure, load_sides, render


@quiet_numerics
def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m harness.compare", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "folders", nargs="+", type=Path, help="two study folders A B, or one folder with --versions"
    )
    p.add_argument(
        "--versions",
        nargs=2,
        metavar=("V1", "V2"),
        help="compare runs of two method versions in one study folder or store (A = V1, B = V2)",
    )
    p.add_argument("--level", type=int, choices=(0, 1, 2), default=2, help="TTA level to compare (default 2)")
    p.add_argument("--out", type=Path, help="folder for report.md (default results/compare/A-vs-B)")
    args = p.parse_args(argv)
    try:
        a, b = load_sides(args.folders, args.versions)
        comparisons = compare_cells(a, b, args.level)
        out = args.out or default_out(a, b)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "report.md"
        figure = forest_figure(out, a, b, args.level, comparisons) if comparisons else None
        text = render(a, b, args.level, comparisons, figure)
        store.atomic_write(path, lambda tmp: tmp.write_text(text))
    except (UserError, store.StoreError) as exc:
        return fail(str(exc))
    print(text)
    print(f"report: {path}", file=sys.stderr)
    return 0
