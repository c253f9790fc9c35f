"""``python -m harness.report OUT_DIR``: rewrite a study folder's report from its store alone."""
from __future__ import annotations

from pathlib import Path

from harness import store
from harness.cli.common import Parser, fail
from harness.report.writer import write_report


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m harness.report", description="Rebuild OUT_DIR/report.md and figures from the store.")
    p.add_argument("out_dir", type=Path, help="a campaign's output folder")
    args = p.parse_args(argv)
    try:
        print(write_report(args.out_dir))
    except store.StoreError as exc:
        return fail(str(exc))
    return 0
