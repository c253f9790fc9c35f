"""The paper's three methods (airbench94, airbench95, airbench96) as :class:`Method` objects.

They are presets of one config (:class:`TrainConfig`) trained by one loop (``train.train`` and its
packed/pooled/compiled fast path ``train.train_many``). The harness finds them the way it finds a
researcher's own method: ``airbench_core.methods:AIRBENCH94`` (or by the short name). No torch is
imported until a run trains.

Their run keys hash the name ``airbench`` against the frozen ``KEY_BASELINE`` (as ``TrainConfig.key``
always did), so the keys of every existing store stay what they were.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .config import _BASELINE_ITEMS, METHOD_NAME, PRESETS, TrainConfig
from .method import Method

# One line per field: what --list-fields prints and what a study file may set.
FIELD_HELP: dict[str, str] = {
    "epochs": "training epochs (fractional: the last epoch stops part-way)",
    "batch_size": "training examples per optimizer step",
    "lr": "learning rate per 1024 examples, decoupled from momentum (SGD with Nesterov)",
    "momentum": "Nesterov momentum of SGD",
    "weight_decay": "weight decay per 1024 examples, decoupled from lr",
    "bias_scaler": "lr multiplier of the BatchNorm biases (1.0 turns bias scaling off)",
    "label_smoothing": "label smoothing of the cross-entropy loss (0 turns it off)",
    "widths": "channels of the three conv blocks",
    "convs_per_block": "convolutions per block: 2, or 3 (a residual third conv, airbench96)",
    "bn_momentum": "weight BatchNorm keeps on its old running statistics at each step",
    "logit_scale": "multiplier of the head's output logits",
    "flip": "horizontal flip augmentation: none, random (per image, per epoch) or alternating (derandomized)",
    "translate": "random translation augmentation in pixels (reflect-padded crops); 0 turns it off",
    "flip_switch_epoch": "with flip alternating: random flips in epochs before this one, alternating from it on (0: alternating throughout)",
    "translate_mode": "random (a fresh offset per image and epoch) or alternating (each image walks its own permutation of the offsets, no repeat before all are seen)",
    "cutout": "side of the cutout square in pixels; 0 turns it off (airbench96: 12)",
    "whiten": "a frozen patch-whitening first convolution fitted from the data; false: a trained conv",
    "whiten_bias_epochs": "epochs during which the whitening conv's bias trains (then frozen)",
    "whiten_eps": "eigenvalue regulariser of the whitening filters",
    "whiten_samples": "training images the whitening filters are fitted on",
    "identity_init": "convolutions start as identity (Dirac) on their first input channels",
    "lookahead": "Lookahead averaging of the weights (the average is the final network)",
    "lookahead_every": "steps between Lookahead updates",
    "lookahead_start_epoch": "epoch at whose first Lookahead boundary the average starts (airbench96: 3)",
    "lookahead_copyback": "once started, every epoch ends with the weights set to the average (airbench96)",
    "tta_level": "the headline test-time-augmentation level (0 none, 1 flip, 2 flip and shifts); all three are measured",
    "lr_warmup_frac": "fraction of the steps over which the lr warms up linearly from lr_start to 1",
    "lr_start": "lr multiplier at the first step (warmup start)",
    "lr_end": "lr multiplier at the last step (linear decay from 1 after warmup)",
    "n_train": 'training images used (a fixed subset; "none": all 50,000)',
    "n_test": 'test images evaluated (a fixed subset; "none": all 10,000)',
    "init_seed": 'pin the initialization stream across seeds ("none": derived from the run seed)',
    "order_seed": 'pin the data-order stream across seeds ("none": derived from the run seed)',
    "aug_seed": 'pin the augmentation stream across seeds ("none": derived from the run seed)',
}
assert set(FIELD_HELP) == {f.name for f in dataclasses.fields(TrainConfig)}, (
    "every TrainConfig field has help"
)

CORE_DIR = Path(__file__).resolve().parent
# Modules of the other built-in methods: their own versions, not the paper methods'.
OTHER_METHOD_MODULES = ("muon", "faster")


def core_sources() -> tuple[str, ...]:
    """The files whose code defines the paper's methods: every ``airbench_core/*.py`` but the other
    methods' modules (the same hash the store has always recorded as the method version)."""
    return tuple(str(p) for p in sorted(CORE_DIR.glob("*.py")) if p.stem not in OTHER_METHOD_MODULES)


def train(config, seed, data, device="cpu", save_logits=False, compile=False, pool=None):
    """One run (see ``airbench_core.train.train``); torch is imported on the first call."""
    from .train import train as train_one

    return train_one(config, seed, data, device, save_logits, compile, pool)


def train_many(config, seeds, data, device="cpu", save_logits=False, compile=False, pool=None):
    """Packed runs of one config (see ``airbench_core.train.train_many``)."""
    from .train import train_many as train_packed

    return train_packed(config, seeds, data, device, save_logits, compile, pool)


# Wall seconds per epoch on one H200, uncompiled: airbench94 about 2.65 s per 9.9-epoch run; the
# others scaled from it by the paper's A100 times (3.83 s, 10.4 s, 46.3 s).
_SECONDS_PER_EPOCH = {"airbench94": 0.27, "airbench95": 0.48, "airbench96": 0.80}
_SUMMARY = {
    "airbench94": "the paper's 94% method: 9.9 epochs, widths 64/256/256, SGD + Lookahead, alternating flip",
    "airbench95": "the paper's 95% method: airbench94 at widths 128/384/384, 15 epochs",
    "airbench96": "the paper's 96% method: widths 128/512/512, 3 convs per block, cutout 12, 40 epochs",
}


def _method(name: str) -> Method:
    return Method(
        name=name,
        defaults=PRESETS[name],
        train=train,
        summary=_SUMMARY[name],
        field_help=FIELD_HELP,
        sources=core_sources(),
        train_many=train_many,
        reference_seconds_per_epoch=_SECONDS_PER_EPOCH[name],
        key_name=METHOD_NAME,
        key_baseline=_BASELINE_ITEMS,
    )


AIRBENCH94 = _method("airbench94")
AIRBENCH95 = _method("airbench95")
AIRBENCH96 = _method("airbench96")
BUILTIN_METHODS: dict[str, Method] = {m.name: m for m in (AIRBENCH94, AIRBENCH95, AIRBENCH96)}
