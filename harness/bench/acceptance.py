"""GPU acceptance: is this machine's airbench94 the paper's, and how fast is it?

One command a machine with a GPU runs as-is (``python -m harness.bench acceptance``): airbench94
with alternating and random flip, N runs each, interleaved seed by seed so that drift of the
machine hits both alike; accuracy at every TTA level with t-intervals, the alternating - random
difference paired by seed, seconds per run, the throughput of every fast-path mode, and the checks
that only CUDA can make (CUDA-event timing, cuDNN settings, fp16 / channels-last / fp32 BatchNorm).
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from harness import stats

FLIPS = ("alternating", "random")
JPEG_COPY_TARGET = 0.906       # airbench94's TTA-2 mean on the JPEG copy (its README), within 0.1 points


def interval(x: np.ndarray) -> dict:
    """Mean with its 95% t-interval and the std across runs, in percent."""
    m = stats.mean_ci(x)
    return {"mean": 100 * m.value, "low": 100 * m.low, "high": 100 * m.high,
            "std": 100 * float(np.std(x, ddof=1)) if len(x) > 1 else float("nan"), "n": int(len(x))}


def paired_difference(a: np.ndarray, b: np.ndarray) -> dict:
    """Mean per-seed difference a - b with its t-interval (a paired test), in points."""
    out = interval(a - b)
    out["correlation"] = float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 else float("nan")
    return out


def precision_checks(device: str) -> list[dict]:
    """What only a GPU can show: the dtypes and layout of the network as trained, and cuDNN's mode."""
    import torch

    from airbench_core import preset
    from airbench_core.net import BatchNorm, make_net
    if device != "cuda":
        return []
    checks = [{"check": "cudnn.benchmark on", "passed": bool(torch.backends.cudnn.benchmark)},
              {"check": "cudnn.deterministic off (nondeterminism recorded in every run)",
               "passed": not torch.backends.cudnn.deterministic}]
    net, _ = make_net(preset("airbench94"), [0], torch.device("cuda"), half=True)
    norms = [m for m in net.modules() if isinstance(m, BatchNorm)]
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    checks += [{"check": "BatchNorm kept in fp32", "passed": all(m.weight.dtype == torch.float32 for m in norms)},
               {"check": "convolutions in fp16", "passed": all(m.weight.dtype == torch.float16 for m in convs)},
               {"check": "weights channels-last", "passed": all(
                   m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs if m.weight.ndim == 4)}]
    return checks


def run_acceptance(source: str | None, cache_dir: str | None, runs: int, device: str, size: str,
                   modes: list[str], throughput_runs: int, out: Path) -> dict:
    import torch

    from airbench_core import DeviceData, load_cifar10, preset
    from airbench_core.net import NetPool
    from airbench_core.train import train

    from harness.bench.throughput import TINY, bench_throughput
    device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = device == "cuda"
    size = size if size != "auto" else ("full" if device == "cuda" else "tiny")
    base = preset("airbench94") if size == "full" else preset("airbench94", **TINY)
    data = load_cifar10(source, cache_dir)
    on_device = DeviceData.build(data, device, base.n_train, base.n_test)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"acceptance: airbench94 ({size}) on {data.description}, {gpu}; {runs} runs per flip mode, interleaved",
          flush=True)
    pool = NetPool()
    train(base.replace(epochs=1.0), 10**6, on_device, device, pool=pool)        # warm-up: cuDNN autotuning
    records, t0 = [], time.perf_counter()
    for seed in range(runs):
        for flip in FLIPS:
            r = train(base.replace(flip=flip), seed, on_device, device, pool=pool)
            rec = {"seed": seed, "flip": flip, **{f"tta{i}": a for i, a in enumerate(r.accuracy)},
                   "train_s": r.train_seconds, "eval_s": r.eval_seconds, "wall_s": r.wall_seconds}
            records.append(rec)
            print(f"run {len(records):3d}/{2 * runs}  seed {seed:3d}  {flip:<11}  "
                  f"tta0 {100 * r.accuracy[0]:.2f}  tta1 {100 * r.accuracy[1]:.2f}  tta2 {100 * r.accuracy[2]:.2f}  "
                  f"train {r.train_seconds:.3f}s  eval {r.eval_seconds:.3f}s  wall {r.wall_seconds:.3f}s", flush=True)
    elapsed = time.perf_counter() - t0
    acc = {f: {lvl: np.array([r[f"tta{lvl}"] for r in records if r["flip"] == f]) for lvl in range(3)} for f in FLIPS}
    result = {
        "config": base.to_dict(), "size": size, "data": data.description, "data_source": data.source,
        "device": gpu, "torch": torch.__version__, "cuda": torch.version.cuda or "", "python": platform.python_version(),
        "runs_per_flip": runs,
        "accuracy": {f: {f"tta{lvl}": interval(acc[f][lvl]) for lvl in range(3)} for f in FLIPS},
        "alternating_minus_random": {f"tta{lvl}": paired_difference(acc["alternating"][lvl], acc["random"][lvl])
                                     for lvl in range(3)},
        "seconds_per_run": {k: float(np.mean([r[k] for r in records])) for k in ("train_s", "eval_s", "wall_s")},
        "timing_note": "train_s: whitening fit + training epochs (CUDA events); eval_s: final TTA evaluation "
                       "(CUDA events); the paper's timer counts both, so compare train_s + eval_s with its 3.83 s "
                       "(A100). wall_s adds network reset, data augmentation set-up and host work.",
        "eager_runs_per_gpu_hour": 3600 * len(records) / elapsed,
        "runs": records,
    }
    # eager throughput is the runs above (both flip modes train at one speed); the fast paths are timed apart
    eager = {"mode": "eager (the runs above)", "runs": len(records), "runs_per_hour": result["eager_runs_per_gpu_hour"],
             "train_s": result["seconds_per_run"]["train_s"], "wall_s": elapsed / len(records),
             "tta2": {k: 100 * v for k, v in asdict(stats.mean_ci(acc["alternating"][2])).items()}}
    rows = bench_throughput(source, cache_dir, throughput_runs, modes, device, size) if modes else []
    result["throughput"] = [eager] + [{**{k: v for k, v in r.items() if k != "tta2"},
                                       "tta2": {k: 100 * v for k, v in asdict(r["tta2"]).items()}} for r in rows]
    result["checks"] = precision_checks(device) + [
        {"check": "CUDA-event train + eval seconds within the wall clock",
         "passed": all(r["train_s"] + r["eval_s"] <= r["wall_s"] * 1.001 for r in records)}]
    if size == "full" and "JPEG" in data.description:
        mean = acc["alternating"][2].mean()
        result["checks"].append({"check": f"TTA-2 mean within 0.1 points of {100 * JPEG_COPY_TARGET:.1f}% (JPEG copy)",
                                 "passed": bool(abs(mean - JPEG_COPY_TARGET) <= 0.001), "value": 100 * float(mean)})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float))
    print_summary(result)
    print(f"written: {out}", flush=True)
    return result


def print_summary(result: dict) -> None:
    for f in FLIPS:
        cells = "  ".join(f"TTA{lvl} {v['mean']:.2f} [{v['low']:.2f}, {v['high']:.2f}] sd {v['std']:.3f}"
                          for lvl, v in enumerate(result["accuracy"][f].values()))
        print(f"{f:<12} {cells}")
    diffs = "  ".join(f"TTA{lvl} {v['mean']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]"
                      for lvl, v in enumerate(result["alternating_minus_random"].values()))
    print(f"alternating - random (paired by seed, pts): {diffs}")
    s = result["seconds_per_run"]
    print(f"seconds per run: train {s['train_s']:.3f}  eval {s['eval_s']:.3f}  wall {s['wall_s']:.3f}; "
          f"{result['eager_runs_per_gpu_hour']:.0f} runs per GPU-hour (eager, sequential)")
    for c in result["checks"]:
        print(f"[{'ok' if c['passed'] else 'FAIL'}] {c['check']}" + (f" ({c['value']:.2f})" if "value" in c else ""))
