"""Benchmarks (speed goals live here, not in timed tests).

    python -m harness.bench analysis [--runs 2400] [--examples 10000]
    python -m harness.bench throughput --data SOURCE [--runs N] [--mode eager compile pack4 ...]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from .cli import Parser, fail, positive_int


def bench_analysis(runs: int, examples: int) -> None:
    """Every analysis over one flip_vs_alternating-shaped store (18 cells) of ``runs`` simulated runs."""
    from studies import STUDIES

    from .analyses import calibration_report, flip_report, tta_variance_report, variance_epochs_report
    from .report import load_campaign, write_report
    from .simulate import simulated_campaign
    study = STUDIES["flip_vs_alternating"]
    per_cell = max(2, runs // len(study.cells("full")))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        simulated_campaign(out, study, per_cell, preset="full", n=examples)
        print(f"simulated store: {per_cell * 18} runs x {examples} examples, written in {time.perf_counter() - t0:.1f}s")
        timings = {}
        t0 = time.perf_counter()
        c = load_campaign(out)
        timings["load store"] = time.perf_counter() - t0
        for name, analysis in [("flip study report", lambda: write_report(out, study)),
                               ("test-set/distribution variance x3 TTA", lambda: tta_variance_report(c)),
                               ("variance per epochs cell", lambda: variance_epochs_report(c)),
                               ("calibration x flip x TTA", lambda: calibration_report(c))]:
            t0 = time.perf_counter()
            analysis()
            timings[name] = time.perf_counter() - t0
        for name, seconds in timings.items():
            print(f"  {name:<40} {seconds:6.2f}s")
        print(f"full analysis of {len(c.runs)} runs x {examples} examples: {sum(timings.values()):.1f}s "
              f"(goal: under 30 s)")


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m harness.bench", description="Benchmarks: analysis speed and training throughput.")
    sub = p.add_subparsers(dest="what", required=True, parser_class=Parser)
    a = sub.add_parser("analysis", help="time the full analysis of a large simulated store")
    a.add_argument("--runs", type=positive_int, default=2400, help="simulated runs (default 2400)")
    a.add_argument("--examples", type=positive_int, default=10000, help="test examples per run (default 10000)")
    args = p.parse_args(argv)
    if args.what == "analysis":
        bench_analysis(args.runs, args.examples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
