"""deploy/slurm.sbatch: its helper functions under bash with fake SLURM_* variables (no Slurm
needed), and the template run by a real one-node Slurm cluster (Debian's slurmctld and slurmd with munge,
started by the test on free ports): the job starts a Ray head with `ray start`, the driver joins it
with --address, and the run lands in the store. `.ci/run` installs Slurm from Debian's registry, so
CI runs it; elsewhere it is skipped, saying why, unless AIRBENCH_REQUIRE_SLURM=1 makes a missing
Slurm a failure."""

import contextlib
import getpass
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, sleeping_study
from ray_nodes import free_port

from harness import store

DAEMONS = ("slurmctld", "slurmd", "sbatch", "sinfo", "munged", "munge")
INSTALLED = all(shutil.which(d) or Path("/usr/sbin", d).exists() for d in DAEMONS)
needs_slurm = pytest.mark.skipif(
    not INSTALLED and not os.environ.get("AIRBENCH_REQUIRE_SLURM"),
    reason="Slurm is not installed here (apt install slurmd slurmctld slurm-client munge)",
)
TEMPLATE = ROOT / "deploy" / "slurm.sbatch"


def command(name: str) -> str:
    found = shutil.which(name) or str(Path("/usr/sbin", name))
    assert Path(found).exists(), f"{name} is not installed (apt install slurmd slurmctld slurm-client munge)"
    return found


def ensure_munge() -> None:
    """Slurm authenticates with munge: start its daemon unless one answers."""
    if subprocess.run([command("munge"), "-n"], capture_output=True).returncode == 0:
        return
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    subprocess.run([command("munged"), "--force"], check=True, capture_output=True)
    for _ in range(50):
        if subprocess.run([command("munge"), "-n"], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    pytest.fail("munged did not start")


@pytest.fixture
def slurm(tmp_path_factory):
    """A one-node cluster: its config path, for SLURM_CONF."""
    ensure_munge()
    base = Path(tmp_path_factory.mktemp("slurm"))
    for sub in ("state", "spool", "log"):
        (base / sub).mkdir()
    user = getpass.getuser()
    conf = base / "slurm.conf"
    conf.write_text(f"""ClusterName=airbenchtest
SlurmctldHost=localhost
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd.log
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=localhost CPUs={os.cpu_count()} RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run([command("slurmctld"), "-f", str(conf)], env=env, check=True)
    subprocess.run([command("slurmd"), "-f", str(conf), "-N", "localhost"], env=env, check=True)
    try:
        for _ in range(300):  # up to 90 s: slurmd registers slowly on a busy machine
            state = subprocess.run(
                [command("sinfo"), "-h", "-o", "%T"], env=env, capture_output=True, text=True
            )
            if state.stdout.strip() == "idle":
                break
            time.sleep(0.3)
        else:
            pytest.fail(
                f"the Slurm node did not come up: {state.stdout} {state.stderr}\n"
                + (base / "log" / "slurmd.log").read_text()[-2000:]
            )
        yield conf
    finally:
        stop_daemons(base)


def stop_daemons(base: Path) -> None:
    """SIGTERM slurmctld and slurmd, then SIGKILL whatever of this cluster is left: its daemons and
    job-step daemons (slurmstepd outlives slurmd while Ray drains) all run in folders under ``base``."""
    for name in ("slurmd", "slurmctld"):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((base / f"{name}.pid").read_text()), signal.SIGTERM)
    time.sleep(1)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            inside = Path(os.readlink(proc / "cwd")).is_relative_to(base)
        except OSError:
            continue
        if inside and int(proc.name) != os.getpid():
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGKILL)


@pytest.mark.slow
@needs_slurm
def test_the_sbatch_template_runs_a_study_through_a_ray_head_it_starts(slurm, tmp_path, data_source):
    study = sleeping_study(tmp_path, 0.2)  # the job, not training, is under test
    env = {
        **os.environ,
        "SLURM_CONF": str(slurm),
        "PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        "STUDY_ARGS": f"{study} --seeds 2 --device cpu",
        "STORE": str(tmp_path / "store"),
        "OUT": str(tmp_path / "out"),
        "AIRBENCH_DATA": data_source,
    }
    job = subprocess.run(
        [
            command("sbatch"),
            "--wait",
            "--nodes=1",
            "--gpus-per-node=0",
            f"--cpus-per-task={os.cpu_count()}",
            str(ROOT / "deploy" / "slurm.sbatch"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = "\n".join(p.read_text() for p in tmp_path.glob("airbench-*.out"))
    assert job.returncode == 0, job.stdout + job.stderr + log[-3000:]
    assert "cluster: 0 of 0 GPUs, 1 of 1 nodes" in log and "2 runs to train" in log and "report: " in log
    frame, preds = store.load(tmp_path / "out")
    assert len(frame) == 2 and preds.shape == (2, 3, 1000)
    assert (
        frame["worker_node"].nunique() == 1 and frame["worker_node"].iloc[0]
    )  # actors of the job's Ray head


# --------------------------------------------------------------------------- the template's helpers


def helpers(tmp_path: Path, script: str, **env: str) -> subprocess.CompletedProcess:
    """``script`` run by bash after sourcing the template's helpers (its job part is not run)."""
    variables = {
        **os.environ,
        "AIRBENCH_SLURM_HELPERS_ONLY": "1",
        "PYTHON": sys.executable,
        "TMPDIR": str(tmp_path),
        "SLURM_JOB_ID": "1001",
        **env,
    }
    return subprocess.run(
        ["bash", "-c", f'source "$0"\n{script}', str(TEMPLATE)],
        env=variables,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_each_node_gets_a_fresh_private_ray_folder_not_one_named_by_the_job_id(tmp_path):
    squatted = tmp_path / "ray-1001"  # what another user could create before the job starts
    squatted.mkdir()
    r = helpers(tmp_path, "private_tmp; private_tmp")
    assert r.returncode == 0, r.stderr
    made = [Path(line) for line in r.stdout.split()]
    assert len(set(made)) == 2 and squatted not in made
    for folder in made:
        assert folder.parent == tmp_path and folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700
    assert "private_tmp)" in TEMPLATE.read_text() and "/tmp/ray-$SLURM_JOB_ID" not in TEMPLATE.read_text()


def test_the_head_port_is_probed_free_not_derived_from_the_job_id(tmp_path):
    """Jobs 1 and 1001 got the same port (6379 + id % 1000); now each gets one free when probed."""
    with socket.socket() as other_job:  # another job's head, on the port the old formula gave
        try:
            other_job.bind(("", 6380))
        except OSError:
            other_job.bind(("", 0))
        other_job.listen()
        taken = other_job.getsockname()[1]
        for job in ("1", "1001"):
            r = helpers(tmp_path, "job_port", SLURM_JOB_ID=job)
            assert r.returncode == 0, r.stderr
            port = int(r.stdout)
            assert port != taken
            with socket.socket() as s:
                s.bind(("", port))  # free indeed
    assert helpers(tmp_path, "job_port", RAY_PORT="7123").stdout.strip() == "7123"


def test_the_head_address_is_the_first_that_is_not_loopback(tmp_path):
    r = helpers(tmp_path, "first_routable 127.0.1.1 ::1 fe80::1 10.1.2.3 192.168.0.7")
    assert (r.returncode, r.stdout.strip()) == (0, "10.1.2.3")
    r = helpers(tmp_path, "first_routable 127.0.1.1; echo still running")
    assert r.returncode == 1 and "still running" not in r.stdout
    assert r.stderr.strip() == "error: no address other than loopback among: 127.0.1.1; set RAY_HEAD_IP"
    assert helpers(tmp_path, "join_address fd00::2 6379").stdout.strip() == "[fd00::2]:6379"


def test_values_reach_python_as_arguments_not_as_code(tmp_path):
    evil = "x', 1)); open('PWNED', 'w'); (('x"
    r = helpers(tmp_path, f"wait_for_port {shlex.quote(evil)} 1 1")
    assert not (tmp_path / "PWNED").exists()
    assert r.returncode == 1 and "error: the Ray head did not come up" in r.stderr
    assert not re.search(r'-c\s+"[^"]*\$', TEMPLATE.read_text()), "a shell value pasted into python -c"


def test_the_wait_loops_fail_loudly_when_the_cluster_does_not_come_up(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: nothing answers
        r = helpers(tmp_path, f"wait_for_port 127.0.0.1 {port} 2; echo still running")
    assert r.returncode == 1 and "still running" not in r.stdout
    assert f"error: the Ray head did not come up at 127.0.0.1:{port} within 2 s" in r.stderr
    # a cluster where one of two nodes joined (a stand-in python answers "nodes GPUs")
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 1 8\n")
    fake.chmod(0o755)
    r = helpers(tmp_path, "wait_for_nodes 10.0.0.1:6379 2 16 1; echo still running", PYTHON=str(fake))
    assert r.returncode == 1 and "still running" not in r.stdout
    assert "error: the Ray cluster at 10.0.0.1:6379 did not come up: 1 8 (nodes GPUs) of 2 16" in r.stderr
    r = helpers(tmp_path, "wait_for_nodes 10.0.0.1:6379 1 8 1", PYTHON=str(fake))
    assert r.returncode == 0 and r.stdout.strip() == "cluster: 8 of 8 GPUs, 1 of 1 nodes"
