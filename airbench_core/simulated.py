"""A simulated method: ``train`` sleeps ``run_seconds`` and returns predictions of the real shape
(3 TTA levels x ``n_test`` uint8), deterministic from the seed, so campaigns of any size run on
CPUs with no training (``python -m harness.bench campaign``). No torch.

The test labels are :func:`labels` (a fixed draw); a run is right on an example with probability
``accuracy`` (+ ``tta_gain`` per TTA level) plus a per-seed effect of sd ``seed_sd``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .method import Method, run_key
from .result import RunResult, accuracies

METHOD_NAME = "simulated"


@dataclass(frozen=True)
class SimulatedConfig:
    run_seconds: float = 0.5  # seconds train() sleeps: the run time being simulated
    n_test: int = 10000  # test examples predicted
    accuracy: float = 0.94  # mean accuracy at TTA level 0
    seed_sd: float = 0.0015  # sd of a seed's effect on accuracy
    tta_gain: float = 0.003  # accuracy gained per TTA level
    fail_every: int = 0  # seeds divisible by this raise (0: none fail), for failure paths
    seconds_sd: float = 0.0  # sd of a run's seconds around run_seconds (drawn from the seed)
    device_model: str = "simulated"  # the GPU model its runs say they ran on (time claims, mixed clusters)

    @property
    def n_train(self) -> int:
        """No training images: a worker that cuts its data to (n_train, n_test) for each config builds
        the test subset only (all 50,000 training images took a CLI worker 5 s before its first run)."""
        return 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self, seed: int) -> str:
        return run_key(METHOD_NAME, self, seed)


@lru_cache(maxsize=8)
def labels(n_test: int = 10000) -> np.ndarray:
    """The simulated test set's labels (what a driver writes as test_labels.npy)."""
    return np.random.default_rng(20240).integers(0, 10, n_test).astype(np.uint8)


def predictions(config: SimulatedConfig, seed: int, y: np.ndarray | None = None) -> np.ndarray:
    """uint8 (3, n_test), a pure function of the config, seed and test labels ``y`` (default:
    :func:`labels`), ~1 ms at 10,000 examples."""
    digest = hashlib.sha256(config.key(seed).encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    y = labels(config.n_test) if y is None else y
    skill = config.accuracy + rng.normal(0, config.seed_sd)
    u = rng.random(config.n_test, dtype=np.float32)  # shared by the TTA levels
    wrong = ((y + rng.integers(1, 10, config.n_test, dtype=np.uint8)) % 10).astype(np.uint8)
    return np.stack([np.where(u < skill + config.tta_gain * level, y, wrong) for level in range(3)])


def test_labels(data, n_test: int) -> np.ndarray:
    """The labels the runs are scored on: a real worker's test set (``DeviceData``, cut to n_test, what
    the driver stores beside the runs), else the simulated set's."""
    held = getattr(data, "test_labels", None)
    if held is None:
        return labels(n_test)
    held = np.asarray(held.cpu() if hasattr(held, "cpu") else held).astype(np.uint8)
    return held if len(held) == n_test else labels(n_test)


def run_seconds(config: SimulatedConfig, seed: int) -> float:
    """Seconds this run takes: run_seconds plus a seed-drawn normal of sd seconds_sd (never below 0)."""
    if not config.seconds_sd:
        return config.run_seconds
    rng = np.random.default_rng([int(seed), 7919])
    return max(0.0, config.run_seconds + float(rng.normal(0, config.seconds_sd)))


def train(
    config: SimulatedConfig, seed: int, data=None, device: str = "cpu", save_logits: bool = False
) -> RunResult:
    t0 = time.perf_counter()
    if config.fail_every and seed % config.fail_every == 0:
        raise RuntimeError(f"simulated failure of seed {seed}")
    y = test_labels(data, config.n_test)
    preds = predictions(config, seed, y)
    left = run_seconds(config, seed) - (time.perf_counter() - t0)
    if left > 0:
        time.sleep(left)
    wall = time.perf_counter() - t0
    return RunResult(
        config=config,
        seed=int(seed),
        accuracy=accuracies(preds, y),
        train_seconds=wall,
        eval_seconds=0.0,
        wall_seconds=wall,
        epochs=0.0,
        steps=0,
        predictions=preds,
        logits=None,
        env={"device_name": "simulated", "device_model": config.device_model},
    )


METHOD = Method(
    name=METHOD_NAME,
    defaults=SimulatedConfig(),
    train=train,
    summary="sleeps run_seconds, returns synthetic predictions (3 TTA x n_test): the harness at scale, no GPU",
    field_help={
        "run_seconds": "seconds each run sleeps",
        "n_test": "test examples predicted",
        "accuracy": "mean accuracy at TTA level 0",
        "seed_sd": "sd of a seed's effect on accuracy",
        "tta_gain": "accuracy gained per TTA level",
        "fail_every": "seeds divisible by this fail (0: none)",
        "seconds_sd": "sd of a run's seconds around run_seconds",
        "device_model": "GPU model the runs are recorded as having run on",
    },
    sources=(__file__,),
)


@dataclass(frozen=True)
class SimulatedData:
    """What a campaign's driver reads of its data (source, description, fingerprint, test labels)."""

    n_test: int = 10000

    source = "simulated"
    description = "simulated: no images, labels from airbench_core.simulated.labels"
    name = "simulated"
    num_classes = 10  # the labels are draws from 0..9

    @property
    def fingerprint(self) -> str:
        return f"simulated-{self.n_test}"

    @property
    def test_labels(self) -> np.ndarray:
        return labels(self.n_test)
