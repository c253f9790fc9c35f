"""The study CLI as a user meets it: bad input, up-front checks, locks, mixing, resuming after the
driver is killed or interrupted."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT, sleeping_study, snapshot, study_cli, wait_until_stored
from ray_nodes import free_port

from harness import store
from harness.store.lock import hold

SMOKE = ["--preset", "smoke"]


@dataclass
class Campaign:
    out: Path
    store: Path

    def args(self) -> list[str]:
        return ["--out", str(self.out), "--store", str(self.store)]


@pytest.fixture
def existing(tta_smoke, tmp_path) -> Campaign:
    """A private copy of a finished two-run campaign (study folder and store), to prove bad input
    never touches it."""
    base = shutil.copytree(tta_smoke, tmp_path / "c")
    return Campaign(base / "out", base / "store")


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--seeds", "2"], "unknown study 'nope'"),
        (["tta_variance", "--seeds", "0"], "must be at least 1"),
        (["tta_variance", "--seeds", "-1"], "must be at least 1"),
        (["tta_variance", "--seeds", "abc"], "expected a positive whole number"),
        (["tta_variance", "--seeds", "100001"], "above the bound of 100,000"),
        (["tta_variance", "--seeds", "1000000000"], "above the bound of 100,000"),
        (["tta_variance", "--seeds", "2", "--data", "/nonexistent/cifar.tar.gz"], "no such file"),
        (["tta_variance", "--seeds", "2", "--gpus-per-run", "0"], "must be a positive"),
        (["flip_vs_alternating", "--seeds", "2"], "holds study tta_variance"),
        (["tta_variance", "--seeds", "2", "--address", "ray://somewhere:10001"], "ray job submit"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_loses_nothing(existing, data_source, args, message):
    before = snapshot(existing.out.parent)
    env_args = [] if "--data" in args else ["--data", data_source]
    backend = ["--backend", "ray"] if "--address" in args else ["--backend", "local"]
    result = study_cli(*args, *SMOKE, *backend, *existing.args(), *env_args)
    assert message in one_error_line(result)
    assert snapshot(existing.out.parent) == before


def test_an_unreachable_address_fails_at_once_with_one_line(tmp_path, data_source):
    """Defect 8: no Ray head there; one line, exit 2, before anything is written."""
    r = study_cli(
        "tta_variance",
        "--seeds",
        "3",
        *SMOKE,
        "--address",
        f"127.0.0.1:{free_port()}",
        "--out",
        str(tmp_path / "o"),
        "--store",
        str(tmp_path / "s"),
        "--data",
        data_source,
    )
    assert "no Ray head answers there" in one_error_line(r)
    assert not list(tmp_path.iterdir())


def test_device_cuda_without_cuda_is_one_line_and_writes_nothing(tmp_path, data_source):
    """Defect 7 (this machine has no CUDA)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = study_cli(
        "tta_variance",
        "--seeds",
        "1",
        *SMOKE,
        "--backend",
        "local",
        "--device",
        "cuda",
        "--out",
        str(tmp_path / "o"),
        "--store",
        str(tmp_path / "s"),
        "--data",
        data_source,
    )
    assert "--device cuda, but no CUDA device in reach" in one_error_line(r)
    assert not list(tmp_path.iterdir())


def test_a_second_driver_on_a_locked_folder_or_store_exits_2_naming_the_holder(existing, data_source):
    """Defect 5: the lock holder is this test process; the CLI must refuse and name it."""
    before = snapshot(existing.out.parent)
    for folder, what in ((existing.out, "study folder"), (existing.store, "store")):
        with hold(folder, what):
            r = study_cli(
                "tta_variance",
                "--seeds",
                "3",
                *SMOKE,
                "--backend",
                "local",
                *existing.args(),
                "--data",
                data_source,
            )
            line = one_error_line(r)
        assert f"{what} {folder} is in use by pid {os.getpid()} on host {socket.gethostname()}" in line
    after = snapshot(existing.out.parent)
    assert {k: v for k, v in after.items() if not k.endswith(".lock")} == {
        k: v for k, v in before.items() if not k.endswith(".lock")
    }, "nothing trained or written"


def set_identity(root: Path, **changes) -> None:
    ident = store.read_identity(root)
    ident.update(changes)
    (root / "store.json").write_text(json.dumps(ident))


def test_another_method_version_stops_before_training_unless_allowed(existing, data_source):
    """Defect 3: a store of another airbench_core version is never pooled silently."""
    set_identity(existing.store, method_versions=["0123456789ab"])
    args = [
        "tta_variance",
        "--seeds",
        "3",
        *SMOKE,
        "--backend",
        "local",
        *existing.args(),
        "--data",
        data_source,
        "--no-report",
    ]
    before = snapshot(existing.out.parent)
    line = one_error_line(study_cli(*args))
    from harness.spec.identity import method_version

    assert (
        "method version 0123456789ab" in line
        and method_version() in line
        and "--allow-mixed-versions" in line
    )
    assert snapshot(existing.out.parent) == before
    r = study_cli(*args, "--allow-mixed-versions")
    assert r.returncode == 0, r.stderr
    frame, _ = store.load(existing.out)
    assert len(frame) == 3 and set(frame["method_version"]) == {method_version()}
    assert sorted(store.read_identity(existing.store)["method_versions"]) == sorted(
        ["0123456789ab", method_version()]
    )


def test_another_data_fingerprint_stops_before_training_even_when_mixing_versions_is_allowed(
    existing, data_source
):
    """Defect 2: runs on other data never join a store."""
    set_identity(existing.store, data_fingerprints=["feedfacefeedface"])
    r = study_cli(
        "tta_variance",
        "--seeds",
        "3",
        *SMOKE,
        "--backend",
        "local",
        *existing.args(),
        "--data",
        data_source,
        "--allow-mixed-versions",
    )
    line = one_error_line(r)
    frame, _ = store.load(existing.out)
    assert "data feedfacefeedface" in line and frame["data_fingerprint"].iloc[0] in line
    assert len(frame) == 2


def test_an_old_layout_study_folder_points_to_the_migration(existing, data_source):
    legacy = existing.out.parent / "legacy"
    (legacy / "runs").mkdir(parents=True)
    store.write_manifest(legacy, {"study": "tta_variance", "preset": "smoke"})
    r = study_cli(
        "tta_variance",
        "--seeds",
        "2",
        *SMOKE,
        "--backend",
        "local",
        "--out",
        str(legacy),
        "--store",
        str(existing.store),
        "--data",
        data_source,
    )
    assert "python -m harness.store migrate" in one_error_line(r)


def test_out_naming_a_file_and_unreadable_data_write_nothing(tmp_path, data_source):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    r = study_cli(
        "tta_variance",
        "--seeds",
        "1",
        *SMOKE,
        "--out",
        str(target),
        "--store",
        str(tmp_path / "s"),
        "--data",
        data_source,
    )
    assert r.returncode == 2 and "is an existing file" in r.stderr and target.read_text() == "keep me"
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really gzip")
    r = study_cli(
        "tta_variance",
        "--seeds",
        "1",
        *SMOKE,
        "--out",
        str(tmp_path / "new"),
        "--store",
        str(tmp_path / "s"),
        "--data",
        str(junk),
    )
    assert r.returncode == 2 and "junk.tar.gz: truncated or corrupt" in r.stderr
    assert not (tmp_path / "new").exists() and not (tmp_path / "s").exists()


def test_corrupt_parquet_in_store_is_named(existing, data_source):
    bad = existing.store / "runs" / "deadbeef.parquet"
    bad.write_bytes(b"garbage")
    r = study_cli(
        "tta_variance", "--seeds", "2", *SMOKE, *existing.args(), "--data", data_source, "--backend", "local"
    )
    assert "deadbeef.parquet: corrupt Parquet" in one_error_line(r)
    assert bad.exists()


def test_full_preset_without_gpu_points_to_smoke_and_address(tmp_path, data_source):
    r = study_cli(
        "tta_variance",
        "--seeds",
        "1",
        "--backend",
        "local",
        "--out",
        str(tmp_path / "o"),
        "--store",
        str(tmp_path / "s"),
        "--data",
        data_source,
    )
    assert r.returncode == 2 and "--preset smoke" in r.stderr and "--address" in r.stderr


def test_dry_run_prints_the_grid(existing, data_source):
    r = study_cli(
        "tta_variance", "--seeds", "3", *SMOKE, *existing.args(), "--data", data_source, "--dry-run"
    )
    assert r.returncode == 0
    assert "1 cells, 3 runs, 2 already done, 1 to do" in r.stdout


def test_list_and_help():
    r = study_cli("--list")
    assert r.returncode == 0 and "flip_vs_alternating" in r.stdout and "variance_vs_epochs" in r.stdout
    h = study_cli("--help")
    for flag in (
        "--seeds",
        "--out",
        "--data",
        "--address",
        "--gpus-per-run",
        "--preset",
        "--device",
        "--backend",
        "--dry-run",
        "--save-logits",
        "--list",
        "--store",
        "--allow-mixed-versions",
        "--verbose",
        "100,000",
    ):
        assert flag in h.stdout


def campaign_cmd(c: Campaign, seeds: int, data_source: str) -> list[str]:
    """Killing and interrupting a driver is about the driver, the store and Ray, not about training: the
    simulated method (a run sleeps half a second) on one Ray worker makes "mid-campaign" last seconds."""
    study_file = sleeping_study(c.out.parent, 0.5)
    return [
        sys.executable,
        "-m",
        "harness.study",
        str(study_file),
        "--seeds",
        str(seeds),
        "--device",
        "cpu",
        *c.args(),
        "--data",
        data_source,
        "--workers",
        "1",
        "--no-report",
    ]


def test_sigkill_driver_then_rerun_trains_only_missing_runs(tmp_path, data_source):
    SEEDS = 8
    c = Campaign(tmp_path / "out", tmp_path / "store")
    proc = subprocess.Popen(
        campaign_cmd(c, SEEDS, data_source),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_stored(proc, c.store, 2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)  # its Ray processes
    first, _ = store.load(c.store)
    assert 2 <= len(first) < SEEDS, "killed mid-campaign"
    rerun = study_cli(*campaign_cmd(c, SEEDS, data_source)[3:], "--backend", "local")  # no second Ray start
    assert rerun.returncode == 0, rerun.stderr
    assert f"{SEEDS - len(first)} trained, {len(first)} already done" in rerun.stderr
    frame, _ = store.load(c.out)
    assert len(frame) == SEEDS and frame["key"].is_unique
    again = frame.set_index("key").loc[first["key"], first.columns.drop("key")]
    assert again.reset_index(drop=True).equals(first.drop(columns="key")), "finished runs were not retrained"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_ctrl_c_stops_cleanly_and_keeps_finished_runs(tmp_path, data_source):
    c = Campaign(tmp_path / "out", tmp_path / "store")
    proc = subprocess.Popen(
        campaign_cmd(c, 12, data_source),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until_stored(proc, c.store, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "rerun the same command to resume" in err
    assert "(raylet)" not in err and "Traceback" not in err
    frame, _ = store.load(c.out)
    assert 2 <= len(frame) < 12 and frame["key"].is_unique
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name], "no half-written record"


def test_an_unreachable_address_is_refused_before_the_data_is_read(tmp_path):
    """The address is checked first (seconds), not after loading the data: here there is no data at all."""
    r = study_cli(
        "tta_variance",
        "--seeds",
        "3",
        "--preset",
        "smoke",
        "--address",
        f"127.0.0.1:{free_port()}",
        "--out",
        str(tmp_path / "o"),
        "--store",
        str(tmp_path / "s"),
        "--data",
        str(tmp_path / "none.tar.gz"),
    )
    assert "no Ray head answers there" in one_error_line(r)
    assert not list(tmp_path.iterdir())


def test_negative_retries_are_one_line(tmp_path):
    r = study_cli(
        "tta_variance",
        "--seeds",
        "2",
        "--preset",
        "smoke",
        "--retries",
        "-1",
        "--dry-run",
        "--out",
        str(tmp_path / "o"),
        "--store",
        str(tmp_path / "s"),
    )
    assert "--retries must be 0 or more" in one_error_line(r)
    assert not list(tmp_path.iterdir())
