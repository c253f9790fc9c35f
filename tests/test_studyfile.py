"""Study files: good ones give the expected cells, every bad one its one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import tiny_config

from airbench_core import TrainConfig, preset
from harness.spec.errors import UserError
from harness.spec.methods import builtin_names
from harness.spec.studyfile import KINDS, StudyFileError, check_field, load, parse_set

EXAMPLES = Path(__file__).resolve().parent.parent / "studies" / "examples"

AB = """
method = "airbench94"
primary = "B"
[variants.B]
flip = "random"
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- good files


def test_ab_example_parses_to_baseline_and_variant():
    study = load(EXAMPLES / "ab_test.toml")
    assert (study.name, study.method) == ("ab_test", "airbench94")
    assert [c.factors for c in study.cells] == [{"variant": "baseline"}, {"variant": "random_flip"}]
    assert study.cells[0].config == preset("airbench94") == study.base
    assert study.cells[1].config == preset("airbench94", flip="random")
    assert study.baseline is study.cells[0] and study.primary is study.cells[1]
    assert study.comparisons == [(study.cells[1], study.cells[0])]
    assert (study.adaptive.precision, study.adaptive.max_seeds, study.adaptive.min_seeds) == (0.03, 400, 10)
    assert study.adaptive.rule().max_seeds == 400


def test_sweep_example_is_the_product_of_its_values():
    study = load(EXAMPLES / "lr_wd_sweep.toml")
    assert [tuple(c.factors.values()) for c in study.cells] == [
        (lr, wd) for lr in (8.0, 11.5, 14.0) for wd in (0.01, 0.0153, 0.02)
    ]
    assert all(c.config == preset("airbench94", **c.factors) for c in study.cells)
    assert study.baseline.factors == {"lr": 11.5, "weight_decay": 0.0153}
    assert len(study.comparisons) == 8 and study.primary is None and study.adaptive is None


def test_smoke_example_is_tiny_with_half_the_epochs():
    study = load(EXAMPLES / "smoke_half_epochs.toml")
    assert study.base == tiny_config(epochs=2.0)
    assert study.primary.config == tiny_config(epochs=1.0)
    assert study.adaptive.rule().min_seeds == 4


def test_method_grid_primary_and_set_overrides(tmp_path):
    path = write(
        tmp_path,
        """
method = "airbench96"
primary = {lr = 8.0, widths = [64, 128, 128]}
[base]
epochs = 10
n_train = 5000
[grid]
lr = [9, 8.0]
widths = [[128, 512, 512], [64, 128, 128]]
[adaptive]
precision = 0.1
max_seeds = 50
""",
    )
    study = load(path)
    assert study.base == preset("airbench96", epochs=10.0, n_train=5000)
    assert isinstance(study.cells[0].config.lr, float) and study.cells[0].factors["widths"] == (128, 512, 512)
    assert study.baseline is study.cells[0] and study.primary is study.cells[3]
    assert study.primary.config == preset(
        "airbench96", epochs=10.0, n_train=5000, lr=8.0, widths=(64, 128, 128)
    )
    changed = load(path, overrides=parse_set(["n_train=none", "epochs=12"]))
    assert changed.base == preset("airbench96", epochs=12.0)
    assert changed.cells[3].config.lr == 8.0 and changed.cells[3].config.n_train is None
    with pytest.raises(StudyFileError, match="primary: no grid cell equals the base config"):
        load(path, method="airbench95")  # its base lr 10.0 is not in the grid


def test_method_and_set_change_every_cell_but_variants_still_override(tmp_path):
    study = load(write(tmp_path, AB), overrides=parse_set(["flip=none", "epochs=3"]), method="airbench95")
    assert study.base == preset("airbench95", flip="none", epochs=3.0)
    assert study.primary.config == preset("airbench95", flip="random", epochs=3.0)


def test_set_values_share_the_field_checks():
    assert parse_set(
        [
            "lr=13",
            "flip=random",
            "widths=32,64,64",
            "n_test=none",
            "lookahead=False",
            "batch_size=512",
            'flip="none"',
        ]
    ) == {
        "lr": 13.0,
        "flip": "none",
        "widths": (32, 64, 64),
        "n_test": None,
        "lookahead": False,
        "batch_size": 512,
    }
    assert parse_set(["widths=[8, 16, 16]"]) == {"widths": (8, 16, 16)}


def test_every_config_field_accepts_its_default():
    for field in dataclasses.fields(TrainConfig):
        default = getattr(TrainConfig(), field.name)
        assert check_field(field.name, default, "t") == default
    assert set(KINDS) == {f.name for f in dataclasses.fields(TrainConfig)}


# --------------------------------------------------------------------------- bad files

BUILTINS = ", ".join(builtin_names())

BAD = {
    "unknown field": (
        'method = "airbench94"\n[base]\nlrr = 1.0\n[variants.B]\nflip = "random"\n',
        "base.lrr: unknown TrainConfig field (did you mean lr?)",
    ),
    "wrong type": (
        'method = "airbench94"\n[base]\nlr = "x"\n[variants.B]\nflip = "random"\n',
        "base.lr: expected a number, got 'x'",
    ),
    "grid not a list": (
        'method = "airbench94"\n[grid]\nlr = "x"\n',
        "grid.lr: expected a list of numbers, got 'x'",
    ),
    "grid element": (
        'method = "airbench94"\n[grid]\nlr = [10.0, "x"]\n',
        "grid.lr: expected a list of numbers, got 'x'",
    ),
    "empty grid": (
        'method = "airbench94"\n[grid]\n',
        "grid: expected at least one FIELD = [values] (the grid is empty)",
    ),
    "empty grid values": (
        'method = "airbench94"\n[grid]\nepochs = []\n',
        "grid.epochs: expected a non-empty list of numbers, got []",
    ),
    "repeated grid value": (
        'method = "airbench94"\n[grid]\nbatch_size = [512, 512]\n',
        "grid.batch_size: expected distinct values, got 512 twice",
    ),
    "unknown method": (
        'method = "airbench97"\n[variants.B]\nflip = "random"\n',
        "method: unknown method 'airbench97' (did you mean airbench96? expected a built-in name, "
        f"package.module:NAME or path/to/file.py:NAME; built-ins: {BUILTINS})",
    ),
    "missing method": (
        '[variants.B]\nflip = "random"\n',
        f"method: missing; expected a built-in ({BUILTINS}), package.module:NAME or path/to/file.py:NAME",
    ),
    "unknown primary": (
        'method = "airbench94"\nprimary = "C"\n[variants.B]\nflip = "random"\n',
        "primary: expected one of the variants (B), got 'C'",
    ),
    "unmatched grid primary": (
        'method = "airbench94"\nprimary = {lr = 3.0}\n[grid]\nlr = [11.5, 9.0]\n',
        "primary: expected grid values naming one cell, e.g. {lr = 9.0}; 0 cells match",
    ),
    "primary without baseline": (
        'method = "airbench94"\nprimary = {lr = 9.0}\n[grid]\nlr = [10.0, 9.0]\n',
        "primary: no grid cell equals the base config, so there is no baseline to "
        "compare with; add the base values to the grid",
    ),
    "both": (
        'method = "airbench94"\n[variants.B]\nflip = "random"\n[grid]\nlr = [1.0]\n',
        "grid: expected either [variants] or [grid], not both",
    ),
    "neither": (
        'method = "airbench94"\n',
        "variants: missing; expected a [variants] table, a [grid] table or a [claim] table",
    ),
    "unknown top key": (
        'method = "airbench94"\nvariant = 1\n',
        "variant: unknown key (did you mean variants? expected method, description, primary, "
        "base, variants, grid, adaptive, claim)",
    ),
    "bad flip": (
        'method = "airbench94"\n[variants.B]\nflip = "sideways"\n',
        "variants.B.flip: expected one of none, random, alternating, got 'sideways'",
    ),
    "bad widths": (
        'method = "airbench94"\n[variants.B]\nwidths = [16, 32]\n',
        "variants.B.widths: expected a list of three whole numbers, got [16, 32]",
    ),
    "float for int": (
        'method = "airbench94"\n[variants.B]\nbatch_size = 100.5\n',
        "variants.B.batch_size: expected a whole number, got 100.5",
    ),
    "int for bool": (
        'method = "airbench94"\n[variants.B]\nlookahead = 0\n',
        "variants.B.lookahead: expected true or false, got 0",
    ),
    "config check": (
        'method = "airbench94"\n[variants.B]\ntta_level = 5\n',
        "variants.B: tta_level must be 0, 1 or 2, not 5",
    ),
    "variant same as base": (
        'method = "airbench94"\n[variants.B]\nflip = "alternating"\n',
        "variants.B: expected at least one override that differs from the base config",
    ),
    "variant named baseline": (
        'method = "airbench94"\n[variants.baseline]\nflip = "random"\n',
        "variants.baseline: the name 'baseline' is the base config; choose another name",
    ),
    "adaptive precision": (
        AB + "[adaptive]\nprecision = -1\nmax_seeds = 10\n",
        "adaptive.precision: expected a positive number of points, got -1",
    ),
    "adaptive missing": (AB + "[adaptive]\nprecision = 0.1\n", "adaptive.max_seeds: missing"),
    "adaptive unknown": (
        AB + "[adaptive]\nprecision = 0.1\nmax_seeds = 10\nalpha = 0.1\n",
        "adaptive.alpha: unknown key (expected precision, max_seeds, min_seeds)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_gets_one_line_naming_file_and_key(tmp_path, case):
    text, expected = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(StudyFileError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: {expected}"
    assert isinstance(caught.value, UserError)  # the CLI's one-line, exit-2 path


def test_malformed_toml_and_missing_file(tmp_path):
    path = write(tmp_path, 'method = "airbench94"\n[base\nlr = 1\n', "broken.toml")
    with pytest.raises(StudyFileError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid TOML: ") and "line 2" in message and "\n" not in message
    with pytest.raises(StudyFileError, match=r"nothere\.toml: cannot read \(No such file or directory\)$"):
        load(tmp_path / "nothere.toml")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("lr=x", "--set lr: expected a number, got 'x'"),
        ("lrr=1", "--set lrr: unknown TrainConfig field (did you mean lr?)"),
        ("lr", "--set lr: expected FIELD=VALUE"),
        ("flip=sideways", "--set flip: expected one of none, random, alternating, got 'sideways'"),
        ("widths=16,32", "--set widths: expected a list of three whole numbers, got [16, 32]"),
        ("n_train=lots", "--set n_train: expected a whole number or \"none\", got 'lots'"),
    ],
)
def test_bad_set_values(item, expected):
    with pytest.raises(StudyFileError) as caught:
        parse_set([item])
    assert str(caught.value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'method = "airbench94"\n[variants.B]\nbatch_size = true\n',
            "variants.B.batch_size: expected a whole number, got true",
        ),
        ('method = "airbench94"\n[variants.B]\nlr = true\n', "variants.B.lr: expected a number, got true"),
        (
            'method = "airbench94"\n[grid]\nepochs = [1.0, false]\n',
            "grid.epochs: expected a list of numbers, got false",
        ),
    ],
)
def test_a_boolean_is_not_a_number(tmp_path, text, expected):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    with pytest.raises(StudyFileError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: {expected}"
    with pytest.raises(StudyFileError, match="--set batch_size: expected a whole number, got true"):
        parse_set(["batch_size=true"])


def test_the_primary_comparison_comes_first(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('method = "airbench94"\nprimary = {lr = 14.0}\n[grid]\nlr = [8.0, 11.5, 10.0, 14.0]\n')
    study = load(path)
    assert [c.factors["lr"] for c, base in study.comparisons] == [14.0, 8.0, 10.0]
    assert all(base is study.baseline for _, base in study.comparisons)


# --------------------------------------------------------------------------- numbers in range (issue 20, item 4)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("lr=nan", "--set lr: expected between 1e-06 and 1e+06, got nan"),
        ("lr=0", "--set lr: expected between 1e-06 and 1e+06, got 0.0"),
        ("epochs=inf", "--set epochs: expected a number above 0 and at most 1000, got inf"),
        ("epochs=1e300", "--set epochs: expected a number above 0 and at most 1000, got 1e+300"),
        ("n_train=-5", "--set n_train: expected between 1 and 50000, got -5"),
        ("n_test=20000", "--set n_test: expected between 1 and 10000, got 20000"),
        ("widths=100000,64,64", "--set widths: expected between 1 and 4096, got 100000"),
        ("label_smoothing=1.5", "--set label_smoothing: expected between 0 and 1, got 1.5"),
        ("lr_warmup_frac=-0.1", "--set lr_warmup_frac: expected between 0 and 1, got -0.1"),
        ("momentum=-inf", "--set momentum: expected between 0 and 1, got -inf"),
    ],
)
def test_set_values_must_be_finite_and_in_range(item, expected):
    with pytest.raises(StudyFileError) as caught:
        parse_set([item])
    assert str(caught.value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'method = "airbench94"\n[base]\nlr = nan\n[variants.B]\nflip = "random"\n',
            "base.lr: expected between 1e-06 and 1e+06, got nan",
        ),
        (
            'method = "airbench94"\n[grid]\nepochs = [1.0, inf]\n',
            "grid.epochs: expected a number above 0 and at most 1000, got inf",
        ),
        (
            'method = "airbench94"\n[variants.B]\nbn_momentum = 2.0\n',
            "variants.B.bn_momentum: expected between 0 and 1, got 2.0",
        ),
        (
            AB + "[adaptive]\nprecision = inf\nmax_seeds = 10\n",
            "adaptive.precision: expected a positive number of points, got inf",
        ),
    ],
)
def test_study_file_numbers_must_be_finite_and_in_range(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(StudyFileError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: {expected}"


def test_train_config_itself_refuses_values_out_of_range():
    for bad in (
        dict(lr=float("nan")),
        dict(epochs=float("inf")),
        dict(n_train=0),
        dict(widths=(16, 0, 16)),
        dict(whiten_eps=0.0),
        dict(init_seed=-1),
    ):
        with pytest.raises(ValueError):
            tiny_config(**bad)
    for field in dataclasses.fields(TrainConfig):
        for p in preset("airbench94"), preset("airbench96"):
            assert check_field(field.name, getattr(p, field.name), "t") == getattr(p, field.name)
