"""Run a study: ``python -m harness.study NAME|FILE.toml --seeds N [options]``.

Trains every (cell, seed) of the study's grid that the run store does not already hold (whichever
study trained it), on Ray actors (one per GPU slot) or in-process, storing each run the moment it
finishes; then writes the study's report. Rerunning the same command resumes. With a study file and
``--until decided``, seeds come in rounds until each comparison with the baseline is decided.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.common import Parser, UserError, fail, positive_float, positive_int, quiet_numerics
from harness.spec import studyfile
from harness.spec.defaults import DEFAULT_STORE, MAX_SEEDS
from harness.spec.grid import PRESET_NAMES, Base, Study, check_size
from harness.spec.methods import DEFAULT_METHOD, builtin_names, find_method
from harness.spec.studies import all_studies
from harness.stats import sequential

if TYPE_CHECKING:
    from harness.run import campaign
    from harness.stats.claims import ClaimRule

# What answers at once (help, --list, argument and study-file checks, --dry-run) imports neither
# torch nor Ray: the campaign's modules are imported by the functions that train.


def build_parser() -> Parser:
    p = Parser(
        prog="python -m harness.study",
        description=__doc__.split("\n\n")[1],
        epilog="Runs: STORE (default results/store), shared by every study. The study: OUT/manifest.json, "
        "OUT/keys.json, OUT/report.md, OUT/figures/. Load its runs with harness.store.load(OUT).",
    )
    p.add_argument("name", nargs="?", help="a built-in study (see --list) or a study file (.toml)")
    p.add_argument(
        "--seeds",
        type=positive_int,
        help=f"runs per cell of the grid (seeds 0..N-1, at most "
        f"{MAX_SEEDS:,}); required unless --until decided",
    )
    p.add_argument(
        "--method",
        metavar="METHOD",
        help="the method every cell starts from: a built-in (see --list-methods), package.module:NAME "
        "or path/to/file.py:NAME (default: airbench94, or the study file's)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change one field of the method's config in every cell's base configuration (repeatable; "
        "see --list-fields), e.g. --set lr=13 --set widths=32,64,64; a field the study varies keeps "
        "the study's values",
    )
    p.add_argument(
        "--until",
        choices=("seeds", "decided"),
        default="seeds",
        help="seeds: train --seeds runs per cell (default); decided: a study file's comparisons "
        "with its baseline get seeds in rounds until each is decided (anytime-valid)",
    )
    p.add_argument(
        "--precision",
        type=positive_float,
        help="with --until decided: P in points; a comparison whose confidence sequence is "
        "lying wholly inside [−P, P] is decided equal (default: the study file's [adaptive] table)",
    )
    p.add_argument(
        "--max-seeds",
        type=positive_int,
        help="with --until decided: M, the seeds after which a comparison is undecided",
    )
    p.add_argument(
        "--min-seeds",
        type=positive_int,
        help="with --until decided: no decision before this many seeds (default 10)",
    )
    p.add_argument(
        "--sequence",
        choices=sequential.SEQUENCES,
        help="with --until decided: the confidence sequence behind decisions: asymptotic (default: "
        "decides in tens of seeds; its decisions held under failed runs in harness.bench coverage) or "
        "betting (valid for any shape of accuracies, but rarely decides a difference under a few points)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="the study's folder: manifest, key list, report, figures "
        "(default: results/NAME, or results/NAME-smoke with --preset smoke)",
    )
    p.add_argument(
        "--store",
        type=Path,
        default=DEFAULT_STORE,
        help=f"the run store shared by every study (default: {DEFAULT_STORE})",
    )
    p.add_argument(
        "--allow-mixed-versions",
        action="store_true",
        help="train runs of this method version in a store holding runs of another: the same seeds "
        "train again, stored beside the old; verdicts and reports count the current version "
        "(see docs/failed-runs-and-versions.md); without it such a campaign stops before training",
    )
    p.add_argument(
        "--data",
        help="the data: a CIFAR-10 source ('download' (torchvision, into the cache folder), a "
        "cifar-10-batches-py folder, an image tree or .tar.gz of one), or another dataset named "
        "cifar100:PATH|download, cifar100-coarse:PATH|download, svhn:PATH|download, "
        "imagefolder:PATH (train/<class>/ and test/<class>/, K classes) (default: $AIRBENCH_DATA, "
        "else download)",
    )
    p.add_argument(
        "--cache-dir",
        help="cache for downloads and decoded arrays (default: $AIRBENCH_CACHE, "
        "else ~/.cache/airbench_harness)",
    )
    p.add_argument(
        "--address",
        help="join a running Ray cluster ('auto' or HOST:PORT of its head); default: "
        "start a private local Ray, even when another cluster runs on this machine",
    )
    p.add_argument(
        "--gpus-per-run",
        type=positive_float,
        default=1.0,
        help="GPU share per actor; a fraction such as 0.25 packs 4 runs on one GPU (default 1)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        help="actors when training on CPUs (default: one per CPU of the cluster)",
    )
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        help="built-in studies: full, the study's real grid (needs GPUs; the default); smoke, tiny "
        "configurations that finish on a CPU in minutes, labelled smoke everywhere. A study "
        "file sets its own sizes",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="where workers train (default auto: CUDA when a worker has a GPU)",
    )
    p.add_argument(
        "--backend",
        choices=("ray", "local"),
        default="ray",
        help="ray: actors on a Ray cluster (default); local: in this process, no Ray",
    )
    p.add_argument(
        "--pack",
        type=positive_int,
        default=1,
        help="train up to K runs of the same cell at once in one worker, as one packed network "
        "(grouped convolutions; same results as separate runs); default 1",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training step (compiled once per worker, reused for every run)",
    )
    p.add_argument("--retries", type=int, default=2, help="extra attempts for a run that fails (default 2)")
    p.add_argument(
        "--run-timeout",
        type=positive_float,
        metavar="SECONDS",
        help="an attempt running longer is stopped, its worker replaced, and the attempt counted as "
        "failed (default: from the plan, 10x the longest expected run and at least 5 min when the "
        "store has runs to measure, else 100x the reference and at least 1 h)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan without loading data or training: cells, runs done and to do, GPU-hours "
        "and wall time, the smallest difference the seeds can detect, and for --until decided "
        "the expected seeds; then exit",
    )
    p.add_argument("--save-logits", action="store_true", help="also store float16 logits per TTA level")
    p.add_argument("--no-report", action="store_true", help="skip writing report.md after the campaign")
    p.add_argument("--verbose", action="store_true", help="let Ray's own log lines through")
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    p.add_argument("--list-methods", action="store_true", help="list the built-in methods and exit")
    p.add_argument(
        "--list-fields",
        metavar="METHOD",
        help="list every config field of METHOD (a built-in, package.module:NAME or file.py:NAME) a "
        "study file or --set may change: type, default, meaning; then exit",
    )
    return p


def check_out(out: Path, root: Path, study: str, preset: str) -> None:
    """Refuse a study folder that is a file, a store, another study's, or of the old layout."""
    from harness import store

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
            raise UserError(
                f"{out} holds study {m.get('study')} ({m.get('preset')} preset); "
                f"choose another --out for {study} ({preset})"
            )
        if "store" not in m:
            raise UserError(
                f"{out} holds its runs itself (the layout before the shared store): move them "
                f"with python -m harness.store migrate {out} --store {root}"
            )
        if store.store_path(out, m) != root.resolve():
            raise UserError(f"{out} reads its runs from {store.store_path(out, m)}, not --store {root}")


@dataclass(frozen=True)
class Target:
    """What the command line asks for: the study, its preset, and for a study file its file and rule."""

    study: Study
    preset: str
    file: studyfile.StudyFile | None = None
    rule: sequential.Rule | ClaimRule | None = None

    def adaptive(self) -> tuple[studyfile.StudyFile, sequential.Rule | ClaimRule]:
        """The study file and stopping rule of an --until decided target (set together for one)."""
        if self.file is None or self.rule is None:
            raise UserError("--until decided needs a study file (.toml) with a baseline")
        return self.file, self.rule

    def manifest_extra(self, args, workers: int) -> dict:
        from harness.report import experiment

        extra = {}
        if self.file is not None:
            text = Path(self.file.path).read_text(encoding="utf-8")
            overrides = studyfile.parse_set(args.set, config_type=studyfile.config_type_of(self.file.method))
            extra["study_file"] = experiment.manifest_entry(self.file, text, overrides, args.method)
        if self.rule is not None:
            extra["adaptive"] = {**self.rule.record(), "workers": workers}  # fixed from the first round on
        return extra


def default_out(name: str, preset: str) -> Path:
    """results/NAME, and results/NAME-smoke for the smoke preset: a smoke study never blocks the real one."""
    return Path("results") / (f"{name}-smoke" if preset == "smoke" else name)


def is_study_file(name: str) -> bool:
    return name.endswith(".toml") or Path(name).is_file()


def resolve(args, studies: dict[str, Study]) -> Target:
    """The study, preset and adaptive rule the arguments name; one-line UserErrors for mistakes."""
    if not args.name:
        raise UserError("name a study (see --list) or a study file (.toml)")
    if is_study_file(args.name):
        if args.preset:
            raise UserError("--preset applies to built-in studies; a study file sets its own sizes in [base]")
        sf = studyfile.load(args.name, method=args.method, set_items=args.set)
        from harness.report import experiment  # the study file is valid: now build its study

        target = Target(experiment.as_study(sf), experiment.FILE_PRESET, sf)
    elif args.name in studies:
        method = args.method or DEFAULT_METHOD
        find_method(method)  # a MethodError (one line) for a method that names nothing
        overrides = studyfile.parse_set(args.set, config_type=studyfile.config_type_of(method))
        base = Base(method, tuple(overrides.items()))
        try:
            base.config(args.preset or "full")
        except (ValueError, TypeError) as exc:
            raise UserError(f"{config_source(method, args.preset, bool(overrides))}: {exc}") from None
        target = Target(dataclasses.replace(studies[args.name], base=base), args.preset or "full")
    else:
        raise UserError(
            f"unknown study {args.name!r} (choose from {', '.join(studies)}, or give a .toml study file)"
        )
    if args.until == "seeds":
        if args.seeds is None:
            raise UserError("--seeds N is required (or --until decided with a study file)")
        if any(v is not None for v in (args.precision, args.max_seeds, args.min_seeds, args.sequence)):
            raise UserError("--precision, --max-seeds, --min-seeds and --sequence go with --until decided")
    else:
        target = dataclasses.replace(target, rule=adaptive_rule(args, target.file))
    check_size(len(target.study.cells(target.preset)), args.seeds or target.adaptive()[1].max_seeds)
    return target


def claim_rule(args, sf: studyfile.StudyFile):
    """A claim alone under --until decided: its one-sided sequences at the claim's α."""
    from harness.stats.claims import ClaimRule

    if args.seeds is not None:
        raise UserError("--until decided chooses the seeds itself: drop --seeds (cap them with --max-seeds)")
    if args.precision is not None:
        raise UserError("--precision is for comparisons; a [claim] alone is decided against its accuracy")
    file = sf.adaptive
    max_seeds = args.max_seeds or (file.max_seeds if file else None)
    if max_seeds is None:
        raise UserError(
            "--until decided needs --max-seeds M, or an [adaptive] table with max_seeds in the study file"
        )
    if max_seeds > MAX_SEEDS:
        raise UserError(f"--max-seeds {max_seeds} is above the bound of {MAX_SEEDS:,} runs per cell")
    min_seeds = args.min_seeds or (file.min_seeds if file else 10)
    return ClaimRule(sf.claimed[0].alpha, min(min_seeds, max_seeds), max_seeds)


def config_source(method: str, preset: str | None, has_set: bool) -> str:
    """What put together a config that failed its checks, for the error's prefix: --set only when
    the user gave one, and the preset's sizing whenever one applies."""
    parts = (["--set"] if has_set else []) + ([f"{method}'s {preset} preset"] if preset == "smoke" else [])
    return " with ".join(parts) or f"{method}'s defaults"


def adaptive_rule(args, sf: studyfile.StudyFile | None) -> sequential.Rule | ClaimRule:
    if sf is not None and sf.claim is not None and not sf.comparisons:
        return claim_rule(args, sf)
    if sf is None or not sf.comparisons:
        raise UserError(
            "--until decided needs a study file whose cells include its baseline (the base config)"
        )
    if args.seeds is not None:
        raise UserError("--until decided chooses the seeds itself: drop --seeds (cap them with --max-seeds)")
    file = sf.adaptive
    precision = args.precision or (file.precision if file else None)
    max_seeds = args.max_seeds or (file.max_seeds if file else None)
    if precision is None or max_seeds is None:
        raise UserError(
            "--until decided needs --precision P (points) and --max-seeds M, or an [adaptive] table "
            "in the study file"
        )
    if max_seeds > MAX_SEEDS:
        raise UserError(f"--max-seeds {max_seeds} is above the bound of {MAX_SEEDS:,} runs per cell")
    min_seeds = args.min_seeds or (file.min_seeds if file else 10)
    try:
        return sequential.Rule(
            precision,
            max_seeds,
            min_seeds=min(min_seeds, max_seeds),
            comparisons=len(sf.comparisons),  # Bonferroni over the study's comparisons
            kind=args.sequence or sequential.ASYMPTOTIC,
        )
    except ValueError as exc:
        raise UserError(f"--until decided: {exc}") from None


def first_round(target: Target, root: Path, out: Path, workers: int) -> dict[str, int]:
    """Seeds per cell of the next adaptive round, from what the store holds (for --dry-run)."""
    from harness import store
    from harness.run import adaptive

    sf, rule = target.adaptive()
    runs = adaptive.current_runs(sf, out)
    runs = store.empty_frame() if runs is None else runs
    if not isinstance(rule, sequential.Rule):  # a claim alone: its one cell's next round
        have = len(adaptive.claim_accuracies(sf, runs))
        return {sf.compared_baseline.label: rule.next_runs(have, workers)}
    states, extra = sequential.plan_round(adaptive.differences(sf, runs), rule, workers)
    counts = {name: s.seeds + extra.get(name, 0) for name, s in states.items()}
    return adaptive.seeds_per_cell(sf, counts)


def planned_slots(args) -> tuple[int, str]:
    """Worker slots the campaign would get, without starting Ray or touching CUDA in the driver."""
    from harness.stats import planning

    if args.backend == "local":
        return 1, "the local backend"
    if args.workers:
        return args.workers, "--workers"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = len([d for d in visible.split(",") if d.strip()]) if visible is not None else planning.local_gpus()
    return (
        max(1, int(gpus / args.gpus_per_run)) if gpus else 1,
        f"{gpus} GPU(s) on this machine" if gpus else "no GPU here; pass --workers to plan for a cluster",
    )


def planned_device(args, preset: str):
    """The device class the campaign would train on: a GPU plan never prices itself from CPU runs."""
    from harness.stats import planning

    if args.device == "cpu":
        return planning.Device("cpu")
    models = [] if args.address else planning.local_gpu_models()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and models:
        ids = [d.strip() for d in visible.split(",") if d.strip().isdigit()]
        models = [models[int(i)] for i in ids if int(i) < len(models)] if ids else []
    if models:
        return planning.Device("gpu", models[0] if len(set(models)) == 1 else None)
    if args.device == "auto" and preset == "smoke" and not args.address:
        return planning.Device("cpu")  # a smoke campaign with no GPU here trains on this CPU
    return planning.Device("gpu")


def list_methods() -> str:
    """Every built-in method: name, version, summary (one line each); then how to name your own."""
    from harness.spec.identity import method_version

    lines = []
    for name in builtin_names():
        try:
            method = find_method(name)
            lines.append(f"{name:<20} {method_version(method)}  {method.summary}")
        except UserError as exc:
            lines.append(f"{name:<20} (unavailable: {exc})")
    lines.append(
        "your own: --method package.module:NAME or --method path/to/file.py:NAME "
        "(see README, 'Your own method'); fields: --list-fields METHOD"
    )
    return "\n".join(lines)


def list_fields(spec: str) -> str:
    """Every field of the method's config: name, type, default, one line of meaning."""
    import dataclasses

    method = find_method(spec)
    kinds = studyfile.kinds(method.config_type)
    rows = []
    for f in dataclasses.fields(method.defaults):
        default = getattr(method.defaults, f.name)
        shown = "none" if default is None else studyfile.shown_value(default)
        rows.append((f.name, kinds[f.name].one, shown, method.field_help.get(f.name, "")))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    head = f"{spec}: {method.summary}" if method.summary else spec
    return "\n".join(
        [head] + [f"  {n:<{width[0]}}  {t:<{width[1]}}  {d:<{width[2]}}  {h}".rstrip() for n, t, d, h in rows]
    )


def dry_run(target: Target, args, out: Path, root: Path) -> int:
    from harness import store
    from harness.run import campaign
    from harness.stats import planning

    slots, why = planned_slots(args)
    seeds = first_round(target, root, out, slots) if target.rule else args.seeds
    plan = campaign.plan(target.study, target.preset, seeds, root)
    records = store.read_records(root) if (root / "store.json").exists() else store.empty_frame()
    device = planned_device(args, target.preset)
    versions = campaign.method_versions(plan.specs)
    same = planning.comparable(records, target.preset, device, plan.specs, versions)
    runs = same.runs if len(same.runs) else None
    print(f"{target.study.name} ({target.preset} preset), store {root}, output {out}")
    print(f"plan for: {device.describe()}; seconds and sd from {same.source}")
    if target.rule:
        print(f"adaptive: {target.rule.describe()}")
        print("first round:")
    print(plan.describe())
    methods = {spec: find_method(spec) for spec in {s.cell.method_spec for s in plan.specs}}

    def reference(specs) -> list[tuple[str, float | None]]:
        """(method name, its reference seconds per epoch) per spec, for a store with no runs."""
        return [
            (methods[x.cell.method_spec].name, methods[x.cell.method_spec].reference_seconds_per_epoch)
            for x in specs
        ]

    print(planning.cost_line(plan.todo, runs, slots, why, device, same.source, reference(plan.todo)))
    from_ = "of the same method, preset and device"
    if target.rule and isinstance(target.rule, sequential.Rule):
        seconds, _ = planning.seconds_per_run(plan.specs, runs, reference(plan.specs))
        per_run = float(seconds.mean()) if len(seconds) else None
        print(
            planning.adaptive_lines(
                target.rule, runs, slots, runs_from=from_, seconds_per_run=per_run, unit=device.unit
            )
        )
    elif target.rule:
        print(f"then rounds of at least {slots} runs until decided, at most {target.rule.max_seeds}")
    else:
        print(planning.planned_precision(args.seeds, runs, runs_from=from_).line())
    for line in refusal_notes(root, args.allow_mixed_versions, versions):
        print(line)
    return 0


def refusal_notes(root: Path, allow_mixed_versions: bool, versions: dict[str, str]) -> list[str]:
    """What the real run would refuse that a dry run can see without loading data: runs of one of
    this campaign's methods at another version in the store; and the data the store holds (other
    data is refused once it is loaded). ``versions``: {method spec: version here}."""
    from harness import store
    from harness.spec.identity import method_family

    if not (root / "store.json").exists():
        return []
    ident = store.read_identity(root)
    held = store.versions_by_method(ident)
    notes = []
    for spec, version in versions.items():
        family = method_family(find_method(spec))
        others = sorted(held.get(family, set()) - {version})
        if others and not allow_mixed_versions:
            notes.append(
                f"the real run would be refused: store {root} holds runs of {family} at method version "
                f"{', '.join(others)}, but method {spec} here is version {version}; use another --store, "
                f"or pass --allow-mixed-versions"
            )
    if ident.get("data_fingerprints"):
        notes.append(
            f"store {root} holds runs on data {', '.join(ident['data_fingerprints'])}: a campaign on "
            f"other data is refused once --data is loaded"
        )
    return notes


@quiet_numerics
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_methods or args.list_fields:
        try:
            print(list_fields(args.list_fields) if args.list_fields else list_methods())
        except UserError as exc:
            return fail(str(exc))
        return 0
    studies = {} if args.name and is_study_file(args.name) and not args.list else all_studies()
    if args.list:
        for name, s in studies.items():
            print(f"{name:<22} {s.description}")
        return 0
    try:
        if args.seeds is not None and args.seeds > MAX_SEEDS:
            raise UserError(f"--seeds {args.seeds} is above the bound of {MAX_SEEDS:,} runs per cell")
        if args.retries < 0:
            raise UserError("--retries must be 0 or more")
        target = resolve(args, studies)
    except UserError as exc:
        return fail(str(exc))
    from harness import store

    study = target.study
    out, root = args.out or default_out(study.name, target.preset), args.store
    try:
        check_out(out, root, study.name, target.preset)
        if target.rule is not None:
            from harness.run.adaptive import check_rule

            check_rule(out, target.rule)
        if args.dry_run:
            return dry_run(target, args, out, root)
    except (UserError, store.StoreError) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(os_error_line(exc))
    # A real campaign from here on: torch, and Ray unless --backend local.
    from harness.run.address import BackendError, check_address

    if args.address and args.backend == "ray":
        try:
            check_address(args.address)  # seconds, before torch loads: not Ray's minutes of retries
        except BackendError as exc:
            return fail(str(exc))
    from airbench_core import DataError, load_cifar10
    from harness.run import campaign
    from harness.store.lock import LockHeld

    try:
        data = load_cifar10(args.data, args.cache_dir)
        plan = campaign.plan(study, target.preset, args.seeds or 0, root)
        if root.exists():
            campaign.check_identity(
                root,
                campaign.method_versions(study.cells(target.preset)),
                data.fingerprint,
                args.allow_mixed_versions,
            )
        summary = train(target, args, out, root, data, plan)
    except (UserError, DataError, BackendError, store.StoreError, LockHeld) as exc:
        return fail(str(exc))
    except OSError as exc:  # read-only folder, full disk, permission: one line, exit 2
        return fail(os_error_line(exc))
    if summary.interrupted:
        print("stopped by Ctrl-C; rerun the same command to resume", file=sys.stderr)
        return 130
    if not args.no_report:
        from harness.report.writer import write_report

        try:
            path = write_report(out, study)
            print(f"report: {path} (and {path.with_name('report.html')})", file=sys.stderr)
        except store.StoreError as exc:
            return fail(str(exc))
        except OSError as exc:
            return fail(os_error_line(exc))
    print_verdicts(study, out)
    return 1 if summary.failed else 0


def human(seconds: float) -> str:
    return (
        f"{seconds:.0f} s"
        if seconds < 120
        else f"{seconds / 60:.0f} min"
        if seconds < 7200
        else f"{seconds / 3600:.1f} h"
    )


def print_verdicts(study: Study, out: Path) -> None:
    """The campaign's answer on the terminal: primary and adaptive verdicts, a short table."""
    if study.verdicts is None or not (out / "keys.json").exists():
        return
    from harness import store
    from harness.report.verdicts import records_campaign, table

    try:
        c = records_campaign(out)
        text = table(study.verdicts(c), c)
    except (store.StoreError, ValueError, KeyError) as exc:  # a courtesy: the report has them too
        text = f"verdicts unavailable ({type(exc).__name__}: {exc}); see the report"
    if text:
        print(text)


def os_error_line(exc: OSError) -> str:
    """An OSError as one line naming the path: '<path>: Read-only file system (while writing the campaign)'."""
    path = exc.filename if exc.filename is not None else None
    paths = " -> ".join(str(p) for p in (path, exc.filename2) if p is not None)
    why = exc.strerror or str(exc) or type(exc).__name__
    return f"{paths}: {why}" if paths else f"{type(exc).__name__}: {why}"


def train(target: Target, args, out: Path, root: Path, data, plan) -> campaign.Summary:
    """Under the study folder's and the store's locks: start the backend, check it can do what was
    asked, run the campaign. A refusal here leaves no trace (folders this call created are removed)."""
    from harness.run import campaign

    study, preset = target.study, target.preset
    created = [top_missing(p) for p in (out, root) if not p.exists()]
    try:
        with campaign.locked(out, root):
            if not plan.todo and target.rule is None:
                return record_only(target, args, out, root, data, args.seeds)
            timeout, why = planned_run_timeout(target, args, root, plan)
            backend = make_backend(args, data.source, timeout)
            try:
                if args.device == "cuda" and not backend.has_gpu():
                    raise UserError(
                        f"--device cuda, but no CUDA device in reach of the {backend.name} backend"
                    )
                if preset != "smoke" and args.device != "cpu" and not backend.has_gpu():
                    raise UserError(
                        "no GPU in reach for the full preset: use --preset smoke to run small "
                        "configurations on the CPU, or --address to join a cluster with GPUs"
                        if target.file is None
                        else "no GPU in reach: pass --device cpu to train this study file on the CPU, or "
                        "--address to join a cluster with GPUs"
                    )
            except UserError:
                backend.stop()
                raise
            extra = target.manifest_extra(args, backend.slots())
            common = dict(
                retries=args.retries,
                store_root=root,
                allow_mixed_versions=args.allow_mixed_versions,
                take_locks=False,
                manifest_extra=extra,
            )
            if target.rule is not None:
                summary = train_adaptive(target, out, root, data, backend, common)
            else:
                print(
                    f"{study.name} ({preset}): {len(plan.todo)} runs to train, {len(plan.done)} already in "
                    f"{root}, {backend.slots()} {backend.name} worker(s); study folder {out}; run timeout "
                    f"{timeout:g} s ({why})",
                    file=sys.stderr,
                )
                summary = campaign.run(study, preset, args.seeds, out, data, backend, **common)
            print(summary.line(), file=sys.stderr)
            return summary
    except BaseException:
        # whatever stopped it (a refusal, a lock held by another driver, Ctrl-C), a folder this call
        # created that holds nothing but its lock file is removed: no lock-only folders left behind
        for folder in created:
            remove_if_only_locks(folder)
        raise


def top_missing(path: Path) -> Path:
    """The outermost folder of ``path`` that does not exist yet (what creating ``path`` would create)."""
    path = path.absolute()
    while not path.parent.exists():
        path = path.parent
    return path


def remove_if_only_locks(folder: Path) -> None:
    """Remove a folder this driver created when it holds nothing but (empty folders and) lock files."""
    try:
        if not folder.is_dir():
            return
        entries = sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True)
        if any(p.is_file() and p.name != ".lock" for p in entries):
            return
        for p in entries:
            p.unlink() if p.is_file() else p.rmdir()
        folder.rmdir()
    except OSError:
        pass  # could not be created or cleaned: nothing (more) to undo


def train_adaptive(target: Target, out: Path, root: Path, data, backend, common: dict) -> campaign.Summary:
    """Rounds of seeds until every comparison is decided; the workers live across rounds."""
    from harness.run import adaptive, campaign
    from harness.store.compact import compact

    sf, rule = target.adaptive()
    print(
        f"{target.study.name}: adaptive seeds, {backend.slots()} {backend.name} worker(s); {rule.describe()}",
        file=sys.stderr,
    )

    rounds = {"n": 0, "worst": 0, "seconds": 0.0, "trained": 0}

    def train_round(seeds: dict[str, int]) -> campaign.Summary:
        rounds["n"] += 1
        per_run = rounds["seconds"] / rounds["trained"] if rounds["trained"] else None
        eta = f", ~{human(rounds['worst'] * per_run)} at this pace" if per_run else ""
        part = campaign.run(
            target.study,
            target.preset,
            seeds,
            out,
            data,
            backend,
            stop_backend=False,
            compact_at_end=False,
            progress=True,
            **common,
            progress_desc=f"round {rounds['n']} (worst case {rounds['worst']} runs left{eta})",
        )
        rounds["seconds"] += part.wall_seconds
        rounds["trained"] += part.trained
        return part

    def on_round(states) -> None:  # comparisons' rounds: the rule is a sequential.Rule
        assert isinstance(rule, sequential.Rule)
        rounds["worst"] = adaptive.worst_case_runs(states, rule)
        print(adaptive.progress_line(states), file=sys.stderr)

    def on_claim(state) -> None:
        rounds["worst"] = rule.max_seeds - state.n
        print(adaptive.claim_progress_line(state), file=sys.stderr)

    try:
        if isinstance(rule, sequential.Rule):
            summary = adaptive.run_adaptive(sf, rule, out, backend.slots(), train_round, on_round)
        else:
            summary = adaptive.run_claim_adaptive(sf, rule, out, backend.slots(), train_round, on_claim)
    finally:
        backend.stop()
    if not summary.interrupted:
        try:
            compact(root)
        except KeyboardInterrupt:
            summary.interrupted = True
    return summary


class _NoBackend:
    """Every run is already in the store: the campaign only writes the study folder."""

    name = "none"

    def slots(self) -> int:
        return 1

    def run(self, queue):
        return iter(())

    def stop(self) -> None:
        pass


def record_only(target: Target, args, out: Path, root: Path, data, seeds) -> campaign.Summary:
    """Nothing to train (another study may have trained it all): write the study folder only."""
    from harness.run import campaign

    print(
        f"{target.study.name} ({target.preset}): every run already in {root}; nothing to train",
        file=sys.stderr,
    )
    # compact_at_end: a rerun with nothing to train still finishes an interrupted compaction
    return campaign.run(
        target.study,
        target.preset,
        seeds,
        out,
        data,
        _NoBackend(),
        progress=False,
        store_root=root,
        allow_mixed_versions=args.allow_mixed_versions,
        compact_at_end=True,
        take_locks=False,
        manifest_extra=target.manifest_extra(args, 1),
    )


def planned_run_timeout(target: Target, args, root: Path, plan) -> tuple[float, str]:
    """--run-timeout, or the plan's default: from the seconds the store measured for runs of the same
    method, preset and device, else from the methods' reference seconds (see planning.run_timeout)."""
    if args.run_timeout:
        return args.run_timeout, "--run-timeout"
    from harness import store
    from harness.stats import planning

    records = store.read_records(root) if (root / "store.json").exists() else store.empty_frame()
    same = planning.comparable(records, target.preset, planned_device(args, target.preset), plan.specs)
    measured = bool(len(same.runs))
    specs = plan.todo or plan.specs
    methods = {spec: find_method(spec) for spec in {s.cell.method_spec for s in specs}}
    reference = [
        (methods[s.cell.method_spec].name, methods[s.cell.method_spec].reference_seconds_per_epoch)
        for s in specs
    ]
    seconds, _ = planning.seconds_per_run(specs, same.runs if measured else None, reference)
    shown = f"{float(seconds.max()):.1f} s" if len(seconds) else "no runs"
    return planning.run_timeout(seconds, measured), (
        f"the plan's default: longest run expected {shown}, "
        + ("measured in this store" if measured else "from the reference seconds, nothing measured here")
        + "; --run-timeout to change"
    )


def make_backend(args, data_source: str, run_timeout: float | None = None):
    from harness.run.backends import LocalBackend, RayBackend

    if args.backend == "local":
        return LocalBackend(
            data_source,
            args.cache_dir,
            args.device,
            args.save_logits,
            args.pack,
            args.compile,
            run_timeout=run_timeout,
        )
    return RayBackend(
        data_source,
        args.cache_dir,
        args.device,
        args.save_logits,
        address=args.address,
        gpus_per_run=args.gpus_per_run,
        workers=args.workers,
        pack=args.pack,
        compile=args.compile,
        verbose=args.verbose,
        run_timeout=run_timeout,
    )


if __name__ == "__main__":
    sys.exit(main())
