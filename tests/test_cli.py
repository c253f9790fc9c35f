"""The study CLI as a user meets it: bad input, resuming after the driver is killed."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from harness import store
from helpers import ROOT, snapshot, study_cli

SMOKE = ["--preset", "smoke"]


@pytest.fixture(scope="module")
def finished_campaign(tmp_path_factory, data_source):
    """A finished two-run local campaign, to prove bad input never touches it."""
    out = tmp_path_factory.mktemp("campaign") / "out"
    done = study_cli("tta_variance", "--seeds", "2", *SMOKE, "--backend", "local", "--out", str(out),
                     "--data", data_source, "--no-report")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def existing_store(finished_campaign, tmp_path):
    """A private copy of the finished campaign for a test to poke at."""
    return shutil.copytree(finished_campaign, tmp_path / "out")


@pytest.mark.parametrize("args, message", [
    (["nope", "--seeds", "2"], "unknown study 'nope'"),
    (["tta_variance", "--seeds", "0"], "must be at least 1"),
    (["tta_variance", "--seeds", "-1"], "must be at least 1"),
    (["tta_variance", "--seeds", "abc"], "expected a positive whole number"),
    (["tta_variance", "--seeds", "2", "--data", "/nonexistent/cifar.tar.gz"], "no such file"),
    (["tta_variance", "--seeds", "2", "--gpus-per-run", "0"], "must be positive"),
    (["flip_vs_alternating", "--seeds", "2"], "holds study tta_variance"),
])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(existing_store, data_source, args, message):
    before = snapshot(existing_store)
    env_args = [] if "--data" in args else ["--data", data_source]
    result = study_cli(*args, *SMOKE, "--backend", "local", "--out", str(existing_store), *env_args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert snapshot(existing_store) == before


def test_out_naming_a_file_and_unreadable_data_write_nothing(tmp_path, data_source):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    r = study_cli("tta_variance", "--seeds", "1", *SMOKE, "--out", str(target), "--data", data_source)
    assert r.returncode == 2 and "is an existing file" in r.stderr and target.read_text() == "keep me"
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really gzip")
    r = study_cli("tta_variance", "--seeds", "1", *SMOKE, "--out", str(tmp_path / "new"), "--data", str(junk))
    assert r.returncode == 2 and "junk.tar.gz: truncated or corrupt" in r.stderr
    assert not (tmp_path / "new").exists()


def test_corrupt_parquet_in_store_is_named(existing_store, data_source):
    bad = existing_store / "runs" / "deadbeef.parquet"
    bad.write_bytes(b"garbage")
    r = study_cli("tta_variance", "--seeds", "2", *SMOKE, "--out", str(existing_store), "--data", data_source,
                  "--backend", "local")
    assert r.returncode == 2 and "deadbeef.parquet: corrupt Parquet" in r.stderr
    assert bad.exists()


def test_full_preset_without_gpu_points_to_smoke_and_address(tmp_path, data_source):
    r = study_cli("tta_variance", "--seeds", "1", "--backend", "local", "--out", str(tmp_path / "o"),
                  "--data", data_source)
    assert r.returncode == 2 and "--preset smoke" in r.stderr and "--address" in r.stderr


def test_dry_run_prints_the_grid(existing_store, data_source):
    r = study_cli("tta_variance", "--seeds", "3", *SMOKE, "--out", str(existing_store), "--data", data_source,
                  "--dry-run")
    assert r.returncode == 0
    assert "1 cells, 3 runs, 2 already done, 1 to do" in r.stdout


def test_list_and_help():
    r = study_cli("--list")
    assert r.returncode == 0 and "flip_vs_alternating" in r.stdout and "variance_vs_epochs" in r.stdout
    h = study_cli("--help")
    for flag in ("--seeds", "--out", "--data", "--address", "--gpus-per-run", "--preset", "--device",
                 "--backend", "--dry-run", "--save-logits", "--list"):
        assert flag in h.stdout


def test_sigkill_driver_then_rerun_trains_only_missing_runs(tmp_path, data_source):
    out = tmp_path / "camp"
    args = [sys.executable, "-m", "harness.study", "tta_variance", "--seeds", "8", *SMOKE, "--out", str(out),
            "--data", data_source, "--workers", "2", "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((out / "runs").glob("*.parquet"))) < 2:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)
    first = snapshot(out / "runs")
    assert 2 <= len(first) < 8, "killed mid-campaign"
    rerun = study_cli("tta_variance", "--seeds", "8", *SMOKE, "--out", str(out), "--data", data_source,
                      "--workers", "2", "--no-report")
    assert rerun.returncode == 0, rerun.stderr
    assert f"{8 - len(first)} trained, {len(first)} already done" in rerun.stderr
    frame, _ = store.load(out)
    assert len(frame) == 8 and frame["key"].is_unique
    after = snapshot(out / "runs")
    assert all(after[name] == stamp for name, stamp in first.items()), "finished runs were not retrained"
    os.killpg(proc.pid, signal.SIGKILL) if _group_alive(proc.pid) else None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_ctrl_c_stops_cleanly_and_keeps_finished_runs(tmp_path, data_source):
    out = tmp_path / "camp"
    args = [sys.executable, "-m", "harness.study", "tta_variance", "--seeds", "12", *SMOKE, "--out", str(out),
            "--data", data_source, "--workers", "2", "--no-report"]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((out / "runs").glob("*.parquet"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "rerun the same command to resume" in err
    frame, _ = store.load(out)
    assert 2 <= len(frame) < 12 and frame["key"].is_unique
    assert not [p for p in out.rglob("*") if ".tmp" in p.name], "no half-written record"
