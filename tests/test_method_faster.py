"""airbench96_faster: the script's values, the proxy's selection masks, the schedule as applied, the
architecture, order invariance in one long-lived process, and learning on a tiny CPU subset."""

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from airbench_core import faster_train
from airbench_core.faster import FIELD_HELP, METHOD, FasterConfig
from airbench_core.faster_train import Proxy, build_nets, hardest, stream_seeds, train
from airbench_core.loader import TrainLoader
from airbench_core.method import run_key
from airbench_core.net import WHITEN_WIDTH
from airbench_core.optim import Lookahead
from airbench_core.train import DeviceData, derive_seed

N_TRAIN, N_TEST = 400, 200


def tiny(**overrides) -> FasterConfig:
    base = dict(
        n_train=N_TRAIN,
        n_test=N_TEST,
        widths=(16, 32, 32),
        proxy_widths=(8, 16, 16),
        batch_size=100,
        batch_size_masked=40,
        epochs=1.0,
        whiten_samples=N_TRAIN,
    )
    return FasterConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def small(cifar) -> DeviceData:
    return DeviceData.build(cifar, "cpu", N_TRAIN, N_TEST)


def script_lr(step: int, total: int) -> float:
    """The script's schedule, written out: 0.2 -> 1 over int(0.1 total) steps, then linear to 0."""
    warmup = int(total * 0.1)
    if step < warmup:
        return 0.2 * (1 - step / warmup) + step / warmup
    return (total - step) / (total - warmup)


# ---------------------------------------------------------------- config and method


def test_defaults_are_the_published_scripts_values():
    c = FasterConfig()
    assert (c.epochs, c.batch_size, c.batch_size_masked, c.lr, c.momentum, c.weight_decay) == (
        45.0,
        1024,
        512,
        9.0,
        0.85,
        0.012,
    )
    assert (c.bias_scaler, c.label_smoothing, c.widths, c.convs_per_block) == (64.0, 0.2, (128, 384, 512), 3)
    assert (c.proxy_widths, c.proxy_convs_per_block, c.proxy_every) == ((32, 64, 64), 2, 4)
    assert c.logit_scale == c.proxy_logit_scale == 1 / 9 and c.bn_momentum == 0.9
    assert (c.flip, c.translate, c.cutout, c.whiten_bias_epochs, c.whiten_eps, c.whiten_samples) == (
        "alternating",
        4,
        12,
        None,
        5e-4,
        5000,
    )
    assert (c.lookahead, c.lookahead_every, c.lr_warmup_frac, c.lr_start, c.lr_end, c.tta_level) == (
        True,
        5,
        0.1,
        0.2,
        0.0,
        2,
    )
    assert (c.n_train, c.n_test, c.init_seed, c.order_seed, c.aug_seed) == (None,) * 5


def test_method_object_config_round_trip_keys_and_validation():
    names = [f.name for f in dataclasses.fields(FasterConfig)]
    assert (
        METHOD.name == "airbench96_faster" and METHOD.defaults == FasterConfig() and METHOD.train_many is None
    )
    assert set(METHOD.field_help) == set(names) and all(FIELD_HELP[n].strip() for n in names)
    assert all(Path(p).is_file() for p in METHOD.sources) and METHOD.reference_seconds_per_epoch > 0
    cfg = tiny(proxy_widths=[4, 8, 8])
    assert cfg.proxy_widths == (4, 8, 8) and FasterConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(lr=2.0).lr == 2.0 and cfg.key(3) == run_key("airbench96_faster", cfg, 3)
    assert cfg.key(3) != cfg.key(4) != cfg.replace(proxy_every=2).key(4)
    with pytest.raises(ValueError):
        cfg.replace(nope=1)
    for bad in (
        dict(batch_size_masked=101),
        dict(proxy_every=0),
        dict(widths=(16, 32)),
        dict(flip="sideways"),
        dict(convs_per_block=4),
        dict(whiten_bias_epochs=-1),
        dict(tta_level=3),
        dict(epochs=0.0),
    ):
        with pytest.raises(ValueError):
            tiny(**bad)


# ---------------------------------------------------------------- architecture


def test_architecture_shapes_parameter_counts_and_flags():
    seeds = stream_seeds(FasterConfig(), 0)
    net, proxy = build_nets(FasterConfig(), seeds, torch.device("cpu"), half=False)

    def count(widths, convs):  # whitening, blocks (convs + BatchNorm scale and bias), head
        cins = (WHITEN_WIDTH,) + widths[:2]
        return (
            WHITEN_WIDTH * 12
            + WHITEN_WIDTH
            + sum(ci * w * 9 + (convs - 1) * w * w * 9 + convs * 2 * w for ci, w in zip(cins, widths))
            + widths[2] * 10
        )

    assert sum(p.numel() for p in net.parameters()) == count((128, 384, 512), 3) == 9_918_776
    assert sum(p.numel() for p in proxy.parameters()) == count((32, 64, 64), 2)
    assert [tuple(c.weight.shape) for c in net.blocks[2].convs] == [
        (512, 384, 3, 3),
        (512, 512, 3, 3),
        (512, 512, 3, 3),
    ]
    assert [len(b.convs) for b in proxy.blocks] == [2, 2, 2] and proxy.blocks[1].convs[1].weight.shape == (
        64,
        64,
        3,
        3,
    )
    assert net.head.weight.shape == (10, 512, 1, 1) and net.logit_scale == proxy.logit_scale == 1 / 9
    for n in (net, proxy):
        bn = n.blocks[0].norms[0]
        assert bn.momentum == pytest.approx(0.1) and bn.eps == 1e-12 and not bn.weight.requires_grad
        assert not n.whiten.weight.requires_grad and n.whiten.weight.shape == (24, 3, 2, 2)
    assert net.whiten.bias.requires_grad and not proxy.whiten.bias.requires_grad
    assert net(torch.randn(2, 3, 32, 32)).shape == proxy(torch.randn(2, 3, 32, 32)).shape == (2, 1, 10)


def test_three_conv_block_applies_its_gelu_after_the_residual_sum():
    net, _ = build_nets(tiny(), stream_seeds(tiny(), 0), torch.device("cpu"), half=False)
    block = net.blocks[1]
    for norm in block.norms:
        torch.nn.init.normal_(norm.bias)
    x = torch.randn(8, 16, 16, 16)
    with torch.no_grad():
        out = block(x)
        r = F.gelu(block.norms[0](block.pool(block.convs[0](x))))
        h = F.gelu(block.norms[1](block.convs[1](r)))
        h = block.norms[2](block.convs[2](h))
    assert torch.allclose(out, F.gelu(h + r), atol=1e-5)
    assert not torch.allclose(out, F.gelu(h) + r, atol=1e-2)  # the paper's airbench96 order


# ---------------------------------------------------------------- selection


def test_hardest_marks_the_highest_losses():
    assert hardest(torch.tensor([0.1, 3.0, 2.0, 0.5, 2.5]), 2).tolist() == [False, True, False, False, True]


def test_proxy_masks_are_its_hardest_examples_and_it_trains_every_fourth_step_on_them():
    cfg = tiny()
    _, proxy_net = build_nets(cfg, stream_seeds(cfg, 0), torch.device("cpu"), half=False)
    proxy = Proxy(proxy_net, cfg)
    g = torch.Generator().manual_seed(0)
    for step in range(9):
        inputs, labels = torch.randn(100, 3, 32, 32, generator=g), torch.randint(0, 10, (100,), generator=g)
        ref_net, ref_opt = copy.deepcopy((proxy.net, proxy.optimizer))
        before = [p.detach().clone() for p in proxy.net.parameters()]
        ref_net.train()
        losses = F.cross_entropy(ref_net(inputs)[:, 0], labels, label_smoothing=0.2, reduction="none")
        mask = proxy.select(step, inputs, labels, lr_mult=0.5)
        assert mask.dtype == torch.bool and int(mask.sum()) == 40
        assert losses[mask].min() >= losses[~mask].max()  # the 40 highest proxy losses
        after = list(proxy.net.parameters())
        if step % 4:
            assert all(torch.equal(a, b) for a, b in zip(after, before)), step
            continue
        ref_opt.zero_grad()
        (losses * mask).sum().backward()  # only the selected examples count
        for group in ref_opt.param_groups:
            group["lr"] = group["base_lr"] * 0.5
        ref_opt.step()
        assert any(not torch.equal(a, b) for a, b in zip(after, before))
        for a, b in zip(after, ref_net.parameters()):
            assert torch.allclose(a, b, atol=1e-6), step


def test_main_network_trains_on_exactly_the_proxys_selection(small, monkeypatch):
    cfg = tiny(epochs=2.0)
    seen = {"proxy": [], "main": [], "masks": []}

    def spy_build(*args, **kwargs):
        net, proxy = build_nets(*args, **kwargs)
        net.register_forward_pre_hook(lambda m, a: seen["main"].append(a[0].clone()) if m.training else None)
        proxy.register_forward_pre_hook(lambda m, a: seen["proxy"].append(a[0].clone()))
        return net, proxy

    def spy_hardest(losses, n):
        mask = hardest(losses, n)
        seen["masks"].append((losses.clone(), n, mask))
        return mask

    monkeypatch.setattr(faster_train, "build_nets", spy_build)
    monkeypatch.setattr(faster_train, "hardest", spy_hardest)
    result = train(cfg, 0, small)
    assert result.steps == len(seen["main"]) == len(seen["proxy"]) == len(seen["masks"]) == 8
    for proxy_in, main_in, (losses, n, mask) in zip(seen["proxy"], seen["main"], seen["masks"]):
        assert proxy_in.shape[0] == 100 and n == 40 and main_in.shape[0] == 40
        assert torch.equal(main_in, proxy_in[mask])
        assert losses[mask].min() >= losses[~mask].max()


# ---------------------------------------------------------------- schedule


def run_with_spies(cfg, data, monkeypatch):
    """Train once, recording each optimizer step's group lrs and decays (main and proxy apart),
    whether the main whitening bias had a gradient, and every Lookahead update and copy-back."""
    steps = {"main": [], "proxy": []}
    lookahead = []
    real_make_optimizer = faster_train.make_optimizer

    def spy_make_optimizer(net, view):
        opt = real_make_optimizer(net, view)
        role = "proxy" if view.widths == cfg.proxy_widths else "main"

        def hook(o, args, kwargs):
            steps[role].append(
                (
                    [g["lr"] for g in o.param_groups],
                    [g["lr"] * g["weight_decay"] for g in o.param_groups],
                    net.whiten.bias.grad is not None,
                )
            )

        opt.register_step_pre_hook(hook)
        return opt

    class SpyLookahead(Lookahead):
        def update(self, decay):
            lookahead.append(decay)
            super().update(decay)

        def copy_back(self):
            lookahead.append("copy_back")
            super().copy_back()

    monkeypatch.setattr(faster_train, "make_optimizer", spy_make_optimizer)
    monkeypatch.setattr(faster_train, "Lookahead", SpyLookahead)
    result = train(cfg, 0, data)
    return result, steps, lookahead


def test_schedule_optimizers_and_lookahead_as_applied(small, monkeypatch):
    cfg = tiny(batch_size=40, batch_size_masked=20, epochs=3.0)  # 10 steps per epoch, 30 in all
    result, steps, lookahead = run_with_spies(cfg, small, monkeypatch)
    total = 30
    assert result.steps == total and result.epochs == 3.0
    k = 1024 * (1 + 1 / (1 - 0.85))
    lr, decay = 9.0 / k, 0.012 * 40 / k
    assert len(steps["main"]) == total
    for s, (lrs, decays, bias_grad) in enumerate(steps["main"]):
        m = script_lr(s, total)
        assert lrs == pytest.approx([64 * lr * m, lr * m], rel=1e-9), s
        assert decays == pytest.approx([decay * m, decay * m], rel=1e-9), s
        assert bias_grad, s  # the whitening bias trains all run
    proxy_lrs = [x for lrs, _, _ in steps["proxy"] for x in lrs]  # steps 0, 4, ..., 28 only
    assert proxy_lrs == pytest.approx(
        [x for s in range(0, total, 4) for x in (64 * lr * script_lr(s, total), lr * script_lr(s, total))],
        rel=1e-9,
    )
    assert not any(bias_grad for _, _, bias_grad in steps["proxy"])
    assert lookahead[-1] == "copy_back"
    assert lookahead[:-1] == pytest.approx(
        [0.95**5 * (s / total) ** 3 for s in range(5, total + 1, 5)], rel=1e-12
    )


def test_whiten_bias_epochs_freezes_the_bias_after_that_many_epochs(small, monkeypatch):
    cfg = tiny(batch_size=40, batch_size_masked=20, epochs=2.0, whiten_bias_epochs=1)
    _, steps, _ = run_with_spies(cfg, small, monkeypatch)
    assert [bias_grad for _, _, bias_grad in steps["main"]] == [True] * 10 + [False] * 10


# ---------------------------------------------------------------- data stream and seeds


def test_stream_completes_an_epochs_last_batch_from_the_next_epoch():
    n = 250
    images = torch.zeros(n, 3, 32, 32)
    loader = TrainLoader(
        images,
        torch.arange(n),
        100,
        "none",
        0,
        0,
        torch.Generator().manual_seed(1),
        torch.Generator().manual_seed(2),
    )
    labels = torch.cat([y for _, (_, y) in zip(range(5), loader.stream())])
    g = torch.Generator().manual_seed(1)
    expected = torch.cat([torch.randperm(n, generator=g), torch.randperm(n, generator=g)])
    assert torch.equal(labels, expected)  # 500 = two whole epochs, none dropped
    assert torch.bincount(labels, minlength=n).tolist() == [2] * n


def test_proxy_init_derives_from_the_init_stream():
    cfg = tiny()
    seeds = stream_seeds(cfg, 5)
    assert seeds == {
        "init": derive_seed(5, "init"),
        "order": derive_seed(5, "order"),
        "aug": derive_seed(5, "aug"),
        "proxy": derive_seed(derive_seed(5, "init"), "proxy"),
    }
    pinned = cfg.replace(init_seed=11)
    assert stream_seeds(pinned, 1)["proxy"] == stream_seeds(pinned, 2)["proxy"] == derive_seed(11, "proxy")

    def proxy_state(c, seed):
        return build_nets(c, stream_seeds(c, seed), torch.device("cpu"), half=False)[1].state_dict()

    a, b, c = proxy_state(cfg, 1), proxy_state(cfg, 2), proxy_state(pinned, 2)
    key = "head.weight"
    assert not torch.equal(a[key], b[key]) and torch.equal(c[key], proxy_state(pinned, 1)[key])


# ---------------------------------------------------------------- whole runs


def test_order_invariance_in_one_long_lived_process(small):
    a, b = (tiny(), 1), (tiny(cutout=0, proxy_every=2), 2)
    first = [train(cfg, seed, small) for cfg, seed in (a, b)]
    second = [train(cfg, seed, small) for cfg, seed in (b, a)][::-1]
    for x, y in zip(first, second):
        assert x.accuracy == y.accuracy
        assert np.array_equal(x.predictions, y.predictions)
    assert not np.array_equal(first[0].predictions, first[1].predictions)


@pytest.mark.slow
def test_tiny_cpu_subset_learns(cifar):
    """Bounded in steps, not seconds: 40 steps of narrow networks on 2,000 real images, each step
    training on the proxy's hardest 100 of 200 (measured: 18% at TTA level 2; chance is 10% with a
    standard deviation of about 1% on 1,000 test images)."""
    cfg = tiny(
        n_train=2000, n_test=1000, batch_size=200, batch_size_masked=100, epochs=4.0, whiten_samples=2000
    )
    result = train(cfg, 0, cifar, "cpu", save_logits=True)
    labels = DeviceData.build(cifar, "cpu", 2000, 1000).test_labels.numpy()
    assert (
        result.steps == 40 and result.logits.shape == (3, 1000, 10) and result.predictions.shape == (3, 1000)
    )
    assert result.accuracy == tuple(float((p == labels).mean()) for p in result.predictions)
    assert result.accuracy[2] > 0.15, result.accuracy
    assert result.train_seconds > 0 and result.eval_seconds > 0 and result.env["packed"] == 1
