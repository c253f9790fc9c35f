import math

import numpy as np
import pytest
import torch
from torch import nn

from airbench_core import preset
from airbench_core.net import Net, fit_whitening, make_net, patch_covariance, whitening_weights
from airbench_core.optim import Lookahead, lookahead_decay, lr_multiplier, make_optimizer, total_steps
from airbench_core.tta import tta_logits


def test_airbench94_has_the_papers_parameter_count():
    """Counted by hand from DESIGN.md: whitening 3->24 (2x2, bias), blocks 24->64->256->256 of two
    3x3 convs and two BatchNorms (scale and bias) each, a 256->10 head without bias."""
    whiten = 24 * 3 * 2 * 2 + 24
    blocks = sum(cin * w * 9 + w * w * 9 + 2 * 2 * w for cin, w in ((24, 64), (64, 256), (256, 256)))
    head = 256 * 10
    n = sum(p.numel() for p in Net(preset("airbench94")).parameters())
    assert n == whiten + blocks + head == 1_972_792


def test_whitening_filters_decorrelate_the_patches_they_were_fitted_on():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(3, 3, generator=g)
    images = torch.einsum("ij,njhw->nihw", mix, torch.randn(200, 3, 32, 32, generator=g))
    images = images + 0.5 * torch.roll(images, 1, dims=-1)  # correlated neighbouring pixels
    cov = patch_covariance(images)
    eig = torch.linalg.eigvalsh(cov.double()).flip(0)
    for eps, expected in ((1e-9, torch.ones(12, dtype=torch.float64)), (5e-4, eig / (eig + 5e-4))):
        w = whitening_weights(cov, eps)[:12].reshape(12, -1).double()
        out_cov = w @ cov.double() @ w.T  # covariance of the 12 filter outputs
        assert torch.allclose(out_cov, torch.diag(expected), atol=1e-3)
    assert torch.equal(whitening_weights(cov, 5e-4)[12:], -whitening_weights(cov, 5e-4)[:12])


def test_whitening_conv_is_frozen_and_identity_init_is_dirac():
    cfg = preset("airbench94", widths=(32, 32, 32))
    net, _ = make_net(cfg, [0], torch.device("cpu"), half=False)
    fit_whitening(net, cfg, torch.randn(20, 3, 32, 32))
    assert not net.whiten.weight.requires_grad and net.whiten.bias.requires_grad
    w = net.blocks[0].convs[0].weight.data
    expected = torch.zeros(24, 24, 3, 3)
    nn.init.dirac_(expected)
    assert torch.equal(w[:24], expected)
    plain, _ = make_net(cfg.replace(identity_init=False, whiten=False), [0], torch.device("cpu"), half=False)
    assert not torch.equal(plain.blocks[0].convs[0].weight.data[:24], expected)
    assert plain.whiten.weight.requires_grad


def test_tta_levels_are_the_stated_weighted_sums_of_views():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    x = torch.randn(7, 3, 32, 32)
    level0, level1, level2 = tta_logits(net, x, batch=3)
    pad = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    views = [
        x,
        x.flip(-1),
        pad[..., :32, :32],
        pad[..., :32, :32].flip(-1),
        pad[..., 2:, 2:],
        pad[..., 2:, 2:].flip(-1),
    ]
    out = [net(v) for v in views]
    assert torch.allclose(level0, out[0], atol=1e-5)
    assert torch.allclose(level1, 0.5 * out[0] + 0.5 * out[1], atol=1e-5)
    explicit = 0.25 * out[0] + 0.25 * out[1] + 0.125 * (out[2] + out[3] + out[4] + out[5])
    assert torch.allclose(level2, explicit, atol=1e-5)


def test_lr_schedule_values():
    cfg = preset("airbench94")
    total = total_steps(cfg, 48)
    assert total == math.ceil(48 * 9.9) == 476
    peak = int(0.23 * total)
    assert lr_multiplier(0, total, cfg) == pytest.approx(0.2)
    assert lr_multiplier(peak // 2, total, cfg) == pytest.approx(0.2 + 0.8 * (peak // 2) / peak)
    assert lr_multiplier(peak, total, cfg) == pytest.approx(1.0)
    assert lr_multiplier(total, total, cfg) == pytest.approx(0.07)
    mid = (peak + total) / 2
    assert lr_multiplier(int(mid), total, cfg) == pytest.approx(1 - 0.93 * (int(mid) - peak) / (total - peak))


def test_first_step_runs_at_the_schedules_starting_lr(monkeypatch):
    """The lr in force at each optimizer step is the schedule's value at that step (0.2x at step 0)."""
    from airbench_core import train
    from airbench_core.data import Cifar10

    seen = []
    real_step = torch.optim.SGD.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[1]["lr"] / self.param_groups[1]["base_lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    rng = np.random.default_rng(0)
    fake = Cifar10(
        rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 10, 200),
        rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 10, 50),
        "fake",
        "fake",
    )
    cfg = preset("airbench94", widths=(8, 8, 8), batch_size=20, epochs=2.0, whiten_samples=100)
    train(cfg, 0, fake)
    assert len(seen) == 20
    reference = np.interp(np.arange(20), [0, int(0.23 * 20), 20], [0.2, 1.0, 0.07])  # the paper's schedule
    assert seen == pytest.approx(reference.tolist())
    assert seen[0] == pytest.approx(0.2)


def test_optimizer_hyperparameters_are_decoupled():
    cfg = preset("airbench94")
    opt = make_optimizer(Net(cfg), cfg)
    k = 1024 * (1 + 1 / 0.15)
    bias, other = opt.param_groups
    assert other["lr"] == pytest.approx(11.5 / k) and bias["lr"] == pytest.approx(64 * 11.5 / k)
    for g in (bias, other):
        assert g["lr"] * g["weight_decay"] == pytest.approx(0.0153 * 1024 / k)
        assert g["nesterov"] and g["momentum"] == 0.85
    assert all(p.ndim == 1 for p in bias["params"]) and len(bias["params"]) == 6


def test_lookahead_decay_and_update():
    assert lookahead_decay(0, 100) == 0
    assert lookahead_decay(50, 100) == pytest.approx(0.95**5 * 0.125)
    assert lookahead_decay(100, 100) == pytest.approx(0.95**5)
    net = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    la = Lookahead(net)
    with torch.no_grad():
        net.weight.fill_(3.0)
    la.update(0.75)  # avg = 0.75*1 + 0.25*3 = 1.5, and live takes it
    assert torch.allclose(net.weight, torch.full((1, 2), 1.5))
    with torch.no_grad():
        net.weight.fill_(9.0)
    la.update(1.0)  # final sync: live <- avg
    assert torch.allclose(net.weight, torch.full((1, 2), 1.5))
