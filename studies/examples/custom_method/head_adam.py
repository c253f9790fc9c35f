"""A researcher's own method: airbench94 whose linear head trains with Adam instead of Nesterov SGD.

Everything else is airbench94 (airbench_core's network, whitening, loader, schedule, Lookahead and
TTA), so a study can compare the two seed by seed:

    python -m harness.study studies/examples/custom_method/head_adam_vs_airbench94.toml \\
        --until decided --device cpu --backend local

The harness finds this method as ``studies/examples/custom_method/head_adam.py:METHOD`` (a file,
imported by its path); an installed package would name it ``package.module:METHOD``. What it must
provide (``airbench_core.method.Method``):

- ``defaults``: an instance of its config dataclass (here ``HeadAdamConfig``: TrainConfig's fields
  plus two of its own), so study files, ``--set`` and ``--list-fields`` know every field's type;
- ``train(config, seed, data, device, save_logits=False) -> RunResult``, with the three random
  streams (init, data order, augmentation) derived from the seed by ``derive_seed`` as the built-in
  methods do, so seed s of this method pairs with seed s of airbench94;
- ``sources``: the files whose code defines it (its method version is their hash: editing this file
  makes a new version, and a store holding runs of the old one refuses to mix them silently).

It has no ``train_many`` fast path (packing, pooled or compiled networks): the harness trains it run
by run. Torch is imported inside ``train``, so ``--list-methods`` and study-file checks stay instant.
"""

from __future__ import annotations

from dataclasses import dataclass

from airbench_core.config import TrainConfig
from airbench_core.method import Method
from airbench_core.methods import FIELD_HELP, core_sources

HEAD_OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class HeadAdamConfig(TrainConfig):
    """airbench94's fields, and how the head is optimised."""

    head_optimizer: str = "adam"  # adam | sgd (sgd: exactly airbench94's optimizer)
    head_lr: float = 0.002  # Adam's lr for the head, times the same schedule as the rest

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.head_optimizer not in HEAD_OPTIMIZERS:
            raise ValueError(
                f"head_optimizer must be one of {', '.join(HEAD_OPTIMIZERS)}, not {self.head_optimizer!r}"
            )
        if not self.head_lr > 0:
            raise ValueError("head_lr must be positive")


def train(config: HeadAdamConfig, seed: int, data, device="cpu", save_logits: bool = False):
    """One run: airbench94's loop (airbench_core.train.train_many with one network), the head's
    weights stepped by Adam (betas 0.9, 0.99, no weight decay) at ``head_lr`` times the schedule."""
    import math
    import time
    from datetime import datetime, timezone

    import numpy as np
    import torch
    import torch.nn.functional as F

    from airbench_core.loader import TrainLoader
    from airbench_core.net import fit_whitening, make_net
    from airbench_core.optim import (
        Lookahead,
        lookahead_decay,
        lr_multiplier,
        make_optimizer,
        set_lr,
        total_steps,
    )
    from airbench_core.result import accuracies
    from airbench_core.train import DeviceData, RunResult, Stopwatch, derive_seed, run_environment
    from airbench_core.tta import tta_logits

    wall0, started = time.perf_counter(), datetime.now(timezone.utc)
    device = torch.device(device)
    if not isinstance(data, DeviceData):
        data = DeviceData.build(data, device, config.n_train, config.n_test)
    data = data.for_config(config)
    half = device.type == "cuda"

    def stream(name: str) -> int:  # the built-ins' streams: seeds pair across methods
        pinned = getattr(config, f"{name}_seed")
        return pinned if pinned is not None else derive_seed(seed, name)

    loader = TrainLoader(
        data.train_images,
        data.train_labels,
        config.batch_size,
        config.flip,
        config.translate,
        config.cutout,
        torch.Generator(device=device).manual_seed(stream("order")),
        torch.Generator(device=device).manual_seed(stream("aug")),
    )
    steps_per_epoch = loader.steps_per_epoch
    steps = total_steps(config, steps_per_epoch)
    net, forward = make_net(config, [stream("init")], device, half)
    head = [net.head.weight]
    optimizers = []
    if config.head_optimizer == "adam":
        net.head.weight.requires_grad_(False)  # airbench94's SGD for everything but the head ...
        sgd = make_optimizer(net, config)
        net.head.weight.requires_grad_(True)
        adam = torch.optim.Adam(head, lr=config.head_lr, betas=(0.9, 0.99), weight_decay=0.0)
        for group in adam.param_groups:
            group["base_lr"] = config.head_lr  # ... and Adam for the head, on the same schedule
        optimizers = [sgd, adam]
    else:
        optimizers = [make_optimizer(net, config)]
    train_clock, eval_clock = Stopwatch(device), Stopwatch(device)
    with train_clock:
        fit_whitening(net, config, data.train_images[data.whiten_order[: config.whiten_samples]])
    lookahead = Lookahead(net) if config.lookahead and config.lookahead_start_epoch == 0 else None
    step = 0
    for epoch in range(math.ceil(steps / steps_per_epoch)):
        with train_clock:
            net.train()
            net.whiten_bias.requires_grad = epoch < config.whiten_bias_epochs
            for inputs, labels in loader.epoch(epoch):
                loss = F.cross_entropy(
                    forward(inputs).flatten(0, 1),
                    labels,
                    label_smoothing=config.label_smoothing,
                    reduction="sum",
                )
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                for opt in optimizers:
                    set_lr(opt, lr_multiplier(step, steps, config))
                    opt.step()
                step += 1
                if config.lookahead and step % config.lookahead_every == 0:
                    if lookahead is None and epoch >= config.lookahead_start_epoch:
                        lookahead = Lookahead(net)
                    elif lookahead is not None:
                        lookahead.update(lookahead_decay(step, steps))
                if step >= steps:
                    break
            if lookahead is not None and (step >= steps or config.lookahead_copyback):
                lookahead.copy_back()
    with eval_clock:
        logits = torch.stack(tta_logits(net, data.test_images, batch=2000 if half else 250))[
            :, :, 0
        ]  # 3, n, 10
    predictions = logits.argmax(-1).to(torch.uint8).cpu().numpy()
    labels = data.test_labels.cpu().numpy()
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
        env={**run_environment(device, started), "packed": 1, "compiled": False},
    )


METHOD = Method(
    name="airbench94_head_adam",
    defaults=HeadAdamConfig(),
    train=train,
    summary="airbench94 with Adam for its linear head (an example of your own method)",
    field_help={
        **FIELD_HELP,
        "head_optimizer": "the head's optimizer: adam, or sgd (airbench94's Nesterov SGD, unchanged)",
        "head_lr": "Adam's learning rate for the head (times the lr schedule)",
    },
    sources=(__file__, *core_sources()),  # this file and the airbench_core code it reuses
    reference_seconds_per_epoch=0.28,
)
