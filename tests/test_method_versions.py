"""One method version per verdict (issue 28.3): an edited method's runs are new runs (the same seeds
train again under the new version, stored beside the old), and every verdict, table and report
counts one version per method, the current one unless asked otherwise, and names it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import study_cli

from airbench_core.simulated import SimulatedData
from harness import store
from harness.report.campaign import load_campaign
from harness.report.verdicts import records_campaign
from harness.report.writer import write_report
from harness.run import campaign
from harness.run.backends import LocalBackend
from harness.spec import methods
from harness.spec.grid import Cell, Study
from harness.spec.identity import method_version
from harness.store.compact import compact

N = 200
METHOD_FILE = """
import dataclasses
from airbench_core.method import Method
from airbench_core.simulated import SimulatedConfig, train as simulated

def train(config, seed, data=None, device="cpu", save_logits=False):
    return simulated(dataclasses.replace(config, accuracy=ACCURACY), seed, data, device, save_logits)

METHOD = Method(name="mine", defaults=SimulatedConfig(run_seconds=0.0, n_test=200), train=train,
                sources=(__file__,))
"""


def write_method(path: Path, accuracy: float) -> str:
    """The method file at one version (the accuracy is in its code, not its config: the run keys stay),
    imported afresh as a new driver would."""
    path.write_text(METHOD_FILE.replace("ACCURACY", repr(accuracy)))
    sys.modules.pop(methods.file_module_name(path.resolve()), None)
    methods._find.cache_clear()
    return f"{path}:METHOD"


def train_study(tmp_path: Path, spec: str, seeds: int, allow: bool = False) -> campaign.Summary:
    method = methods.find_method(spec)
    base = methods.find_method("simulated")
    cells = [
        Cell({"variant": "baseline"}, base.config(run_seconds=0.0, n_test=N), "simulated"),
        Cell({"variant": "mine"}, method.defaults, spec),
    ]
    study = Study("versions", "two versions of one method", grid=lambda preset, b: cells, presets=("full",))
    data = SimulatedData(N)
    backend = LocalBackend("", None, "cpu", False, method=method, method_data=data)
    backend.method = None  # each cell trains its own method: a MethodWorker per spec below
    backend.worker = Workers(data)
    return campaign.run(
        study, "full", seeds, tmp_path / "out", data, backend, progress=False, allow_mixed_versions=allow
    )


class Workers:
    """A local worker that trains each run with the method its cell names (what RunWorker does)."""

    def __init__(self, data):
        self.data = data

    def run(self, specs, save_logits=False):
        from harness.run.method_worker import MethodWorker

        method = methods.find_method(specs[0].cell.method_spec)
        return MethodWorker(method, self.data, "cpu", self.data.fingerprint).run(specs, save_logits)


def test_an_edited_methods_runs_train_again_beside_the_old_and_are_counted_alone(tmp_path):
    spec = write_method(tmp_path / "mine.py", 0.90)
    old = method_version(methods.find_method(spec))
    first = train_study(tmp_path, spec, 4)
    assert first.trained == 8

    spec = write_method(tmp_path / "mine.py", 0.80)  # edited: a new version of the same keys
    new = method_version(methods.find_method(spec))
    assert new != old
    again = train_study(tmp_path, spec, 4, allow=True)
    assert (again.trained, again.skipped) == (4, 4)  # the same seeds train again; the baseline's stay
    compact(tmp_path / "out")  # compaction keeps both versions of a key
    runs, preds = store.load(tmp_path / "out")
    mine = runs[runs["cell"] == "variant=mine"]
    assert sorted(mine["method_version"]) == sorted([old] * 4 + [new] * 4) and len(preds) == 12

    c = load_campaign(tmp_path / "out")
    counted = c.runs[c.runs["cell"] == "variant=mine"]
    assert set(counted["method_version"]) == {new} and sorted(counted["seed"]) == [0, 1, 2, 3]
    assert c.versions.counted[spec] == new and c.versions.set_aside == {(spec, old): 4}
    assert (c.runs["cell"] == "variant=baseline").sum() == 4
    assert abs(counted["acc_tta0"].mean() - 0.80) < 0.05  # the new code's numbers, not a pool

    report = (write_report(tmp_path / "out", study=_study(spec))).read_text()
    assert f"{spec} {new}" in report and f"4 of {spec} at version {old}" in report
    assert "# Method version" not in report  # one version per method: not split into two reports

    # asked otherwise: the old version, alone
    c_old = load_campaign(tmp_path / "out", {spec: old})
    assert set(c_old.runs.loc[c_old.runs["cell"] == "variant=mine", "method_version"]) == {old}
    assert records_campaign(tmp_path / "out").versions.counted[spec] == new

    # more seeds: only the new version's runs are counted, never pooled with the old
    more = train_study(tmp_path, spec, 6, allow=True)
    assert more.trained == 4  # seeds 4 and 5 of both cells
    c = load_campaign(tmp_path / "out")
    assert sorted(c.runs.loc[c.runs["cell"] == "variant=mine", "seed"]) == list(range(6))
    assert set(c.runs.loc[c.runs["cell"] == "variant=mine", "method_version"]) == {new}


def _study(spec: str) -> Study:
    return Study("versions", "", grid=lambda preset, b: [], presets=("full",))


STUDY = """method = "simulated"
primary = "mine"

[base]
run_seconds = 0.0
n_test = 200

[variants.mine]
method = "METHOD"
"""


@pytest.mark.slow
def test_after_an_edit_the_cli_trains_the_same_seeds_again_and_its_verdict_names_the_new_version(
    tmp_path, data_source
):
    path = tmp_path / "mine.py"
    spec = write_method(path, 0.90)
    study = tmp_path / "mine_vs_simulated.toml"
    study.write_text(STUDY.replace("METHOD", spec))
    args = [str(study), "--seeds", "3", "--backend", "local", "--device", "cpu", "--data", data_source]
    args += ["--out", str(tmp_path / "out"), "--store", str(tmp_path / "store")]
    first = study_cli(*args)
    assert first.returncode == 0, first.stderr
    old = method_version(methods.find_method(spec))
    spec = write_method(path, 0.80)
    new = method_version(methods.find_method(spec))
    assert study_cli(*args).returncode == 2  # refused without --allow-mixed-versions
    second = study_cli(*args, "--allow-mixed-versions")
    assert second.returncode == 0, second.stderr
    assert "finished: 3 trained, 3 already done" in second.stdout + second.stderr
    verdicts = second.stdout[second.stdout.index("verdicts") :]
    assert f"{spec} {new}" in verdicts and f"3 of {spec} at version {old}" in verdicts
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"{spec} {new}" in report and "# Method version" not in report


def test_compare_of_two_folders_counts_each_methods_current_version(tmp_path):
    """harness.compare A B reads each study folder as its report does: one version per method."""
    from harness.report.compare import load_sides

    spec = write_method(tmp_path / "mine.py", 0.90)
    train_study(tmp_path, spec, 3)
    spec = write_method(tmp_path / "mine.py", 0.80)
    new = method_version(methods.find_method(spec))
    train_study(tmp_path, spec, 3, allow=True)
    a, _ = load_sides([tmp_path / "out", tmp_path / "out"], None)
    mine = a.runs[a.runs["cell"].str.endswith("variant=mine")]
    assert set(mine["method_version"]) == {new} and sorted(mine["seed"]) == [0, 1, 2]
