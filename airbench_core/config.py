"""One dataclass holds every knob of the method; presets are just instances of it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

from .method import ConfigMethods

FLIP_MODES = ("none", "random", "alternating")
TRANSLATE_MODES = ("random", "alternating")
CIFAR_SIZES = {"n_train": 50_000, "n_test": 10_000}  # images in CIFAR-10's training and test sets
MAX_WIDTH = 4096  # channels per block: beyond this a width is a typo, not an experiment
MAX_EPOCHS = 1000.0
# Rates, decays and scales: every value in [RATE_MIN, RATE_MAX] trains without overflow (a learning
# rate of 1e308, or one so small that weight decay / lr overflows float32, fails only at run time).
RATE_MIN, RATE_MAX = 1e-6, 1e6

# Every numeric field's range: (low, high, low_open); math.inf: no upper bound. Names are shared by
# every method's config (airbench94_muon's and airbench96_faster's fields are listed here too).
# Optional fields (n_train, init_seed, ...) may also be None; tta_level and convs_per_block take a
# few values, checked in TrainConfig.__post_init__.
_INF = math.inf
RANGES: dict[str, tuple[float, float, bool]] = {
    "epochs": (0, MAX_EPOCHS, True),
    "batch_size": (1, 50_000, False),
    "lr": (RATE_MIN, RATE_MAX, False),
    "momentum": (0, 1, False),
    "weight_decay": (0, RATE_MAX, False),
    "bias_scaler": (RATE_MIN, RATE_MAX, False),
    "label_smoothing": (0, 1, False),
    "widths": (1, MAX_WIDTH, False),
    "bn_momentum": (0, 1, False),
    "logit_scale": (RATE_MIN, RATE_MAX, False),
    "proxy_logit_scale": (RATE_MIN, RATE_MAX, False),
    "logit_divisor": (RATE_MIN, RATE_MAX, False),
    "muon_lr": (RATE_MIN, RATE_MAX, False),
    "whiten_bias_lr": (RATE_MIN, RATE_MAX, False),
    "norm_bias_lr": (RATE_MIN, RATE_MAX, False),
    "head_lr": (RATE_MIN, RATE_MAX, False),
    "translate": (0, 16, False),
    "flip_switch_epoch": (0, MAX_EPOCHS, False),
    "cutout": (0, 32, False),
    "whiten_bias_epochs": (0, MAX_EPOCHS, False),
    "whiten_eps": (0, RATE_MAX, True),
    "whiten_samples": (1, CIFAR_SIZES["n_train"], False),
    "lookahead_every": (1, 1_000_000, False),
    "lookahead_start_epoch": (0, MAX_EPOCHS, False),
    "lr_warmup_frac": (0, 1, False),
    "lr_start": (0, RATE_MAX, False),
    "lr_end": (0, RATE_MAX, False),
    "n_train": (1, CIFAR_SIZES["n_train"], False),
    "n_test": (1, CIFAR_SIZES["n_test"], False),
    "init_seed": (0, 2**63 - 1, False),
    "order_seed": (0, 2**63 - 1, False),
    "aug_seed": (0, 2**63 - 1, False),
}


def _range_text(low: float, high: float, low_open: bool) -> str:
    if high == _INF:
        return "a positive number" if low_open and low == 0 else f"a number of at least {low:g}"
    if low_open:
        return f"a number above {low:g} and at most {high:g}"
    return f"between {low:g} and {high:g}"


def out_of_range(name: str, value) -> tuple[str, object] | None:
    """(what ``name`` accepts, the offending value) when ``value`` (or an element of it) is not a
    finite number in the field's range; None when it fits. NaN and infinities compare False with
    every bound, so they are caught here rather than at run time."""
    if name not in RANGES or value is None:
        return None
    low, high, low_open = RANGES[name]
    for v in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "a number", v
        if not math.isfinite(v) or v < low or v > high or (low_open and v == low):
            return _range_text(low, high, low_open), v
    return None


def field_problem(name: str, value) -> str | None:
    """Why ``value`` does not fit the numeric field ``name``, as one phrase; None when it fits."""
    bad = out_of_range(name, value)
    return f"{name} must be {bad[0]}, not {bad[1]!r}" if bad else None


def range_problems(config) -> list[str]:
    """Why any of a config's numeric fields is out of its range (RANGES, by field name), one phrase
    each: every method's config checks its fields the same way, however it was built."""
    return [
        p for p in (field_problem(f.name, getattr(config, f.name)) for f in dataclasses.fields(config)) if p
    ]


@dataclass(frozen=True)
class TrainConfig(ConfigMethods):
    """airbench94 by default. Each ``bool``/mode field turns one feature of the method off. Keys hash
    the name "airbench" and compare against KEY_BASELINE (below), frozen on purpose."""

    KEY_NAME: ClassVar[str] = "airbench"

    epochs: float = 9.9
    batch_size: int = 1024
    lr: float = 11.5  # per 1024 examples, decoupled from momentum
    momentum: float = 0.85
    weight_decay: float = 0.0153  # per 1024 examples, decoupled from lr
    bias_scaler: float = 64.0  # BatchNorm-bias lr multiplier; 1.0 turns bias scaling off
    label_smoothing: float = 0.2
    widths: tuple[int, int, int] = (64, 256, 256)
    convs_per_block: int = 2  # 3 adds a residual third conv (airbench96)
    bn_momentum: float = 0.6  # weight kept on the old running statistics
    logit_scale: float = 1 / 9
    # augmentation
    flip: str = "alternating"  # none | random | alternating
    translate: int = 2
    cutout: int = 0
    # derandomized augmentation beyond alternating flip (both leave run keys alone at their default)
    flip_switch_epoch: int = 0  # k > 0 with flip "alternating": random flips before epoch k
    translate_mode: str = "random"  # random | alternating (each image cycles its own offset order)
    # features that ablations switch off
    whiten: bool = True
    whiten_bias_epochs: int = 3
    whiten_eps: float = 5e-4
    whiten_samples: int = 5000
    identity_init: bool = True
    lookahead: bool = True
    lookahead_every: int = 5
    lookahead_start_epoch: int = 0  # airbench96: the average starts at the first boundary of epoch 3
    lookahead_copyback: bool = False  # airbench96: once started, every epoch ends with current <- avg
    tta_level: int = 2  # the headline level; all three are always measured
    # LR schedule: linear warmup_start -> 1 over warmup_frac of steps, then linear to end
    lr_warmup_frac: float = 0.23
    lr_start: float = 0.2
    lr_end: float = 0.07
    # data subset (smoke runs); None means all of it
    n_train: int | None = None
    n_test: int | None = None
    # pin one source of randomness across seeds (None: derived from the run's seed)
    init_seed: int | None = None
    order_seed: int | None = None
    aug_seed: int | None = None

    def __post_init__(self) -> None:
        problems = range_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.flip not in FLIP_MODES:
            problems.append(f"flip must be one of {', '.join(FLIP_MODES)}, not {self.flip!r}")
        if self.translate_mode not in TRANSLATE_MODES:
            problems.append(
                f"translate_mode must be one of {', '.join(TRANSLATE_MODES)}, not {self.translate_mode!r}"
            )
        if isinstance(self.flip_switch_epoch, bool) or not isinstance(self.flip_switch_epoch, int):
            problems.append(f"flip_switch_epoch must be a whole epoch, not {self.flip_switch_epoch!r}")
        elif self.flip_switch_epoch and self.flip != "alternating":
            problems.append("flip_switch_epoch switches to alternating flip: it needs flip = alternating")
        if self.tta_level not in (0, 1, 2):
            problems.append(f"tta_level must be 0, 1 or 2, not {self.tta_level}")
        if self.convs_per_block not in (2, 3):
            problems.append("convs_per_block must be 2 or 3")
        if len(self.widths) != 3:
            problems.append("widths must have three entries")
        if problems:
            raise ValueError("; ".join(problems))


METHOD_NAME = "airbench"
# The values keys were first defined against, frozen on purpose: changing a default in the class
# above must change the key of the configs it affects, so keys compare against this, not the class.
KEY_BASELINE: dict = {
    "epochs": 9.9,
    "batch_size": 1024,
    "lr": 11.5,
    "momentum": 0.85,
    "weight_decay": 0.0153,
    "bias_scaler": 64.0,
    "label_smoothing": 0.2,
    "widths": [64, 256, 256],
    "convs_per_block": 2,
    "bn_momentum": 0.6,
    "logit_scale": 1 / 9,
    "flip": "alternating",
    "translate": 2,
    "cutout": 0,
    "whiten": True,
    "whiten_bias_epochs": 3,
    "whiten_eps": 5e-4,
    "whiten_samples": 5000,
    "identity_init": True,
    "lookahead": True,
    "lookahead_every": 5,
    "tta_level": 2,
    "lr_warmup_frac": 0.23,
    "lr_start": 0.2,
    "lr_end": 0.07,
    "n_train": None,
    "n_test": None,
    "init_seed": None,
    "order_seed": None,
    "aug_seed": None,
}
_BASELINE_ITEMS = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in KEY_BASELINE.items())
TrainConfig.KEY_BASELINE = _BASELINE_ITEMS


PRESETS: dict[str, TrainConfig] = {
    "airbench94": TrainConfig(),
    "airbench95": TrainConfig(epochs=15.0, lr=10.0, widths=(128, 384, 384)),
    "airbench96": TrainConfig(
        epochs=40.0,
        lr=9.0,
        widths=(128, 512, 512),
        convs_per_block=3,
        cutout=12,
        translate=4,
        lookahead_start_epoch=3,
        lookahead_copyback=True,
    ),
}


def preset(name: str, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    return PRESETS[name].replace(**overrides)
