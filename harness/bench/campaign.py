"""The scale benchmark: real campaigns of the simulated method on Ray actors with logical GPUs.

    python -m harness.bench campaign --actors 8 64 256 --runs 1000 10000 100000 --run-seconds 0.5
    python -m harness.bench campaign --actors 16 --runs 2000 --two-nodes [--kill-node] [--lose-node]

Each setting is a whole campaign as ``harness.study`` runs one (``harness.run.campaign.run`` on a
``RayBackend``, every run written to a real store the moment it arrives), then the store's
compaction and a report. The actors sleep ``--run-seconds`` per run (``airbench_core.simulated``),
so the ideal throughput is actors / run_seconds and anything below it is the harness's cost.

Printed per setting: runs/s against that ideal, the driver's CPU ms per finished run (its whole
process, Ray's threads included), store writes/s, the driver's peak RSS and its growth per 10,000
runs, compaction and report seconds. ``--kill-node`` (with ``--two-nodes``) SIGKILLs the second
node a third of the way through, starts a replacement, and reports the runs retried, whether any
was lost or stored twice, and the seconds until the replacement's first run was stored.
``--lose-node`` kills it the same way with no replacement: the backend gives its actors up after
``--lost-after`` seconds and the head's actors train their runs.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """This process's resident memory now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simulated_study(config):
    from harness.spec.grid import Cell, Study

    return Study(
        "simulated",
        "the simulated method (airbench_core.simulated): the harness's own cost at scale",
        grid=lambda preset, base: [Cell({"method": "simulated"}, config, "simulated")],
        presets=("full",),
    )


# -- clusters ----------------------------------------------------------------------------------------


def ray_command() -> str:
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        raise RuntimeError(
            f"the ray command (from the ray package) is neither beside {sys.executable} nor on PATH"
        )
    return found


class Node:
    """A ``ray start ... --block`` node in its own process group, ended by signalling that group
    (never ``ray stop``, which would stop every Ray cluster on the machine)."""

    def __init__(self, *args: str, env: dict):
        self.proc = subprocess.Popen(
            [ray_command(), "start", *args, "--block", "--disable-usage-stats"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None  # stdout=PIPE
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            if "will now block forever" in line:
                break
        if self.proc.poll() is not None:
            raise RuntimeError("ray start failed:\n" + "".join(lines[-20:]))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            self.kill(sig)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        self.kill(signal.SIGKILL)  # the group's leftovers (raylet, workers)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class Cluster:
    actors: int
    two_nodes: bool = False
    nodes: list = field(default_factory=list)
    address: str | None = None
    env: dict = field(default_factory=dict)
    tmp: str = ""
    quiet: Callable[[], None] | None = None  # undoes the silencing of Ray's "(raylet)" warnings

    def node_args(self, gpus: float) -> list[str]:
        return [
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            f"--num-gpus={gpus:g}",
            f"--object-store-memory={200 * 2**20}",
        ]

    def start(self) -> None:
        import ray

        root = str(Path(__file__).resolve().parent.parent.parent)
        runtime_env = {
            "env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        }
        from harness.run.backends import silence_ray_errors

        if not self.two_nodes:
            ray.init(
                address="local",
                num_cpus=os.cpu_count() or 1,
                num_gpus=self.actors,
                include_dashboard=False,
                object_store_memory=200 * 2**20,
                logging_level=logging.ERROR,
                log_to_driver=False,
                runtime_env=runtime_env,
            )
            self.quiet = silence_ray_errors(
                ray
            )  # e.g. "64 worker processes started" warnings: the table says it
            return
        self.tmp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
        self.env = {**os.environ, "RAY_TMPDIR": self.tmp}
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        half = self.actors / 2
        self.nodes.append(
            Node("--head", f"--port={port}", "--include-dashboard=false", *self.node_args(half), env=self.env)
        )
        self.add_node(half)
        os.environ["RAY_TMPDIR"] = self.tmp
        ray.init(
            address=self.address, logging_level=logging.ERROR, log_to_driver=False, runtime_env=runtime_env
        )
        self.quiet = silence_ray_errors(ray)

    def add_node(self, gpus: float) -> Node:
        node = Node(f"--address={self.address}", *self.node_args(gpus), env=self.env)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        import ray

        ray.shutdown()
        if self.quiet:
            self.quiet()
            self.quiet = None
        for node in reversed(self.nodes):
            node.stop()
        self.nodes = []
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            os.environ.pop("RAY_TMPDIR", None)


@contextmanager
def cluster(actors: int, two_nodes: bool = False):
    c = Cluster(actors, two_nodes)
    try:
        c.start()
        yield c
    finally:
        c.stop()


# -- one setting ---------------------------------------------------------------------------------------


@dataclass
class Result:
    actors: int
    runs: int
    run_seconds: float
    nodes: int = 1
    startup_s: float = 0.0  # actors created and answering
    wall_s: float = 0.0  # the campaign: first run submitted to last stored
    driver_cpu_s: float = 0.0
    stored: int = 0
    unique: int = 0
    failed: int = 0
    retries: int = 0
    peak_rss_mb: float = 0.0
    rss_growth_mb_per_10k: float = 0.0
    compact_s: float = 0.0
    report_s: float = 0.0
    kill: dict | None = None
    actor_s: float = 0.0  # seconds each run took inside its actor (sleep + predictions)

    @property
    def ideal(self) -> float:
        return self.actors / self.run_seconds

    @property
    def runs_per_s(self) -> float:
        return self.stored / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms_per_run(self) -> float:
        return 1000 * self.driver_cpu_s / self.stored if self.stored else float("nan")

    def row(self) -> str:
        return (
            f"{self.actors:>6} {self.nodes:>5} {self.runs:>7} {self.runs_per_s:>8.1f} {self.ideal:>7.1f} "
            f"{100 * self.runs_per_s / self.ideal:>6.1f}% {self.cpu_ms_per_run:>9.2f} {self.runs_per_s:>8.1f} "
            f"{self.peak_rss_mb:>8.0f} {self.rss_growth_mb_per_10k:>9.1f} {self.compact_s:>8.1f} "
            f"{self.report_s:>8.1f} {self.startup_s:>8.1f} {self.actor_s:>7.3f}  "
            + (
                "ok"
                if self.unique == self.stored == self.runs and not self.failed
                else f"LOST/DUPLICATED: {self.stored} stored, {self.unique} keys, {self.failed} failed"
            )
        )


HEADER = (
    f"{'actors':>6} {'nodes':>5} {'runs':>7} {'runs/s':>8} {'ideal':>7} {'ratio':>7} {'cpu ms/run':>9} "
    f"{'writes/s':>8} {'peak MB':>8} {'MB/10k':>9} {'compact s':>8} {'report s':>8} {'start s':>8} {'actor s':>7}  store"
)


class Meter:
    """The campaign's ``on_outcome``: RSS samples, and (with a kill) the node kill and recovery."""

    def __init__(self, runs: int, kill_at: int | None = None, on_kill=None):
        self.runs, self.kill_at, self.on_kill = runs, kill_at, on_kill
        self.seen = 0
        self.samples: list[tuple[int, float]] = []
        self.killed_at: float | None = None
        self.nodes_before: set[str] = set()
        self.recovered_at: float | None = None
        self.every = max(1, runs // 50)

    def __call__(self, outcome) -> None:
        if outcome.result is None:
            return
        self.seen += 1
        if self.seen % self.every == 0:
            self.samples.append((self.seen, rss_mb()))
        node = outcome.worker.get("worker_node", "")
        if self.killed_at is None:
            self.nodes_before.add(node)
            if self.kill_at is not None and self.seen >= self.kill_at:
                self.killed_at = time.perf_counter()
                self.on_kill()
        elif self.recovered_at is None and node not in self.nodes_before:
            self.recovered_at = time.perf_counter()

    def growth_per_10k(self) -> float:
        """RSS growth from the tenth of the campaign on (past start-up allocations), per 10,000 runs."""
        later = [s for s in self.samples if s[0] >= self.runs // 10]
        if len(later) < 2 or later[-1][0] == later[0][0]:
            return float("nan")
        return (later[-1][1] - later[0][1]) / (later[-1][0] - later[0][0]) * 10000


def run_setting(
    c: Cluster,
    runs: int,
    run_seconds: float,
    folder: Path,
    kill: bool = False,
    profile: Path | None = None,
    report: bool = True,
    replace: bool = True,
    lost_after: float = 300.0,
) -> Result:
    import ray

    from airbench_core.simulated import METHOD, SimulatedConfig, SimulatedData
    from harness.run.backends import RayBackend

    config = SimulatedConfig(run_seconds=run_seconds)
    data = SimulatedData(config.n_test)
    out = (
        folder
        / f"a{c.actors}-r{runs}-{'2n' if c.two_nodes else '1n'}{'-kill' if kill else ''}{'' if replace else '-lose'}"
    )
    res = Result(c.actors, runs, run_seconds, nodes=len(c.nodes) or 1)
    for _ in range(60):  # after a killed node: until Ray has noticed it is gone (its GPUs no longer counted)
        if ray.cluster_resources().get("GPU", 0.0) == c.actors:
            break
        time.sleep(1)
    backend = RayBackend("", None, "auto", False, method=METHOD, method_data=data, lost_after=lost_after)
    if backend.slots() != c.actors:
        raise RuntimeError(f"the cluster offers {backend.slots()} slots, not {c.actors}")
    t0 = time.perf_counter()
    backend.actors = [backend._new_actor() for _ in range(c.actors)]
    ray.get([a.info.remote() for a in backend.actors])
    res.startup_s = time.perf_counter() - t0

    def kill_second_node():
        victim = c.nodes[-1]  # the newest worker node (a replacement, after an earlier kill)
        victim.kill()
        res.kill = {"actors_lost": c.actors // 2, "killed_at": time.perf_counter()}
        if replace:
            c.add_node(c.actors / 2)  # a replacement joins (a requeued Slurm node, a spare)

    meter = Meter(runs, kill_at=runs // 3 if kill else None, on_kill=kill_second_node)

    def after_campaign(summary) -> None:
        if kill and res.kill is not None:
            res.kill.update(
                given_up=backend.lost,
                kill_to_end_s=time.perf_counter() - res.kill.pop("killed_at"),
                retries=summary.retries,
                recover_s=(meter.recovered_at - meter.killed_at)
                if meter.recovered_at is not None and meter.killed_at is not None
                else float("nan"),
            )

    return measure(backend, res, config, out, meter, profile, report, after_campaign)


def measure(
    backend,
    res: Result,
    config,
    out: Path,
    meter: Meter,
    profile: Path | None,
    report: bool,
    after_campaign=None,
) -> Result:
    """One campaign of ``config`` on ``backend`` as the study CLI runs one, then compaction and the
    report, each timed; ``res`` filled in and returned."""
    from airbench_core.simulated import SimulatedData
    from harness import store
    from harness.report.campaign import load_campaign
    from harness.report.writer import render_report
    from harness.run import campaign
    from harness.store.compact import compact
    from harness.store.lock import hold

    study, data = simulated_study(config), SimulatedData(config.n_test)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu0, t0 = time.process_time(), time.perf_counter()
    summary = campaign.run(
        study,
        "full",
        res.runs,
        out,
        data,
        backend,
        progress=False,
        on_outcome=meter,
        store_root=out / "store",
        compact_at_end=False,
        stop_backend=False,
    )
    res.wall_s, res.driver_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    if after_campaign:
        after_campaign(summary)
    if profiler:
        profiler.disable()
        profiler.dump_stats(str(profile))
    backend.stop()
    res.stored, res.failed, res.retries = summary.trained, summary.failed, summary.retries
    res.actor_s = summary.train_seconds / summary.trained if summary.trained else 0.0
    res.peak_rss_mb, res.rss_growth_mb_per_10k = peak_rss_mb(), meter.growth_per_10k()
    t0 = time.perf_counter()
    with hold(out / "store", "store"):
        compact(out / "store")
    res.compact_s = time.perf_counter() - t0
    if report:
        t0 = time.perf_counter()
        loaded = load_campaign(out)
        render_report(loaded, study)
        res.report_s = time.perf_counter() - t0
        keys = loaded.runs["key"]
    else:
        keys = store.read_records(out)["key"]
    res.unique = keys.nunique()
    res.stored = len(keys)
    shutil.rmtree(out, ignore_errors=True)
    return res


class InProcessBatches:
    """No Ray: a simulated worker in this process that does not sleep and hands over runs in batches
    of ``batch`` (what 64 actors' 0.5 s runs give within the backend's 50 ms linger), so the driver,
    the store, compaction and the report are all that is measured."""

    name = "in-process"

    def __init__(self, batch: int):
        from airbench_core.simulated import METHOD, SimulatedData
        from harness.run.method_worker import MethodWorker

        self.worker, self.batch = MethodWorker(METHOD, None, "cpu", SimulatedData().fingerprint), batch

    def slots(self) -> int:
        return self.batch

    def has_gpu(self) -> bool:
        return False

    def run_batches(self, queue):
        while queue:
            yield self.worker.run([queue.popleft() for _ in range(min(self.batch, len(queue)))])

    def stop(self) -> None:
        pass


STORE_ONLY_BATCH = 8  # runs per batch in --store-only: what 64 actors' 0.5 s runs give within 50 ms


def store_only_setting(runs: int, folder: Path, report: bool = True, profile: Path | None = None) -> Result:
    from airbench_core.simulated import SimulatedConfig

    res = Result(0, runs, 0.0)
    return measure(
        InProcessBatches(STORE_ONLY_BATCH),
        res,
        SimulatedConfig(run_seconds=0.0),
        folder / f"store-only-r{runs}",
        Meter(runs),
        profile,
        report,
    )


def store_only_line(r: Result) -> str:
    return (
        f"store only (no Ray, batches of {STORE_ONLY_BATCH}): {r.runs} runs stored in {r.wall_s:.1f} s ({r.runs_per_s:.0f} runs/s, "
        f"{r.cpu_ms_per_run:.2f} ms driver CPU per run), peak RSS {r.peak_rss_mb:.0f} MB, "
        f"{r.rss_growth_mb_per_10k:.1f} MB per 10k runs; compaction {r.compact_s:.1f} s, report {r.report_s:.1f} s "
        f"(together {r.compact_s + r.report_s:.1f} s); "
        + (
            "ok"
            if r.unique == r.stored == r.runs and not r.failed
            else f"LOST/DUPLICATED: {r.stored} stored, {r.unique} keys, {r.failed} failed"
        )
    )


def kill_line(r: Result, replace: bool, lost_after: float) -> str:
    """What a killed node cost, in words."""
    k = r.kill
    assert k is not None  # only campaigns that killed a node have this line
    what = (
        f"killed node: {k['actors_lost']} actors lost"
        if replace
        else f"lost node, no replacement: {k['given_up']} actors given up after {lost_after:g} s without an answer"
    )
    end = (
        f"{k['recover_s']:.1f} s from the kill to the replacement node's first stored run"
        if replace
        else f"the campaign ended {k['kill_to_end_s']:.1f} s after the kill"
    )
    return (
        f"{what}, {k['retries']} attempts failed and were retried, {r.failed} failed for good, {r.unique} of "
        f"{r.runs} runs stored once each; {end}"
    )


def bench_campaign(
    actors: list[int],
    runs: list[int],
    run_seconds: float,
    two_nodes: bool = False,
    kill_node: bool = False,
    tmp: str | None = None,
    profile: str | None = None,
    report: bool = True,
    lose_node: bool = False,
    lost_after: float = 30.0,
    store_only: bool = False,
) -> list[Result]:
    results = []
    if store_only:
        with tempfile.TemporaryDirectory(dir=tmp, prefix="bench-campaign-") as folder:
            for n in runs:
                prof = Path(profile).with_suffix(f".store.r{n}.prof") if profile else None
                results.append(store_only_setting(n, Path(folder), report, profile=prof))
                print(store_only_line(results[-1]), flush=True)
        return results
    print(
        f"simulated campaigns: {run_seconds:g} s per run; driver pid {os.getpid()} on {os.cpu_count()} cores",
        flush=True,
    )
    with tempfile.TemporaryDirectory(dir=tmp, prefix="bench-campaign-") as folder:
        for a in actors:
            node_modes = [False, True] if two_nodes else [False]
            for two in node_modes:
                try:
                    with cluster(a, two) as c:
                        for n in runs:
                            prof = Path(profile).with_suffix(f".a{a}.r{n}.prof") if profile else None
                            r = run_setting(c, n, run_seconds, Path(folder), profile=prof, report=report)
                            results.append(r)
                            print(
                                HEADER if len(results) == 1 else "",
                                r.row(),
                                sep="\n" if len(results) == 1 else "",
                                flush=True,
                            )
                        failures = [True] * kill_node + [False] * lose_node if two else []
                        for replace in failures:  # the second node killed: with, then without a replacement
                            # a replaced node's actors are restarting, not lost: the campaigns' own 300 s applies
                            r = run_setting(
                                c,
                                max(runs),
                                run_seconds,
                                Path(folder),
                                kill=True,
                                report=report,
                                replace=replace,
                                lost_after=300.0 if replace else lost_after,
                            )
                            results.append(r)
                            print(r.row(), kill_line(r, replace, lost_after), sep="\n  ", flush=True)
                except Exception as exc:  # one setting that does not fit (memory, ports) is a result too
                    print(
                        f"{a} actors{' on two nodes' if two else ''}: could not run: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                        flush=True,
                    )
    print(
        "goals: <= 5 ms driver CPU per run; >= 95% of ideal at 64 actors and 0.5 s runs; "
        "<= 50 MB per 100,000 runs; 100,000 runs compacted and reported in under 2 minutes"
    )
    return results
