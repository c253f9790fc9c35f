"""``python -m harness.report OUT_DIR``: rewrite a study folder's report from its store alone."""

from __future__ import annotations

import sys
from pathlib import Path

from harness import store
from harness.cli.common import Parser, fail, quiet_numerics
from harness.report.writer import write_report


@quiet_numerics
def main(argv: list[str] | None = None) -> int:
    p = Parser(
        prog="python -m harness.report",
        description="Rebuild OUT_DIR/report.md, report.html and figures from the store.",
    )
    p.add_argument("out_dir", type=Path, help="a campaign's output folder")
    p.add_argument(
        "more",
        type=Path,
        nargs="*",
        help="more folders of the same study (on other datasets): with --combined, one page with a panel each",
    )
    p.add_argument(
        "--combined", type=Path, help="with several folders: the folder for the combined report.md"
    )
    p.add_argument("--open", action="store_true", help="then open OUT_DIR/report.html in the web browser")
    p.add_argument(
        "--method-version",
        action="append",
        default=[],
        metavar="METHOD=VERSION",
        help="count the runs of this version of a method (its spec as the study names it) instead of the "
        "current one; repeatable. Each verdict counts one version per method",
    )
    args = p.parse_args(argv)
    versions = {}
    for item in args.method_version:
        spec, sep, version = item.rpartition("=")
        if not sep or not spec or not version:
            return fail(f"--method-version {item!r}: expected METHOD=VERSION")
        versions[spec] = version
    if args.more and not args.combined:
        return fail("several study folders need --combined DIR (where the page with one panel each goes)")
    try:
        for folder in [args.out_dir, *args.more]:
            store.check_source(folder)  # a store that is gone must not read as "No finished runs"
        if args.more:
            from harness.report.writer import write_combined

            print(write_combined([args.out_dir, *args.more], args.combined))
            return 0
        path = write_report(args.out_dir, versions=versions or None)
    except store.StoreError as exc:
        return fail(str(exc))
    page = path.with_name("report.html")
    print(path)
    print(page)
    if args.open:
        import webbrowser

        if not webbrowser.open(page.resolve().as_uri()):
            print(f"no web browser found here: open {page} yourself", file=sys.stderr)
    return 0
