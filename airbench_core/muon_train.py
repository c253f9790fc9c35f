"""airbench94_muon's optimizer, schedule and training loop (the facts are in ``muon.py``'s docstring).

The loader, network, whitening fit, TTA, seeds, timing and result record are airbench94's
(``loader``, ``net``, ``tta``, ``train``); only what the published script does differently lives here.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

import torch
import torch.nn.functional as F

from .data import Cifar10
from .loader import TrainLoader
from .muon_config import NS_COEFFICIENTS, MuonConfig
from .net import Net, NetPool, fit_whitening, make_net
from .optim import total_steps
from .train import DeviceData, RunResult, Stopwatch, evaluated_run, resident, stream_seed

NS_EPS = 1e-7


def zeropower_via_newtonschulz5(
    G: torch.Tensor, steps: int = 3, dtype: torch.dtype = torch.bfloat16
) -> torch.Tensor:
    """Approximately orthogonalise a matrix: quintic Newton-Schulz, coefficients (3.4445, -4.7750, 2.0315).

    As in the script: cast to ``dtype`` (bfloat16), divide by the Frobenius norm + 1e-7 (top singular
    value <= 1), work on the wide orientation (transpose when rows > cols), then ``steps`` times
    A = X X^T, B = b A + (c A) A, X = a X + B X. The coefficients maximise the slope at zero rather
    than converge, so the result is U S' V^T with S' spread around 1 (the script's docstring: roughly
    Uniform(0.5, 1.5)); tests/test_method_muon.py measures the band for 3 steps in bfloat16. Returns
    ``dtype``. The script wraps this in torch.compile; here it runs eagerly.
    """
    assert G.ndim == 2
    a, b, c = NS_COEFFICIENTS
    X = G.to(dtype)
    X = X / (X.norm() + NS_EPS)
    wide = G.size(0) > G.size(1)
    if wide:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.T if wide else X


class Muon(torch.optim.Optimizer):
    """The script's Muon: per parameter (a conv weight of shape (out, in, kh, kw)) and step,
    buf = momentum buf + g; d = g + momentum buf (Nesterov) or buf; p <- p sqrt(out) / ||p||_F (the
    whole tensor renormalised before the step); p <- p - lr NS(d reshaped to (out, in kh kw)). No
    weight decay, no shape-dependent update scale."""

    def __init__(
        self,
        params,
        lr: float,
        momentum: float,
        nesterov: bool = True,
        ns_steps: int = 3,
        ns_dtype: torch.dtype = torch.bfloat16,
    ):
        if lr < 0 or momentum < 0 or (nesterov and momentum <= 0):
            raise ValueError(f"invalid Muon settings: lr={lr}, momentum={momentum}, nesterov={nesterov}")
        super().__init__(
            params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps, ns_dtype=ns_dtype)
        )

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"]
                buf.mul_(momentum).add_(g)
                g = g.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.mul_(len(p) ** 0.5 / p.norm())
                update = zeropower_via_newtonschulz5(
                    g.reshape(len(g), -1), group["ns_steps"], group["ns_dtype"]
                )
                p.add_(update.reshape(g.shape), alpha=-lr)


def make_optimizers(net: Net, cfg: MuonConfig) -> tuple[torch.optim.SGD, Muon]:
    """(SGD, Muon) as the script builds them. SGD groups, in this order: whitening bias, BatchNorm
    biases, head weight; weight_decay = (cfg.weight_decay x batch) / the group's initial lr. Muon
    takes every trainable 4-d weight but the head's (a 1x1 conv here, a Linear in the script)."""
    wd = cfg.weight_decay * cfg.batch_size
    norm_biases = [p for n, p in net.named_parameters() if "norms" in n and p.requires_grad]
    filters = [
        p for n, p in net.named_parameters() if p.ndim == 4 and p.requires_grad and not n.startswith("head.")
    ]
    groups = [
        dict(params=params, lr=lr, initial_lr=lr, weight_decay=wd / lr)
        for params, lr in (
            ([net.whiten_bias], cfg.whiten_bias_lr),
            (norm_biases, cfg.norm_bias_lr),
            ([net.head.weight], cfg.head_lr),
        )
    ]
    fused = next(net.parameters()).device.type == "cuda"  # the script's fused=True; foreach on CPU
    sgd = torch.optim.SGD(groups, momentum=cfg.sgd_momentum, nesterov=True, fused=fused or None)
    muon = Muon(
        filters,
        lr=cfg.muon_lr,
        momentum=cfg.muon_momentum,
        nesterov=True,
        ns_steps=cfg.ns_steps,
        ns_dtype=getattr(torch, cfg.ns_dtype),
    )
    for group in muon.param_groups:
        group["initial_lr"] = group["lr"]
    return sgd, muon


def lr_multiplier(step: int, total: int) -> float:
    """1 - step/total: linear from 1 at step 0 to 0 at step ``total`` (0 after it)."""
    return max(0.0, 1 - step / total)


def set_lrs(sgd: torch.optim.SGD, muon: Muon, step: int, total: int, whiten_bias_total: int) -> None:
    """The whitening bias (SGD group 0) on its own horizon, every other group on the run's."""
    sgd.param_groups[0]["lr"] = sgd.param_groups[0]["initial_lr"] * lr_multiplier(step, whiten_bias_total)
    for group in sgd.param_groups[1:] + muon.param_groups:
        group["lr"] = group["initial_lr"] * lr_multiplier(step, total)


@torch.no_grad()
def scale_head(net: Net) -> None:
    """The script's reset: the head's weights divided by their (unbiased) standard deviation."""
    w = net.head.weight
    w.mul_(1 / w.std())


def train(
    config: MuonConfig,
    seed: int,
    data: Cifar10 | DeviceData,
    device: str | torch.device = "cpu",
    save_logits: bool = False,
    pool: NetPool | None = None,
) -> RunResult:
    """Train one airbench94_muon run from scratch and evaluate it at every TTA level. Seeds, subsets,
    timing (whitening fit + epochs as train time) and the record are as in ``airbench_core.train``;
    ``pool`` re-uses a long-lived network (reset to a fresh one's state) between runs."""
    wall0, started = time.perf_counter(), datetime.now(timezone.utc)
    device = torch.device(device)
    data = resident(data, device, config)
    half = device.type == "cuda"

    loader = TrainLoader(
        data.train_images,
        data.train_labels,
        config.batch_size,
        config.flip,
        config.translate,
        config.cutout,
        torch.Generator(device=device).manual_seed(stream_seed(config, seed, "order")),
        torch.Generator(device=device).manual_seed(stream_seed(config, seed, "aug")),
    )
    steps_per_epoch = loader.steps_per_epoch
    steps = total_steps(config, steps_per_epoch)
    whiten_bias_steps = math.ceil(config.whiten_bias_epochs * steps_per_epoch)
    net, forward = make_net(
        config, [stream_seed(config, seed, "init")], device, half, False, pool, classes=data.classes
    )
    scale_head(net)
    sgd, muon = make_optimizers(net, config)
    train_clock, eval_clock = Stopwatch(device), Stopwatch(device)
    with train_clock:
        fit_whitening(net, config, data.train_images[data.whiten_order[: config.whiten_samples]])

    step = 0
    for epoch in range(math.ceil(steps / steps_per_epoch)):
        with train_clock:
            net.train()
            for inputs, labels in loader.epoch(epoch):
                net.whiten_bias.requires_grad_(step < whiten_bias_steps)  # the script's detach
                loss = F.cross_entropy(
                    forward(inputs)[:, 0], labels, label_smoothing=config.label_smoothing, reduction="sum"
                )
                loss.backward()
                set_lrs(sgd, muon, step, steps, whiten_bias_steps)
                sgd.step()
                muon.step()
                net.zero_grad(set_to_none=True)
                step += 1
                if step >= steps:
                    break

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
