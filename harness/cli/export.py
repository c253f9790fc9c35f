"""``python -m harness.export OUT --format csv|parquet [--predictions]``: the runs a study counts as
one tidy table, for R, a spreadsheet or any dataframe library.

One row per run (each (cell, seed) once per method version, exactly the runs the report counts):
key, study, cell, seed, the cell's factors, every config field, accuracy at TTA 0/1/2 in percent, seconds,
device, method version, dataset, K, data fingerprint and test set. With ``--predictions``, one row per run and
test example instead: key, cell, seed, example (its position in the evaluated test set), label,
the predicted class at TTA 0/1/2 and whether each is correct. ``OUT`` may also be a store: then
every run it holds, whatever its test set (no labels there).
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.cli.common import Parser, UserError, fail

ID_COLUMNS = (
    "key",
    "study",
    "cell",
    "seed",
    "dataset",
    "num_classes",
)  # the last two: records that have them


def build_parser() -> Parser:
    p = Parser(prog="python -m harness.export", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("out", type=Path, help="a study folder (its counted runs) or a store (all its runs)")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv", help="file format (default csv)")
    p.add_argument(
        "--predictions",
        action="store_true",
        help="one row per run and test example (predicted class and correctness at TTA 0/1/2)",
    )
    p.add_argument(
        "--to",
        type=Path,
        help="the file to write (default OUT/runs.FORMAT, or OUT/predictions.FORMAT with --predictions); "
        "its folder must exist, and an existing file is replaced only with --force",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the target file when it exists (never anything but a regular file)",
    )
    return p


def check_target(path: Path, force: bool) -> None:
    """Refuse what the export must not replace: anything but a regular file (a device, a folder, a
    socket; links are followed), an existing file without --force, and a folder that is missing or
    not writable. Checked before any run is read, so a refusal costs nothing."""
    import os
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise UserError(f"--to {path}: {exc.strerror}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise UserError(f"--to {path} is a folder: give a file name inside it")
    if mode is not None and not stat.S_ISREG(mode):
        raise UserError(f"--to {path} exists and is not a regular file (a device, socket or pipe): refused")
    if mode is not None and not force:
        raise UserError(f"--to {path} exists: pass --force to replace it, or choose another name")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"--to {path}: no such folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"--to {path}: folder {folder} is not writable")


def counted_runs(out: Path, with_predictions: bool):
    """(runs frame, predictions or None, labels or None): each (cell, seed) once per method version."""
    from harness import store
    from harness.report.campaign import unique_runs

    is_study = (out / "manifest.json").exists()
    if with_predictions:
        runs, preds = store.load(out)
    else:
        runs, preds = store.load_records(out), None
    keep = unique_runs(runs) if is_study else slice(None)
    runs = runs.iloc[keep].reset_index(drop=True)
    if preds is not None and not isinstance(preds, dict):
        preds = preds[keep]
    labels = store.load_labels(out) if is_study and (out / "test_labels.npy").exists() else None
    return runs, preds, labels


def tidy_runs(runs):
    """Drop what is not data (checksums, the config as JSON), identity columns first."""
    runs = runs.drop(columns=[c for c in ("config_json",) if c in runs.columns])
    first = [c for c in ID_COLUMNS if c in runs.columns]
    return runs[first + [c for c in runs.columns if c not in first]]


def prediction_rows(runs, preds, labels):
    """One row per (run, example); a store's groups of test sets one after the other."""
    import numpy as np
    import pandas as pd

    groups = preds.items() if isinstance(preds, dict) else [(None, preds)]
    frames = []
    for name, p in groups:
        part = runs if name is None else runs[runs["test_set"] == name].reset_index(drop=True)
        r, n = p.shape[0], p.shape[2]
        frame = pd.DataFrame({c: np.repeat(part[c].to_numpy(), n) for c in ID_COLUMNS if c in part.columns})
        frame["test_set"] = np.repeat(part["test_set"].to_numpy(), n) if "test_set" in part else name
        frame["example"] = np.tile(np.arange(n), r)
        if labels is not None and len(labels) == n:
            frame["label"] = np.tile(labels, r)
        for level in range(3):
            frame[f"pred_tta{level}"] = p[:, level, :].reshape(-1)
            if "label" in frame:
                frame[f"correct_tta{level}"] = (
                    frame[f"pred_tta{level}"].to_numpy() == frame["label"].to_numpy()
                )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*ID_COLUMNS, "example"])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from harness import store

    try:
        if not args.out.is_dir():
            raise UserError(f"{args.out}: no such folder (give a study folder or a store)")
        if not ((args.out / "manifest.json").exists() or (args.out / "store.json").exists()):
            raise UserError(f"{args.out}: neither a study folder (manifest.json) nor a store (store.json)")
        path = args.to or args.out / f"{'predictions' if args.predictions else 'runs'}.{args.format}"
        # the default target is the export's own file, refreshed by every export (but never a non-file)
        check_target(path, args.force or args.to is None)
        store.check_source(args.out)
        runs, preds, labels = counted_runs(args.out, args.predictions)
        table = prediction_rows(runs, preds, labels) if args.predictions else tidy_runs(runs)
        if args.format == "csv":
            store.atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
        else:
            store.atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))
    except (UserError, store.StoreError) as exc:
        return fail(str(exc))
    except OSError as exc:  # the folder turned read-only, the disk is full: one line naming the file
        return fail(f"{exc.filename or path}: {exc.strerror or exc}")
    print(
        f"{path}: {len(table):,} rows ({len(runs):,} runs{', one row per test example' if args.predictions else ''})",
        file=sys.stderr,
    )
    external = int(runs["external"].astype("boolean").fillna(False).sum()) if "external" in runs else 0
    if args.predictions and external:
        print(
            f"predictions: not available for external runs ({external} imported runs have none)",
            file=sys.stderr,
        )
    return 0
