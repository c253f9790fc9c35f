"""Issue 20: nothing runs that the user did not ask for, nothing mixes that should not, and every
failure is one line. Fast tests; the CLI ones run `python -m harness.study` on tiny inputs."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
from contextlib import contextmanager

import pytest
from conftest import tiny_config
from helpers import study_cli

from harness import store
from harness.run import campaign
from harness.run.backends import BackendError, LocalBackend, check_address
from harness.spec.grid import Cell, Study


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


# --------------------------------------------------------------------------- item 2: --address


@pytest.fixture
def http_server():
    """A local web server: accepts TCP like a Ray head would, but speaks HTTP/1."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def finishes(call, hang: float = 120.0):
    """``call()``'s exception (or None), failing the test if it is still running after ``hang`` seconds:
    a guard against the old hang (minutes of Ray retries), not a speed goal (those are benchmarks)."""
    outcome: list = []

    def target():
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(hang)
    assert outcome, f"still waiting after {hang:.0f} s: the address check hangs"
    return outcome[0]


def test_an_http_server_is_not_a_ray_head(http_server):
    exc = finishes(lambda: check_address(http_server))
    assert isinstance(exc, BackendError) and "not a Ray head: an HTTP/1 (web) server answered" in str(exc)


def test_a_silent_listener_is_not_a_ray_head():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        exc = finishes(lambda: check_address(f"127.0.0.1:{listener.getsockname()[1]}", timeout=0.5))
        assert isinstance(exc, BackendError) and "accepted the connection but sent nothing back" in str(exc)


def test_the_cli_refuses_an_http_server_in_one_line(http_server, tmp_path):
    """(The hang this replaces lasted minutes: a 120 s subprocess timeout catches it without timing
    the answer, which `python -m harness.bench cli`-style benchmarks measure instead.)"""
    r = study_cli(
        "tta_variance",
        "--seeds",
        "1",
        "--preset",
        "smoke",
        "--address",
        http_server,
        "--out",
        str(tmp_path / "o"),
        "--store",
        str(tmp_path / "s"),
        "--data",
        str(tmp_path / "none"),
        timeout=120,
    )
    assert "not a Ray head: an HTTP/1 (web) server answered" in one_error_line(r)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- item 4: numbers


def test_set_lr_nan_exits_2_and_writes_nothing(tmp_path):
    item = "lr=nan"  # the other values: test_studyfile.py (same parse_set)
    r = study_cli(
        "tta_variance",
        "--seeds",
        "1",
        "--preset",
        "smoke",
        "--set",
        item,
        "--backend",
        "local",
        "--out",
        str(tmp_path / "o"),
        "--store",
        str(tmp_path / "s"),
    )
    assert f"--set {item.split('=')[0]}: expected" in one_error_line(r)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- item 7: file-system errors

TINY = """method = "airbench94"
[base]
n_train = 500
n_test = 200
widths = [8, 16, 16]
batch_size = 100
whiten_samples = 500
epochs = 0.5
[variants.B]
flip = "random"
"""


def tiny_study(folder) -> str:
    path = folder / "tiny.toml"
    path.write_text(TINY)
    return str(path)


@contextmanager
def mounted(target, *args):
    """``mount ARGS target`` for the block (root only: chmod does not stop root); skips otherwise."""
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root and mount(8): a read-only folder does not stop root, so the test mounts one")
    r = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} is not allowed here: {r.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@contextmanager
def read_only(folder):
    src = folder.parent / (folder.name + "-src")
    src.mkdir()
    with mounted(folder, "--bind", "-o", "ro", str(src)):
        yield folder


def test_a_read_only_store_is_one_line_and_leaves_no_new_folder(tmp_path, data_source):
    with read_only(tmp_path / "ro") as ro:
        r = study_cli(
            tiny_study(tmp_path),
            "--seeds",
            "1",
            "--device",
            "cpu",
            "--backend",
            "local",
            "--out",
            str(tmp_path / "new" / "out"),
            "--store",
            str(ro / "store"),
            "--data",
            data_source,
        )
        line = one_error_line(r)
        assert f"{ro / 'store'}: Read-only file system" in line, line
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "new").exists(), "the refused driver removed the study folder it created"


def test_a_read_only_study_folder_is_one_line(tmp_path, data_source):
    with read_only(tmp_path / "ro") as ro:
        r = study_cli(
            tiny_study(tmp_path),
            "--seeds",
            "1",
            "--device",
            "cpu",
            "--backend",
            "local",
            "--out",
            str(ro / "out"),
            "--store",
            str(tmp_path / "store"),
            "--data",
            data_source,
        )
        assert f"{ro / 'out'}: Read-only file system" in one_error_line(r)
    assert not (tmp_path / "store").exists()


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, data_source):
    with mounted(tmp_path / "full", "-t", "tmpfs", "-o", "size=8k", "tmpfs") as full:
        r = study_cli(
            tiny_study(tmp_path),
            "--seeds",
            "1",
            "--device",
            "cpu",
            "--backend",
            "local",
            "--out",
            str(tmp_path / "out"),
            "--store",
            str(full / "store"),
            "--data",
            data_source,
        )
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert (
            len(errors) == 1 and str(full / "store") in errors[0] and "No space left on device" in errors[0]
        ), r.stderr


# --------------------------------------------------------------------------- item 3: workers that differ


class OtherDataBackend(LocalBackend):
    """A worker whose copy of the data differs from the driver's (as a node with another copy would)."""

    def run(self, queue):
        for outcome in super().run(queue):
            outcome.worker = {**outcome.worker, "data_fingerprint": "0123456789ab"}
            yield outcome


def test_a_worker_on_other_data_is_a_failed_run_naming_both(cifar, tmp_path):
    cell = Cell({"cell": "tiny"}, tiny_config())
    study = Study("tiny", "one tiny cell", lambda preset, base: [cell], lambda c: [])
    summary = campaign.run(
        study,
        "smoke",
        1,
        tmp_path,
        cifar,
        OtherDataBackend(cifar.source, None, "cpu", False),
        retries=2,
        progress=False,
    )
    assert (summary.trained, summary.failed, summary.mismatched, summary.retries) == (0, 1, 1, 0)
    assert "1 refused: the worker's method version or data differ" in summary.line()
    assert not store.done_keys(tmp_path), "never stored as a success"
    failure = store.load_failures(tmp_path).iloc[0]
    assert "data fingerprint 0123456789ab" in failure["error"] and cifar.fingerprint in failure["error"]
    assert (
        failure["data_fingerprint"] == cifar.fingerprint
        and failure["worker_data_fingerprint"] == "0123456789ab"
    )
    assert store.read_identity(tmp_path)["data_fingerprints"] == [cifar.fingerprint]


# --------------------------------------------------------------------------- item 8: the dry run warns


def test_the_dry_run_says_the_real_run_would_be_refused(tmp_path, capsys):
    from harness.cli.study import main
    from harness.spec.identity import method_version

    root = tmp_path / "store"
    root.mkdir()
    store.note_identity(root, "0123456789ab", "somedata1234")
    assert (
        main(
            [
                "tta_variance",
                "--seeds",
                "2",
                "--preset",
                "smoke",
                "--dry-run",
                "--store",
                str(root),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        f"the real run would be refused: store {root} holds runs of airbench at method version 0123456789ab, "
        f"but method airbench94 here is version {method_version()}" in out
    )
    assert "holds runs on data somedata1234" in out
    assert (
        main(
            [
                "tta_variance",
                "--seeds",
                "2",
                "--preset",
                "smoke",
                "--dry-run",
                "--store",
                str(root),
                "--out",
                str(tmp_path / "out"),
                "--allow-mixed-versions",
            ]
        )
        == 0
    )
    assert "would be refused" not in capsys.readouterr().out


# --------------------------------------------------------------------------- item 5: bounds on a grid


def grid_file(tmp_path, axes: dict[str, list]) -> str:
    lines = ['method = "airbench94"', "[grid]"] + [f"{k} = {v}" for k, v in axes.items()]
    path = tmp_path / "big.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_a_million_cells_are_refused_before_they_are_built(tmp_path, capsys):
    from harness.cli.study import main

    path = grid_file(
        tmp_path,
        {
            "lr": [float(i + 1) for i in range(100)],
            "epochs": [float(i + 1) for i in range(100)],
            "batch_size": list(range(1, 101)),
        },
    )
    assert (
        main(
            [path, "--seeds", "1", "--dry-run", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "o")]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {path}: grid: 1,000,000 cells (100 lr x 100 epochs x 100 batch_size) is above the "
        "bound of 10,000 cells per study; split it into several studies"
    )
    assert not list(tmp_path.glob("[so]"))


def test_too_many_runs_are_refused_and_a_long_dry_run_is_summed_up(tmp_path, capsys):
    from harness.cli.study import main

    path = grid_file(tmp_path, {"lr": [float(i + 1) for i in range(50)], "epochs": [1.0, 2.0]})
    args = ["--dry-run", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "o")]
    assert main([path, "--seeds", "2", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.startswith("lr=")]) == 40
    assert "... and 60 more cells: 120 runs, 0 done, 120 to do" in out
    assert "100 cells, 200 runs, 0 already done, 200 to do" in out
    path = grid_file(tmp_path, {"lr": [float(i + 1) for i in range(101)]})
    assert main([path, "--seeds", "100000", *args]) == 2
    assert (
        "101 cells x 100,000 seeds = 10,100,000 runs is above the bound of 10,000,000"
        in capsys.readouterr().err
    )


# --------------------------------------------------------------------------- item 9: counts and clean-up


def test_already_done_counts_this_studys_runs_only(tmp_path, monkeypatch):
    cell = Cell({"cell": "tiny"}, tiny_config())
    study = Study("tiny", "one tiny cell", lambda preset, base: [cell], lambda c: [])
    mine = cell.config.key(0)
    (tmp_path / "runs").mkdir()
    monkeypatch.setattr(
        store, "done_versions", lambda root: {k: {""} for k in {mine} | {f"other{i}" for i in range(3000)}}
    )
    monkeypatch.setattr(store, "failed_keys", lambda root: {"other-failed"})
    p = campaign.plan(study, "smoke", 3, tmp_path)
    assert p.done == {mine} and p.failed_before == set()
    assert p.describe().splitlines()[-1] == "1 cells, 3 runs, 1 already done, 2 to do"


def test_ctrl_c_of_store_compact_is_one_line_exit_130(tmp_path, monkeypatch, capsys):
    import harness.store.compact as compact_module
    from harness.cli.store import main

    def interrupted(root):
        raise KeyboardInterrupt

    monkeypatch.setattr(compact_module, "compact", interrupted)
    (tmp_path / "s").mkdir()
    assert main(["compact", str(tmp_path / "s")]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("stopped by Ctrl-C")


def test_the_calibration_table_warns_of_nothing():
    import warnings

    from studies.calibration import mean_or_na

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mean_or_na([float("nan"), float("nan")]) == "n/a"
        assert mean_or_na([0.5, float("nan"), 1.5]) == "1.0000"


# --------------------------------------------------------------------------- item 6: token authentication


def test_a_refused_token_keeps_the_root_cause_and_says_what_to_do():
    from harness.run.backends import auth_hint, ray_error_text

    class AuthenticationError(Exception):
        pass

    exc = AuthenticationError("Authentication failed: InvalidAuthToken: the token does not match.\nmore")
    line = f"{ray_error_text(exc)}{auth_hint(exc)}"
    assert "InvalidAuthToken" in line and "RAY_AUTH_MODE=token" in line and "\n" not in line
    assert auth_hint(RuntimeError("connection refused")) == ""
