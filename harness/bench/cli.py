"""Benchmarks (speed goals live here, not in timed tests).

python -m harness.bench analysis [--runs 2400] [--examples 10000] [--through-store]
python -m harness.bench throughput --data SOURCE [--method NAME] [--runs N] [--mode eager compile pack4 compile+pack4]
python -m harness.bench acceptance --data SOURCE [--method NAME] [--runs 40]   (a GPU machine's one command)
python -m harness.bench store [--runs 60000] [--examples 10000]
python -m harness.bench campaign [--actors 8 64 256] [--runs 1000 10000 100000] [--run-seconds 0.5] [--two-nodes]
python -m harness.bench adaptive [--delta 0.1] [--run-sd 0.15] [--precision 0.05] [--max-seeds 100]
python -m harness.bench coverage [--quick] [--seed 0]    (the harness checks its own statistics)
python -m harness.bench claims [--import-runs 100000] [--store-runs 60000]   (import + claim seconds)
python -m harness.bench data --data SOURCE [--tree] [--classes 10 100 --device cuda]   (decode-once cache)
python -m harness.bench docs [--data SOURCE] [--only NAME ...]   (the docs' example outputs, regenerated)
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from harness.bench.throughput import bench_throughput, parse_mode, peak_rss_gb
from harness.cli.common import Parser, fail, positive_float, positive_int


def bench_analysis(runs: int, examples: int, through_store: bool = False) -> None:
    """Every analysis over one flip_vs_alternating-shaped campaign (18 cells) of ``runs`` simulated
    runs: the flip study's whole report (figures included), every variance estimate for each cell and
    TTA level (the tta_variance / variance_vs_epochs tools), and calibration per flip mode at 9.9 epochs
    and TTA level. Simulated in memory; loading is timed separately, and only with --through-store."""
    import pandas as pd

    from harness.report.campaign import campaign_from, load_campaign
    from harness.report.sections import calibration_stats, variance_stats
    from harness.report.writer import render_report
    from harness.run.simulate import simulated_campaign, simulated_runs
    from harness.spec.studies import find_study

    study = find_study("flip_vs_alternating")
    assert study is not None  # built in
    per_cell = max(2, runs // len(study.cells("full")))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        if through_store:
            simulated_campaign(out, study, per_cell, preset="full", n=examples)
            written = time.perf_counter() - t0
            t0 = time.perf_counter()
            c = load_campaign(out)
            print(f"simulated store written in {written:.1f}s, loaded in {time.perf_counter() - t0:.1f}s")
        else:
            manifest, frame, preds, labels = simulated_runs(study, per_cell, preset="full", n=examples)
            c = campaign_from(out, manifest, frame, preds, labels, pd.DataFrame())
            print(
                f"simulated in memory in {time.perf_counter() - t0:.1f}s (store loading: python -m harness.bench store)"
            )
        print(
            f"{len(c.runs)} runs x {examples} examples, predictions {c.predictions.nbytes / 2**30:.2f} GiB uint8; "
            f"peak RSS so far {peak_rss_gb():.2f} GiB",
            flush=True,
        )
        cells = list(dict.fromkeys(c.runs["cell"]))
        steps = [
            ("flip_vs_alternating report (with figures)", lambda: render_report(c, study)),
            (
                "variance estimates, 18 cells x 3 TTA",
                lambda: [variance_stats(c, c.mask(cell=cell), level) for cell in cells for level in range(3)],
            ),
            (
                "calibration, 3 flip modes x 3 TTA",
                lambda: [
                    calibration_stats(c, c.mask(flip=f, epochs=9.9), level)
                    for f in ("none", "random", "alternating")
                    for level in range(3)
                ],
            ),
        ]
        timings = {}
        for name, step in steps:
            t0 = time.perf_counter()
            step()
            timings[name] = time.perf_counter() - t0
            print(f"  {name:<44} {timings[name]:6.1f}s", flush=True)
        print(
            f"full analysis of {len(c.runs)} runs x {examples} examples: {sum(timings.values()):.1f}s, "
            f"peak RSS {peak_rss_gb():.2f} GiB (goals: under 30 s for 2,400 runs, under 60 s and 6 GB for 60,000)"
        )


def seconds_of(command: list[str], repeats: int) -> float:
    """Median wall seconds of a fresh process running ``command`` (its output discarded)."""
    import statistics
    import subprocess
    import sys

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_cli(repeats: int) -> int:
    """How fast the CLI answers what needs no training, beside the imports it avoids."""
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "misspelt.toml"
        bad.write_text('name = "typo"\nmethod = "airbench94"\n[base]\nlearning_rate = 3\n')
        rows = [
            ("python -m harness.study --help", ["-m", "harness.study", "--help"], 1.0),
            ("a study file with a misspelt key", ["-m", "harness.study", str(bad), "--seeds", "2"], 1.0),
            ("python -m harness.study --list", ["-m", "harness.study", "--list"], None),
            ("python -m harness.bench --help", ["-m", "harness.bench", "--help"], None),
            ("for comparison: import torch", ["-c", "import torch"], None),
            ("for comparison: import ray", ["-c", "import ray"], None),
        ]
        print(f"median of {repeats} fresh processes each (this machine, as loaded now)")
        for label, command, goal in rows:
            seconds = seconds_of(command, repeats)
            verdict = (
                "" if goal is None else (" (goal < 1 s: met)" if seconds < goal else " (goal < 1 s: MISSED)")
            )
            print(f"  {label:<40} {seconds:6.2f} s{verdict}")
    return 0


def bench_adaptive(args) -> int:
    """Simulated adaptive campaigns: seeds spent, against a fixed-n paired t-test of equal power."""
    import math

    from harness.stats.sequential import BETTER, EQUAL, WORSE, Rule, benchmark, simulate

    if args.min_seeds > args.max_seeds:
        return fail(f"--min-seeds {args.min_seeds} is above --max-seeds {args.max_seeds}")
    rule = Rule(args.precision, args.max_seeds, min_seeds=args.min_seeds)
    sd = args.run_sd * math.sqrt(2)
    print(rule.describe())
    print(benchmark(args.delta, sd, rule, args.workers, args.campaigns).describe())
    null = simulate(0.0, sd, rule, args.workers, args.campaigns, seed=1)
    print(
        f"true difference 0: decided better or worse in {100 * (null.share(BETTER) + null.share(WORSE)):.1f}% "
        f"(level {100 * rule.alpha:g}%), equal in {100 * null.share(EQUAL):.1f}%, "
        f"{null.expected_seeds:.1f} seeds on average"
    )
    import numpy as np

    effect = simulate(args.delta, sd, rule, args.workers, args.campaigns, seed=0)
    for label, sim in ((f"true difference {args.delta:g}", effect), ("true difference 0", null)):
        t = sim.seeds_trained
        print(
            f"seeds trained, {label}: mean {t.mean():.1f}, median {np.median(t):.0f}, "
            f"90th percentile {np.percentile(t, 90):.0f}, max {t.max()}"
        )
    return 0


def bench_coverage(quick: bool, seed: int) -> int:
    """Simulated campaigns with a known truth: how often each interval a report prints covers it, and
    how often each adaptive decision errs, at the n reports use (harness.stats.coverage)."""
    import numpy as np

    from harness.stats import coverage

    t0 = time.perf_counter()
    rows = coverage.coverage_table(quick=quick, seed=seed)
    print(coverage.render(rows))
    print("\nadaptive sequences side by side (one comparison, P = 0.05, M = 100, runs with sd 0.15 points):")
    print(
        coverage.render_costs(
            coverage.sequence_costs(np.random.default_rng(seed + 1), 200 if quick else 1000)
        )
    )
    bad = [r for r in rows if not r.ok and r.claimed]
    print(
        f"{len(rows)} rows, {len(bad)} out of tolerance (coverage: within 2% + 2 MC errors of nominal; "
        f"sequences: at least that; error rates: at most nominal + 2 MC errors); "
        f"{'quick, ' if quick else ''}{time.perf_counter() - t0:.0f}s"
    )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    p = Parser(
        prog="python -m harness.bench", description="Benchmarks: analysis speed and training throughput."
    )
    sub = p.add_subparsers(dest="what", required=True, parser_class=Parser)
    a = sub.add_parser("analysis", help="time the full analysis of a large simulated store")
    a.add_argument("--runs", type=positive_int, default=2400, help="simulated runs (default 2400)")
    a.add_argument(
        "--examples", type=positive_int, default=10000, help="test examples per run (default 10000)"
    )
    a.add_argument(
        "--through-store",
        action="store_true",
        help="write the simulated runs to a store and time loading it too (slow for many runs)",
    )
    t = sub.add_parser(
        "throughput",
        help="runs per GPU-hour of a built-in method (airbench94) in each fast-path mode, and the ratio "
        "to the published script where a reference exists",
    )
    t.add_argument(
        "--method",
        default="airbench94",
        help="the method to time (default airbench94); one without a packed path "
        "(airbench96_faster) takes --mode eager",
    )
    t.add_argument(
        "--reference-seconds",
        type=positive_float,
        help="the published script's seconds a run on this machine and config, measured side by "
        "side: prints each mode's ratio to it (default: a stated reference where one exists)",
    )
    t.add_argument("--data", help="CIFAR-10 source (default: $AIRBENCH_DATA, else download)")
    t.add_argument("--cache-dir", help="cache for decoded arrays")
    t.add_argument("--runs", type=positive_int, default=20, help="timed runs per mode (default 20)")
    t.add_argument(
        "--mode",
        nargs="+",
        help="modes: eager, compile, packK, compile+packK (default: eager compile pack4 compile+pack4; "
        "eager alone for a method without a packed path)",
    )
    t.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    t.add_argument(
        "--size",
        choices=("auto", "full", "tiny"),
        default="auto",
        help="full airbench94, or a tiny CPU configuration (default: full on CUDA, tiny on CPU)",
    )
    g = sub.add_parser(
        "acceptance",
        help="a GPU machine's acceptance: airbench94 alternating vs random flip "
        "(accuracy, paired difference, seconds) plus every throughput mode; prints and writes JSON",
    )
    g.add_argument("--data", help="CIFAR-10 source (default: $AIRBENCH_DATA, else download)")
    g.add_argument("--cache-dir", help="cache for decoded arrays")
    g.add_argument(
        "--method",
        default="airbench94",
        help="the method to accept: a built-in (python -m harness.study --list-methods), "
        "package.module:NAME or file.py:NAME (default airbench94)",
    )
    g.add_argument(
        "--runs",
        type=positive_int,
        help="runs per flip mode, interleaved (default: 40, fewer for a slow method so that the runs "
        "take about 6 minutes of one H200; the output says how many and why)",
    )
    g.add_argument(
        "--throughput-runs",
        type=positive_int,
        default=12,
        help="timed runs per fast-path mode after its warm-up (default 12)",
    )
    g.add_argument(
        "--mode",
        nargs="*",
        default=["compile", "pack4", "compile+pack4"],
        help="fast-path modes to time besides eager, whose throughput is the acceptance runs' own "
        "(default: compile pack4 compile+pack4; give none to skip)",
    )
    g.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    g.add_argument(
        "--size",
        choices=("auto", "full", "tiny"),
        default="auto",
        help="full airbench94, or a tiny CPU configuration (default: full on CUDA, tiny on CPU)",
    )
    g.add_argument(
        "--out",
        type=Path,
        default=Path("results/acceptance.json"),
        help="where the JSON goes (default results/acceptance.json)",
    )
    s = sub.add_parser("store", help="load time and peak memory of a large run store (harness.bench.store)")
    s.add_argument("--runs", type=positive_int, default=60000, help="simulated runs (default 60000)")
    s.add_argument(
        "--examples", type=positive_int, default=10000, help="test examples per run (default 10000)"
    )
    s.add_argument("--tmp", help="folder for the temporary store (default: the system's)")
    d = sub.add_parser(
        "adaptive",
        help="seeds an adaptive campaign spends against the fixed-n design of equal "
        "power, by simulation (no training)",
    )
    d.add_argument("--delta", type=float, default=0.1, help="true difference, points (default 0.1)")
    d.add_argument(
        "--run-sd",
        type=positive_float,
        default=0.15,
        help="sd of one run's accuracy, points; paired differences of independent runs have sd·√2 "
        "(default 0.15)",
    )
    d.add_argument("--precision", type=positive_float, default=0.05, help="P, points (default 0.05)")
    d.add_argument("--max-seeds", type=positive_int, default=100, help="M (default 100)")
    d.add_argument("--min-seeds", type=positive_int, default=10, help="default 10")
    d.add_argument("--workers", type=positive_int, default=2, help="default 2")
    d.add_argument("--campaigns", type=positive_int, default=4000, help="simulated campaigns (default 4000)")
    v = sub.add_parser(
        "coverage",
        help="simulated coverage of every interval and decision a report prints, "
        "at the n reports use (truth known): quantity, n, nominal, achieved, Monte Carlo error",
    )
    v.add_argument(
        "--quick", action="store_true", help="fewer simulated campaigns (seconds; what the tests run)"
    )
    v.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    r = sub.add_parser(
        "campaign",
        help="real campaigns of a simulated method (sleeps, synthetic predictions) on "
        "Ray actors with logical GPUs: runs/s against ideal, driver CPU per run, store writes/s, "
        "driver memory, compaction and report seconds",
    )
    r.add_argument(
        "--actors",
        type=positive_int,
        nargs="+",
        default=[8, 64, 256],
        help="actors (logical GPUs) per setting (default 8 64 256)",
    )
    r.add_argument(
        "--runs",
        type=positive_int,
        nargs="+",
        default=[1000, 10000, 100000],
        help="runs per campaign (default 1000 10000 100000)",
    )
    r.add_argument(
        "--run-seconds", type=positive_float, default=0.5, help="seconds each run sleeps (default 0.5)"
    )
    r.add_argument(
        "--two-nodes",
        action="store_true",
        help="also run each actor count on two `ray start` nodes on this machine (half the actors each)",
    )
    r.add_argument(
        "--kill-node",
        action="store_true",
        help="with --two-nodes: one more campaign (the largest --runs) that SIGKILLs the second node a "
        "third of the way through and starts a replacement; reports retries, loss, recovery",
    )
    r.add_argument(
        "--lose-node",
        action="store_true",
        help="with --two-nodes: one more campaign that SIGKILLs the second node a third of the way "
        "through and starts no replacement; its actors are given up after --lost-after seconds",
    )
    r.add_argument(
        "--lost-after",
        type=positive_float,
        default=30.0,
        help="seconds an actor Ray cannot restart is waited for before it is given up (default 30 "
        "here; campaigns use 300)",
    )
    r.add_argument(
        "--store-only",
        action="store_true",
        help="no Ray: runs from a simulated worker in this process that does not sleep, handed over in "
        "batches of 8, so that the driver, store, compaction and report alone are timed at --runs",
    )
    r.add_argument("--no-report", action="store_true", help="skip loading the store and rendering the report")
    r.add_argument("--profile", help="write the driver's cProfile of each campaign to PATH.aA.rN.prof")
    r.add_argument("--tmp", help="folder for the temporary stores (default: the system's)")
    k = sub.add_parser(
        "claims",
        help="import a speedrun-shaped CSV and state its claim; a claim on a large store (seconds, fresh processes)",
    )
    k.add_argument(
        "--import-runs", type=positive_int, default=100000, help="rows of the CSV (default 100000)"
    )
    k.add_argument("--store-runs", type=positive_int, default=60000, help="runs in the store (default 60000)")
    k.add_argument(
        "--examples", type=positive_int, default=100, help="test examples per stored run (default 100)"
    )
    k.add_argument("--tmp", help="folder for the temporary files (default: the system's)")
    c = sub.add_parser(
        "cli",
        help="seconds the CLI takes to answer --help and a bad study file, beside "
        "the import time of torch and Ray",
    )
    c.add_argument("--repeats", type=positive_int, default=5, help="fresh processes per command (default 5)")
    e = sub.add_parser(
        "data",
        help="the decode-once data cache: first, second and verified load (--tree: of the source "
        "unpacked into one file per image); --classes: K-class training time beside 10-class",
    )
    e.add_argument("--data", required=True, help="a .tar/.tar.gz (or any --data source)")
    e.add_argument("--tree", action="store_true", help="unpack the tar into an image tree first")
    e.add_argument("--as", dest="prefix", default="", help="dataset prefix for the tree, e.g. imagefolder:")
    e.add_argument("--tmp", help="folder for the temporary tree and cache (default: the system's)")
    e.add_argument("--classes", type=positive_int, nargs="*", default=[], help="K values to train with")
    e.add_argument("--device", default="cpu", help="device for --classes (default cpu)")
    e.add_argument("--n-train", type=positive_int, default=50000, help="images for --classes (default 50000)")
    from harness.bench.docs import EXAMPLES  # the standard library only: --help stays instant

    e = sub.add_parser(
        "docs",
        help="run every command whose output the docs show and write that output (and the figures) "
        "into the pages between their <!-- example: NAME --> markers",
    )
    e.add_argument(
        "--data",
        default=os.environ.get("AIRBENCH_DATA", "download"),
        help="CIFAR-10 source for the training examples (default $AIRBENCH_DATA, else download)",
    )
    e.add_argument(
        "--only",
        nargs="+",
        choices=[example.name for example in EXAMPLES],
        metavar="NAME",
        help="these examples only: %(choices)s (coverage takes about 15 minutes on 2 cores)",
    )
    args = p.parse_args(argv)
    if args.what == "data":
        from airbench_core import DataError
        from harness.bench.data import bench_classes, bench_data

        try:
            bench_data(args.data, args.tree, args.tmp, args.prefix)
        except DataError as exc:
            return fail(str(exc))
        if args.classes:
            bench_classes(args.classes, args.device, args.n_train, (64, 256, 256))
        return 0
    if args.what == "docs":
        from harness.bench.docs import regenerate

        return regenerate(args.only, args.data)
    if args.what == "cli":
        return bench_cli(args.repeats)
    if args.what == "coverage":
        return bench_coverage(args.quick, args.seed)
    if args.what == "claims":
        from harness.bench.claims import bench_claims

        bench_claims(args.import_runs, args.store_runs, args.examples, args.tmp)
        return 0
    if args.what == "adaptive":
        return bench_adaptive(args)
    if args.what == "campaign":
        if (args.kill_node or args.lose_node) and not args.two_nodes:
            return fail("--kill-node and --lose-node need --two-nodes")
        from harness.bench.campaign import bench_campaign

        bench_campaign(
            args.actors,
            args.runs,
            args.run_seconds,
            args.two_nodes,
            args.kill_node,
            args.tmp,
            args.profile,
            not args.no_report,
            lose_node=args.lose_node,
            lost_after=args.lost_after,
            store_only=args.store_only,
        )
        return 0
    if args.what == "store":
        from harness.bench.store import bench_store

        bench_store(args.runs, args.examples, folder=args.tmp)
        return 0
    if args.what == "analysis":
        bench_analysis(args.runs, args.examples, args.through_store)
        return 0
    import torch

    from airbench_core import DataError
    from harness.spec.errors import UserError

    try:
        for m in args.mode or ():
            parse_mode(m)
        if args.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda, but no CUDA device is visible here")
        if args.what == "acceptance":
            from harness.bench.acceptance import run_acceptance

            run_acceptance(
                args.data,
                args.cache_dir,
                args.runs,
                args.device,
                args.size,
                args.mode,
                args.throughput_runs,
                args.out,
                args.method,
            )
        else:
            bench_throughput(
                args.data,
                args.cache_dir,
                args.runs,
                args.mode,
                args.device,
                args.size,
                args.method,
                args.reference_seconds,
            )
    except (ValueError, DataError, UserError) as exc:
        return fail(str(exc))
    return 0
