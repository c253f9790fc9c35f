"""GPU check: train N runs of a preset and print accuracy per TTA level and seconds per run.

python -m airbench_core.check --data SOURCE --runs 30 [--preset airbench94]
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from .cli import USAGE_ERROR, Parser
from .config import PRESETS, preset
from .data import DataError, load_cifar10
from .train import DeviceData, train


def summarize(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"mean {100 * statistics.fmean(values):.2f}%  std {100 * sd:.2f}"


def device_problem(name: str) -> str | None:
    """Why ``name`` cannot be trained on here, or None."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return f"unknown device {name!r} (use cuda, cuda:N or cpu)"
    if device.type == "cuda" and not torch.cuda.is_available():
        return f"--device {name}, but no CUDA device is visible here"
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        return f"--device {name}, but only {torch.cuda.device_count()} CUDA device(s) are visible"
    if device.type not in ("cuda", "cpu"):
        return f"unsupported device {name!r} (use cuda, cuda:N or cpu)"
    return None


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m airbench_core.check", description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        help="CIFAR-10 source: 'download', a cifar-10-batches-py folder, an image tree "
        "or .tar.gz (default: $AIRBENCH_DATA, else download)",
    )
    p.add_argument("--runs", type=int, default=10, help="number of timed runs, seeds 0..N-1 (default 10)")
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="airbench94",
        help="which method to train (default airbench94)",
    )
    p.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device to train on, e.g. cuda, cuda:1 or cpu (default: cuda when available)",
    )
    p.add_argument(
        "--cache-dir", help="where decoded arrays are cached (default: $AIRBENCH_CACHE or ~/.cache)"
    )
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    problem = device_problem(args.device)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return USAGE_ERROR
    try:
        data = load_cifar10(args.data, args.cache_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    cfg = preset(args.preset)
    torch.backends.cudnn.benchmark = args.device.startswith("cuda")  # fixed shapes: cuDNN's fastest kernels
    device_data = DeviceData.build(data, args.device)
    print(f"{args.preset} on {data.description} ({data.source}), device {args.device}", flush=True)
    train(cfg.replace(epochs=1.0), seed=10**6, data=device_data, device=args.device)  # warm-up, not counted
    results, t0 = [], time.perf_counter()
    for seed in range(args.runs):
        r = train(cfg, seed, device_data, args.device)
        results.append(r)
        print(
            f"run {seed:3d}: tta0 {100 * r.accuracy[0]:.2f}  tta1 {100 * r.accuracy[1]:.2f}  "
            f"tta2 {100 * r.accuracy[2]:.2f}  train {r.train_seconds:.2f}s  eval {r.eval_seconds:.2f}s  "
            f"wall {r.wall_seconds:.2f}s",
            flush=True,
        )
    elapsed = time.perf_counter() - t0
    for level in range(3):
        print(f"TTA {level}: {summarize([r.accuracy[level] for r in results])}  (n={len(results)})")
    train_s = statistics.fmean(r.train_seconds for r in results)
    print(
        f"seconds per run: train {train_s:.3f}  wall {elapsed / len(results):.3f}  "
        f"runs per GPU-hour {3600 * len(results) / elapsed:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
