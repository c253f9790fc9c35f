"""Methods are plugins of one registry: built-ins and a researcher's own file resolve the same way, their
keys and versions go through the method, and the listing commands import no torch. Instant: no training."""

import dataclasses
import subprocess
import sys

import pytest
from helpers import ROOT
from test_identity import GOLDEN

from airbench_core import TrainConfig
from harness.spec.errors import UserError
from harness.spec.grid import Base, Cell, RunSpec
from harness.spec.identity import method_version, source_version
from harness.spec.methods import builtin_names, find_method
from harness.spec.studyfile import StudyFileError, load, parse_set

EXAMPLE = ROOT / "studies" / "examples" / "custom_method"
EXAMPLE_METHOD = "studies/examples/custom_method/head_adam.py:METHOD"


def test_the_paper_methods_are_registered_with_help_for_every_field():
    assert builtin_names()[:3] == ["airbench94", "airbench95", "airbench96"]
    for name in ("airbench94", "airbench95", "airbench96"):
        m = find_method(name)
        assert m is find_method(f"airbench_core.methods:{name.upper()}")  # a built-in is a module:NAME entry
        assert m.name == name and isinstance(m.defaults, TrainConfig) and m.train_many is not None
        assert set(m.field_help) == {f.name for f in dataclasses.fields(TrainConfig)}
        assert all(m.field_help.values()) and m.reference_seconds_per_epoch > 0


@pytest.mark.parametrize(("fields", "seed", "key"), GOLDEN)
def test_golden_keys_through_the_method_and_the_run_spec(fields, seed, key):
    config = TrainConfig(**fields)
    assert find_method("airbench94").key(config, seed) == key == find_method("airbench96").key(config, seed)
    assert RunSpec(Cell({}, config), seed).key == key == RunSpec(Cell({}, config, "airbench95"), seed).key


def test_a_method_file_resolves_by_path_and_keys_under_its_own_name():
    m = find_method(EXAMPLE_METHOD)
    assert m is find_method(str(EXAMPLE / "head_adam.py") + ":METHOD")  # one module per file
    assert m.name == "airbench94_head_adam" and {"head_optimizer", "head_lr"} <= set(m.field_help)
    config = m.config(head_optimizer="sgd")
    # the same fields as airbench94 (head_optimizer=sgd trains airbench94 itself) are another method's runs
    plain = TrainConfig(**{f.name: getattr(config, f.name) for f in dataclasses.fields(TrainConfig)})
    assert m.key(config, 0) != plain.key(0)
    assert Base(EXAMPLE_METHOD, (("head_lr", 0.01),)).config("smoke").widths == (16, 32, 32)
    assert method_version(m) != method_version("airbench94")


BAD = {
    "airbench97": "unknown method 'airbench97' (did you mean airbench96?",
    "airbench_core.methods:AIRBENCH9": "has no attribute AIRBENCH9 (did you mean airbench_core.methods:AIRBENCH96?)",
    "no_such_package.mod:METHOD": "no module named no_such_package.mod",
    "airbench_core.methods:FIELD_HELP": "FIELD_HELP is a dict, not an airbench_core.method.Method",
    "missing/file.py:METHOD": "no file",
}


@pytest.mark.parametrize("spec", list(BAD))
def test_a_spec_naming_nothing_usable_is_one_line(spec):
    with pytest.raises(UserError) as caught:
        find_method(spec)
    assert BAD[spec] in str(caught.value) and "\n" not in str(caught.value)


def test_a_method_file_that_fails_to_import_is_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("import no_such_thing\n")
    with pytest.raises(UserError, match="importing .*broken.py failed: ModuleNotFoundError"):
        find_method(f"{tmp_path / 'broken.py'}:METHOD")


def test_editing_a_method_file_changes_its_version(tmp_path):
    source = (EXAMPLE / "head_adam.py").read_text()
    path = tmp_path / "mine.py"
    path.write_text(source)
    before = source_version(find_method(f"{path}:METHOD"))
    path.write_text(source + "\n# a comment is no change to the method\n")
    assert source_version(find_method(f"{path}:METHOD")) == before
    path.write_text(source + "\nHEAD_LR_FLOOR = 1e-6\n")
    assert source_version(find_method(f"{path}:METHOD")) != before


def test_a_worker_reports_the_version_of_the_code_it_imported_not_of_the_file_now_on_disk(tmp_path):
    """A long-lived worker keeps running the method it imported; an edit on disk is not its code."""
    from harness.run.method_worker import MethodWorker

    source = (EXAMPLE / "head_adam.py").read_text()
    path = tmp_path / "pinned.py"
    path.write_text(source)
    method = find_method(f"{path}:METHOD")
    imported = method_version(method)
    path.write_text(source + "\nHEAD_LR_FLOOR = 1e-6\n")
    assert source_version(method) != imported  # the file changed on disk
    assert method_version(method) == imported  # the code this process runs did not
    assert method_version(find_method(f"{path}:METHOD")) == imported
    assert MethodWorker(method).identity["method_version"] == imported


def test_set_and_study_files_check_the_methods_own_fields(tmp_path):
    m = find_method(EXAMPLE_METHOD)
    assert parse_set(["head_lr=0.01", "widths=8,16,16"], config_type=m.config_type) == {
        "head_lr": 0.01,
        "widths": (8, 16, 16),
    }
    with pytest.raises(StudyFileError, match="--set head_lr: unknown TrainConfig field"):
        parse_set(["head_lr=0.01"])
    path = tmp_path / "s.toml"
    path.write_text(
        f'method = "airbench94"\n[base]\nepochs = 2.0\n[variants.mine]\nmethod = "{EXAMPLE_METHOD}"\n'
        'head_lr = "fast"\n'
    )
    with pytest.raises(StudyFileError, match=r"variants.mine.head_lr: expected a number, got 'fast'"):
        load(path)
    study = load(EXAMPLE / "head_adam_vs_airbench94.toml")
    baseline, mine = study.cells
    assert (baseline.method, mine.method) == ("airbench94", EXAMPLE_METHOD)
    assert (
        mine.config.n_train == baseline.config.n_train == 1000 and mine.config.epochs == 2.0
    )  # the base sizes
    changed = load(EXAMPLE / "head_adam_vs_airbench94.toml", set_items=["epochs=1"])
    assert {c.config.epochs for c in changed.cells} == {1.0}


@pytest.mark.parametrize(
    "args", [["--list-methods"], ["--list-fields", "airbench94"], ["--list-fields", EXAMPLE_METHOD]]
)
def test_listing_imports_neither_torch_nor_ray(args):
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "harness.study", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "ray"}
    if args == ["--list-methods"]:
        assert all(name in r.stdout for name in builtin_names())
    else:
        line = next(line for line in r.stdout.splitlines() if line.split()[:1] == ["label_smoothing"])
        assert "a number" in line and "0.2" in line and "label smoothing" in line
        if args[1] == EXAMPLE_METHOD:
            assert any(line.split()[:1] == ["head_lr"] for line in r.stdout.splitlines())
