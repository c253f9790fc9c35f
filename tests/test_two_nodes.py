"""Two Ray nodes started on this machine with `ray start` (one cluster for the module): a campaign
through --address spreads over both, one without --address never joins them (it starts its own Ray),
and one that loses a node for good finishes on the other."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import ROOT, sleeping_study, study_cli
from ray_nodes import free_port, ray_node

from harness import store

# Token authentication stays on: both nodes and the driver read the token kept under ~/.ray/.
TOKEN_AUTH = {**os.environ, "RAY_AUTH_MODE": "token"}


@pytest.fixture(scope="module")
def two_nodes():
    """Two nodes of one cluster, stopped by signalling their own process groups (never `ray stop`,
    which would stop every Ray on the machine). Yields the head's address and the second node's
    process (the last test kills it)."""
    port = free_port()
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # its own temp dir: no cluster file in /tmp/ray
    env = {**TOKEN_AUTH, "RAY_TMPDIR": ray_tmp}
    try:
        with ray_node(
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--num-gpus=1",
            "--include-dashboard=false",
            env=env,
        ):
            with ray_node(
                f"--address=127.0.0.1:{port}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=1",
                "--num-gpus=1",
                env=env,
            ) as second:
                yield f"127.0.0.1:{port}", second, ray_tmp
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_campaign_through_address_uses_both_nodes(two_nodes, tmp_path, data_source):
    """Where the runs go is under test, not training (real runs go through Ray in test_ray_campaign.py)."""
    out = tmp_path / "out"
    r = study_cli(
        str(sleeping_study(tmp_path, 0.2)),
        "--seeds",
        "2",
        "--address",
        two_nodes[0],
        "--out",
        str(out),
        "--store",
        str(tmp_path / "store"),
        "--data",
        data_source,
        "--no-report",
        timeout=400,
        env=TOKEN_AUTH,
    )
    assert r.returncode == 0, r.stderr
    frame, _ = store.load(out)
    assert len(frame) == 2  # one run handed to each node's actor first
    assert frame["worker_node"].nunique() == 2, frame[["worker_node", "gpu_slot"]]


def test_a_campaign_without_address_never_joins_a_running_cluster(two_nodes, tmp_path, data_source):
    """Defect 4: without --address the campaign starts its own Ray, even when another cluster is running
    and RAY_ADDRESS names it (both ways a bare ray.init() would have joined it)."""
    address, _, ray_tmp = two_nodes
    ray_dir = Path(ray_tmp) / "ray"
    foreign = (ray_dir / "session_latest").resolve()
    assert (ray_dir / "ray_current_cluster").exists()  # where a bare ray.init() looks
    env = {**TOKEN_AUTH, "RAY_TMPDIR": ray_tmp, "RAY_ADDRESS": address}
    out = tmp_path / "out"
    r = study_cli(
        str(sleeping_study(tmp_path, 0.2)),
        "--seeds",
        "2",
        "--device",
        "cpu",
        "--workers",
        "2",
        "--out",
        str(out),
        "--store",
        str(tmp_path / "store"),
        "--data",
        data_source,
        "--no-report",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    frame, _ = store.load(out)
    pids = set(frame["worker_pid"])
    assert len(frame) == 2
    ours = {p.resolve() for p in ray_dir.glob("session_2*")} - {foreign}
    assert len(ours) == 1, "the campaign started a cluster of its own"

    def logged(session):
        return {int(p.stem.rsplit("-", 1)[-1]) for p in (session / "logs").glob("worker-*.out")}

    assert pids <= logged(ours.pop()) and not pids & logged(foreign)
    assert "(raylet)" not in r.stderr and "INFO" not in r.stderr


# The driver of the lost-node test, in a process of its own: Ray reads RAY_AUTH_MODE when it is first
# imported, and the test process may have imported it (collecting other modules) without the token.
LOSING_DRIVER = """
import json, os, signal, sys
from airbench_core.simulated import METHOD, SimulatedConfig, SimulatedData
from harness.bench.campaign import simulated_study
from harness.run import campaign
from harness.run.backends import RayBackend

address, victim, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = SimulatedData(500)
backend = RayBackend("", None, "auto", False, address=address, method=METHOD, method_data=data, lost_after=5.0)
seen = []

killed_after = []

def kill_second_node_once_both_worked(outcome):
    # after ten runs, once both nodes have trained one (on a busy machine one node's actor may start
    # seconds after the other's)
    if outcome.result is None:         # a task on the killed node may fail: the campaign retries it
        return
    seen.append(outcome.worker["worker_node"])
    if not killed_after and len(seen) >= 10 and len(set(seen)) == 2:
        killed_after.append(len(seen))
        os.killpg(victim, signal.SIGKILL)

slots = backend.slots()
summary = campaign.run(simulated_study(SimulatedConfig(run_seconds=0.2, n_test=500)), "full", 60, out, data, backend,
                       progress=False, on_outcome=kill_second_node_once_both_worked)
print(json.dumps({"slots": slots, "trained": summary.trained, "failed": summary.failed, "lost": backend.lost,
                  "seen": seen, "killed_after": killed_after}))
"""


def test_a_node_lost_for_good_leaves_its_runs_to_the_other_node(two_nodes, tmp_path):
    """The second node is SIGKILLed mid-campaign and nothing replaces it: Ray keeps its actor pending
    for a GPU that never returns; the backend gives that actor up after ``lost_after`` seconds, and
    its queued runs are trained on the head's actor: every run stored once, none failed for good."""
    address, second, _ = two_nodes
    r = subprocess.run(
        [sys.executable, "-c", LOSING_DRIVER, address, str(second.pid), str(tmp_path / "out")],
        cwd=ROOT,
        env={**TOKEN_AUTH, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["slots"] == 2
    assert (result["trained"], result["failed"], result["lost"]) == (60, 0, 1)
    frame, _ = store.load(tmp_path / "out")
    assert frame["key"].nunique() == len(frame) == 60
    seen, [killed_after] = result["seen"], result["killed_after"]
    assert killed_after <= 40 and len(set(seen[-20:])) == 1  # both nodes worked, then the head alone
