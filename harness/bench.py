"""Benchmarks (speed goals live here, not in timed tests).

    python -m harness.bench analysis [--runs 2400] [--examples 10000]
    python -m harness.bench throughput --data SOURCE [--runs N] [--mode eager compile pack4 compile+pack4]
    python -m harness.bench store [--runs 60000] [--examples 10000]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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


REFERENCE_RUNS_PER_GPU_HOUR = 1590   # DESIGN.md section 7: the paper's airbench94 script on one H200


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
    cfg = preset("airbench94") if size == "full" else preset(
        "airbench94", n_train=1000, n_test=500, widths=(16, 32, 32), batch_size=100, epochs=1.0, whiten_samples=500)
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


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m harness.bench", description="Benchmarks: analysis speed and training throughput.")
    sub = p.add_subparsers(dest="what", required=True, parser_class=Parser)
    a = sub.add_parser("analysis", help="time the full analysis of a large simulated store")
    a.add_argument("--runs", type=positive_int, default=2400, help="simulated runs (default 2400)")
    a.add_argument("--examples", type=positive_int, default=10000, help="test examples per run (default 10000)")
    t = sub.add_parser("throughput", help="runs per GPU-hour of airbench94 in each fast-path mode")
    t.add_argument("--data", help="CIFAR-10 source (default: $AIRBENCH_DATA, else download)")
    t.add_argument("--cache-dir", help="cache for decoded arrays")
    t.add_argument("--runs", type=positive_int, default=20, help="timed runs per mode (default 20)")
    t.add_argument("--mode", nargs="+", default=["eager", "compile", "pack4", "compile+pack4"],
                   help="modes: eager, compile, packK, compile+packK (default: eager compile pack4 compile+pack4)")
    t.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    t.add_argument("--size", choices=("auto", "full", "tiny"), default="auto",
                   help="full airbench94, or a tiny CPU configuration (default: full on CUDA, tiny on CPU)")
    s = sub.add_parser("store", help="load time and peak memory of a large run store (harness.bench_store)")
    s.add_argument("--runs", type=positive_int, default=60000, help="simulated runs (default 60000)")
    s.add_argument("--examples", type=positive_int, default=10000, help="test examples per run (default 10000)")
    s.add_argument("--tmp", help="folder for the temporary store (default: the system's)")
    args = p.parse_args(argv)
    if args.what == "store":
        from .bench_store import bench_store
        bench_store(args.runs, args.examples, folder=args.tmp)
        return 0
    if args.what == "analysis":
        bench_analysis(args.runs, args.examples)
        return 0
    from airbench_core import DataError
    try:
        for m in args.mode:
            parse_mode(m)
        bench_throughput(args.data, args.cache_dir, args.runs, args.mode, args.device, args.size)
    except (ValueError, DataError) as exc:
        return fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
