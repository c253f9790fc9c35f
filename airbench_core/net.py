"""The airbench network: frozen patch-whitening conv, three conv blocks, a scaled linear head."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn


class NetConfig(Protocol):
    """What the network reads from a method's config: airbench's TrainConfig, airbench94_muon's
    MuonConfig and any method that reuses this network has these (fields or class attributes)."""

    @property
    def widths(self) -> tuple[int, int, int]: ...
    @property
    def convs_per_block(self) -> int: ...
    @property
    def identity_init(self) -> bool: ...
    @property
    def bn_momentum(self) -> float: ...
    @property
    def logit_scale(self) -> float: ...
    @property
    def whiten(self) -> bool: ...
    @property
    def whiten_eps(self) -> float: ...


WHITEN_KERNEL = 2
WHITEN_WIDTH = 2 * 3 * WHITEN_KERNEL**2  # 12 eigen-filters and their negatives


class BatchNorm(nn.BatchNorm2d):
    """Scale fixed at 1 (not trained), bias trained, tiny eps; kept in fp32 under fp16."""

    def __init__(self, num_features: int, momentum: float):
        super().__init__(num_features, eps=1e-12, momentum=1 - momentum)
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    """3x3 same-padding conv whose first in_channels filters start as the identity (per group)."""

    def __init__(self, cin: int, cout: int, identity_init: bool, k: int = 1):
        self.identity_init = identity_init
        super().__init__(cin * k, cout * k, kernel_size=3, padding="same", bias=False, groups=k)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.identity_init:
            w = self.weight.data
            per_group = w.size(0) // self.groups
            for g in range(self.groups):
                nn.init.dirac_(w[g * per_group : g * per_group + w.size(1)])


class ConvBlock(nn.Module):
    """conv -> pool -> BN -> GELU -> conv -> BN -> GELU. With three convs (airbench96) a residual
    spans the second and third: r = x; x = GELU(BN(conv2 x)); x = GELU(BN(conv3 x)); out = x + r.
    ``gelu_after_sum`` (airbench96_faster) moves the last GELU after the sum:
    x = BN(conv3 x); out = GELU(x + r)."""

    def __init__(self, cin: int, cout: int, cfg: NetConfig, k: int = 1, gelu_after_sum: bool = False):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.activ = nn.GELU()
        self.gelu_after_sum = gelu_after_sum
        self.convs = nn.ModuleList(
            [Conv(cin if i == 0 else cout, cout, cfg.identity_init, k) for i in range(cfg.convs_per_block)]
        )
        self.norms = nn.ModuleList([BatchNorm(cout * k, cfg.bn_momentum) for _ in range(cfg.convs_per_block)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norms[0](self.pool(self.convs[0](x))))
        if len(self.convs) == 2:
            return self.activ(self.norms[1](self.convs[1](x)))
        residual = x
        x = self.activ(self.norms[1](self.convs[1](x)))
        x = self.norms[2](self.convs[2](x))
        return self.activ(x + residual) if self.gelu_after_sum else self.activ(x) + residual


class Net(nn.Module):
    """k independent networks packed as grouped convolutions: input (B, 3k, H, W) holds k batches
    side by side in channels, output (B, k, classes) one set of logits per network. k=1 is airbench."""

    def __init__(self, cfg: NetConfig, k: int = 1, gelu_after_sum: bool = False, classes: int = 10):
        super().__init__()
        self.classes = classes
        w1, w2, w3 = cfg.widths
        self.k = k
        self.whiten = nn.Conv2d(3 * k, WHITEN_WIDTH * k, WHITEN_KERNEL, padding=0, bias=True, groups=k)
        self.whiten.weight.requires_grad = not cfg.whiten
        if getattr(cfg, "zero_whiten_bias", True):  # airbench94_muon keeps PyTorch's default (uniform) draw
            nn.init.zeros_(self.whiten_bias)  # after the default init: every other layer's init unchanged
        self.activ = nn.GELU()
        self.blocks = nn.Sequential(
            *(
                ConvBlock(cin, cout, cfg, k, gelu_after_sum)
                for cin, cout in ((WHITEN_WIDTH, w1), (w1, w2), (w2, w3))
            )
        )
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Conv2d(w3 * k, classes * k, 1, bias=False, groups=k)  # a linear layer per network
        self.logit_scale = cfg.logit_scale

    @property
    def whiten_bias(self) -> torch.Tensor:
        """The whitening conv's bias (built with bias=True, so never None)."""
        bias = self.whiten.bias
        assert bias is not None
        return bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.pool(self.blocks(self.activ(self.whiten(x)))))
        return x.reshape(len(x), self.k, self.classes) * self.logit_scale


def patch_covariance(images: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """Uncentered covariance of every 2x2 patch (12 values) of normalized images, in fp32."""
    c, k = images.shape[1], WHITEN_KERNEL
    cov = torch.zeros(c * k * k, c * k * k, dtype=torch.float64, device=images.device)
    count = 0
    for part in images.split(chunk):
        p = part.float().unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
        p = p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)  # rows laid out like conv weights
        cov += (p.T @ p).double()
        count += p.shape[0]
    return (cov / count).float()


def whitening_weights(cov: torch.Tensor, eps: float, largest_first: bool = True) -> torch.Tensor:
    """Eigenvectors scaled by 1/sqrt(eigenvalue + eps), then their negatives. The order matters
    when block1 is narrower than 24 channels: its identity init passes only the first block1
    filters. airbench94/95/96 and airbench96_faster put the largest eigenvalue first; the published
    airbench94_muon keeps ``eigh``'s ascending order (``largest_first=False``)."""
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    eigenvectors = eigenvectors.T
    if largest_first:
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(0)
    filters = eigenvectors / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]
    filters = filters.reshape(-1, 3, WHITEN_KERNEL, WHITEN_KERNEL)
    return torch.cat([filters, -filters])


def init_state(
    cfg: NetConfig, init_seeds: list[int], gelu_after_sum: bool = False, classes: int = 10
) -> dict:
    """Initial weights of len(init_seeds) networks, each built on the CPU under its own seed (so a
    network's init depends on its seed alone), packed along dim 0 in grouped-conv layout."""
    states = []
    for seed in init_seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            states.append(Net(cfg, gelu_after_sum=gelu_after_sum, classes=classes).state_dict())
    return {name: torch.cat([s[name] for s in states]) if t.ndim else t for name, t in states[0].items()}


def structure_key(cfg: NetConfig, k: int) -> tuple:
    """Configs with equal keys build identical modules, so one (compiled) module can serve them all."""
    return (cfg.widths, cfg.convs_per_block, cfg.bn_momentum, cfg.logit_scale, cfg.whiten, k)


@dataclass
class PooledNet:
    """A long-lived network, its (compiled) forward, and the requires_grad flags it was built with."""

    net: Net
    forward: Callable[..., torch.Tensor]
    fresh_requires_grad: dict[str, bool]

    def reset(self, state: dict) -> None:
        """Make the network indistinguishable from a freshly built one holding ``state``: weights and
        buffers (BatchNorm statistics and counters), requires_grad flags, gradients and train mode."""
        self.net.load_state_dict(state)  # copies into the existing tensors (dtype kept)
        for name, p in self.net.named_parameters():
            p.requires_grad_(self.fresh_requires_grad[name])
            p.grad = None
        self.net.train()


class NetPool:
    """Long-lived networks (one per structure), re-initialized in place for every run so that a
    compiled module is compiled once per worker, not once per run."""

    def __init__(self) -> None:
        self.nets: dict[tuple, PooledNet] = {}

    def get(
        self,
        cfg: NetConfig,
        k: int,
        device: torch.device,
        half: bool,
        compile: bool,
        gelu_after_sum: bool = False,
        channels_last: bool | None = None,
        classes: int = 10,
    ) -> PooledNet:
        """``channels_last`` (default: with ``half``) lays the filters out NHWC; oneDNN's CPU convs
        and pools run about 1.8x faster that way than NCHW at airbench's shapes. ``classes``: K."""
        channels_last = half if channels_last is None else channels_last
        key = (*structure_key(cfg, k), str(device), half, compile, gelu_after_sum, channels_last, classes)
        if key not in self.nets:
            net = Net(cfg, k, gelu_after_sum, classes).to(device)
            if half:
                net = net.half()
                for m in net.modules():
                    if isinstance(m, BatchNorm):
                        m.float()
            if channels_last:
                net = net.to(memory_format=torch.channels_last)
            flags = {name: p.requires_grad for name, p in net.named_parameters()}
            self.nets[key] = PooledNet(net, torch.compile(net) if compile else net, flags)
        return self.nets[key]


def make_net(
    cfg: NetConfig,
    init_seeds: list[int],
    device: torch.device,
    half: bool,
    compile: bool = False,
    pool: NetPool | None = None,
    gelu_after_sum: bool = False,
    channels_last: bool | None = None,
    classes: int = 10,
) -> tuple[Net, Callable[..., torch.Tensor]]:
    """(module, callable) with fresh initial weights for each seed (whitening not yet fitted);
    ``callable`` is compiled when asked. A pooled network is reset to exactly a fresh one's state.
    ``classes``: K, the width of the head (the dataset's number of classes)."""
    pooled = (pool or NetPool()).get(
        cfg, len(init_seeds), device, half, compile, gelu_after_sum, channels_last, classes
    )
    pooled.reset(init_state(cfg, init_seeds, gelu_after_sum, classes))
    return pooled.net, pooled.forward


@torch.no_grad()
def fit_whitening(net: Net, cfg: NetConfig, images: torch.Tensor) -> torch.Tensor | None:
    """Set the frozen whitening filters of every packed network from the training images' patches;
    returns one network's filters (None when ``cfg.whiten`` is off). A config's class attribute
    ``whiten_largest_first`` (default True) sets the filters' order (see ``whitening_weights``)."""
    if not cfg.whiten:
        return None
    w = whitening_weights(
        patch_covariance(images), cfg.whiten_eps, getattr(cfg, "whiten_largest_first", True)
    )
    net.whiten.weight.copy_(w.repeat(net.k, 1, 1, 1))
    return w
