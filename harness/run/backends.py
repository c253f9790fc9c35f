"""Where runs execute: in this process (``local``) or on Ray actors, one per GPU slot (``ray``).

Both take runs from a shared deque (so the campaign can push a retry back) and yield outcomes in
completion order.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from harness.run import private_ray
from harness.run.address import (
    BackendError,
    auth_hint,
    check_address,
)
from harness.run.method_worker import MethodWorker, placement
from harness.run.worker import Outcome, RunWorker, exception_text
from harness.spec.grid import RunSpec

PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)


def plain_fields(config) -> dict:
    """A config's fields as plain values (what crosses to a Ray worker, which rebuilds the config)."""
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def take_pack(queue: deque[RunSpec], k: int) -> list[RunSpec]:
    """The next run and up to k-1 queued runs of the same config, to train packed together."""
    first = queue.popleft()
    if k == 1:  # no scan of the queue: it may hold 100,000 runs, taken one at a time
        return [first]
    same = (first.cell.method_spec, first.cell.config)
    pack = [first] + [s for s in list(queue) if (s.cell.method_spec, s.cell.config) == same][: k - 1]
    for s in pack[1:]:
        queue.remove(s)
    return pack


class RunTimeout(BaseException):
    """An attempt ran past --run-timeout (a BaseException: a method's ``except Exception`` cannot
    swallow it)."""


def timeout_text(seconds: float) -> str:
    return (
        f"RunTimeout: the attempt ran past --run-timeout {seconds:g} s; it was stopped, its worker "
        f"replaced, and the attempt counted as failed"
    )


class AttemptTimer:
    """Stop the code running in this (main) thread after ``seconds`` by raising RunTimeout from a
    SIGALRM handler: Python code and sleeps are interrupted; a C call that never returns to the
    interpreter is not (the Ray backend kills the worker process instead). Off thread or without
    a limit: does nothing."""

    def __init__(self, seconds: float | None):
        self.seconds, self.fired, self.armed = seconds, False, False
        self.error = timeout_text(seconds or 0.0)

    def __enter__(self) -> AttemptTimer:
        if self.seconds and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self.armed = True
        return self

    def _fire(self, signum, frame) -> None:
        self.fired = True
        raise RunTimeout(self.error.removeprefix("RunTimeout: "))

    def __exit__(self, kind, exc, tb) -> bool:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return kind is RunTimeout  # fired between the attempt's end and here: the caller sees .fired


class LocalBackend:
    """One worker in this process: no Ray, for a single GPU or a quick CPU campaign."""

    name = "local"

    def __init__(
        self,
        data_source: str,
        cache_dir: str | None,
        device: str,
        save_logits: bool,
        pack: int = 1,
        compile: bool = False,
        method=None,
        method_data=None,
        run_timeout: float | None = None,
    ):
        self.args = (data_source, cache_dir, device, None, compile)
        self.save_logits, self.pack = save_logits, pack
        self.method, self.method_data = method, method_data  # see RayBackend
        self.worker: RunWorker | MethodWorker | None = None
        self.run_timeout = run_timeout  # seconds an attempt may take (per run of a pack); None: no limit
        self.restarts = 0  # workers replaced after an attempt ran past the timeout

    def has_gpu(self) -> bool:
        import torch

        return self.args[2] != "cpu" and torch.cuda.is_available()

    def slots(self) -> int:
        return 1

    def run_batches(self, queue: deque[RunSpec]) -> Iterator[list[Outcome]]:
        for outcome in self.run(queue):
            yield [outcome]

    def run(self, queue: deque[RunSpec]) -> Iterator[Outcome]:
        if self.worker is None:
            self.worker = self._new_worker()
        while queue:
            pack = take_pack(queue, self.pack)
            outcomes = [Outcome(s, None, "", {}) for s in pack]  # what a timeout outside the method leaves
            with AttemptTimer(self.run_timeout and self.run_timeout * len(pack)) as timer:
                outcomes = self.worker.run(pack, self.save_logits)
            if timer.fired:  # whatever state the stopped code left: a fresh worker for the next run
                outcomes = [o if o.result is not None else replace(o, error=timer.error) for o in outcomes]
                self.worker = None
                self.restarts += 1
            yield from outcomes
            if self.worker is None:
                self.worker = self._new_worker()

    def _new_worker(self) -> RunWorker | MethodWorker:
        """A worker, with what its first answer imports (Ray, to name its placement) imported now: the
        run timeout's alarm must never interrupt an import, which would leave a half module behind."""
        placement({})
        return (
            RunWorker(*self.args)
            if self.method is None
            else MethodWorker(
                self.method, self.method_data, "cpu", getattr(self.method_data, "fingerprint", "")
            )
        )

    def stop(self) -> None:
        self.worker = None


LOOPBACK = "127.0.0.1"


def ray_error_text(exc: BaseException) -> str:
    """A Ray failure with its root cause first and complete, Ray's wrapper after it, no log prefixes."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and not type(cause).__module__.startswith("ray"):
        return exception_text(cause)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and "(raylet)" not in line]
    if not lines:
        return type(exc).__name__
    root = next(
        (line for line in reversed(lines) if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", line)),
        lines[-1],
    )
    return (
        f"{root} | {type(exc).__name__}: {lines[0]}" if root != lines[0] else f"{type(exc).__name__}: {root}"
    )


class RayBackend:
    """Long-lived actors that load the data once; a dead actor is restarted and its run retried.
    An actor that Ray cannot restart within ``lost_after`` seconds (its node left the cluster and no
    node has room) is given up and its queued runs go to the other actors.

    ``method`` (an ``airbench_core.method.Method``) runs that method on ``MethodWorker`` actors,
    which call ``method.train(config, seed, method_data, device)`` and load nothing themselves;
    without it the actors are airbench ``RunWorker``s that load ``data_source``.

    Without ``address`` it always starts a private local cluster (``address="local"``), even when
    RAY_ADDRESS is set or another cluster runs on the machine: a bare ``ray.init()`` would join it.
    """

    name = "ray"

    def __init__(
        self,
        data_source: str,
        cache_dir: str | None,
        device: str,
        save_logits: bool,
        address: str | None = None,
        gpus_per_run: float = 1.0,
        workers: int | None = None,
        pack: int = 1,
        compile: bool = False,
        max_restarts: int = 3,
        verbose: bool = False,
        method=None,
        method_data=None,
        lost_after: float = 300.0,
        run_timeout: float | None = None,
        start_allowance: float = 120.0,
    ):
        try:
            import ray
        except ImportError:
            raise BackendError(
                "Ray is not installed here: pip install 'ray>=2.9', or pass --backend local"
            ) from None
        self.ray = ray
        self.data_source, self.cache_dir, self.device = data_source, cache_dir, device
        self.save_logits, self.gpus_per_run, self.workers = save_logits, gpus_per_run, workers
        self.max_restarts, self.pack, self.compile = max_restarts, pack, compile
        self.depth = 2  # tasks queued per actor: the next run waits on the actor, not on the driver
        self.linger = 0.05  # seconds a batch waits for more finished runs (the actors stay busy meanwhile)
        self.method, self.method_data = method, method_data
        # An actor with work that has not answered for `lost_after` s while Ray reports it not alive
        # (its node left and no node has room to restart it) is given up and its runs go to the others.
        self.lost_after, self.poll = lost_after, min(10.0, lost_after / 4)
        # an actor whose running task is older than this (per run of its pack) is killed and replaced
        self.run_timeout = run_timeout
        # an actor that has not answered yet also starts its process and loads its data meanwhile
        self.start_allowance = start_allowance
        self.fresh: set[object] = set()
        if run_timeout:
            self.poll = min(self.poll, max(0.05, run_timeout / 4))
        self.started_here = False
        self.quiet = None
        self.private_undo = None  # restores the environment the private cluster changed
        self.reaper = None  # ends the private cluster's processes if this driver dies
        if not ray.is_initialized():
            if address:
                check_address(address)
            env = {
                "env_vars": {
                    "PYTHONPATH": os.pathsep.join(filter(None, [PROJECT_ROOT, os.environ.get("PYTHONPATH")]))
                }
            }
            # the private Ray: loopback only, its own token, see harness.run.private_ray
            where = (
                dict(address=address)
                if address
                else dict(address="local", include_dashboard=False, _node_ip_address=LOOPBACK)
            )
            if not address:
                self.private_undo = private_ray.private_environment(ray)
            elif private_ray.needs_loopback_driver(address):
                self.private_undo = private_ray.loopback_driver(ray)
            try:
                ray.init(
                    runtime_env=env,
                    log_to_driver=verbose,
                    logging_level=logging.INFO if verbose else logging.ERROR,
                    **where,
                )
            except Exception as exc:
                self._undo_private()
                raise BackendError(
                    f"could not {'join Ray at ' + address if address else 'start Ray'}: "
                    f"{ray_error_text(exc)}{auth_hint(exc)}"
                ) from None
            self.started_here = True
            if not address:
                self.reaper = private_ray.start_reaper(ray)
                private_ray.report(ray, verbose)
            if not verbose:
                self.quiet = silence_ray_errors(ray)
        self.restarts = 0  # actors Ray restarted (a new pid answered) or the backend replaced
        self.lost = 0  # actors given up: not alive and not restarted within lost_after
        self.pids: dict = {}  # actor -> the worker pid that last answered for it
        self.ray_restarts: dict = {}  # actor -> how often Ray had restarted it when last asked
        resources = ray.cluster_resources()
        self.total_gpus, self.total_cpus = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
        self.actors: list = []

    def _undo_private(self) -> None:
        if self.private_undo is not None:
            self.private_undo()
            self.private_undo = None

    def has_gpu(self) -> bool:
        return self.device != "cpu" and self.total_gpus > 0

    def slots(self) -> int:
        if self.has_gpu():
            return max(1, int(self.total_gpus / self.gpus_per_run + 1e-9))
        return self.workers or max(1, int(self.total_cpus))

    def _new_actor(self):
        actor = self._create_actor()
        self.fresh.add(actor)
        return actor

    def _create_actor(self):
        n = self.slots()
        if self.has_gpu():
            cpus = min(1.0, self.total_cpus / n)
            options = dict(num_gpus=self.gpus_per_run, num_cpus=cpus)
            device, threads = self.device, max(1, int(cpus))
        else:
            options = dict(num_cpus=1)
            device, threads = "cpu" if self.device == "auto" else self.device, 1
        remote = self.ray.remote(RunWorker if self.method is None else MethodWorker).options(
            max_restarts=self.max_restarts, max_task_retries=self.max_restarts, **options
        )
        if self.method is not None:
            return remote.remote(
                self.method, self.method_data, device, getattr(self.method_data, "fingerprint", "")
            )
        return remote.remote(self.data_source, self.cache_dir, device, threads, self.compile)

    def _submit(self, actor, pack: list[RunSpec]):
        """One task: a MethodWorker takes the specs; a RunWorker (maybe on another node) the method
        spec and config fields as plain data, resolving the method itself."""
        if self.method is not None:
            return actor.run.remote(pack, self.save_logits)
        cell = pack[0].cell
        return actor.run_plain.remote(
            cell.method_spec, os.getcwd(), plain_fields(cell.config), [s.seed for s in pack], self.save_logits
        )

    def _outcomes(self, pack: list[RunSpec], answer) -> list[Outcome]:
        if self.method is not None:
            return answer
        return [Outcome(spec, r, e, info) for spec, (r, e, info) in zip(pack, answer)]

    def run(self, queue: deque[RunSpec]) -> Iterator[Outcome]:
        for batch in self.run_batches(queue):
            yield from batch

    def run_batches(self, queue: deque[RunSpec]) -> Iterator[list[Outcome]]:
        """Outcomes in batches: every task that has finished when the driver looks. Each actor holds
        ``depth`` tasks (one running, the next queued on it), and idle actors get their next
        task before the batch is handed over, so no actor waits while the driver stores runs."""
        ray = self.ray
        if not self.actors:
            self.actors = [self._new_actor() for _ in range(min(self.slots(), max(len(queue), 1)))]
        load = dict.fromkeys(self.actors, 0)
        answered = {
            actor: time.monotonic() for actor in self.actors
        }  # its last answer, or work given when idle
        in_flight: dict = {}

        def submit() -> None:
            for _ in range(self.depth):
                for actor in self.actors:
                    if not queue:
                        return
                    if load[actor] < self.depth:
                        pack = take_pack(queue, self.pack)
                        in_flight[self._submit(actor, pack)] = (actor, pack)
                        if not load[actor]:
                            answered[actor] = time.monotonic()
                        load[actor] += 1

        def retire(actor, replace: bool) -> None:
            self.actors.remove(actor)
            del load[actor]
            self.ray.kill(actor, no_restart=True)
            self.pids.pop(actor, None)
            self.ray_restarts.pop(actor, None)
            if replace:
                fresh = self._new_actor()
                self.actors.append(fresh)
                load[fresh], answered[fresh] = 0, time.monotonic()
                self.restarts += 1

        submit()
        checked = time.monotonic()
        while queue or in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=self.poll)
            if ready and len(in_flight) > 1:  # and what finishes within `linger`: fewer, larger writes
                ready, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=self.linger)
            batch = []
            for ref in ready:
                actor, pack = in_flight.pop(ref)
                try:
                    outcomes = self._outcomes(pack, ray.get(ref))
                    self.fresh.discard(actor)
                    if actor in load:
                        load[actor] -= 1
                        answered[actor] = time.monotonic()
                except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                    # Ray could not restart the actor (or was told not to): replace it, let the campaign retry
                    error = f"worker died: {ray_error_text(exc)}"
                    outcomes = [Outcome(spec, None, error, {}) for spec in pack]
                    if actor in load:  # its other queued task fails too: replace it once
                        retire(actor, replace=True)
                else:
                    pid = next(
                        (o.worker.get("worker_pid") for o in outcomes if o.worker.get("worker_pid")), None
                    )
                    if pid is not None and self.pids.get(actor) != pid:
                        self._count_restarts(actor, pid)
                batch += outcomes
            if self.run_timeout:
                batch += self._stop_overdue(load, answered, in_flight, queue, retire)
            if time.monotonic() - checked >= self.poll:
                checked = time.monotonic()
                for actor in self._lost(load, answered):
                    for ref, (owner, pack) in list(in_flight.items()):
                        if owner is actor:  # never started elsewhere: back to the queue, not a failed attempt
                            del in_flight[ref]
                            queue.extendleft(reversed(pack))
                    retire(actor, replace=self._room_for_another())
                    self.lost += 1
                if not self.actors:
                    raise BackendError(
                        f"every worker was lost: none answered for {self.lost_after:g} s and Ray "
                        f"could not restart them (did nodes leave the cluster?); the runs finished "
                        f"so far are stored: rerun the same command to resume"
                    )
            submit()
            if batch:
                yield batch
                submit()  # retries the campaign put back

    def _stop_overdue(self, load: dict, answered: dict, in_flight: dict, queue, retire) -> list[Outcome]:
        """Kill and replace every actor whose running task (its oldest in flight: it started when the
        actor last answered, or was given work while idle) is past the run timeout; that attempt is a
        failed one, the actor's queued tasks go back to the queue untried."""
        failed: list[Outcome] = []
        now = time.monotonic()
        for actor in list(self.actors):
            mine = [(ref, pack) for ref, (owner, pack) in in_flight.items() if owner is actor]
            if not mine or not load.get(actor):
                continue
            limit = (self.run_timeout or 0.0) * len(mine[0][1])  # called only with a run timeout
            if now - answered[actor] <= limit + (self.start_allowance if actor in self.fresh else 0.0):
                continue
            for i, (ref, pack) in enumerate(mine):
                del in_flight[ref]
                if i == 0:
                    failed += [Outcome(spec, None, timeout_text(limit), {}) for spec in pack]
                else:
                    queue.extendleft(reversed(pack))
            retire(actor, replace=True)
        return failed

    def _count_restarts(self, actor, pid: int) -> None:
        """An actor's first answer, or one from a new process: add the restarts Ray made since it was
        last asked (an actor killed before it ever answered included). Asked only then, not per run;
        when the GCS does not answer, a new pid counts as one restart."""
        from ray._private import state

        try:
            now = int(state.actors(actor_id=actor._actor_id.hex()).get("NumRestarts", 0))
        except Exception:
            now = self.ray_restarts.get(actor, 0) + (actor in self.pids)
        self.restarts += max(0, now - self.ray_restarts.get(actor, 0))
        self.ray_restarts[actor], self.pids[actor] = now, pid

    def _lost(self, load: dict, answered: dict) -> list:
        """Actors with work outstanding, silent for ``lost_after`` s, that Ray says are not alive
        (restarting or pending creation for want of a node with room)."""
        from ray._private import state

        now, lost = time.monotonic(), []
        for actor in self.actors:
            if load[actor] and now - answered[actor] > self.lost_after:
                try:
                    alive = state.actors(actor_id=actor._actor_id.hex()).get("State") == "ALIVE"
                except Exception:  # the GCS did not answer: not evidence that the actor is gone
                    continue
                if not alive:
                    lost.append(actor)
        return lost

    def _room_for_another(self) -> bool:
        """Whether the cluster has a free slot for a replacement actor right now."""
        free = self.ray.available_resources()
        return (
            free.get("GPU", 0.0) + 1e-9 >= self.gpus_per_run if self.has_gpu() else free.get("CPU", 0.0) >= 1
        )

    def stop(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        self.actors = []
        self.pids, self.ray_restarts = {}, {}
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False
        private_ray.stop_reaper(self.reaper)
        self.reaper = None
        self._undo_private()
        if self.quiet:
            self.quiet()
            self.quiet = None


def silence_ray_errors(ray):
    """Ray's driver prints worker-death notices as "(raylet) ..." lines whatever log_to_driver says;
    the campaign reports failures itself, so drop them (--verbose keeps them). Returns an undo."""
    module = ray._private.worker
    original = module.print_to_stdstream

    def quiet(data, ignore_prefix: bool = False):
        if data.get("pid") != "raylet":
            original(data, ignore_prefix)

    module.print_to_stdstream = quiet
    return lambda: setattr(module, "print_to_stdstream", original)
