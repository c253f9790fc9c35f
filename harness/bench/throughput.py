"""Training throughput: runs per GPU-hour of a method in each fast-path mode (eager, compiled,
packed), beside the paper's script as the reference."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np


def peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


REFERENCE_RUNS_PER_GPU_HOUR = 1590  # DESIGN.md section 7: the paper's airbench94 script on one H200
# The published scripts' own seconds a run, as their headers state them, with the GPU they name:
# a ratio to one is printed only on that GPU (or to --reference-seconds, measured side by side).
SCRIPT_SECONDS = {"airbench96_faster": (27.3, "A100")}
# A CPU-sized airbench94 for benchmarks' plumbing: seconds per run on a laptop core.
TINY = dict(n_train=1000, n_test=500, widths=(16, 32, 32), batch_size=100, epochs=1.0, whiten_samples=500)


def bench_config(method_spec: str, size: str) -> Any:
    """The method's full config, or its tiny one: TINY's fields the method has, over the method's own
    smoke fields (a second network, a sub-batch) so that the tiny config is consistent."""
    from harness.spec.methods import find_method

    method = find_method(method_spec)
    if size == "full":
        return method.defaults
    have = {f.name for f in dataclasses.fields(method.defaults)}
    return method.config(**{**method.smoke, **{k: v for k, v in TINY.items() if k in have}})


def reference(
    method: str, device_name: str, size: str, reference_seconds: float | None
) -> tuple[float, str] | None:
    """(the published script's runs per hour, where that figure comes from) where a reference exists
    for this method, device and size; None where none does."""
    if reference_seconds is not None:
        return 3600 / reference_seconds, f"the script measured here: {reference_seconds:g} s a run"
    if size != "full" or device_name == "CPU":
        return None
    if method == "airbench94":
        return REFERENCE_RUNS_PER_GPU_HOUR, "the paper's airbench94 script measured on one H200, uncompiled"
    if method in SCRIPT_SECONDS and SCRIPT_SECONDS[method][1] in device_name:
        seconds, gpu = SCRIPT_SECONDS[method]
        return 3600 / seconds, f"the published script on one {gpu}, compiled: {seconds:g} s a run"
    return None


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
    source: str | None,
    cache_dir: str | None,
    runs: int,
    modes: list[str] | None,
    device: str,
    size: str,
    method: str = "airbench94",
    reference_seconds: float | None = None,
) -> list[dict]:
    """Train ``runs`` runs per mode after one untimed warm-up call (which pays for compilation), and
    give each mode's ratio to the published script where a reference exists (see ``reference``).
    A method without ``train_many`` (airbench96_faster) has the eager mode only."""
    import torch

    from airbench_core import DeviceData, load_cifar10
    from airbench_core.net import NetPool
    from harness import stats
    from harness.spec.methods import find_method

    train_many = find_method(method).train_many
    modes = modes or (["eager"] if train_many is None else ["eager", "compile", "pack4", "compile+pack4"])
    parsed = {m: parse_mode(m) for m in modes}
    if train_many is None and any(p != (False, 1) for p in parsed.values()):
        raise ValueError(f"--mode: {method} trains run by run (no packed or compiled path): use --mode eager")
    device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = device == "cuda"
    size = size if size != "auto" else ("full" if device == "cuda" else "tiny")
    cfg = bench_config(method, size)
    data = DeviceData.build(load_cifar10(source, cache_dir), device, cfg.n_train, cfg.n_test)
    device_name = torch.cuda.get_device_name() if device == "cuda" else "CPU"

    def train(seeds: list[int], compile: bool, pool: NetPool) -> list:
        if train_many is None:
            return [find_method(method).train(cfg, s, data, device) for s in seeds]
        return train_many(cfg, seeds, data, device, compile=compile, pool=pool)

    print(f"throughput: {method} ({size}) on {device} ({device_name}), {runs} runs per mode", flush=True)
    rows = []
    for mode, (compile, pack) in parsed.items():
        pool, seeds = NetPool(), list(range(runs))
        t0 = time.perf_counter()
        train([10**6 + i for i in range(pack)], compile, pool)  # warm-up
        warmup = time.perf_counter() - t0
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        results, t0 = [], time.perf_counter()
        for i in range(0, runs, pack):
            results += train(seeds[i : i + pack], compile, pool)
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
    ref = reference(method, device_name, size, reference_seconds)
    if ref is None:
        print(
            f"reference: none for {method} ({size}) on {device_name}; give --reference-seconds S (the "
            "published script's seconds a run, measured here side by side) for a ratio"
        )
    else:
        per_hour, where = ref
        print(
            f"reference ({where}): {per_hour:.0f} {unit}; "
            + ", ".join(f"{r['mode']} {r['runs_per_hour'] / per_hour:.2f}x" for r in rows)
        )
        for r in rows:
            r["x_reference"] = r["runs_per_hour"] / per_hour
    return rows
