"""One run of airbench96_faster (the facts and the differences are in ``airbench_core.faster``).

Built from the harness's airbench pieces: ``Net`` (with ``gelu_after_sum`` for the faster residual),
``make_optimizer``, ``lr_multiplier``, ``Lookahead``, ``TrainLoader.stream`` and ``tta_logits``,
each given a ``TrainConfig`` view of the ``FasterConfig`` (``net_view``).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import torch
import torch.nn.functional as F

from .config import TrainConfig
from .data import Cifar10
from .faster import FasterConfig
from .loader import TrainLoader
from .net import Net, fit_whitening, make_net
from .optim import Lookahead, lookahead_decay, lr_multiplier, make_optimizer, set_lr, total_steps
from .train import DeviceData, RunResult, Stopwatch, derive_seed, evaluated_run, resident


def net_view(cfg: FasterConfig, proxy: bool = False) -> TrainConfig:
    """The airbench ``TrainConfig`` that builds, optimizes and schedules one of the two networks."""
    return TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        bias_scaler=cfg.bias_scaler,
        label_smoothing=cfg.label_smoothing,
        widths=cfg.proxy_widths if proxy else cfg.widths,
        convs_per_block=cfg.proxy_convs_per_block if proxy else cfg.convs_per_block,
        bn_momentum=cfg.bn_momentum,
        logit_scale=cfg.proxy_logit_scale if proxy else cfg.logit_scale,
        flip=cfg.flip,
        translate=cfg.translate,
        cutout=cfg.cutout,
        whiten=True,
        whiten_eps=cfg.whiten_eps,
        whiten_samples=cfg.whiten_samples,
        identity_init=True,
        lookahead=cfg.lookahead and not proxy,
        lookahead_every=cfg.lookahead_every,
        lr_warmup_frac=cfg.lr_warmup_frac,
        lr_start=cfg.lr_start,
        lr_end=cfg.lr_end,
        n_train=cfg.n_train,
        n_test=cfg.n_test,
    )


def stream_seeds(cfg: FasterConfig, seed: int) -> dict[str, int]:
    """init, order and aug seeds (pinned or derived from the run seed) and the proxy's init seed,
    derived from the init seed so that pinning ``init_seed`` pins both networks."""
    seeds = {
        s: (getattr(cfg, f"{s}_seed") if getattr(cfg, f"{s}_seed") is not None else derive_seed(seed, s))
        for s in ("init", "order", "aug")
    }
    seeds["proxy"] = derive_seed(seeds["init"], "proxy")
    return seeds


def build_nets(
    cfg: FasterConfig, seeds: dict[str, int], device: torch.device, half: bool, classes: int = 10
) -> tuple[Net, Net]:
    """(main network, proxy) freshly initialized, whitening not yet fitted; the proxy's whitening
    bias is frozen (zero) for the whole run. Both are channels-last on every device, as the script
    lays them out: on a CPU that alone makes a run about 1.5x faster than NCHW filters.
    ``classes``: K, the width of both heads."""
    net, proxy = (
        make_net(
            net_view(cfg, p),
            [seeds[s]],
            device,
            half,
            gelu_after_sum=True,
            channels_last=True,
            classes=classes,
        )[0]
        for p, s in ((False, "init"), (True, "proxy"))
    )
    proxy.whiten_bias.requires_grad = False
    return net, proxy


@torch.no_grad()
def fit_whitenings(net: Net, proxy: Net, cfg: FasterConfig, images: torch.Tensor) -> None:
    """Both networks' frozen whitening filters from one fit, largest eigenvalue first (the script's
    ``get_whitening_parameters`` flips ``eigh``'s ascending order, as airbench94 does)."""
    w = fit_whitening(net, net_view(cfg), images)
    if w is not None:  # None: whitening off (faster's networks always whiten)
        proxy.whiten.weight.copy_(w)


def hardest(losses: torch.Tensor, n: int) -> torch.Tensor:
    """Boolean mask of the n examples with the highest loss."""
    mask = torch.zeros(len(losses), dtype=torch.bool, device=losses.device)
    mask[losses.topk(n, sorted=False).indices] = True
    return mask


class Proxy:
    """The selection network: scores every batch, trains on every ``proxy_every``-th one."""

    def __init__(self, net: Net, cfg: FasterConfig):
        self.net, self.cfg = net, cfg
        self.optimizer = make_optimizer(net, net_view(cfg, proxy=True))

    def select(self, step: int, inputs: torch.Tensor, labels: torch.Tensor, lr_mult: float) -> torch.Tensor:
        """The mask of this batch's ``batch_size_masked`` highest-loss examples under the proxy as
        it is now; on steps divisible by ``proxy_every`` the proxy then takes one step on the sum
        of those examples' losses (same forward pass, lr multiplier of this step)."""
        learn = step % self.cfg.proxy_every == 0
        self.net.train()
        with torch.set_grad_enabled(learn):
            losses = F.cross_entropy(
                self.net(inputs)[:, 0], labels, reduction="none", label_smoothing=self.cfg.label_smoothing
            )
        mask = hardest(losses.detach(), self.cfg.batch_size_masked)
        if learn:
            self.optimizer.zero_grad(set_to_none=True)
            (losses * mask).sum().backward()
            set_lr(self.optimizer, lr_mult)
            self.optimizer.step()
        return mask


def train(
    config: FasterConfig,
    seed: int,
    data: Cifar10 | DeviceData,
    device: str | torch.device = "cpu",
    save_logits: bool = False,
) -> RunResult:
    """Train one run from scratch (proxy and main network) and evaluate it at TTA levels 0, 1, 2."""
    wall0, started = time.perf_counter(), datetime.now(timezone.utc)
    device = torch.device(device)
    data = resident(data, device, config)
    half = device.type == "cuda"
    view = net_view(config)
    seeds = stream_seeds(config, seed)

    loader = TrainLoader(
        data.train_images,
        data.train_labels,
        config.batch_size,
        config.flip,
        config.translate,
        config.cutout,
        torch.Generator(device=device).manual_seed(seeds["order"]),
        torch.Generator(device=device).manual_seed(seeds["aug"]),
    )
    steps_per_epoch = loader.steps_per_epoch
    steps = total_steps(view, steps_per_epoch)
    net, proxy_net = build_nets(config, seeds, device, half, data.classes)
    optimizer = make_optimizer(net, view)
    proxy = Proxy(proxy_net, config)
    lookahead = Lookahead(net) if config.lookahead else None  # before the whitening fit, as the script
    train_clock, eval_clock = Stopwatch(device), Stopwatch(device)

    with train_clock:
        fit_whitenings(net, proxy_net, config, data.train_images[data.whiten_order[: config.whiten_samples]])
        net.train()
        for step, (inputs, labels) in zip(range(steps), loader.stream()):
            if config.whiten_bias_epochs is not None:
                net.whiten_bias.requires_grad = step // steps_per_epoch < config.whiten_bias_epochs
            mult = lr_multiplier(step, steps, view)
            mask = proxy.select(step, inputs, labels, mult)
            loss = F.cross_entropy(
                net(inputs[mask])[:, 0], labels[mask], label_smoothing=config.label_smoothing, reduction="sum"
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            set_lr(optimizer, mult)
            optimizer.step()
            if lookahead is not None and (step + 1) % config.lookahead_every == 0:
                lookahead.update(lookahead_decay(step + 1, steps))
        if lookahead is not None:
            lookahead.copy_back()

    return evaluated_run(
        net,
        data,
        config,
        seed,
        device,
        (train_clock, eval_clock),
        steps,
        steps_per_epoch,
        wall0,
        started,
        save_logits,
    )
