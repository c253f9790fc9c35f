"""Hostile clusters (issue 26, items 3, 4, 12): the private Ray listens on loopback only and wants its
own token whatever the environment says, its helper processes die with a SIGKILLed driver, a Ray
restart of an actor that never answered is counted, and ``--address`` pointing at a gRPC server that
is not Ray, or at a cluster whose token the driver lacks, is refused in one line instead of a hang or
half a minute of Ray's retries. Loopback only; one private Ray instance for the module."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import ROOT, sleeping_study, study_cli
from ray_nodes import free_port, ray_node

from harness.run import private_ray, reaper
from harness.run.backends import BackendError, RayBackend

AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
HANG = 60  # a subprocess still running after this long hangs (the guard, not a speed goal)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def tokenless_env(**extra: str) -> dict:
    """This environment without any Ray token, with auth disabled, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    return {**env, "RAY_AUTH_MODE": "disabled", "HOME": os.environ.get("HOME", "/"), **extra}


def simulated_backend(**options) -> RayBackend:
    from airbench_core.simulated import METHOD, SimulatedData

    return RayBackend("", None, "cpu", False, method=METHOD, method_data=SimulatedData(1000), **options)


@pytest.fixture(scope="module")
def private():
    """The harness's private Ray, started with token authentication switched off in the environment
    (which it must override); its backend is kept for the module and stopped at the end."""
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_MODE", "disabled")
    patch.delenv("RAY_AUTH_TOKEN", raising=False)
    backend = simulated_backend(workers=2)
    try:
        yield backend
    finally:
        backend.stop()
        restored = os.environ.get("RAY_AUTH_MODE"), os.environ.get("RAY_AUTH_TOKEN")
        patch.undo()
    assert restored == ("disabled", None), "stopping the private cluster gives the user's variables back"


def listening_sockets(pids: set[int]) -> list[tuple[str, int]]:
    """(local address, pid) of every listening TCP socket of ``pids``, as ``ss`` sees them."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        local, users = fields[3], " ".join(fields[5:])
        for pid in pids:
            if f"pid={pid}," in users:
                found.append((local.rsplit(":", 1)[0], pid))
    return found


@pytest.mark.slow
def test_the_private_cluster_listens_on_loopback_only(private):
    import ray

    pids = {os.getpid(), *reaper.descendants(os.getpid())}
    sockets = listening_sockets(pids)
    assert len({pid for _, pid in sockets}) >= 3, f"the GCS, raylet and driver listen: {sockets}"
    assert all(private_ray.is_loopback(host) for host, _ in sockets), sockets
    gcs_host = ray.get_runtime_context().gcs_address.rsplit(":", 1)[0]
    assert private_ray.is_loopback(gcs_host)
    bound = private_ray.binding(ray)
    assert bound.listening and not bound.exposed() and bound.token_auth


@pytest.mark.slow
def test_the_private_cluster_wants_its_token_whatever_the_environment_says(private):
    """Started under RAY_AUTH_MODE=disabled, it still refuses a driver without its token."""
    import ray

    gcs = ray.get_runtime_context().gcs_address
    probe = "import sys; from harness.run.backends import check_address; check_address(sys.argv[1])"
    r = subprocess.run(
        [sys.executable, "-c", probe, gcs],
        env=tokenless_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert r.returncode != 0 and "wants an authentication token" in r.stderr, r.stderr
    assert os.environ["RAY_AUTH_MODE"] == "token", "the private cluster's own mode, while it runs"


@pytest.mark.slow
def test_verbose_prints_the_binding(private, capsys):
    import ray

    private_ray.report(ray, verbose=True)
    err = capsys.readouterr().err
    assert "private Ray: node 127.0.0.1" in err and "all on loopback" in err
    assert "token authentication on" in err and "warning" not in err


def test_a_ray_that_cannot_bind_to_loopback_is_named_once(monkeypatch, capsys):
    """(No Ray: a binding beyond loopback stands in for an installed Ray that cannot keep to it.)"""

    class FakeRay:
        __version__ = "9.9"

    exposed = private_ray.Binding("10.0.0.5", "10.0.0.5:6379", True, [("gcs_server", "0.0.0.0", 6379)])
    monkeypatch.setattr(private_ray, "binding", lambda ray: exposed)
    monkeypatch.setattr(private_ray, "_warned", False)
    private_ray.report(FakeRay, verbose=False)
    private_ray.report(FakeRay, verbose=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Ray (9.9) cannot keep the private cluster" in err[0]
    assert "gcs_server on 0.0.0.0:6379" in err[0]


@pytest.mark.slow
def test_an_actor_killed_before_it_answered_counts_as_a_restart(private, tmp_path):
    """Ray restarts it in a new process; the first pid that answers for it is that new one, so a
    count by changed pids alone saw nothing."""
    from ray._private import state

    from airbench_core.simulated import SimulatedConfig, SimulatedData
    from harness.bench.campaign import simulated_study
    from harness.run import campaign

    backend = simulated_backend(workers=2)
    backend.actors = [backend._new_actor() for _ in range(2)]
    victim = backend.actors[0]._actor_id.hex()
    pid = 0
    for _ in range(300):
        info = state.actors(actor_id=victim)
        pid = info.get("Pid", 0) if info.get("State") == "ALIVE" else 0
        if pid:
            break
        time.sleep(0.1)
    assert pid, "the actor came up"
    os.kill(pid, signal.SIGKILL)
    data = SimulatedData(1000)
    summary = campaign.run(
        simulated_study(SimulatedConfig(run_seconds=0.1, n_test=1000)),
        "full",
        4,
        tmp_path,
        data,
        backend,
        progress=False,
    )
    assert (summary.trained, summary.failed) == (4, 0)
    assert summary.restarts == 1, summary.line()


class FakeH2C:
    """A gRPC-looking server that is not Ray: it answers the HTTP/2 preface with SETTINGS and
    acknowledges whatever comes next, but never answers a call."""

    SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.talk, args=(conn,), daemon=True).start()

    def talk(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(self.SETTINGS)
                while conn.recv(65536):
                    conn.sendall(self.ACK)
            except OSError:
                return


def test_the_address_check_refuses_an_http2_server_that_is_not_ray():
    from harness.run.backends import check_address

    fake = FakeH2C()
    with pytest.raises(BackendError, match="not a Ray head: its gRPC server did not answer Ray's GCS call"):
        check_address(fake.address, timeout=1.0)
    fake.sock.close()


@pytest.mark.slow
def test_the_cli_refuses_an_http2_server_that_is_not_ray_in_one_line(tmp_path):
    fake = FakeH2C()
    r = study_cli(
        str(sleeping_study(tmp_path, 0.1)),
        "--seeds",
        "1",
        "--address",
        fake.address,
        "--out",
        str(tmp_path / "o"),
        "--store",
        str(tmp_path / "s"),
        timeout=HANG,
    )
    assert "not a Ray head" in one_error_line(r)
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def token_head():
    """A `ray start --head` on loopback that wants a token: (address, token)."""
    port, token = free_port(), "a" * 32 + "0123456789abcdef"
    env = {
        **tokenless_env(),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        private_ray.CLUSTER_MODE_VAR: "0",
    }
    args = ("--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1")
    with ray_node(*args, "--include-dashboard=false", env=env):
        yield f"127.0.0.1:{port}", token


@pytest.mark.slow
def test_a_driver_without_the_clusters_token_is_told_how_to_give_it_in_one_line(token_head, tmp_path):
    address, token = token_head
    args = (str(sleeping_study(tmp_path, 0.1)), "--seeds", "1", "--address", address)
    out = ("--out", str(tmp_path / "o"), "--store", str(tmp_path / "s"))
    line = one_error_line(study_cli(*args, *out, env=tokenless_env(), timeout=HANG))
    assert "the cluster wants an authentication token" in line
    assert "RAY_AUTH_MODE=token" in line and "RAY_AUTH_TOKEN=" in line
    wrong = tokenless_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="b" * 48)
    assert "wants an authentication token" in one_error_line(study_cli(*args, *out, env=wrong, timeout=HANG))
    # --address auto finds it through RAY_ADDRESS: the same one line
    auto = tokenless_env(RAY_ADDRESS=address, HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    auto[private_ray.CLUSTER_MODE_VAR] = "0"  # Ray's "auto" would swap in the LAN address otherwise
    del auto["RAY_AUTH_MODE"]
    probe = "from harness.run.backends import check_address; check_address('auto')"
    r = subprocess.run([sys.executable, "-c", probe], env=auto, capture_output=True, text=True, timeout=HANG)
    assert r.returncode != 0 and "--address auto: the cluster wants an authentication token" in r.stderr
    # with the token, a driver joins it, though Ray would swap the loopback address for the LAN one
    right = tokenless_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, PYTHONPATH=str(ROOT))
    joined = subprocess.run(
        [sys.executable, "-c", JOIN, address], env=right, capture_output=True, text=True, timeout=HANG
    )
    assert (joined.returncode, joined.stdout.strip()) == (0, "1.0"), joined.stderr


JOIN = """
import sys
from airbench_core.simulated import METHOD, SimulatedData
from harness.run.backends import RayBackend
backend = RayBackend("", None, "cpu", False, address=sys.argv[1], method=METHOD, method_data=SimulatedData(10))
print(backend.total_cpus)
backend.stop()
"""


DRIVER = """
import json, sys, time
import ray
from airbench_core.simulated import METHOD, SimulatedData
from harness.run.backends import RayBackend
from harness.run import private_ray
backend = RayBackend("", None, "cpu", False, method=METHOD, method_data=SimulatedData(1000), workers=1)
print(json.dumps(private_ray.cluster_pids(ray)), flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_the_private_clusters_processes_die_with_a_sigkilled_driver():
    """Ray's dashboard and runtime-env agents used to linger 80-150 s after the driver."""
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        pids = json.loads(driver.stdout.readline())
        names = {
            pid: Path(f"/proc/{pid}/comm").read_text().strip()
            for pid in pids
            if Path(f"/proc/{pid}").exists()
        }
        assert any(n.startswith(("ray::Dashboard", "ray::RuntimeEnv")) for n in names.values()), names
        ticks = {pid: reaper.start_ticks(pid) for pid in pids}
        driver.kill()
        driver.wait()
        alive = pids
        for _ in range(200):  # 20 s: the old lingering lasted minutes
            alive = [pid for pid in pids if ticks[pid] is not None and reaper.start_ticks(pid) == ticks[pid]]
            if not alive:
                break
            time.sleep(0.1)
        assert not alive, {pid: names.get(pid) for pid in alive}
    finally:
        driver.kill()
        driver.stdout.close()
        for pid in alive if "alive" in locals() else []:  # what this test started, should it fail
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
