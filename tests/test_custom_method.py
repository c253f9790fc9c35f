"""The custom-method example end to end through the CLI: a researcher's method file compared with
airbench94 by --until decided on the CPU, resumed, then refused once the method file is edited."""

import json
import re

from helpers import ROOT, snapshot, study_cli

from harness import store
from harness.spec.identity import method_version, source_version
from harness.spec.methods import find_method

EXAMPLE = ROOT / "studies" / "examples" / "custom_method"
# smaller than the example's own sizes: this machine's CPU is shared
TINY = [
    "--set",
    "n_train=500",
    "--set",
    "n_test=200",
    "--set",
    "widths=8,16,16",
    "--set",
    "whiten_samples=200",
    "--set",
    "epochs=0.5",
]


def test_custom_method_decided_resumed_and_refused_after_an_edit(data_source, tmp_path):
    method_file = tmp_path / "head_adam.py"  # a copy, so the test can edit it
    method_file.write_text((EXAMPLE / "head_adam.py").read_text())
    spec = f"{method_file}:METHOD"
    text = (EXAMPLE / "head_adam_vs_airbench94.toml").read_text()
    study = tmp_path / "head_adam_vs_airbench94.toml"
    study.write_text(text.replace("studies/examples/custom_method/head_adam.py:METHOD", spec))
    out, root = tmp_path / "out", tmp_path / "store"
    args = [
        str(study),
        "--until",
        "decided",
        "--device",
        "cpu",
        "--backend",
        "local",
        "--data",
        data_source,
        "--out",
        str(out),
        "--store",
        str(root),
        *TINY,
        "--min-seeds",
        "3",
    ]

    first = study_cli(*args, "--max-seeds", "3", timeout=1200)
    assert first.returncode == 0, first.stderr
    runs, _ = store.load(out)
    assert len(runs) == 6
    assert set(runs["method"]) == {"airbench94", spec}
    versions = dict(runs.groupby("method")["method_version"].first())
    assert versions == {"airbench94": method_version("airbench94"), spec: method_version(find_method(spec))}
    assert (runs.groupby("seed")["cell"].nunique() == 2).all()  # seeds pair across the two methods
    report = (out / "report.md").read_text()
    assert "head_adam" in report and "Method version " not in report  # one version per method: analysed whole
    assert re.search(r"(better|worse|equal|undecided)", report)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["methods"]) == {"airbench94", spec}

    # resumed under the same rule: the runs stay, nothing is retrained; another rule is refused (the
    # stopping rule is fixed at the first round), exit 2, naming both rules
    before = set(zip(runs["key"], runs["started_at"]))
    second = study_cli(*args, "--max-seeds", "3", timeout=1200)
    assert second.returncode == 0, second.stderr
    runs, _ = store.load(out)
    assert before == set(zip(runs["key"], runs["started_at"])) and runs["key"].is_unique  # nothing retrained
    other_rule = study_cli(*args, "--max-seeds", "4", timeout=600)
    assert other_rule.returncode == 2 and "max = 3" in other_rule.stderr and "max = 4" in other_rule.stderr

    # the method file edited: its version changes, and the store (holding the old one) refuses, exit 2
    old = method_version(find_method(spec))
    method_file.write_text(method_file.read_text().replace("betas=(0.9, 0.99)", "betas=(0.9, 0.999)"))
    new = source_version(find_method(spec))  # what a fresh driver imports
    assert new != old
    untouched = snapshot(tmp_path)
    refused = study_cli(*args, "--max-seeds", "3", timeout=600)
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and old in lines[0] and new in lines[0] and "airbench94_head_adam" in lines[0], (
        lines
    )
    assert snapshot(tmp_path) == untouched


def test_a_ray_worker_resolves_the_method_itself_from_the_spec_and_plain_fields(data_source, tmp_path):
    """What RayBackend sends: the spec, the driver's directory and the config's fields (no pickled class)."""
    from harness.run.backends import plain_fields
    from harness.run.worker import RunWorker

    spec = "studies/examples/custom_method/head_adam.py:METHOD"
    method = find_method(spec)
    config = method.config(
        n_train=500, n_test=200, widths=(8, 16, 16), whiten_samples=200, epochs=0.5, batch_size=100
    )
    worker = RunWorker(data_source, None, "cpu", threads=1)
    [(result, error, info)] = worker.run_plain(spec, str(ROOT), plain_fields(config), [3])
    assert error is None, error
    assert result.config == plain_fields(config) and result.seed == 3 and result.predictions.shape == (3, 200)
    assert info["method_version"] == method_version(method)
    [(none, error, _)] = worker.run_plain("airbench97", str(ROOT), {}, [0])
    assert none is None and "unknown method 'airbench97'" in error
