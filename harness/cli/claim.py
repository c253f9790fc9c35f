"""``python -m harness.claim FOLDER_OR_STORE --method NAME --accuracy 94.0 [--seconds 2.59]
[--reference NAME]``: a record claim about stored runs (imported ones included), without a study file.

The runs' stopping rule is unknown here unless a study folder's manifest says it (adaptive: the
sequence only), so both readings are shown: fixed-n (valid if the number of runs was fixed in
advance) and anytime-valid (valid however the runs were collected)."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.cli.common import Parser, UserError, fail, positive_float, quiet_numerics


def build_parser() -> Parser:
    p = Parser(
        prog="python -m harness.claim",
        description="State a claim of the field's form (mean accuracy above a target, optionally in "
        "under S seconds per run, better than a reference method) about the runs of a store or study folder.",
    )
    p.add_argument("folder", type=Path, help="a run store or a study folder")
    p.add_argument("--method", help="the method whose runs the claim is about (default: the only one there)")
    p.add_argument(
        "--accuracy", type=float, required=True, help="the target mean accuracy in percent, e.g. 94.0"
    )
    p.add_argument(
        "--seconds", type=positive_float, help="time per run to beat (train + eval), on one GPU model"
    )
    p.add_argument("--reference", help="a method to beat on the same GPU model (its runs in the same folder)")
    p.add_argument("--tta-level", type=int, choices=(0, 1, 2), default=2, help="TTA level (default 2)")
    p.add_argument("--alpha", type=float, default=0.05, help="one-sided level (default 0.05)")
    p.add_argument("--device", help="only runs on this device model (e.g. 'NVIDIA A100-SXM4-40GB')")
    p.add_argument(
        "--include-warmup", action="store_true", help="keep each worker's first (warm-up) run in the times"
    )
    return p


def method_runs(runs, name: str | None, folder: Path):
    """The runs of one method (by its ``method`` column), or a UserError naming those there are."""
    names = sorted(runs["method"].dropna().astype(str).unique()) if "method" in runs and len(runs) else []
    if name is None:
        if len(names) != 1:
            raise UserError(
                f"{folder}: holds runs of {len(names)} methods ({', '.join(names) or 'none'}); name one with --method"
            )
        name = names[0]
    if name not in names:
        raise UserError(f"{folder}: no runs of method {name!r} (methods there: {', '.join(names) or 'none'})")
    return runs[(runs["method"].astype(str) == name).to_numpy()]


@quiet_numerics
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from harness.spec.claim import check_claim

    try:
        spec = check_claim(args.accuracy, args.seconds, args.reference, args.tta_level, args.alpha, "", "--")
    except UserError as exc:
        return fail(str(exc).lstrip())
    if not args.folder.is_dir():
        return fail(f"{args.folder}: no such store or study folder")
    from harness import store
    from harness.report import claims

    try:
        runs = store.read_records(args.folder)
        manifest = store.read_manifest(args.folder) if (args.folder / "manifest.json").exists() else {}
        if args.device is not None:
            runs = runs[(claims.device_models(runs) == args.device).to_numpy()]
        claimed = method_runs(runs, args.method, args.folder)
        reference = method_runs(runs, spec.reference, args.folder) if spec.reference else None
    except (UserError, store.StoreError) as exc:
        return fail(str(exc))
    kept = manifest.get("adaptive") or {}
    if kept.get("kind") == "claim":
        from harness.stats.claims import ClaimRule

        reading, rule = claims.ADAPTIVE, ClaimRule.from_record(kept)
    elif manifest:  # a study folder whose seeds were fixed in advance (--seeds N)
        reading, rule = claims.FIXED, None
    else:  # a store: how its runs were collected is unknown here
        reading, rule = claims.BOTH, None
    verdict = claims.claim_verdict(claimed, spec, reading, rule, reference, args.include_warmup)
    print(verdict.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
