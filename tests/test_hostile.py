"""Hostile inputs (issue 26): what a shared page may carry, what a command may overwrite, folders whose
store is gone, damaged files, method files that exit or hang at import. Tmp folders and loopback only;
nothing here writes outside its tmp folder or to a device file, and nothing trains but the one slow
test of the rate bounds."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import store
from tests.helpers import ROOT, snapshot
from tests.test_researcher import file_campaign

SECRET = b"top-secret-bytes-26\n"  # stands in for /etc/hostname, ~/.ray/auth_token or an SSH key


def hostile_study(tmp_path, secret) -> str:
    """A study file whose name, description and variant names carry image lines, HTML and quotes."""
    path = tmp_path / "<script>x&'q\".toml"
    path.write_text(
        'method = "airbench94"\n'
        f'description = "intro\\n![x]({secret})\\n![y](../{secret.name})\\n![h](/etc/hostname)"\n'
        'primary = "half_epochs"\n'
        "[base]\nn_train = 1000\nn_test = 500\nwidths = [16, 32, 32]\nbatch_size = 100\n"
        "whiten_samples = 500\nepochs = 2.0\n"
        "[variants.half_epochs]\nepochs = 1.0\n"
        f'[variants."<script>alert(1)</script> & \\"q\\" \'s\\n![z]({secret})"]\nepochs = 1.5\n'
    )
    return str(path)


def page_bytes(text: str) -> bytes:
    """The page and every base64 payload in it, decoded: where a copied file's bytes would be."""
    blobs = [base64.b64decode(b) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)", text)]
    return text.encode() + b"".join(blobs)


def test_report_html_inlines_no_file_a_description_or_variant_name_names(tmp_path):
    from harness.cli.report import main as report_main

    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + SECRET)  # even a real PNG: it is not under figures/
    out = file_campaign(tmp_path, seeds=4, path=hostile_study(tmp_path, secret), adaptive=False)
    assert report_main([str(out)]) == 0
    page = (out / "report.html").read_text()
    assert SECRET not in page_bytes(page)
    blobs = [base64.b64decode(b) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)", page)]
    assert all(b.startswith(b"\x89PNG") for b in blobs) and "/etc/hostname" in page  # named, not copied
    assert (
        len(re.findall(r'<img src="data:image/png;base64,', page)) >= 1
    )  # the study's own figures still inline
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in page
    assert "<script>x" not in page and "&lt;script&gt;x&amp;'q\"" in page  # the study's name
    assert page.count("<script>") == 1  # the page's own sorting script, nothing else
    markdown = (out / "report.md").read_text()
    images = [line for line in markdown.splitlines() if line.startswith("![")]
    assert images and all(re.match(r"!\[[^\]]*\]\(figures/[\w.-]+\)$", line) for line in images), images


def test_only_pngs_under_figures_are_inlined_links_and_other_files_are_not(tmp_path):
    from harness.report.html import to_html

    (tmp_path / "figures").mkdir()
    png = b"\x89PNG\r\n\x1a\n" + b"figure"
    (tmp_path / "figures" / "ok.png").write_bytes(png)
    (tmp_path / "figures" / "notes.png").write_bytes(SECRET)  # under figures/, but not a PNG
    (tmp_path / "outside.png").write_bytes(png + SECRET)
    (tmp_path / "figures" / "link.png").symlink_to(tmp_path / "outside.png")  # resolves outside figures/
    lines = ["ok", "notes", "link"] + ["../outside", str(tmp_path / "outside"), "figures/../outside"]
    page = to_html(
        "\n\n".join(f"![{n}](figures/{n}.png)" if "/" not in n else f"![n]({n}.png)" for n in lines), tmp_path
    )
    inlined = [base64.b64decode(b) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)", page)]
    assert inlined == [png]
    assert page.count("is missing or not a PNG under figures/") == 5


# --------------------------------------------------------------------------- export --to (item 2)


def export(capsys, *args: str) -> tuple[int, str]:
    from harness.cli.export import main as export_main

    code = export_main([*args])
    return code, capsys.readouterr().err


def test_export_to_never_replaces_what_is_not_a_regular_file_nor_a_file_without_force(tmp_path, capsys):
    import os

    out = file_campaign(tmp_path, seeds=2, adaptive=False)
    kept = tmp_path / "kept.csv"
    kept.write_text("mine\n")
    code, err = export(capsys, str(out), "--to", str(kept))
    assert code == 2 and err.count("\n") == 1 and "--force" in err and kept.read_text() == "mine\n"
    code, err = export(capsys, str(out), "--to", str(kept), "--force")
    assert code == 0 and kept.read_text().startswith("key,study,cell,seed")
    fifo = tmp_path / "pipe"  # not a regular file (a device file would be one too; tests never touch one)
    os.mkfifo(fifo)
    for target in (fifo, tmp_path):  # a pipe, a folder
        code, err = export(capsys, str(out), "--to", str(target), "--force")
        assert code == 2 and err.count("\n") == 1 and str(target) in err
    assert fifo.exists() and not fifo.is_file()
    code, err = export(capsys, str(out), "--to", str(tmp_path / "nowhere" / "runs.csv"))
    assert code == 2 and err.count("\n") == 1 and "no such folder" in err
    assert not (tmp_path / "nowhere").exists()
    # the default target (OUT/runs.csv) is refreshed by each export, but never replaces a non-file
    assert export(capsys, str(out))[0] == 0 and export(capsys, str(out))[0] == 0
    (out / "runs.csv").unlink()
    os.mkfifo(out / "runs.csv")
    code, err = export(capsys, str(out))
    assert code == 2 and "not a regular file" in err and not (out / "runs.csv").is_file()


def test_export_to_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch):
    import errno
    import os

    from harness import store as store_mod

    out = file_campaign(tmp_path, seeds=2, adaptive=False)
    if os.geteuid() != 0:  # root writes anywhere: there the refusal is checked by the failing write below
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        code, err = export(capsys, str(out), "--to", str(locked / "runs.csv"))
        assert code == 2 and err.count("\n") == 1 and "not writable" in err

    def read_only(path, write):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(store_mod, "atomic_write", read_only)
    code, err = export(capsys, str(out), "--to", str(tmp_path / "runs.csv"))
    assert code == 2 and err == f"error: {tmp_path / 'runs.csv'}: Read-only file system\n"


# --------------------------------------------------------------------------- a store that is gone (item 5)


def cli(module: str, *args: str, timeout: int = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(r: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2 with one line on stderr that holds ``words``, no traceback."""
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


@pytest.mark.parametrize("how", ["moved away", "emptied"])
def test_a_folder_whose_store_is_gone_is_refused_and_nothing_is_written(tmp_path, how):
    from harness.cli.report import main as report_main

    out = file_campaign(tmp_path, seeds=2, adaptive=False)
    other = file_campaign(tmp_path / "b", seeds=2, adaptive=False)
    assert report_main([str(out)]) == 0
    root = tmp_path / "store"
    root.rename(tmp_path / "elsewhere")
    if how == "emptied":  # a store is there (an empty mount point), but holds none of the study's runs
        root.mkdir()
    before = snapshot(out)
    for module, args in (
        ("harness.report", [str(out)]),
        ("harness.store", ["check", str(out)]),
        ("harness.export", [str(out), "--format", "csv"]),
        ("harness.compare", [str(out), str(other), "--out", str(tmp_path / "cmp")]),
        ("harness.compare", [str(other), str(out), "--out", str(tmp_path / "cmp")]),
    ):
        one_line(cli(module, *args), str(out), str(root.resolve()))
    assert snapshot(out) == before and not (tmp_path / "cmp").exists()


# --------------------------------------------------------------------------- store.json deleted (item 6)


def test_deleting_store_json_does_not_reset_the_mixed_version_and_data_guard(tmp_path):
    import numpy as np

    from harness.run.campaign import MixedStoreError, check_identity

    root = tmp_path / "store"
    record = {
        "key": "k1",
        "method": "airbench94",
        "method_version": "v1",
        "data_fingerprint": "d1",
        "seed": 0,
    }
    store.write_run(root, record, np.zeros((3, 10), np.uint8))
    store.note_identity(root, "v1", "d1")
    (root / "store.json").unlink()
    with pytest.raises(MixedStoreError, match="at method version v1"):
        check_identity(root, {"airbench94": "v2"}, "d1")
    with pytest.raises(MixedStoreError, match="on data d1"):
        check_identity(root, {"airbench94": "v1"}, "d2")
    check_identity(root, {"airbench94": "v1"}, "d1")  # the same version and data still pass
    assert store.read_identity(root)["methods"] == {"airbench": ["v1"]}


# --------------------------------------------------------------------------- damaged files (item 11)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("manifest.json", "[1, 2]"),
        ("manifest.json", '{"store": 7}'),
        ("manifest.json", '{"store": "../store", "grid": [3]}'),
        ("keys.json", '{"keys": 5}'),
        ("keys.json", "[]"),
        ("keys.json", '{"keys": [{"key": "x"}]}'),
    ],
)
def test_valid_json_of_the_wrong_type_is_one_line(tmp_path, name, text):
    out = file_campaign(tmp_path, seeds=2, adaptive=False)
    (out / name).write_text(text)
    before = snapshot(out)
    for module, args in (("harness.report", [str(out)]), ("harness.store", ["check", str(out)])):
        one_line(cli(module, *args), name)
    assert snapshot(out) == before


@pytest.mark.parametrize("text", ["[]", '{"method_versions": 3}', '{"data_fingerprints": [1]}', '"x"'])
def test_a_store_json_of_the_wrong_type_is_one_line(tmp_path, text):
    root = tmp_path / "store"
    root.mkdir()
    (root / "store.json").write_text(text)
    r = cli(
        "harness.study",
        "studies/examples/smoke_half_epochs.toml",
        "--seeds",
        "2",
        "--dry-run",
        "--store",
        str(root),
        "--out",
        str(tmp_path / "out"),
    )
    one_line(r, "store.json")


@pytest.mark.parametrize("labels", [b"not a numpy file", "object", "floats", "short"])
def test_broken_test_labels_are_one_line_and_store_check_reads_them(tmp_path, labels):
    import numpy as np

    out = file_campaign(tmp_path, seeds=2, adaptive=False)
    path = out / "test_labels.npy"
    if labels == "floats":
        np.save(path, np.zeros(500))
    elif labels == "short":
        np.save(path, np.zeros(499, np.int64))
    elif labels == "object":
        np.save(path, np.array([{"a": 1}] * 500, dtype=object), allow_pickle=True)
    else:
        path.write_bytes(labels)
    one_line(cli("harness.store", "check", str(out)), "test_labels.npy")
    if labels != "short":  # (a report says a wrong count its own way)
        one_line(cli("harness.report", str(out)), "test_labels.npy")


def test_store_check_of_a_healthy_study_folder_reads_its_labels(tmp_path):
    out = file_campaign(tmp_path, seeds=2, adaptive=False)
    r = cli("harness.store", "check", str(out))
    assert r.returncode == 0 and "500 test labels read" in r.stdout, r.stderr


def test_ctrl_c_while_store_compact_starts_is_one_line(tmp_path):
    """SIGINT once numpy is loading (the command's own modules are importing): one line, no traceback."""
    import os
    import signal
    import time

    root = tmp_path / "store"
    root.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.store", "compact", str(root)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    maps = f"/proc/{proc.pid}/maps"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if "numpy" in Path(maps).read_text():
                break
        except OSError:
            pass
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert "Traceback" not in err and err.count("\n") == 1 and "Ctrl-C" in err, err
    assert proc.returncode in (130, -signal.SIGINT)


# --------------------------------------------------------------------------- method files (item 10)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("import sys\nsys.exit(3)\n", ["called sys.exit(3)"]),
        ("raise SystemExit\n", ["called sys.exit(None)"]),
        ("raise GeneratorExit('odd')\n", ["GeneratorExit: odd"]),
        (
            "import time\nwhile True:\n    try:\n        time.sleep(60)\n    except Exception:\n        pass\n",
            ["did not finish within 1 s"],
        ),
    ],
)
@pytest.mark.parametrize("command", ["--list-fields", "--dry-run"])
def test_a_method_file_that_exits_or_blocks_at_import_is_named_in_one_line(tmp_path, body, words, command):
    method = tmp_path / "mine.py"
    method.write_text(body)
    spec = f"{method}:METHOD"
    args = (
        ["--list-fields", spec]
        if command == "--list-fields"
        else [
            "flip_vs_alternating",
            "--seeds",
            "2",
            "--method",
            spec,
            "--dry-run",
            "--store",
            str(tmp_path / "s"),
        ]
    )
    r = cli("harness.study", *args, env={"AIRBENCH_METHOD_IMPORT_TIMEOUT": "1"}, timeout=90)
    one_line(r, str(method), *words)


# --------------------------------------------------------------------------- numbers (items 11, 12)


@pytest.mark.parametrize(
    "item", ["lr=1e308", "weight_decay=1e300", "bias_scaler=1e-300", "lr=1e-300", "lr_end=1e30"]
)
def test_set_rates_beyond_what_training_takes_are_refused(item):
    from harness.spec.studyfile import StudyFileError, parse_set

    with pytest.raises(StudyFileError, match="expected between"):
        parse_set([item])


@pytest.mark.parametrize("item", ["muon_lr=1e308", "head_lr=1e-300", "logit_divisor=1e308"])
def test_set_rates_of_other_methods_are_bounded_too(item):
    from harness.spec.methods import find_method
    from harness.spec.studyfile import StudyFileError, parse_set

    with pytest.raises(StudyFileError, match="expected between"):
        parse_set([item], config_type=find_method("airbench94_muon").config_type)


@pytest.mark.slow
def test_training_takes_every_rate_at_its_bounds(cifar):
    """The bounds are ones training survives: a tiny CPU run at the extremes finishes (diverged runs
    predict one class, but nothing overflows or raises)."""
    from airbench_core import train
    from airbench_core.config import RATE_MAX, RATE_MIN
    from tests.conftest import tiny_config

    small = dict(n_train=200, n_test=100, widths=(8, 16, 16), whiten_samples=100)
    for rates in (
        dict(
            lr=RATE_MAX, bias_scaler=RATE_MAX, weight_decay=RATE_MAX, logit_scale=RATE_MAX, lr_start=RATE_MAX
        ),
        dict(lr=RATE_MIN, bias_scaler=RATE_MIN, weight_decay=RATE_MAX, logit_scale=RATE_MIN, lr_end=RATE_MAX),
    ):
        result = train(tiny_config(**small, **rates), 0, cifar, "cpu")
        assert result.predictions.shape == (3, 100) and all(0 <= a <= 1 for a in result.accuracy)


def test_the_dry_run_says_what_one_seed_cannot_estimate(tmp_path, capsys, monkeypatch):
    from harness.cli.study import main

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert main(["flip_vs_alternating", "--seeds", "1", "--dry-run", "--store", str(tmp_path / "s")]) == 0
    text = capsys.readouterr().out
    assert "nan" not in text and "with 1 seed per cell: no confidence interval" in text
