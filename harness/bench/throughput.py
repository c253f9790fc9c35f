"""Training throughput: runs per GPU-hour of a method in each fast-path mode (eager, compiled,
packed), beside the paper's script as the reference."""

from __future__ import annotations

import time

import numpy as np


def peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


REFERENCE_RUNS_PER_GPU_HOUR = 1590  # DESIGN.md section 7: the paper's airbench94 script on one H200
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


def bench_throughput(
    source: str | None, cache_dir: str | None, runs: int, modes: list[str], device: str, size: str
) -> list[dict]:
    """Train ``runs`` runs per mode after one untimed warm-up call (which pays for compilation)."""
    import torch

    from airbench_core import DeviceData, load_cifar10, preset
    from airbench_core.net import NetPool
    from airbench_core.train import train_many
    from harness import stats

    device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = device == "cuda"
    size = size if size != "auto" else ("full" if device == "cuda" else "tiny")
    cfg = preset("airbench94") if size == "full" else preset("airbench94", **TINY)
    data = DeviceData.build(load_cifar10(source, cache_dir), device, cfg.n_train, cfg.n_test)
    parsed = {m: parse_mode(m) for m in modes}
    print(
        f"throughput: airbench94 ({size}) on {device} "
        f"({torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}), {runs} runs per mode",
        flush=True,
    )
    rows = []
    for mode, (compile, pack) in parsed.items():
        pool, seeds = NetPool(), list(range(runs))
        t0 = time.perf_counter()
        train_many(cfg, [10**6 + i for i in range(pack)], data, device, compile=compile, pool=pool)  # warm-up
        warmup = time.perf_counter() - t0
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        results, t0 = [], time.perf_counter()
        for i in range(0, runs, pack):
            results += train_many(cfg, seeds[i : i + pack], data, device, compile=compile, pool=pool)
        wall = time.perf_counter() - t0
        acc = stats.mean_ci(np.array([r.accuracy[2] for r in results]))
        rows.append(
            dict(
                mode=mode,
                runs=len(results),
                runs_per_hour=3600 * len(results) / wall,
                train_s=float(np.mean([r.train_seconds for r in results])),
                wall_s=wall / len(results),
                tta2=acc,
                warmup_s=warmup,
                peak_mem_gb=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan"),
            )
        )
        print(f"  {mode}: done in {wall:.1f}s", flush=True)
    base = next((r["runs_per_hour"] for r in rows if r["mode"] == "eager"), rows[0]["runs_per_hour"])
    unit = "runs/GPU-h" if device == "cuda" else "runs/h"
    print(
        f"{'mode':<16} {unit:>10} {'x eager':>8} {'train s/run':>11} {'wall s/run':>10} "
        f"{'TTA-2 mean % [95% CI]':>26} {'peak GB':>8} {'warm-up s':>9}"
    )
    for r in rows:
        a = r["tta2"]
        print(
            f"{r['mode']:<16} {r['runs_per_hour']:>10.0f} {r['runs_per_hour'] / base:>8.2f} {r['train_s']:>11.3f} "
            f"{r['wall_s']:>10.3f} {f'{100 * a.value:.2f} [{100 * a.low:.2f}, {100 * a.high:.2f}]':>26} "
            f"{r['peak_mem_gb']:>8.2f} {r['warmup_s']:>9.1f}"
        )
    if device == "cuda" and size == "full":
        print(
            f"reference (DESIGN.md section 7, paper's script on one H200): {REFERENCE_RUNS_PER_GPU_HOUR} runs/GPU-hour; "
            + ", ".join(f"{r['mode']} {r['runs_per_hour'] / REFERENCE_RUNS_PER_GPU_HOUR:.2f}x" for r in rows)
        )
    return rows
