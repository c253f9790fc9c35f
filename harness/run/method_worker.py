"""A worker for any :class:`airbench_core.method.Method` (the hook a methods registry folds in):
it trains run by run with ``method.train`` (or packed with ``method.train_many`` when the method has
one) and imports nothing heavy itself, so a method without torch (``airbench_core.simulated``)
gives actors of a few tens of MB. Also home of what every worker returns (``Outcome``)."""

from __future__ import annotations

import os
import socket
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.spec.grid import RunSpec
from harness.spec.identity import method_version


def exception_text(exc: BaseException) -> str:
    """The root cause, complete: 'Type: message' (every line of it), then where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    )
    return f"{type(exc).__name__}: {exc}{where}"


def check_count(results: Any, runs: int) -> None:
    """A packed ``train_many`` answers once per seed; fewer answers would leave runs neither stored nor failed."""
    if not isinstance(results, (list, tuple)) or len(results) != runs:
        got = len(results) if isinstance(results, (list, tuple)) else type(results).__name__
        raise ValueError(f"train_many returned {got} results for {runs} seeds")


def numbered(info: dict, first: int, count: int, warmup: bool) -> list[dict]:
    """Each run's worker fields: its place in the worker's life (``worker_run``: 0 for the worker's
    first) and whether it came from the worker's first call (``warmup``: compilation, caches and
    cuDNN's autotuning land there, so its seconds are not a run's)."""
    return [{**info, "worker_run": first + i, "warmup": warmup} for i in range(count)]


@dataclass
class Outcome:
    spec: RunSpec
    result: Any  # airbench_core.RunResult, or None when the run failed
    error: str | None
    worker: dict


def placement(identity: dict) -> dict:
    """Where this worker runs: what the records keep to show how work was spread."""
    node = ""
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            node = ctx.get_node_id()
            gpu = ",".join(map(str, ctx.get_accelerator_ids().get("GPU", []))) or gpu
    except ImportError:
        pass
    return dict(
        worker_pid=os.getpid(), worker_host=socket.gethostname(), worker_node=node, gpu_slot=gpu, **identity
    )


class MethodWorker:
    """Runs the specs of one method on ``data`` (whatever the method's ``train`` takes; None for the
    simulated method). ``data_fingerprint`` is what the records say the runs saw."""

    def __init__(self, method, data=None, device: str = "cpu", data_fingerprint: str = ""):
        self.method, self.data, self.device = method, data, device
        self.identity = dict(method_version=method_version(method), data_fingerprint=data_fingerprint)
        self._where: dict | None = None
        self.runs_done = 0  # runs this worker was asked for so far (warm-up flags)

    def info(self) -> dict:
        if self._where is None:  # fixed for the worker's life: ask Ray once
            self._where = placement(self.identity)
        return self._where

    def run(self, specs: list[RunSpec], save_logits: bool = False) -> list[Outcome]:
        """Train the specs; each outcome's worker fields say where, and whether it was the warm-up."""
        infos = numbered(self.info(), self.runs_done, len(specs), self.runs_done == 0)
        self.runs_done += len(specs)
        return [
            Outcome(o.spec, o.result, o.error, info) for o, info in zip(self._run(specs, save_logits), infos)
        ]

    def _run(self, specs: list[RunSpec], save_logits: bool = False) -> list[Outcome]:
        where, out = self.info(), []
        if self.method.train_many is not None and len(specs) > 1:
            try:
                results = self.method.train_many(
                    specs[0].cell.config, [s.seed for s in specs], self.data, self.device, save_logits
                )
                check_count(results, len(specs))
                return [Outcome(s, r, None, where) for s, r in zip(specs, results)]
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit included: a method's exit is a failed run
                return [Outcome(s, None, exception_text(exc), where) for s in specs]
        for s in specs:
            try:
                out.append(
                    Outcome(
                        s,
                        self.method.train(s.cell.config, s.seed, self.data, self.device, save_logits),
                        None,
                        where,
                    )
                )
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit included
                out.append(Outcome(s, None, exception_text(exc), where))
        return out
