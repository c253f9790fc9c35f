"""Run a study: ``python -m harness.study NAME --seeds N [options]``.

Trains every (cell, seed) of the study's grid that the run store does not already hold (whichever
study trained it), on Ray actors (one per GPU slot) or in-process, storing each run the moment it
finishes; then writes the study's report. Rerunning the same command resumes.
"""
from __future__ import annotations

import sys
from pathlib import Path

from airbench_core import DataError, load_cifar10

from . import campaign, store
from .backends import BackendError, LocalBackend, RayBackend, check_address
from .cli import Parser, UserError, fail, positive_float, positive_int
from .grid import PRESET_NAMES
from .identity import method_version
from .lock import LockHeld
from .studies_registry import all_studies


def build_parser() -> Parser:
    p = Parser(prog="python -m harness.study", description=__doc__.split("\n\n")[1],
               epilog="Runs: STORE (default results/store), shared by every study. The study: OUT/manifest.json, "
                      "OUT/keys.json, OUT/report.md, OUT/figures/. Load its runs with harness.store.load(OUT).")
    p.add_argument("name", nargs="?", help="study to run (see --list)")
    p.add_argument("--seeds", type=positive_int, help=f"runs per cell of the grid (seeds 0..N-1, at most "
                   f"{campaign.MAX_SEEDS:,}); required")
    p.add_argument("--out", type=Path, help="the study's folder: manifest, key list, report, figures "
                   "(default: results/NAME)")
    p.add_argument("--store", type=Path, default=store.DEFAULT_STORE,
                   help=f"the run store shared by every study (default: {store.DEFAULT_STORE})")
    p.add_argument("--allow-mixed-versions", action="store_true",
                   help="add runs to a store holding runs of another airbench_core version (reports split "
                        "by version); without it such a campaign stops before training")
    p.add_argument("--data", help="CIFAR-10 source: 'download' (torchvision, into the cache folder), a "
                   "cifar-10-batches-py folder, an image tree or .tar.gz of one (default: $AIRBENCH_DATA, "
                   "else download)")
    p.add_argument("--cache-dir", help="cache for downloads and decoded arrays (default: $AIRBENCH_CACHE, "
                   "else ~/.cache/airbench_harness)")
    p.add_argument("--address", help="join a running Ray cluster ('auto' or HOST:PORT of its head); default: "
                   "start a private local Ray, even when another cluster runs on this machine")
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
    p.add_argument("--verbose", action="store_true", help="let Ray's own log lines through")
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    return p


def check_out(out: Path, root: Path, study: str, preset: str) -> None:
    """Refuse a study folder that is a file, a store, another study's, or of the old layout."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file, not a folder")
    if root.exists() and not root.is_dir():
        raise UserError(f"--store {root} is an existing file, not a folder")
    if out.resolve() == root.resolve():
        raise UserError(f"--out and --store are both {out}: give the study its own folder")
    if (out / "store.json").exists():
        raise UserError(f"--out {out} is a run store; pass it as --store and choose another --out")
    if (out / "manifest.json").exists():
        m = store.read_manifest(out)
        if (m.get("study"), m.get("preset")) != (study, preset):
            raise UserError(f"{out} holds study {m.get('study')} ({m.get('preset')} preset); "
                            f"choose another --out for {study} ({preset})")
        if "store" not in m:
            raise UserError(f"{out} holds its runs itself (the layout before the shared store): move them "
                            f"with python -m harness.store migrate {out} --store {root}")
        if store.store_path(out, m) != root.resolve():
            raise UserError(f"{out} reads its runs from {store.store_path(out, m)}, not --store {root}")


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
        if args.seeds > campaign.MAX_SEEDS:
            raise UserError(f"--seeds {args.seeds} is above the bound of {campaign.MAX_SEEDS:,} runs per cell")
        if args.retries < 0:
            raise UserError("--retries must be 0 or more")
        if args.address and args.backend == "ray":
            check_address(args.address)        # seconds, not Ray's minutes of retries
        study = STUDIES[args.name]
        out, root = args.out or Path("results") / args.name, args.store
        check_out(out, root, study.name, args.preset)
        data = load_cifar10(args.data, args.cache_dir)
        plan = campaign.plan(study, args.preset, args.seeds, root)
        if args.dry_run:
            print(f"{study.name} ({args.preset} preset) on {data.description}, store {root}, output {out}")
            print(plan.describe())
            return 0
        if root.exists():
            campaign.check_identity(root, method_version(), data.fingerprint, args.allow_mixed_versions)
        summary = train(study, args, out, root, data, plan)
    except (UserError, DataError, BackendError, store.StoreError, LockHeld) as exc:
        return fail(str(exc))
    if summary.interrupted:
        print("stopped by Ctrl-C; rerun the same command to resume", file=sys.stderr)
        return 130
    if not args.no_report:
        from .report import write_report
        try:
            path = write_report(out, study)
            print(f"report: {path}", file=sys.stderr)
        except store.StoreError as exc:
            return fail(str(exc))
    return 1 if summary.failed else 0


def train(study, args, out: Path, root: Path, data, plan) -> campaign.Summary:
    """Under the study folder's and the store's locks: start the backend, check it can do what was
    asked, run the campaign. A refusal here leaves no trace (folders this call created are removed)."""
    created = [p for p in (out, root) if not p.exists()]
    try:
        with campaign.locked(out, root):
            if not plan.todo:
                return record_only(study, args, out, root, data, plan)
            backend = make_backend(args, data.source)
            try:
                if args.device == "cuda" and not backend.has_gpu():
                    raise UserError(f"--device cuda, but no CUDA device in reach of the {backend.name} backend")
                if args.preset == "full" and args.device != "cpu" and not backend.has_gpu():
                    raise UserError("no GPU in reach for the full preset: use --preset smoke to run small "
                                    "configurations on the CPU, or --address to join a cluster with GPUs")
            except UserError:
                backend.stop()
                raise
            print(f"{study.name} ({args.preset}): {len(plan.todo)} runs to train, {len(plan.done)} already in "
                  f"{root}, {backend.slots()} {backend.name} worker(s); study folder {out}", file=sys.stderr)
            summary = campaign.run(study, args.preset, args.seeds, out, data, backend, retries=args.retries,
                                   store_root=root, allow_mixed_versions=args.allow_mixed_versions, take_locks=False)
            print(summary.line(), file=sys.stderr)
            return summary
    except (UserError, BackendError):
        for folder in created:
            if folder.is_dir() and [p.name for p in folder.iterdir()] == [".lock"]:
                (folder / ".lock").unlink()
                folder.rmdir()
        raise


class _NoBackend:
    """Every run is already in the store: the campaign only writes the study folder."""

    name = "none"

    def slots(self) -> int:
        return 1

    def run(self, queue):
        return iter(())

    def stop(self) -> None:
        pass


def record_only(study, args, out: Path, root: Path, data, plan) -> campaign.Summary:
    """Nothing to train (another study may have trained it all): write the study folder only."""
    print(f"{study.name} ({args.preset}): all {len(plan.specs)} runs already in {root}; nothing to train",
          file=sys.stderr)
    return campaign.run(study, args.preset, args.seeds, out, data, _NoBackend(), progress=False, store_root=root,
                        allow_mixed_versions=args.allow_mixed_versions, compact_at_end=False, take_locks=False)


def make_backend(args, data_source: str):
    if args.backend == "local":
        return LocalBackend(data_source, args.cache_dir, args.device, args.save_logits, args.pack, args.compile)
    return RayBackend(data_source, args.cache_dir, args.device, args.save_logits, address=args.address,
                      gpus_per_run=args.gpus_per_run, workers=args.workers, pack=args.pack, compile=args.compile,
                      verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
