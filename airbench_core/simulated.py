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


def predictions(config: SimulatedConfig, seed: int) -> np.ndarray:
    """uint8 (3, n_test), a pure function of the config and seed (~1 ms at 10,000 examples)."""
    digest = hashlib.sha256(config.key(seed).encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    y = labels(config.n_test)
    skill = config.accuracy + rng.normal(0, config.seed_sd)
    u = rng.random(config.n_test, dtype=np.float32)  # shared by the TTA levels
    wrong = ((y + rng.integers(1, 10, config.n_test, dtype=np.uint8)) % 10).astype(np.uint8)
    return np.stack([np.where(u < skill + config.tta_gain * level, y, wrong) for level in range(3)])


def train(
    config: SimulatedConfig, seed: int, data=None, device: str = "cpu", save_logits: bool = False
) -> RunResult:
    t0 = time.perf_counter()
    if config.fail_every and seed % config.fail_every == 0:
        raise RuntimeError(f"simulated failure of seed {seed}")
    preds = predictions(config, seed)
    left = config.run_seconds - (time.perf_counter() - t0)
    if left > 0:
        time.sleep(left)
    y = labels(config.n_test)
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
        env={"device_name": "simulated"},
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
    },
    sources=(__file__,),
)


@dataclass(frozen=True)
class SimulatedData:
    """What a campaign's driver reads of its data (source, description, fingerprint, test labels)."""

    n_test: int = 10000

    source = "simulated"
    description = "simulated: no images, labels from airbench_core.simulated.labels"

    @property
    def fingerprint(self) -> str:
        return f"simulated-{self.n_test}"

    @property
    def test_labels(self) -> np.ndarray:
        return labels(self.n_test)
