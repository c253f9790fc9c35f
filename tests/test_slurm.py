"""deploy/slurm.sbatch run by a real one-node Slurm cluster (Debian's slurmctld and slurmd with munge,
started by the test on free ports): the job starts a Ray head with `ray start`, the driver joins it
with --address, and the run lands in the store. `.ci/run` installs Slurm from Debian's registry, so
CI runs it; elsewhere it is skipped, saying why, unless AIRBENCH_REQUIRE_SLURM=1 makes a missing
Slurm a failure."""

import contextlib
import getpass
import os
import shutil
import signal
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
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not INSTALLED and not os.environ.get("AIRBENCH_REQUIRE_SLURM"),
        reason="Slurm is not installed here (apt install slurmd slurmctld slurm-client munge)",
    ),
]


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
    assert "cluster: 0 of 0 GPUs" in log and "2 runs to train" in log and "report: " in log
    frame, preds = store.load(tmp_path / "out")
    assert len(frame) == 2 and preds.shape == (2, 3, 1000)
    assert (
        frame["worker_node"].nunique() == 1 and frame["worker_node"].iloc[0]
    )  # actors of the job's Ray head
