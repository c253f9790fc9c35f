"""The long-lived worker: loads the data once, then trains run after run on its device.

Used in-process by the local backend and wrapped as a Ray actor (one per GPU slot) by the Ray
backend, so both paths train with the same code. The worker trains whatever method a run names: it
resolves the method spec itself (harness.spec.methods), on every node the same way, and trains with
the method's ``train_many`` fast path when it has one, else with ``train`` seed by seed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from airbench_core import DeviceData, load_cifar10
from airbench_core.method import Method
from airbench_core.net import NetPool
from harness.run.method_worker import Outcome, check_count, exception_text, numbered, placement
from harness.spec.grid import RunSpec
from harness.spec.identity import method_version
from harness.spec.methods import find_method


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class RunWorker:
    def __init__(
        self,
        data_source: str,
        cache_dir: str | None,
        device: str,
        threads: int | None = None,
        compile: bool = False,
    ):
        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        if self.device == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("--device cuda, but this worker sees no CUDA device")
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
        self.data = load_cifar10(data_source, cache_dir)
        self.on_device: dict[tuple, DeviceData] = {}
        self.compile = compile
        self.pools: dict[
            str, NetPool
        ] = {}  # per method: networks (and compiled forms) live as long as the worker
        self.runs_done = 0  # runs this worker was asked for so far (warm-up flags)

    def identity(self, method: Method | None = None) -> dict:
        """What the records keep of this worker's code and data (the driver checks the store against its own)."""
        version = {} if method is None else dict(method_version=method_version(method))
        return dict(**version, data_fingerprint=self.data.fingerprint)

    def info(self, method: Method | None = None) -> dict:
        """Where this worker runs: what the records keep to show how work was spread."""
        return placement(self.identity(method))

    def run(self, specs: list[RunSpec], save_logits: bool = False) -> list[Outcome]:
        """Train runs that share one method and config together (packed); a Python error comes back
        as failed outcomes, not an exception, so the campaign can retry or record it."""
        cell = specs[0].cell
        assert all((s.cell.method_spec, s.cell.config) == (cell.method_spec, cell.config) for s in specs), (
            "a pack shares one method and config"
        )
        answers = self.train(cell.method_spec, None, cell.config, [s.seed for s in specs], save_logits)
        return [Outcome(s, r, e, info) for s, (r, e, info) in zip(specs, answers)]

    def run_plain(
        self, method: str, base_dir: str | None, fields: dict, seeds: list[int], save_logits: bool = False
    ) -> list[tuple]:
        """``run`` for a worker on another node: the method spec and config fields as plain data (the
        worker resolves the method itself, so a user's config class never crosses the wire);
        (result, error, info) per seed, each result's ``config`` as a dict of fields."""
        answers = self.train(method, base_dir, fields, seeds, save_logits)
        return [
            (dataclasses.replace(r, config=fields) if r is not None else None, e, info)
            for r, e, info in answers
        ]

    def train(
        self, spec: str, base_dir: str | None, config: Any, seeds: list[int], save_logits: bool
    ) -> list[tuple]:
        """(result, error, worker fields) per seed; the worker's first call is flagged as its warm-up."""
        answers = self._train(spec, base_dir, config, seeds, save_logits)
        infos = numbered({}, self.runs_done, len(seeds), self.runs_done == 0)
        self.runs_done += len(seeds)
        return [(r, e, {**info, **extra}) for (r, e, info), extra in zip(answers, infos)]

    def _train(
        self, spec: str, base_dir: str | None, config: Any, seeds: list[int], save_logits: bool
    ) -> list[tuple]:
        method = None
        try:
            method = find_method(spec, base_dir)
            if isinstance(config, dict):
                config = method.config(**config)
            subset = (getattr(config, "n_train", None), getattr(config, "n_test", None))
            if subset not in self.on_device:
                self.on_device[subset] = DeviceData.build(self.data, self.device, *subset)
            data = self.on_device[subset]
            if method.train_many is not None:
                pool = self.pools.setdefault(spec, NetPool())
                results = method.train_many(config, seeds, data, self.device, save_logits, self.compile, pool)
                check_count(results, len(seeds))
            else:
                results = [method.train(config, seed, data, self.device, save_logits) for seed in seeds]
            info = self.info(method)
            return [(r, None, info) for r in results]
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit included: a method's exit is a failed run
            try:
                info = self.info(method)
            except Exception:  # the method's files are unreadable: keep the first error
                info = self.info(None)
            return [(None, exception_text(exc), info) for _ in seeds]
