"""Run identity: what a key covers, and that keys never drift (golden keys, processes, hash seeds)."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

from airbench_core import TrainConfig
from airbench_core.config import KEY_BASELINE
from harness.spec.grid import Cell, expand

# Every field spelled out, so these keys pin the scheme itself, not today's defaults.
AIRBENCH94 = dict(
    epochs=9.9,
    batch_size=1024,
    lr=11.5,
    momentum=0.85,
    weight_decay=0.0153,
    bias_scaler=64.0,
    label_smoothing=0.2,
    widths=(64, 256, 256),
    convs_per_block=2,
    bn_momentum=0.6,
    logit_scale=1 / 9,
    flip="alternating",
    translate=2,
    cutout=0,
    whiten=True,
    whiten_bias_epochs=3,
    whiten_eps=5e-4,
    whiten_samples=5000,
    identity_init=True,
    lookahead=True,
    lookahead_every=5,
    tta_level=2,
    lr_warmup_frac=0.23,
    lr_start=0.2,
    lr_end=0.07,
    n_train=None,
    n_test=None,
    init_seed=None,
    order_seed=None,
    aug_seed=None,
)
AIRBENCH96 = {
    **AIRBENCH94,
    "epochs": 40.0,
    "lr": 9.0,
    "widths": (128, 512, 512),
    "convs_per_block": 3,
    "cutout": 12,
    "translate": 4,
}
SMOKE = {
    **AIRBENCH94,
    "n_train": 2000,
    "n_test": 1000,
    "widths": (16, 32, 32),
    "batch_size": 100,
    "whiten_samples": 2000,
    "epochs": 2.0,
}
# These literal keys must never change: every store ever written depends on them.
GOLDEN = [
    (AIRBENCH94, 0, "83773f5c7e706267f6e1"),
    (AIRBENCH94, 41, "d157d3ded24ee3bc8c90"),
    (AIRBENCH96, 0, "13457a1b5a7ef747cfde"),
    (SMOKE, 3, "1ba6930d830bf8235f93"),
]


@pytest.mark.parametrize(("fields", "seed", "key"), GOLDEN)
def test_golden_keys_never_change(fields, seed, key):
    assert TrainConfig(**fields).key(seed) == key


# The later records' keys compare against their config classes' defaults: a changed default would
# silently change what a stored key means, so their keys are pinned here too.
GOLDEN_RECORDS = [
    ("airbench94_muon", {}, 0, "b306340387d2c9c20143"),
    ("airbench94_muon", {"epochs": 4.0}, 0, "4abe115e1f95f842bebe"),
    ("airbench96_faster", {}, 1, "07290732c2d232ff4225"),
    ("airbench96_faster", {"epochs": 10.0}, 0, "add522c5ba26fd8ccab4"),
]


@pytest.mark.parametrize(("module", "changes", "seed", "key"), GOLDEN_RECORDS)
def test_golden_keys_of_the_later_records_never_change(module, changes, seed, key):
    import importlib

    method = importlib.import_module(f"airbench_core.{module.split('_', 1)[1]}").METHOD
    assert method.name == module and method.config(**changes).key(seed) == key


def test_the_baseline_covers_every_field_keys_were_defined_with():
    assert set(AIRBENCH94) == set(KEY_BASELINE)


VALID_CHANGE = {
    "convs_per_block": 3,
    "tta_level": 1,
    "flip": "random",
    "momentum": 0.9,
    "bn_momentum": 0.5,
    "translate_mode": "alternating",
}  # in range


def changed(name: str, value):
    """Another valid value of a field."""
    if name in VALID_CHANGE:
        return VALID_CHANGE[name]
    if isinstance(value, bool):
        return not value
    if value is None:
        return 7
    if isinstance(value, tuple):
        return tuple(v * 2 for v in value)
    return value * 2 if value else 1


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrainConfig)])
def test_every_config_field_is_part_of_the_key(name):
    base = TrainConfig()
    other = base.replace(**{name: changed(name, getattr(base, name))})
    assert other.key(0) != base.key(0), f"changing {name} left the key unchanged"


def test_the_seed_is_part_of_the_key_and_spelling_is_not():
    cfg = TrainConfig(epochs=10.0)
    assert len({cfg.key(s) for s in range(1000)}) == 1000
    assert TrainConfig(epochs=10).key(5) == cfg.key(5)
    assert TrainConfig(widths=[64, 256, 256]).key(1) == TrainConfig().key(1)


def test_a_new_field_at_its_default_leaves_every_key_unchanged():
    # as a later version would add a knob whose default reproduces today's behaviour
    Later = dataclasses.make_dataclass(
        "Later", [("new_knob", float, dataclasses.field(default=0.0))], bases=(TrainConfig,), frozen=True
    )
    for fields, seed, key in GOLDEN:
        assert Later(**fields).key(seed) == key
    assert Later(**AIRBENCH94, new_knob=0.5).key(0) != GOLDEN[0][2]


def test_changing_a_default_changes_the_key_of_configs_it_affects():
    # the baseline is frozen: a class default moved to another value is another run
    Moved = dataclasses.make_dataclass(
        "Moved", [("bn_momentum", float, dataclasses.field(default=0.5))], bases=(TrainConfig,), frozen=True
    )
    assert Moved().key(0) != TrainConfig().key(0)
    assert Moved(bn_momentum=0.6).key(0) == TrainConfig().key(0)


def test_expand_gives_one_spec_per_key():
    a, b = TrainConfig(epochs=1.0), TrainConfig(epochs=2.0)
    specs = expand([Cell({"e": 1}, a), Cell({"e": 2}, b), Cell({"same": 1}, a)], 3)
    assert len(specs) == 6 and len({s.key for s in specs}) == 6


SCRIPT = (
    "import json, sys; from airbench_core import TrainConfig; "
    "print(json.dumps([TrainConfig(**f).key(s) for f, s in json.loads(sys.argv[1])]))"
)
CASES = [(f, s) for f, s, _ in GOLDEN] + [({"flip": "none", "epochs": 3}, 9)]


@pytest.mark.parametrize("hash_seed", ["0", "1", "4242", "random"])
def test_keys_are_the_same_in_another_process_and_under_any_hash_seed(hash_seed):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(CASES)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [k for _, _, k in GOLDEN] + [TrainConfig(flip="none", epochs=3.0).key(9)]


# --------------------------------------------------------------------------- method version (issue 20, item 8)


def test_comments_docstrings_and_layout_do_not_change_the_method_version():
    from harness.spec.identity import normalised_source

    code = b'"""Module doc."""\nimport math\n\n\ndef f(x):\n    """Doc."""\n    return math.sqrt(x) + 1  # note\n'
    same = b'import math\n# a comment\ndef f(x):\n    """Another doc."""\n\n    return math.sqrt( x ) + 1\n'
    changed = b"import math\n\n\ndef f(x):\n    return math.sqrt(x) + 2\n"
    only_doc = b'def g():\n    """Only a docstring."""\n'
    assert normalised_source(code) == normalised_source(same)
    assert normalised_source(code) != normalised_source(changed)
    assert normalised_source(only_doc) == normalised_source(b"def g():\n    pass\n")
    assert normalised_source(b"def (:\n") == b"def (:\n"  # unparsable: its bytes


def test_the_method_version_is_the_same_in_a_fresh_process():
    from harness.spec.identity import method_version

    other = subprocess.run(
        [sys.executable, "-c", "from harness.spec.identity import method_version as m; print(m())"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "7"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert other == method_version() and len(other) == 12
