"""One training run of the airbench method: ``train(config, seed, data, device) -> RunResult``."""

from __future__ import annotations

import hashlib
import math
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .data import Cifar10
from .device import device_model
from .loader import TrainLoader, to_device_images
from .net import NetPool, fit_whitening, make_net
from .optim import Lookahead, lookahead_decay, lr_multiplier, make_optimizer, set_lr, total_steps
from .result import RunResult, accuracies
from .tta import tta_logits


def fixed_order(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The one fixed shuffle (seed 0) behind every "first N images" and every subset."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(0)).to(device)


def subset_indices(n_total: int, n: int | None) -> torch.Tensor:
    """A fixed random subset of size n (all when None), kept in source order."""
    return fixed_order(n_total)[:n].sort().values


@dataclass(frozen=True)
class DeviceData:
    """The data set resident on one device, normalized once and reused by every run.

    ``subset`` is the (n_train, n_test) it was cut to; (None, None) holds all of it. ``classes`` is
    K, the dataset's number of classes (the head's width; every label and prediction is below it).
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    subset: tuple[int | None, int | None] = (None, None)
    classes: int = 10

    @property
    def whiten_order(self) -> torch.Tensor:
        """Fixed shuffle, so "the first N training images" span every class."""
        return fixed_order(len(self.train_labels), self.train_labels.device)

    @classmethod
    def build(
        cls, data: Cifar10, device: torch.device | str, n_train: int | None = None, n_test: int | None = None
    ) -> DeviceData:
        device = torch.device(device)
        dtype = torch.half if device.type == "cuda" else torch.float
        tr = subset_indices(len(data.train_labels), n_train).numpy()
        te = subset_indices(len(data.test_labels), n_test).numpy()
        stats = (data.mean, data.std)
        return cls(
            to_device_images(data.train_images[tr], device, dtype, stats),
            torch.from_numpy(data.train_labels[tr]).to(device),
            to_device_images(data.test_images[te], device, dtype, stats),
            torch.from_numpy(data.test_labels[te]).to(device),
            (n_train, n_test),
            data.num_classes,
        )

    def for_config(self, cfg: TrainConfig) -> DeviceData:
        """This data cut to the config's subset; a full copy can serve any subset."""
        wanted = (cfg.n_train, cfg.n_test)
        if self.subset == wanted:
            return self
        if self.subset != (None, None):
            raise ValueError(f"data was built for subset {self.subset}, config asks for {wanted}")
        device = self.train_labels.device
        tr = subset_indices(len(self.train_labels), cfg.n_train).to(device)
        te = subset_indices(len(self.test_labels), cfg.n_test).to(device)
        return DeviceData(
            self.train_images[tr],
            self.train_labels[tr],
            self.test_images[te],
            self.test_labels[te],
            wanted,
            self.classes,
        )


def derive_seed(seed: int, stream: str) -> int:
    """Independent seeds for initialization, data order and augmentation from one run seed."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stream}".encode()).digest()[:8], "little") >> 1


def stream_seed(config, seed: int, stream: str) -> int:
    """The seed of one random stream ("init", "order" or "aug") of a run: the config's pinned
    ``<stream>_seed`` when set, else derived from the run's seed (any method's config)."""
    pinned = getattr(config, f"{stream}_seed")
    return pinned if pinned is not None else derive_seed(seed, stream)


class Stopwatch:
    """Accumulates device time: CUDA events on GPU (no host sync inside the loop), wall clock on CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.seconds = 0.0

    def __enter__(self):
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.seconds += self.start.elapsed_time(self.end) / 1000
        else:
            self.seconds += time.perf_counter() - self.t0


def train(
    config: TrainConfig,
    seed: int,
    data: Cifar10 | DeviceData,
    device: str | torch.device = "cpu",
    save_logits: bool = False,
    compile: bool = False,
    pool: NetPool | None = None,
) -> RunResult:
    """Train one run from scratch and evaluate it at every TTA level."""
    return train_many(config, [seed], data, device, save_logits, compile, pool)[0]


def train_many(
    config: TrainConfig,
    seeds: list[int],
    data: Cifar10 | DeviceData,
    device: str | torch.device = "cpu",
    save_logits: bool = False,
    compile: bool = False,
    pool: NetPool | None = None,
) -> list[RunResult]:
    """Train len(seeds) runs of one config at once, packed as grouped convolutions so that every
    kernel does all of their work; each run keeps its own init, data order and augmentation.

    ``compile`` runs the training forward through torch.compile; ``pool`` keeps networks alive
    between calls so that compilation happens once per worker. Times are per run (pack / k).
    """
    wall0, started = time.perf_counter(), datetime.now(timezone.utc)
    device, k = torch.device(device), len(seeds)
    data = resident(data, device, config)
    half = device.type == "cuda"

    loaders = [
        TrainLoader(
            data.train_images,
            data.train_labels,
            config.batch_size,
            config.flip,
            config.translate,
            config.cutout,
            torch.Generator(device=device).manual_seed(stream_seed(config, s, "order")),
            torch.Generator(device=device).manual_seed(stream_seed(config, s, "aug")),
            config.flip_switch_epoch,
            config.translate_mode,
        )
        for s in seeds
    ]
    steps_per_epoch = loaders[0].steps_per_epoch
    steps = total_steps(config, steps_per_epoch)
    net, forward = make_net(
        config,
        [stream_seed(config, s, "init") for s in seeds],
        device,
        half,
        compile,
        pool,
        classes=data.classes,
    )
    optimizer = make_optimizer(net, config)
    train_clock, eval_clock = Stopwatch(device), Stopwatch(device)
    with train_clock:  # whitening is fitted from data, so it counts as training time (as in the paper)
        fit_whitening(net, config, data.train_images[data.whiten_order[: config.whiten_samples]])
    lookahead = Lookahead(net) if config.lookahead and config.lookahead_start_epoch == 0 else None

    step = 0
    for epoch in range(math.ceil(steps / steps_per_epoch)):
        with train_clock:
            net.train()
            net.whiten_bias.requires_grad = epoch < config.whiten_bias_epochs
            for batches in zip(*(loader.epoch(epoch) for loader in loaders)):
                if k == 1:  # plain airbench: no extra copies
                    inputs, labels = batches[0][0], batches[0][1].unsqueeze(1)
                else:
                    inputs = torch.cat([x for x, _ in batches], dim=1)
                    labels = torch.stack([y for _, y in batches], dim=1)
                loss = F.cross_entropy(
                    forward(inputs).flatten(0, 1),
                    labels.flatten(),
                    label_smoothing=config.label_smoothing,
                    reduction="sum",
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                set_lr(optimizer, lr_multiplier(step, steps, config))  # step i uses the schedule's value at i
                optimizer.step()
                step += 1
                if config.lookahead and step % config.lookahead_every == 0:
                    if lookahead is None and epoch >= config.lookahead_start_epoch:
                        lookahead = Lookahead(net)  # a late start copies the weights into the average
                    elif lookahead is not None:
                        lookahead.update(lookahead_decay(step, steps))
                if step >= steps:
                    break
            if lookahead is not None and (step >= steps or config.lookahead_copyback):
                lookahead.copy_back()  # the averaged weights are the final weights (airbench96: every epoch's)

    with eval_clock:
        test_inputs = data.test_images.repeat(1, k, 1, 1) if k > 1 else data.test_images
        logits = torch.stack(tta_logits(net, test_inputs, batch=2000 if half else 250))  # 3, n, k, K
    predictions = logits.argmax(-1).to(torch.uint8).cpu().numpy()  # 3, n, k
    labels = data.test_labels.cpu().numpy()
    env = {**run_environment(device, started), "packed": k, "compiled": bool(compile)}
    wall = (time.perf_counter() - wall0) / k
    return [
        RunResult(
            config=config,
            seed=int(seed),
            accuracy=accuracies(predictions[:, :, g], labels),
            train_seconds=train_clock.seconds / k,
            eval_seconds=eval_clock.seconds / k,
            wall_seconds=wall,
            epochs=steps / steps_per_epoch,
            steps=steps,
            predictions=np.ascontiguousarray(predictions[:, :, g]),
            logits=logits[:, :, g].half().cpu().numpy() if save_logits else None,
            env=env,
        )
        for g, seed in enumerate(seeds)
    ]


def resident(data: Cifar10 | DeviceData, device: torch.device, config) -> DeviceData:
    """The data on ``device``, cut to the config's subset (built from a Cifar10 when it is not yet there)."""
    if not isinstance(data, DeviceData):
        data = DeviceData.build(data, device, config.n_train, config.n_test)
    return data.for_config(config)


def evaluated_run(
    net,
    data: DeviceData,
    config,
    seed: int,
    device: torch.device,
    clocks: tuple,
    steps: int,
    steps_per_epoch: int,
    wall0: float,
    started: datetime,
    save_logits: bool,
) -> RunResult:
    """One trained (unpacked) network's record: TTA 0/1/2 logits of the test set, timed on the eval
    clock of ``clocks`` (train, eval), and everything a RunResult holds."""
    train_clock, eval_clock = clocks
    half = device.type == "cuda"
    with eval_clock:
        logits = torch.stack(tta_logits(net, data.test_images, batch=2000 if half else 250))[
            :, :, 0
        ]  # 3, n, K
    predictions = logits.argmax(-1).to(torch.uint8).cpu().numpy()
    labels = data.test_labels.cpu().numpy()
    env = {**run_environment(device, started), "packed": 1, "compiled": False}
    return RunResult(
        config=config,
        seed=int(seed),
        accuracy=accuracies(predictions, labels),
        train_seconds=train_clock.seconds,
        eval_seconds=eval_clock.seconds,
        wall_seconds=time.perf_counter() - wall0,
        epochs=steps / steps_per_epoch,
        steps=steps,
        predictions=np.ascontiguousarray(predictions),
        logits=logits.half().cpu().numpy() if save_logits else None,
        env=env,
    )


def run_environment(device: torch.device, started: datetime) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return dict(
        device_name=name,
        device_model=device_model(name),
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda or "",
        cudnn_deterministic=bool(torch.backends.cudnn.deterministic),
        cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
        host=socket.gethostname(),
        started_at=started.isoformat(),
        ended_at=datetime.now(timezone.utc).isoformat(),
    )
