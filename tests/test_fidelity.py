"""Fidelity: a run depends only on its method, config, seed and data, never on what its worker ran
before; the whitening bias starts at zero and trains for exactly its epochs; airbench96 is the
paper's network and Lookahead schedule."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config
from helpers import assert_same_run

from airbench_core import DeviceData, preset, train
from airbench_core.net import ConvBlock, NetPool, make_net
from airbench_core.optim import Lookahead
from harness.run.worker import RunWorker
from harness.spec.grid import Cell, RunSpec

train_module = importlib.import_module("airbench_core.train")  # the package exports a function of that name

# Four epochs: the whitening bias freezes at epoch 3, so a worker's next run sees a frozen flag.
LONG = tiny_config(epochs=4.0)


@pytest.fixture(scope="module")
def data(cifar):
    return DeviceData.build(cifar, "cpu", LONG.n_train, LONG.n_test)


def specs(seeds: list[int]) -> list[RunSpec]:
    return [RunSpec(Cell({"case": "fidelity"}, LONG), s) for s in seeds]


@pytest.fixture(scope="module")
def eager_fresh(data_source):
    """Seed 21 trained by a fresh eager worker: the plain case's fresh run, the compiled case's reference."""
    return RunWorker(data_source, None, "cpu").run(specs([21]), save_logits=True)


@pytest.mark.parametrize(
    ("pack", "compile"), [(1, False), (2, False), (1, True)], ids=["plain", "pack", "compile"]
)
def test_a_long_lived_workers_later_run_equals_a_fresh_workers(data_source, eager_fresh, pack, compile):
    """Seed B after seed A in one worker (one NetPool) trains exactly what a fresh worker trains; compiled,
    it is the eager run up to summation order, and the worker compiled its graphs once."""
    from torch._dynamo.utils import counters

    seasoned = RunWorker(data_source, None, "cpu", compile=compile)
    first = seasoned.run(specs([11, 12][:pack]), save_logits=True)
    assert all(o.error is None for o in first), first[0].error
    graphs = counters["stats"]["unique_graphs"]
    later = seasoned.run(specs([21, 22][:pack]), save_logits=True)
    plain = (pack, compile) == (1, False)
    fresh = (
        eager_fresh
        if plain
        else RunWorker(data_source, None, "cpu", compile=compile).run(
            specs([21, 22][:pack]), save_logits=True
        )
    )
    for a, b in zip(later, fresh):
        assert a.error is None and b.error is None
        assert a.result.steps == 40
        assert np.array_equal(a.result.predictions, b.result.predictions)
        assert a.result.accuracy == b.result.accuracy
    first_b = [o.result.predictions for o in first]
    assert not any(np.array_equal(p, o.result.predictions) for p in first_b for o in later)
    if compile:
        assert later[0].result.env["compiled"] and counters["stats"]["unique_graphs"] == graphs, (
            "compiled once"
        )
        assert_same_run(eager_fresh[0].result, later[0].result)


def spy_on_training(monkeypatch) -> dict:
    """Record the network of each run, its whitening bias at the start, and the bias after every step."""
    seen: dict = {"nets": [], "start_bias": [], "bias_after_step": [], "in_optimizer": []}
    real_make_net, real_step = train_module.make_net, torch.optim.SGD.step

    def make_net(*args, **kwargs):
        net, forward = real_make_net(*args, **kwargs)
        seen["nets"].append(net)
        seen["start_bias"].append(net.whiten.bias.detach().clone())
        seen["bias_after_step"].append([])
        seen["in_optimizer"].append([])
        return net, forward

    def step(self, *args, **kwargs):
        bias = seen["nets"][-1].whiten.bias
        received = any(p is bias for g in self.param_groups for p in g["params"]) and bias.grad is not None
        out = real_step(self, *args, **kwargs)
        seen["in_optimizer"][-1].append(received)
        seen["bias_after_step"][-1].append(bias.detach().clone())
        return out

    monkeypatch.setattr(train_module, "make_net", make_net)
    monkeypatch.setattr(torch.optim.SGD, "step", step)
    return seen


def test_whitening_bias_starts_at_zero_and_trains_exactly_its_epochs_in_every_run(data, monkeypatch):
    seen = spy_on_training(monkeypatch)
    pool = NetPool()
    for seed in (1, 2, 3):  # the pool's second and third runs too
        train(LONG, seed, data, pool=pool)
    steps_per_epoch = LONG.n_train // LONG.batch_size
    trained_steps = LONG.whiten_bias_epochs * steps_per_epoch
    for run in range(3):
        assert torch.count_nonzero(seen["start_bias"][run]) == 0
        received = seen["in_optimizer"][run]
        assert received == [True] * trained_steps + [False] * (len(received) - trained_steps)
        after = torch.stack(seen["bias_after_step"][run])
        moved = (after[1:] != after[:-1]).any(dim=1).tolist()
        # moves at every step of the first epochs (Lookahead may also move it at its boundaries)...
        assert all(moved[: trained_steps - 1])
        # ...and after the freeze only through a Lookahead sync at the previous step's boundary
        # (moved[i] compares the records of steps i+1 and i+2; Lookahead acts after step i+1's record)
        frozen_moves = [i + 1 for i, m in enumerate(moved) if m and i + 1 >= trained_steps]
        assert all(s % LONG.lookahead_every == 0 for s in frozen_moves), frozen_moves


def test_airbench96_block_is_the_papers_residual_over_conv2_and_conv3():
    torch.manual_seed(0)
    cfg = preset("airbench96")
    block = ConvBlock(8, 16, cfg).eval()
    for norm in block.norms:  # non-trivial statistics, so every BatchNorm matters
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.bias.data.uniform_(-1, 1)
    x = torch.randn(4, 8, 16, 16)
    c, n = block.convs, block.norms
    x1 = F.gelu(n[0](F.max_pool2d(c[0](x), 2)))
    x2 = F.gelu(n[1](c[1](x1)))
    x3 = F.gelu(n[2](c[2](x2)))
    with torch.no_grad():
        assert torch.allclose(block(x), x3 + x1, atol=1e-6)
        two = ConvBlock(8, 16, preset("airbench94")).eval()
        assert torch.allclose(
            two(x),
            F.gelu(two.norms[1](two.convs[1](F.gelu(two.norms[0](F.max_pool2d(two.convs[0](x), 2)))))),
            atol=1e-6,
        )


def test_airbench96_lookahead_starts_at_epoch_3_and_copies_back_every_later_epoch(cifar, monkeypatch):
    cfg = preset(
        "airbench96",
        n_train=1000,
        n_test=200,
        widths=(8, 16, 16),
        batch_size=100,
        epochs=5.0,
        whiten_samples=500,
    )
    steps_per_epoch = 10
    events: list[tuple[str, int]] = []
    counter = {"step": 0}
    real_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        counter["step"] += 1
        return real_step(self, *args, **kwargs)

    class SpyLookahead(Lookahead):
        def __init__(self, net):
            super().__init__(net)
            events.append(("start", counter["step"]))
            self.start_copy = [t.clone() for t in self.avg]
            assert all(torch.equal(a, b) for a, b in zip(self.avg, self.live)), "the start copies the weights"

        def update(self, decay):
            events.append(("update", counter["step"]))
            super().update(decay)

        def copy_back(self):
            events.append(("copy_back", counter["step"]))
            super().copy_back()
            assert all(torch.equal(a, b) for a, b in zip(self.avg, self.live))

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    monkeypatch.setattr(train_module, "Lookahead", SpyLookahead)
    train(cfg, 0, DeviceData.build(cifar, "cpu", cfg.n_train, cfg.n_test))
    start_step = 3 * steps_per_epoch + cfg.lookahead_every  # first 5-step boundary inside epoch 3
    assert events[0] == ("start", start_step)
    assert [s for kind, s in events if kind == "update"] == list(range(start_step + 5, 51, 5))
    assert [s for kind, s in events if kind == "copy_back"] == [40, 50]  # end of epochs 3 and 4


def test_airbench94_lookahead_starts_with_the_run_and_copies_back_only_at_the_end(data, monkeypatch):
    events: list[str] = []

    class SpyLookahead(Lookahead):
        def __init__(self, net):
            super().__init__(net)
            events.append("start")

        def update(self, decay):
            events.append("update")
            super().update(decay)

        def copy_back(self):
            events.append("copy_back")
            super().copy_back()

    monkeypatch.setattr(train_module, "Lookahead", SpyLookahead)
    train(LONG, 0, data)
    # 40 steps: the start, an update every 5 steps, one final copy and no epoch-end copies
    assert events == ["start"] + ["update"] * 8 + ["copy_back"]


LONG = tiny_config(epochs=4.0)


def test_a_pooled_network_is_reset_to_exactly_a_fresh_ones_state(cifar):
    """After a run, the pool's network holds what a freshly built one holds: every weight and buffer
    (BatchNorm running statistics and counters), requires_grad flags, no gradients, train mode."""
    pool = NetPool()
    train(LONG, 1, DeviceData.build(cifar, "cpu", LONG.n_train, LONG.n_test), pool=pool)
    pooled, _ = make_net(LONG, [7], torch.device("cpu"), half=False, pool=pool)
    fresh, _ = make_net(LONG, [7], torch.device("cpu"), half=False)
    a, b = pooled.state_dict(), fresh.state_dict()
    assert list(a) == list(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert [(n, p.requires_grad, p.grad) for n, p in pooled.named_parameters()] == [
        (n, p.requires_grad, None) for n, p in fresh.named_parameters()
    ]
    assert all(m.training for m in pooled.modules())
