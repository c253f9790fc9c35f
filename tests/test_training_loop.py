"""The training loop as applied: each knob of DESIGN.md section 2 observed where it acts inside a real
``train()`` call (the optimizer's step, the loss, the loader, the network's forward and its BatchNorm
buffers), and checked against values worked out here from the spec, not from the library's formulas.

One recorded airbench94 run (``recorded``) serves most tests; a second (``recorded_aug``) runs
airbench96's augmentation (random flip, translation 4, cutout 12). airbench96's block and Lookahead
start are in test_fidelity.py, as is the whitening bias at the default 3 epochs (here: 2).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

from airbench_core import DeviceData, train
from airbench_core.loader import TrainLoader
from airbench_core.net import BatchNorm, Conv

train_module = importlib.import_module("airbench_core.train")  # the package exports a function of that name
loader_module = importlib.import_module("airbench_core.loader")

# 525 images in batches of 50: 10 steps per epoch, 25 images dropped from each epoch. 3.32 epochs is
# ceil(33.2) = 34 steps (rounding or flooring would give 33): the run stops 4 steps into its fourth
# epoch, off a Lookahead boundary, so the final copy matters. The whitening bias trains 2 epochs.
CFG = tiny_config(
    n_train=525,
    n_test=300,
    batch_size=50,
    widths=(8, 16, 16),
    epochs=3.32,
    whiten_samples=500,
    whiten_bias_epochs=2,
)
STEPS_PER_EPOCH, STEPS = 10, 34
AUG_CFG = CFG.replace(n_test=100, epochs=2.1, flip="random", translate=4, cutout=12)
AUG_STEPS = 21

# Decoupled hyperparameters, worked out from DESIGN.md section 2 for batch 50.
KILO = 1024 * (1 + 1 / (1 - 0.85))
LR_OTHER = 11.5 / KILO
LR_BIAS = 64 * LR_OTHER
DECAY_STRENGTH = 0.0153 * 50 / KILO


def float_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every float parameter and buffer (what Lookahead averages), copied."""
    return {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}


@dataclass
class Record:
    """Everything one instrumented train() call showed, in the order it happened."""

    net: torch.nn.Module | None = None
    steps: list[dict] = field(default_factory=list)  # per optimizer step
    forwards: list[dict] = field(default_factory=list)  # per training forward
    norms: list[dict] = field(default_factory=list)  # per BatchNorm call in train mode
    losses: list[dict] = field(default_factory=list)  # per cross_entropy call
    backwards: list[torch.Tensor] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)  # as passed to TrainLoader.epoch
    loader_images: torch.Tensor | None = None
    translated: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (input, output)
    cut: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    eval_views: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (input, logits)
    tta: list[torch.Tensor] | None = None
    final: dict | None = None
    result: object = None


def norm_hooks(record: Record, norm: BatchNorm) -> None:
    """Batch statistics measured from the BatchNorm's input, its buffers before and after, and the
    largest gap between its output and (x - batch mean) / sqrt(batch var + 1e-12) + bias."""

    def pre(module, args):
        if module.training:
            x = args[0].detach().double()
            record.norms.append(
                dict(
                    mean=x.mean((0, 2, 3)),
                    var=x.var((0, 2, 3), unbiased=True),
                    input=x,
                    running_mean=module.running_mean.double().clone(),
                    running_var=module.running_var.double().clone(),
                )
            )

    def post(module, args, out):
        if module.training:
            seen = record.norms[-1]
            x = seen.pop("input")
            biased = x.var((0, 2, 3), unbiased=False)
            for eps_name, eps in (("error", 1e-12), ("error_eps_1e-5", 1e-5)):
                expected = (x - seen["mean"][None, :, None, None]) / torch.sqrt(biased + eps)[
                    None, :, None, None
                ]
                expected = expected + module.bias.detach().double()[None, :, None, None]
                seen[eps_name] = float((out.detach().double() - expected).abs().max())
            seen["new_running_mean"] = module.running_mean.double().clone()
            seen["new_running_var"] = module.running_var.double().clone()

    norm.register_forward_pre_hook(pre)
    norm.register_forward_hook(post)


def instrument(monkeypatch: pytest.MonkeyPatch, record: Record) -> None:
    real_make_net, real_step, real_ce = train_module.make_net, torch.optim.SGD.step, F.cross_entropy
    real_backward, real_epoch = torch.Tensor.backward, TrainLoader.epoch
    real_translate, real_cutout, real_tta = (
        loader_module.translate,
        loader_module.cutout,
        train_module.tta_logits,
    )

    def make_net(*args, **kwargs):
        net, forward = real_make_net(*args, **kwargs)
        record.net = net

        def pre(module, args):
            if module.training:
                record.forwards.append(dict(input=args[0].detach().clone(), state=float_state(module)))

        def post(module, args, out):
            if module.training:
                record.forwards[-1]["logits"] = out.detach().clone()
            else:
                record.eval_views.append((args[0].detach().clone(), out.detach().clone()))

        def head(module, args, out):
            if net.training:
                record.forwards[-1]["head"] = out.detach().clone()

        net.register_forward_pre_hook(pre)
        net.register_forward_hook(post)
        net.head.register_forward_hook(head)
        for m in net.modules():
            if isinstance(m, BatchNorm):
                norm_hooks(record, m)
        return net, forward

    def step(self, *args, **kwargs):
        net = record.net
        norm_biases = {id(m.bias) for m in net.modules() if isinstance(m, BatchNorm)}
        groups = [
            dict(
                kind="bias" if {id(p) for p in g["params"]} <= norm_biases else "other",
                params={id(p) for p in g["params"]},
                **{k: g[k] for k in ("lr", "weight_decay", "momentum", "nesterov", "dampening")},
            )
            for g in self.param_groups
        ]
        whiten_bias = net.whiten.bias.detach().clone()
        had_grad = net.whiten.bias.grad is not None
        out = real_step(self, *args, **kwargs)
        record.steps.append(
            dict(
                groups=groups,
                whiten_bias_grad=had_grad,
                whiten_bias_moved=not torch.equal(whiten_bias, net.whiten.bias),
                after=float_state(net),
            )
        )
        return out

    def cross_entropy(input, target, *args, **kwargs):
        out = real_ce(input, target, *args, **kwargs)
        record.losses.append(
            dict(input=input.detach().clone(), target=target.clone(), args=args, kwargs=kwargs)
        )
        return out

    def backward(self, *args, **kwargs):
        record.backwards.append(self.detach().clone())
        return real_backward(self, *args, **kwargs)

    def epoch(self, epoch, *args, **kwargs):
        record.epochs.append(epoch)
        record.loader_images = self.images
        return real_epoch(self, epoch, *args, **kwargs)

    def translate(images, *args, **kwargs):
        out = real_translate(images, *args, **kwargs)
        record.translated.append((images.clone(), out.clone()))
        return out

    def cutout(images, *args, **kwargs):
        out = real_cutout(images, *args, **kwargs)
        record.cut.append((images.clone(), out.clone()))
        return out

    def tta_logits(*args, **kwargs):
        record.tta = real_tta(*args, **kwargs)
        return record.tta

    monkeypatch.setattr(train_module, "make_net", make_net)
    monkeypatch.setattr(torch.optim.SGD, "step", step)
    monkeypatch.setattr(F, "cross_entropy", cross_entropy)
    monkeypatch.setattr(torch.Tensor, "backward", backward)
    monkeypatch.setattr(TrainLoader, "epoch", epoch)
    monkeypatch.setattr(loader_module, "translate", translate)
    monkeypatch.setattr(loader_module, "cutout", cutout)
    monkeypatch.setattr(train_module, "tta_logits", tta_logits)


def recorded_run(cfg, data: DeviceData) -> Record:
    record = Record()
    with pytest.MonkeyPatch.context() as monkeypatch:
        instrument(monkeypatch, record)
        record.result = train(cfg, 7, data, save_logits=True)
    record.final = float_state(record.net)
    return record


@pytest.fixture(scope="module")
def data(cifar) -> DeviceData:
    return DeviceData.build(cifar, "cpu", CFG.n_train, CFG.n_test)


@pytest.fixture(scope="module")
def recorded(data) -> Record:
    return recorded_run(CFG, data)


@pytest.fixture(scope="module")
def recorded_aug(cifar) -> Record:
    return recorded_run(AUG_CFG, DeviceData.build(cifar, "cpu", AUG_CFG.n_train, AUG_CFG.n_test))


def schedule(step: int, total: int) -> float:
    """DESIGN.md: 0.2 -> 1 over the first 23% of the steps (int), then linear to 0.07 at the end."""
    return float(np.interp(step, [0, int(0.23 * total), total], [0.2, 1.0, 0.07]))


def flip_masks(record: Record, images: torch.Tensor) -> list[torch.Tensor]:
    """Per epoch, which images reached the translation mirrored (each is exactly one of the two)."""
    masks = []
    for before, _ in record.translated:
        mirrored = (before == images.flip(-1)).flatten(1).all(1)
        plain = (before == images).flatten(1).all(1)
        assert bool((mirrored ^ plain).all()), "every image is exactly itself or exactly its mirror"
        masks.append(mirrored)
    return masks


def crop_offsets(before: torch.Tensor, after: torch.Tensor, pad: int) -> torch.Tensor:
    """(n, 2) offset of each image's crop in its reflect-padded self; fails unless exactly one fits."""
    size = before.shape[-1]
    padded = F.pad(before, (pad,) * 4, mode="reflect")
    matches = torch.stack(
        [
            torch.stack(
                [
                    (after == padded[..., dy : dy + size, dx : dx + size]).flatten(1).all(1)
                    for dx in range(2 * pad + 1)
                ]
            )
            for dy in range(2 * pad + 1)
        ]
    )  # dy, dx, n
    assert bool((matches.flatten(0, 1).sum(0) == 1).all()), "each image is one crop of its padded self"
    where = matches.flatten(0, 1).float().argmax(0)
    return torch.stack([where // (2 * pad + 1), where % (2 * pad + 1)], dim=1)


# ---- steps, schedule and optimizer ------------------------------------------------------------------


def test_total_steps_is_ceil_of_steps_per_epoch_times_epochs_and_stops_mid_epoch(recorded):
    assert len(recorded.steps) == len(recorded.backwards) == STEPS == math.ceil(STEPS_PER_EPOCH * 3.32)
    assert recorded.epochs == [0, 1, 2, 3]
    per_epoch = np.bincount([i // STEPS_PER_EPOCH for i in range(len(recorded.forwards))]).tolist()
    assert per_epoch == [10, 10, 10, 4]
    assert recorded.result.steps == STEPS and recorded.result.epochs == pytest.approx(3.4)


def test_every_batch_is_full_and_the_last_partial_batch_is_dropped(recorded, data):
    assert all(len(f["input"]) == 50 for f in recorded.forwards)
    for e, (_, augmented) in enumerate(recorded.translated):
        index = {row.numpy().tobytes(): i for i, row in enumerate(augmented)}
        forwards = recorded.forwards[e * STEPS_PER_EPOCH : (e + 1) * STEPS_PER_EPOCH]
        losses = recorded.losses[e * STEPS_PER_EPOCH : (e + 1) * STEPS_PER_EPOCH]
        seen = []
        for f, loss in zip(forwards, losses):
            rows = [index[row.numpy().tobytes()] for row in f["input"]]  # each row is an augmented image
            assert torch.equal(loss["target"], data.train_labels[rows]), "labels travel with their images"
            seen += rows
        assert len(set(seen)) == len(seen)  # no image twice in an epoch
        if len(forwards) == STEPS_PER_EPOCH:
            assert len(seen) == 500  # 25 of 525 left out


def test_lr_of_every_group_follows_the_schedule_at_every_step(recorded):
    assert int(0.23 * STEPS) == 7
    for i, step in enumerate(recorded.steps):
        lrs = {g["kind"]: g["lr"] for g in step["groups"]}
        assert lrs == {
            "bias": pytest.approx(LR_BIAS * schedule(i, STEPS), rel=1e-9),
            "other": pytest.approx(LR_OTHER * schedule(i, STEPS), rel=1e-9),
        }, i
    other = (
        np.array([next(g["lr"] for g in s["groups"] if g["kind"] == "other") for s in recorded.steps])
        / LR_OTHER
    )
    assert other[0] == pytest.approx(0.2)  # first step at 0.2x
    assert int(np.argmax(other)) == 7 and other[7] == pytest.approx(1.0)  # peak at 23% of the steps
    assert other[-1] + (other[-1] - other[-2]) == pytest.approx(0.07)  # reaching 0.07x at the end


def test_param_groups_hold_exactly_the_batchnorm_biases_and_the_other_trained_weights(recorded):
    net = recorded.net
    norms = [m for m in net.modules() if isinstance(m, BatchNorm)]
    convs = [m for m in net.modules() if isinstance(m, Conv)]
    expected_other = {id(c.weight) for c in convs} | {id(net.head.weight), id(net.whiten.bias)}
    for step in recorded.steps:
        groups = {g["kind"]: g for g in step["groups"]}
        assert len(step["groups"]) == 2
        assert groups["bias"]["params"] == {id(m.bias) for m in norms}
        assert groups["other"]["params"] == expected_other  # no whitening weight, no BatchNorm weight


def test_weight_decay_is_the_strength_over_each_groups_lr_and_nesterov_momentum_085(recorded):
    for step in recorded.steps:
        for g in step["groups"]:
            base = LR_BIAS if g["kind"] == "bias" else LR_OTHER
            assert g["weight_decay"] == pytest.approx(DECAY_STRENGTH / base, rel=1e-9)
            assert g["momentum"] == 0.85 and g["nesterov"] is True and g["dampening"] == 0


# ---- loss -------------------------------------------------------------------------------------------


def test_loss_is_label_smoothed_02_and_summed_over_the_batch(recorded):
    assert len(recorded.losses) == STEPS
    for loss, forward, value in zip(recorded.losses, recorded.forwards, recorded.backwards):
        assert loss["kwargs"].get("label_smoothing") == 0.2 and loss["kwargs"].get("reduction") == "sum"
        assert torch.equal(loss["input"], forward["logits"].flatten(0, 1))  # the network's own logits
        logp = torch.log_softmax(loss["input"].double(), dim=1)
        target = loss["target"]
        by_hand = -(0.8 * logp[torch.arange(len(target)), target] + 0.2 / 10 * logp.sum(1)).sum()
        assert float(value) == pytest.approx(float(by_hand), rel=1e-5)  # what backward() ran on


# ---- network ----------------------------------------------------------------------------------------


def test_logits_are_the_heads_output_times_one_ninth(recorded):
    for f in recorded.forwards:
        assert torch.allclose(f["logits"], f["head"].reshape(-1, 1, 10) / 9, rtol=1e-6, atol=0)


def test_batchnorm_running_statistics_take_weight_04_on_each_new_batch(recorded):
    n_norms = 6
    assert len(recorded.norms) == n_norms * STEPS
    for seen in recorded.norms:
        assert torch.allclose(
            seen["new_running_mean"], 0.6 * seen["running_mean"] + 0.4 * seen["mean"], atol=1e-6
        )
        assert torch.allclose(
            seen["new_running_var"], 0.6 * seen["running_var"] + 0.4 * seen["var"], rtol=1e-5, atol=1e-6
        )
    first = recorded.norms[0]
    assert not torch.allclose(first["mean"], first["running_mean"], atol=1e-3), "the update is visible"


def test_batchnorm_normalizes_with_eps_1e12_and_its_scale_stays_1(recorded):
    gaps = np.array([seen["error"] for seen in recorded.norms])
    gaps_1e5 = np.array([seen["error_eps_1e-5"] for seen in recorded.norms])
    assert gaps.max() < 2e-5
    assert (gaps_1e5 > 10 * gaps).mean() > 0.5, "eps 1e-5 would be told apart"
    for m in recorded.net.modules():
        if isinstance(m, BatchNorm):
            assert not m.weight.requires_grad and torch.equal(m.weight, torch.ones_like(m.weight))
    scales = [k for k in recorded.final if k.endswith("norms.0.weight") or k.endswith("norms.1.weight")]
    assert len(scales) == 6
    assert all(
        torch.equal(s["after"][k], torch.ones_like(s["after"][k])) for s in recorded.steps for k in scales
    )


def test_convolutions_start_as_identity_on_their_first_input_channels(recorded):
    start = recorded.forwards[0]["state"]
    convs = [k for k in start if ".convs." in k]
    assert len(convs) == 6
    for k in convs:
        w = start[k]
        cout, cin = w.shape[:2]
        dirac = torch.zeros(min(cout, cin), cin, 3, 3)
        for i in range(min(cout, cin)):
            dirac[i, i, 1, 1] = 1
        assert torch.equal(w[: min(cout, cin)], dirac), k
        if cout > cin:
            assert w[cin:].abs().sum() > 0, "the remaining filters keep PyTorch's random init"


def test_whitening_weights_are_fitted_and_never_change(recorded, data):
    start, weight = recorded.forwards[0]["state"]["whiten.weight"], recorded.net.whiten.weight
    assert not weight.requires_grad
    assert torch.equal(start[12:], -start[:12])
    assert all(torch.equal(s["after"]["whiten.weight"], start) for s in recorded.steps)
    assert torch.equal(recorded.final["whiten.weight"], start)
    # fitted to the first 500 images of the fixed shuffle: its 12 filters decorrelate their patches
    images = data.train_images[data.whiten_order[:500]]
    out = F.conv2d(images.double(), start[:12].double()).permute(1, 0, 2, 3).flatten(1)
    cov = out @ out.T / out.shape[1]
    assert (cov - torch.diag(torch.diag(cov))).abs().max() < 3e-3  # fp32 weights
    assert bool(((torch.diag(cov) > 0.1) & (torch.diag(cov) < 1.0 + 1e-4)).all())  # lambda / (lambda + eps)


def test_whitening_bias_trains_in_exactly_the_configured_epochs(recorded):
    trained = CFG.whiten_bias_epochs * STEPS_PER_EPOCH
    assert CFG.whiten_bias_epochs == 2
    assert [s["whiten_bias_grad"] for s in recorded.steps] == [True] * trained + [False] * (STEPS - trained)
    assert [s["whiten_bias_moved"] for s in recorded.steps] == [True] * trained + [False] * (STEPS - trained)


# ---- Lookahead --------------------------------------------------------------------------------------


def test_lookahead_averages_every_5_steps_at_the_scheduled_decay_and_ends_on_the_average(recorded):
    """Weights between optimizer steps move only at 5-step boundaries, to d*avg + (1-d)*current with
    d = 0.95^5 (step/total)^3; after the last step (34, not a boundary) they are the average."""
    start = recorded.forwards[0]["state"]
    shadow = {k: v.double() for k, v in start.items()}
    assert set(start) == set(recorded.final)  # parameters and BatchNorm buffers
    moved_at = []
    for s in range(1, STEPS + 1):
        after = recorded.steps[s - 1]["after"]
        observed = recorded.forwards[s]["state"] if s < STEPS else recorded.final
        if s % 5 == 0:
            d = 0.95**5 * (s / STEPS) ** 3
            shadow = {k: d * shadow[k] + (1 - d) * after[k].double() for k in shadow}
        expected = shadow if s % 5 == 0 or s == STEPS else {k: v.double() for k, v in after.items()}
        for k in shadow:
            assert torch.allclose(observed[k].double(), expected[k], rtol=1e-5, atol=1e-7), (s, k)
        if any(not torch.equal(observed[k], after[k]) for k in after):
            moved_at.append(s)
    assert moved_at == [5, 10, 15, 20, 25, 30, 34]


# ---- augmentation as the loader applies it ------------------------------------------------------------


def test_loader_gets_each_epoch_and_alternating_flip_mirrors_each_image_once_per_two_epochs(recorded):
    masks = flip_masks(recorded, recorded.loader_images)
    assert len(masks) == 4
    assert 0.4 < masks[0].float().mean() < 0.6  # one fair coin per image in the first epoch
    for a, b in zip(masks, masks[1:]):
        assert bool((a ^ b).all())  # each image mirrored in exactly one of the two


def test_random_flip_in_a_real_run_is_half_and_independent_per_epoch(recorded_aug):
    assert recorded_aug.epochs == [0, 1, 2]
    masks = flip_masks(recorded_aug, recorded_aug.loader_images)
    for m in masks:
        assert 0.4 < m.float().mean() < 0.6
    for a, b in zip(masks, masks[1:]):
        assert 0.4 < (a == b).float().mean() < 0.6


def test_translation_is_a_random_crop_of_the_2_pixel_reflect_pad_per_image_and_epoch(recorded):
    offsets = [crop_offsets(before, after, pad=2) for before, after in recorded.translated]
    assert len({tuple(o) for o in offsets[0].tolist()}) == 25  # every shift in -2..2 x -2..2
    assert (offsets[0] != offsets[1]).any(1).float().mean() > 0.8  # drawn again each epoch


def test_airbench96_augmentation_translates_by_4_then_cuts_a_12_pixel_square_inside(recorded_aug):
    assert len(recorded_aug.cut) == len(recorded_aug.translated) == 3
    corners = []
    for (flipped, translated), (before, after) in zip(recorded_aug.translated, recorded_aug.cut):
        offsets = crop_offsets(flipped, translated, pad=4)
        assert offsets.min() == 0 and offsets.max() == 8
        assert torch.equal(before, translated), "cutout comes after translation and flip"
        zero = (after == 0).all(1)  # n, 32, 32
        rows, cols = zero.any(2), zero.any(1)
        assert bool((zero.flatten(1).sum(1) == 144).all())
        assert torch.equal(zero, rows[:, :, None] & cols[:, None, :])  # one square per image
        assert bool((rows.sum(1) == 12).all() and (cols.sum(1) == 12).all())
        assert torch.equal(after[~zero[:, None].expand_as(after)], before[~zero[:, None].expand_as(before)])
        corners += zip(rows.float().argmax(1).tolist(), cols.float().argmax(1).tolist())
    ys, xs = zip(*corners)
    assert min(ys) == min(xs) == 0 and max(ys) == max(xs) == 20  # anywhere, always fully inside


# ---- test-time augmentation in train() ----------------------------------------------------------------


def test_tta_runs_six_views_per_batch_and_weights_them_05_025_025(recorded, data):
    images = data.test_images
    assert len(recorded.eval_views) == 6 * 2  # 300 test images, batches of 250
    up_left_rows = [1] + list(range(31))  # 1-pixel reflect pad, then crop
    down_right_rows = list(range(1, 32)) + [30]
    levels: list[list[torch.Tensor]] = [[], [], []]
    for b, x in enumerate(images.split(250)):
        up_left = x[:, :, up_left_rows][..., up_left_rows]
        down_right = x[:, :, down_right_rows][..., down_right_rows]
        views = dict(
            plain=x,
            mirror=x.flip(-1),
            up_left=up_left,
            up_left_mirror=up_left.flip(-1),
            down_right=down_right,
            down_right_mirror=down_right.flip(-1),
        )
        out = {}
        for seen_input, logits in recorded.eval_views[6 * b : 6 * b + 6]:
            name = [n for n, v in views.items() if v.shape == seen_input.shape and torch.equal(v, seen_input)]
            assert len(name) == 1, "each evaluated input is one of the six views"
            out[name[0]] = logits.double()
        assert set(out) == set(views)
        level1 = 0.5 * out["plain"] + 0.5 * out["mirror"]
        level2 = (
            0.5 * level1
            + 0.25 * (0.5 * out["up_left"] + 0.5 * out["up_left_mirror"])
            + 0.25 * (0.5 * out["down_right"] + 0.5 * out["down_right_mirror"])
        )
        for parts, level in zip(levels, (out["plain"], level1, level2)):
            parts.append(level)
    by_hand = [torch.cat(parts) for parts in levels]
    for level, (used, expected) in enumerate(zip(recorded.tta, by_hand)):
        assert torch.allclose(used.double(), expected, atol=1e-6), level
        predicted = expected.argmax(-1).squeeze(1).numpy()
        assert (recorded.result.predictions[level] == predicted).mean() > 0.99
        labels = data.test_labels.numpy()
        assert recorded.result.accuracy[level] == pytest.approx(
            float((recorded.result.predictions[level] == labels).mean())
        )
    assert not torch.allclose(by_hand[1], by_hand[2], atol=1e-3), "the shifted views change the logits"
