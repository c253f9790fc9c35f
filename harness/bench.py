"""Benchmarks (speed goals live here, not in timed tests).

    python -m harness.bench analysis [--runs 2400] [--examples 10000] [--through-store]
    python -m harness.bench throughput --data SOURCE [--runs N] [--mode eager compile pack4 compile+pack4]
    python -m harness.bench acceptance --data SOURCE [--runs 40]     (a GPU machine's one command)
    python -m harness.bench store [--runs 60000] [--examples 10000]
    python -m harness.bench adaptive [--delta 0.1] [--run-sd 0.15] [--precision 0.05] [--max-seeds 100]
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

# Analyses multiply small, skinny matrices; OpenBLAS's threads only contend for the cores there (a
# 100 x 10,000 Gram matrix took 0.3 s with threads on a busy 2-core machine, 3 ms with one).
# Effective only when this entry point imports numpy first; set the variable to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from .cli import Parser, fail, positive_float, positive_int


def peak_rss_gb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20      # Linux reports KiB


def bench_analysis(runs: int, examples: int, through_store: bool = False) -> None:
    """Every analysis over one flip_vs_alternating-shaped campaign (18 cells) of ``runs`` simulated
    runs: the flip study's whole report (figures included), every variance estimate for each cell and
    TTA level (the tta_variance / variance_vs_epochs tools), and calibration per flip mode at 9.9 epochs
    and TTA level. Simulated in memory; loading is timed separately, and only with --through-store."""
    import pandas as pd

    from .report import campaign_from, load_campaign, render_report
    from .sections import calibration_stats, variance_stats
    from .simulate import simulated_campaign, simulated_runs
    from .studies_registry import find_study
    study = find_study("flip_vs_alternating")
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
            print(f"simulated in memory in {time.perf_counter() - t0:.1f}s (store loading: python -m harness.bench store)")
        print(f"{len(c.runs)} runs x {examples} examples, predictions {c.predictions.nbytes / 2**30:.2f} GiB uint8; "
              f"peak RSS so far {peak_rss_gb():.2f} GiB", flush=True)
        cells = list(dict.fromkeys(c.runs["cell"]))
        steps = [("flip_vs_alternating report (with figures)", lambda: render_report(c, study)),
                 ("variance estimates, 18 cells x 3 TTA", lambda: [variance_stats(c, c.mask(cell=cell), level)
                                                                   for cell in cells for level in range(3)]),
                 ("calibration, 3 flip modes x 3 TTA", lambda: [calibration_stats(c, c.mask(flip=f, epochs=9.9), level)
                                                                for f in ("none", "random", "alternating")
                                                                for level in range(3)])]
        timings = {}
        for name, step in steps:
            t0 = time.perf_counter()
            step()
            timings[name] = time.perf_counter() - t0
            print(f"  {name:<44} {timings[name]:6.1f}s", flush=True)
        print(f"full analysis of {len(c.runs)} runs x {examples} examples: {sum(timings.values()):.1f}s, "
              f"peak RSS {peak_rss_gb():.2f} GiB (goals: under 30 s for 2,400 runs, under 60 s and 6 GB for 60,000)")


REFERENCE_RUNS_PER_GPU_HOUR = 1590   # DESIGN.md section 7: the paper's airbench94 script on one H200
# A CPU-sized airbench94 for benchmarks' plumbing: seconds per run on a laptop core.
TINY = dict(n_train=1000, n_test=500, widths=(16, 32, 32), batch_size=100, epochs=1.0, whiten_samples=500)


def parse_mode(mode: str) -> tuple[bool, int]:
    """'eager', 'compile', 'pack4', 'compile+pack4' -> (compile, pack)."""
    compile, pack = False, 1
    for part in mode.split("+"):
        if part == "compile":
            compile = True
        elif part.startswith("pack") and part[4:].isdigit() and int(part[4:]) >= 1:
            pack = int(part[4:])
        elif part != "eager":
            raise ValueError(f"unknown mode {mode!r} (use eager, compile, packK or compile+packK)")
    return compile, pack


def bench_throughput(source: str | None, cache_dir: str | None, runs: int, modes: list[str], device: str,
                     size: str) -> list[dict]:
    """Train ``runs`` runs per mode after one untimed warm-up call (which pays for compilation)."""
    import torch

    from airbench_core import DeviceData, load_cifar10, preset
    from airbench_core.net import NetPool
    from airbench_core.train import train_many

    from . import stats
    device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = device == "cuda"
    size = size if size != "auto" else ("full" if device == "cuda" else "tiny")
    cfg = preset("airbench94") if size == "full" else preset("airbench94", **TINY)
    data = DeviceData.build(load_cifar10(source, cache_dir), device, cfg.n_train, cfg.n_test)
    parsed = {m: parse_mode(m) for m in modes}
    print(f"throughput: airbench94 ({size}) on {device} "
          f"({torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}), {runs} runs per mode", flush=True)
    rows = []
    for mode, (compile, pack) in parsed.items():
        pool, seeds = NetPool(), list(range(runs))
        t0 = time.perf_counter()
        train_many(cfg, [10**6 + i for i in range(pack)], data, device, compile=compile, pool=pool)   # warm-up
        warmup = time.perf_counter() - t0
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        results, t0 = [], time.perf_counter()
        for i in range(0, runs, pack):
            results += train_many(cfg, seeds[i:i + pack], data, device, compile=compile, pool=pool)
        wall = time.perf_counter() - t0
        acc = stats.mean_ci(np.array([r.accuracy[2] for r in results]))
        rows.append(dict(mode=mode, runs=len(results), runs_per_hour=3600 * len(results) / wall,
                         train_s=float(np.mean([r.train_seconds for r in results])), wall_s=wall / len(results),
                         tta2=acc, warmup_s=warmup,
                         peak_mem_gb=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")))
        print(f"  {mode}: done in {wall:.1f}s", flush=True)
    base = next((r["runs_per_hour"] for r in rows if r["mode"] == "eager"), rows[0]["runs_per_hour"])
    unit = "runs/GPU-h" if device == "cuda" else "runs/h"
    print(f"{'mode':<16} {unit:>10} {'x eager':>8} {'train s/run':>11} {'wall s/run':>10} "
          f"{'TTA-2 mean % [95% CI]':>26} {'peak GB':>8} {'warm-up s':>9}")
    for r in rows:
        a = r["tta2"]
        print(f"{r['mode']:<16} {r['runs_per_hour']:>10.0f} {r['runs_per_hour'] / base:>8.2f} {r['train_s']:>11.3f} "
              f"{r['wall_s']:>10.3f} {f'{100 * a.value:.2f} [{100 * a.low:.2f}, {100 * a.high:.2f}]':>26} "
              f"{r['peak_mem_gb']:>8.2f} {r['warmup_s']:>9.1f}")
    if device == "cuda" and size == "full":
        print(f"reference (DESIGN.md section 7, paper's script on one H200): {REFERENCE_RUNS_PER_GPU_HOUR} runs/GPU-hour; "
              + ", ".join(f"{r['mode']} {r['runs_per_hour'] / REFERENCE_RUNS_PER_GPU_HOUR:.2f}x" for r in rows))
    return rows


def bench_adaptive(args) -> int:
    """Simulated adaptive campaigns: seeds spent, against a fixed-n paired t-test of equal power."""
    import math

    from .sequential import BETTER, EQUAL, WORSE, Rule, benchmark, simulate
    if args.min_seeds > args.max_seeds:
        return fail(f"--min-seeds {args.min_seeds} is above --max-seeds {args.max_seeds}")
    rule = Rule(args.precision, args.max_seeds, min_seeds=args.min_seeds)
    sd = args.run_sd * math.sqrt(2)
    print(rule.describe())
    print(benchmark(args.delta, sd, rule, args.workers, args.campaigns).describe())
    null = simulate(0.0, sd, rule, args.workers, args.campaigns, seed=1)
    print(f"true difference 0: decided better or worse in {100 * (null.share(BETTER) + null.share(WORSE)):.1f}% "
          f"(level {100 * rule.alpha:g}%), equal in {100 * null.share(EQUAL):.1f}%, "
          f"{null.expected_seeds:.1f} seeds on average")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m harness.bench", description="Benchmarks: analysis speed and training throughput.")
    sub = p.add_subparsers(dest="what", required=True, parser_class=Parser)
    a = sub.add_parser("analysis", help="time the full analysis of a large simulated store")
    a.add_argument("--runs", type=positive_int, default=2400, help="simulated runs (default 2400)")
    a.add_argument("--examples", type=positive_int, default=10000, help="test examples per run (default 10000)")
    a.add_argument("--through-store", action="store_true",
                   help="write the simulated runs to a store and time loading it too (slow for many runs)")
    t = sub.add_parser("throughput", help="runs per GPU-hour of airbench94 in each fast-path mode")
    t.add_argument("--data", help="CIFAR-10 source (default: $AIRBENCH_DATA, else download)")
    t.add_argument("--cache-dir", help="cache for decoded arrays")
    t.add_argument("--runs", type=positive_int, default=20, help="timed runs per mode (default 20)")
    t.add_argument("--mode", nargs="+", default=["eager", "compile", "pack4", "compile+pack4"],
                   help="modes: eager, compile, packK, compile+packK (default: eager compile pack4 compile+pack4)")
    t.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    t.add_argument("--size", choices=("auto", "full", "tiny"), default="auto",
                   help="full airbench94, or a tiny CPU configuration (default: full on CUDA, tiny on CPU)")
    g = sub.add_parser("acceptance", help="a GPU machine's acceptance: airbench94 alternating vs random flip "
                       "(accuracy, paired difference, seconds) plus every throughput mode; prints and writes JSON")
    g.add_argument("--data", help="CIFAR-10 source (default: $AIRBENCH_DATA, else download)")
    g.add_argument("--cache-dir", help="cache for decoded arrays")
    g.add_argument("--runs", type=positive_int, default=40, help="runs per flip mode, interleaved (default 40)")
    g.add_argument("--throughput-runs", type=positive_int, default=12,
                   help="timed runs per fast-path mode after its warm-up (default 12)")
    g.add_argument("--mode", nargs="*", default=["compile", "pack4", "compile+pack4"],
                   help="fast-path modes to time besides eager, whose throughput is the acceptance runs' own "
                        "(default: compile pack4 compile+pack4; give none to skip)")
    g.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    g.add_argument("--size", choices=("auto", "full", "tiny"), default="auto",
                   help="full airbench94, or a tiny CPU configuration (default: full on CUDA, tiny on CPU)")
    g.add_argument("--out", type=Path, default=Path("results/acceptance.json"),
                   help="where the JSON goes (default results/acceptance.json)")
    s = sub.add_parser("store", help="load time and peak memory of a large run store (harness.bench_store)")
    s.add_argument("--runs", type=positive_int, default=60000, help="simulated runs (default 60000)")
    s.add_argument("--examples", type=positive_int, default=10000, help="test examples per run (default 10000)")
    s.add_argument("--tmp", help="folder for the temporary store (default: the system's)")
    d = sub.add_parser("adaptive", help="seeds an adaptive campaign spends against the fixed-n design of equal "
                       "power, by simulation (no training)")
    d.add_argument("--delta", type=float, default=0.1, help="true difference, points (default 0.1)")
    d.add_argument("--run-sd", type=positive_float, default=0.15,
                   help="sd of one run's accuracy, points; paired differences of independent runs have sd·√2 "
                        "(default 0.15)")
    d.add_argument("--precision", type=positive_float, default=0.05, help="P, points (default 0.05)")
    d.add_argument("--max-seeds", type=positive_int, default=100, help="M (default 100)")
    d.add_argument("--min-seeds", type=positive_int, default=10, help="default 10")
    d.add_argument("--workers", type=positive_int, default=2, help="default 2")
    d.add_argument("--campaigns", type=positive_int, default=4000, help="simulated campaigns (default 4000)")
    args = p.parse_args(argv)
    if args.what == "adaptive":
        return bench_adaptive(args)
    if args.what == "store":
        from .bench_store import bench_store
        bench_store(args.runs, args.examples, folder=args.tmp)
        return 0
    if args.what == "analysis":
        bench_analysis(args.runs, args.examples, args.through_store)
        return 0
    import torch

    from airbench_core import DataError
    try:
        for m in args.mode:
            parse_mode(m)
        if args.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda, but no CUDA device is visible here")
        if args.what == "acceptance":
            from .acceptance import run_acceptance
            run_acceptance(args.data, args.cache_dir, args.runs, args.device, args.size, args.mode,
                           args.throughput_runs, args.out)
        else:
            bench_throughput(args.data, args.cache_dir, args.runs, args.mode, args.device, args.size)
    except (ValueError, DataError) as exc:
        return fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
