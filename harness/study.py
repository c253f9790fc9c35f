"""Run a study: ``python -m harness.study NAME --seeds N [options]``.

Trains every (cell, seed) of the study's grid that the output folder does not already hold, on
Ray actors (one per GPU slot) or in-process, storing each run the moment it finishes; then writes
the study's report. Rerunning the same command resumes.
"""
from __future__ import annotations

import sys
from pathlib import Path

from airbench_core import DataError, load_cifar10

from . import campaign, store
from .backends import BackendError, LocalBackend, RayBackend
from .cli import Parser, UserError, fail, positive_float, positive_int
from .grid import PRESET_NAMES
from .studies_registry import all_studies


def build_parser() -> Parser:
    p = Parser(prog="python -m harness.study", description=__doc__.split("\n\n")[1],
               epilog="Results: OUT/runs/<key>.parquet (one per run), OUT/manifest.json, OUT/report.md, "
                      "OUT/figures/. Load them with harness.store.load(OUT).")
    p.add_argument("name", nargs="?", help="study to run (see --list)")
    p.add_argument("--seeds", type=positive_int, help="runs per cell of the grid (seeds 0..N-1); required")
    p.add_argument("--out", type=Path, help="output folder (default: results/NAME)")
    p.add_argument("--data", help="CIFAR-10 source: 'download' (torchvision, into the cache folder), a "
                   "cifar-10-batches-py folder, an image tree or .tar.gz of one (default: $AIRBENCH_DATA, "
                   "else download)")
    p.add_argument("--cache-dir", help="cache for downloads and decoded arrays (default: $AIRBENCH_CACHE, "
                   "else ~/.cache/airbench_harness)")
    p.add_argument("--address", help="join a running Ray cluster ('auto' or ray://host:port); default: "
                   "start an embedded local Ray")
    p.add_argument("--gpus-per-run", type=positive_float, default=1.0,
                   help="GPU share per actor; a fraction such as 0.25 packs 4 runs on one GPU (default 1)")
    p.add_argument("--workers", type=positive_int,
                   help="actors when training on CPUs (default: one per CPU of the cluster)")
    p.add_argument("--preset", choices=PRESET_NAMES, default="full",
                   help="full: the study's real grid (needs GPUs); smoke: tiny configurations that "
                        "finish on a CPU in minutes, labelled smoke everywhere (default full)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="where workers train (default auto: CUDA when a worker has a GPU)")
    p.add_argument("--backend", choices=("ray", "local"), default="ray",
                   help="ray: actors on a Ray cluster (default); local: in this process, no Ray")
    p.add_argument("--pack", type=positive_int, default=1,
                   help="train up to K runs of the same cell at once in one worker, as one packed network "
                        "(grouped convolutions; same results as separate runs); default 1")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (compiled once per worker, reused for every run)")
    p.add_argument("--retries", type=int, default=2, help="extra attempts for a run that fails (default 2)")
    p.add_argument("--dry-run", action="store_true", help="print the grid (cells, runs, done, to do) and exit")
    p.add_argument("--save-logits", action="store_true", help="also store float16 logits per TTA level")
    p.add_argument("--no-report", action="store_true", help="skip writing report.md after the campaign")
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    return p


def check_out(out: Path, study: str, preset: str) -> None:
    """Refuse an output folder that is a file or holds another study's results."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file, not a folder")
    if (out / "manifest.json").exists():
        m = store.read_manifest(out)
        if (m.get("study"), m.get("preset")) != (study, preset):
            raise UserError(f"{out} holds study {m.get('study')} ({m.get('preset')} preset); "
                            f"choose another --out for {study} ({preset})")


def main(argv: list[str] | None = None) -> int:
    STUDIES = all_studies()
    args = build_parser().parse_args(argv)
    if args.list:
        for name, s in STUDIES.items():
            print(f"{name:<22} {s.description}")
        return 0
    try:
        if not args.name:
            raise UserError("name a study (see --list)")
        if args.name not in STUDIES:
            raise UserError(f"unknown study {args.name!r} (choose from {', '.join(STUDIES)})")
        if args.seeds is None:
            raise UserError("--seeds N is required")
        if args.retries < 0:
            raise UserError("--retries must be 0 or more")
        study = STUDIES[args.name]
        out = args.out or Path("results") / args.name
        check_out(out, study.name, args.preset)
        data = load_cifar10(args.data, args.cache_dir)
        plan = campaign.plan(study, args.preset, args.seeds, out)
        if args.dry_run:
            print(f"{study.name} ({args.preset} preset) on {data.description}, output {out}")
            print(plan.describe())
            return 0
        if not plan.todo:
            backend = None
        else:
            backend = make_backend(args, data.source)
        if backend and args.preset == "full" and args.device != "cpu" and not backend.has_gpu():
            backend.stop()
            raise UserError("no GPU in reach for the full preset: use --preset smoke to run small "
                            "configurations on the CPU, or --address to join a cluster with GPUs")
    except (UserError, DataError, BackendError, store.StoreError) as exc:
        return fail(str(exc))
    if backend is None:
        print(f"{study.name} ({args.preset}): all {len(plan.specs)} runs already in {out}; nothing to train",
              file=sys.stderr)
        summary = campaign.Summary(planned=len(plan.specs), skipped=len(plan.done))
    else:
        print(f"{study.name} ({args.preset}): {len(plan.todo)} runs to train, {len(plan.done)} already done, "
              f"{backend.slots()} {backend.name} worker(s); results in {out}", file=sys.stderr)
        summary = campaign.run(study, args.preset, args.seeds, out, data, backend, retries=args.retries)
        print(summary.line(), file=sys.stderr)
    if summary.interrupted:
        print(f"stopped by Ctrl-C; rerun the same command to resume", file=sys.stderr)
        return 130
    if not args.no_report:
        from .report import write_report
        try:
            path = write_report(out, study)
            print(f"report: {path}", file=sys.stderr)
        except store.StoreError as exc:
            return fail(str(exc))
    return 1 if summary.failed else 0


def make_backend(args, data_source: str):
    if args.backend == "local":
        return LocalBackend(data_source, args.cache_dir, args.device, args.save_logits, args.pack, args.compile)
    return RayBackend(data_source, args.cache_dir, args.device, args.save_logits, address=args.address,
                      gpus_per_run=args.gpus_per_run, workers=args.workers, pack=args.pack, compile=args.compile)


if __name__ == "__main__":
    sys.exit(main())
