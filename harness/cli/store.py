"""``python -m harness.store``: compact a store, migrate an old study folder, check every file.

python -m harness.store compact [STORE]                 fold single-run files into packs
python -m harness.store migrate OUT [--store STORE] [--data SOURCE] [--method-version V]
python -m harness.store check [FOLDER] [--data SOURCE]  read and verify every run (and the data)
python -m harness.store import FILE --store S --method NAME --accuracy COL [...]   runs made elsewhere
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from harness import store
from harness.cli.common import Parser, fail
from harness.store.lock import LockHeld, hold


def build_parser() -> Parser:
    p = Parser(prog="python -m harness.store", description="Maintenance of a run store.")
    sub = p.add_subparsers(dest="what", required=True, parser_class=Parser)
    c = sub.add_parser("compact", help="fold single-run files into columnar packs (safe to interrupt)")
    c.add_argument(
        "store",
        nargs="?",
        type=Path,
        default=store.DEFAULT_STORE,
        help=f"the store (default {store.DEFAULT_STORE})",
    )
    m = sub.add_parser("migrate", help="move a study folder of the old layout into a shared store")
    m.add_argument("out", type=Path, help="study folder holding runs/ itself (old layout)")
    m.add_argument(
        "--store",
        type=Path,
        default=store.DEFAULT_STORE,
        help=f"target store (default {store.DEFAULT_STORE})",
    )
    m.add_argument(
        "--data",
        help="the data the runs were trained on, to fingerprint (default: the manifest's data source)",
    )
    m.add_argument(
        "--method-version",
        help="method version to record for runs that lack one (default legacy-<code_version>)",
    )
    k = sub.add_parser("check", help="read every run of a store or study folder, verifying checksums")
    k.add_argument("folder", nargs="?", type=Path, default=store.DEFAULT_STORE)
    k.add_argument(
        "--data",
        help="also re-read this data source's files in full (not the cache's stat shortcut) and check "
        "that its fingerprint is the one its runs record",
    )
    add_import_parser(sub)
    return p


def check_data(source: str, frame) -> str:
    """Re-hash and (if changed) decode ``source``; the line saying its runs match it, or StoreError."""
    from airbench_core import DataError, load_cifar10

    try:
        data = load_cifar10(source, verify=True)
    except DataError as exc:
        raise store.StoreError(str(exc)) from None
    recorded: list[str] = []
    if len(frame):
        mine = store.dataset_mask(frame, data.name)
        recorded = sorted(set(frame.loc[mine, "data_fingerprint"].dropna().astype(str)))
    if recorded and recorded != [data.fingerprint]:
        raise store.StoreError(
            f"{source}: its content now has fingerprint {data.fingerprint}, but its runs record "
            f"{', '.join(recorded)}: the data changed since they were trained"
        )
    return f"data {data.source}: content re-read, fingerprint {data.fingerprint} ({data.name}, K = {data.num_classes})"


def check_labels(folder: Path, preds) -> str:
    """A study folder's test labels, read and matched against its predictions (a store has none):
    what the check line adds about them."""
    if not (folder / "manifest.json").exists():
        return ""
    labels = store.load_labels(folder)
    if not isinstance(preds, dict) and len(preds) and preds.shape[2] != len(labels):
        raise store.StoreError(
            f"{folder / 'test_labels.npy'}: {len(labels)} labels, but the runs were evaluated on "
            f"{preds.shape[2]} test examples"
        )
    return f"; {len(labels)} test labels read"


def add_import_parser(sub) -> None:
    i = sub.add_parser(
        "import",
        help="read runs made outside the harness (CSV, JSONL or Parquet) into a store, marked external",
        description="Import runs made elsewhere: one row per run. Every row is checked first; a bad "
        "row stops the import (exit 2) and nothing is written. Importing the same file twice adds nothing.",
    )
    i.add_argument("file", type=Path, help="a .csv, .jsonl or .parquet table, one row per run")
    i.add_argument(
        "--store", type=Path, default=store.DEFAULT_STORE, help=f"the store (default {store.DEFAULT_STORE})"
    )
    i.add_argument("--method", required=True, help="the method's name (what claims and reports call it)")
    i.add_argument("--accuracy", required=True, metavar="COL", help="column of test accuracies")
    i.add_argument(
        "--seconds", metavar="COL", help="column of seconds per run (train + eval, the paper's timer)"
    )
    i.add_argument(
        "--seed", metavar="COL", help="column of seeds (default: unseeded runs, compared by Welch)"
    )
    i.add_argument("--gpu", metavar="COL|TEXT", help="column of GPU models, or the GPU model of every row")
    i.add_argument(
        "--tta-level", type=int, choices=(0, 1, 2), default=2, help="TTA level of the accuracies (default 2)"
    )
    i.add_argument(
        "--scale",
        choices=("fraction", "percent"),
        help="accuracies as fractions or percent (default: detected)",
    )
    i.add_argument("--version", help="method version (default: a hash of the imported rows)")
    i.add_argument("--data-name", default="unnamed data", help="what the runs were evaluated on, in words")


def import_file(args) -> None:
    from harness.store.external import ImportSpec, import_runs, read_file

    spec = ImportSpec(
        method=args.method,
        accuracy=args.accuracy,
        seconds=args.seconds,
        seed=args.seed,
        gpu=args.gpu,
        tta_level=args.tta_level,
        scale=args.scale,
        version=args.version,
        data_name=args.data_name,
    )
    frame = read_file(args.file)
    if args.store.exists() and not args.store.is_dir():
        raise store.StoreError(f"{args.store}: not a folder")
    args.store.mkdir(parents=True, exist_ok=True)
    with hold(args.store, "store"):
        done = import_runs(args.store, frame, spec, str(args.file))
    print(done.line(str(args.file)), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.what == "compact":
            from harness.store.compact import compact

            if not args.store.is_dir():
                raise store.StoreError(f"{args.store}: no such store")
            with hold(args.store, "store"):
                print(compact(args.store).line(), file=sys.stderr)
        elif args.what == "migrate":
            from airbench_core import DataError, load_cifar10
            from harness.store.migrate import legacy_method_version, migrate

            manifest = store.read_manifest(args.out)
            try:
                data = load_cifar10(args.data or manifest.get("data_source"))
            except DataError as exc:
                raise store.StoreError(
                    f"{exc} (pass --data with the source these runs were trained on)"
                ) from None
            with hold(args.out, "study folder"), hold(args.store, "store"):
                n = migrate(
                    args.out,
                    args.store,
                    data.fingerprint,
                    args.method_version or legacy_method_version(manifest),
                )
            print(f"migrated {args.out}: {n} runs written to {args.store}", file=sys.stderr)
        elif args.what == "import":
            import_file(args)
        else:
            if not args.folder.is_dir():
                raise store.StoreError(f"{args.folder}: no such store or study folder")
            store.check_source(args.folder)
            frame, preds = store.load(args.folder)
            labels = check_labels(args.folder, preds)
            groups = (
                preds
                if isinstance(preds, dict)
                else {(frame["test_set"].iloc[0] if len(frame) else "no runs"): preds}
            )
            sets = "; ".join(f"{name}: {len(p)} runs, predictions {p.shape}" for name, p in groups.items())
            datasets = ""
            if len(frame):
                names = frame["dataset"].fillna("cifar10") if "dataset" in frame else ["cifar10"] * len(frame)
                counts = {
                    str(n): int(c) for n, c in zip(*np.unique(np.asarray(names, str), return_counts=True))
                }
                datasets = "; datasets: " + ", ".join(f"{n} {c} runs" for n, c in counts.items())
            print(
                f"{args.folder}: {len(frame)} runs, every checksum verified ({len(groups)} test set"
                f"{'s' if len(groups) != 1 else ''}: {sets}){labels}{datasets}"
            )
            if args.data:
                print(check_data(args.data, frame))
    except (store.StoreError, LockHeld) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"{exc.filename}: {exc.strerror}" if exc.filename else f"{type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        print("stopped by Ctrl-C; every run is still in at least one file (rerun to finish)", file=sys.stderr)
        return 130
    return 0
