"""Datasets beyond CIFAR-10: every loader on small files in its exact real format, K through the
network, calibration with K = 100, the bounded unpickler, and the stat-keyed cache of an image tree."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import subprocess
import sys
import tarfile
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
from PIL import Image

from airbench_core import DataError
from airbench_core import data as data_module
from airbench_core.data import CLASSES, load_data, parse_source
from harness import stats
from harness.cli.store import check_data
from tests.test_data import python2_dump

TINY = (40, 20)


def cifar100_files(folder: Path, counts=TINY, dump=python2_dump, meta: bool = True) -> Path:
    """cifar-100-python as torchvision ships it: train/test dicts of data (N, 3072) uint8,
    fine_labels, coarse_labels, filenames, batch_label; meta with the label names."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, n in zip(("train", "test"), counts):
        d = {
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
            b"batch_label": f"{name} batch".encode(),
            b"fine_labels": [int(i % 100) for i in range(n)],
            b"coarse_labels": [int(i % 20) for i in range(n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        with open(folder / name, "wb") as f:
            dump(d, f)
    if meta:
        with open(folder / "meta", "wb") as f:
            dump(
                {
                    b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                    b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
                },
                f,
            )
    return folder


def svhn_files(folder: Path, counts=TINY) -> Path:
    """train_32x32.mat / test_32x32.mat as torchvision downloads them: X (32, 32, 3, N) uint8, y (N, 1)
    in 1..10 where 10 is the digit 0."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name, n in zip(("train_32x32.mat", "test_32x32.mat"), counts):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)
        scipy.io.savemat(folder / name, {"X": x, "y": y})
    return folder


def class_tree(root: Path, k: int, train_per_class: int, test_per_class: int, noise: float = 40) -> Path:
    """K class folders of 32x32 PNGs; each class a blocky colour prototype plus noise, so it can be learnt."""
    rng = np.random.default_rng(k)
    prototypes = rng.integers(0, 256, (k, 4, 4, 3))
    for split, per in (("train", train_per_class), ("test", test_per_class)):
        for c in range(k):
            folder = root / split / f"c{c:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per):
                img = np.kron(prototypes[c], np.ones((8, 8, 1))) + rng.normal(0, noise, (32, 32, 3))
                Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root


def load(source: str, tmp_path: Path, counts=None, **kw):
    return load_data(source, cache_dir=tmp_path / "cache", expected_counts=counts, **kw)


def one_line(source: str, tmp_path: Path, counts=None) -> str:
    with pytest.raises(DataError) as info:
        load(source, tmp_path, counts)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- naming -----------------------------------------------------------------------------------------


def test_plain_sources_still_mean_cifar10_and_prefixes_name_the_others():
    assert parse_source("download") == ("cifar10", "download")
    assert parse_source("/data/cifar10-jpeg.tar.gz") == ("cifar10", "/data/cifar10-jpeg.tar.gz")
    assert parse_source("cifar100:download") == ("cifar100", "download")
    assert parse_source("cifar100-coarse:/x") == ("cifar100-coarse", "/x")
    assert parse_source("svhn:/x") == ("svhn", "/x")
    assert parse_source("imagefolder:/a:b") == ("imagefolder", "/a:b")
    assert parse_source("/odd:name") == ("cifar10", "/odd:name")


def test_a_misspelt_dataset_name_gets_a_hint(tmp_path):
    message = one_line("cifar-100:/nowhere", tmp_path)
    assert "'cifar-100' is no dataset name (choose from cifar10:, cifar100:" in message


def test_an_image_folder_has_no_download(tmp_path):
    assert "an image folder has no download" in one_line("imagefolder:download", tmp_path)


# -- CIFAR-100 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dump", [python2_dump, lambda d, f: pickle.dump(d, f, protocol=4)])
def test_cifar100_fine_and_coarse_labels_and_names(tmp_path, dump):
    folder = cifar100_files(tmp_path / "src" / "cifar-100-python", dump=dump)
    reference = pickle.loads((folder / "test").read_bytes(), encoding="bytes")
    fine = load(f"cifar100:{folder.parent}", tmp_path, TINY)  # the parent folder works too
    assert fine.name == "cifar100" and fine.num_classes == 100 and fine.classes[7] == "fine7"
    assert list(fine.test_labels) == reference[b"fine_labels"]
    assert np.array_equal(fine.test_images, reference[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    coarse = load(f"cifar100-coarse:{folder}", tmp_path, TINY)
    assert coarse.num_classes == 20 and list(coarse.test_labels) == reference[b"coarse_labels"]
    assert coarse.fingerprint != fine.fingerprint
    # normalisation comes from the training images, per channel
    x = fine.train_images.reshape(-1, 3) / 255
    assert np.allclose(fine.mean, x.mean(0)) and np.allclose(fine.std, x.std(0))


def test_cifar100_tar_gz_as_distributed_loads(tmp_path):
    folder = cifar100_files(tmp_path / "cifar-100-python")
    archive = tmp_path / "cifar-100-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    d = load(f"cifar100:{archive}", tmp_path, TINY)
    assert d.train_images.shape == (40, 32, 32, 3) and d.train_labels.max() == 39


def test_cifar100_without_meta_gets_numbered_class_names(tmp_path):
    folder = cifar100_files(tmp_path / "cifar-100-python", meta=False)
    assert load(f"cifar100:{folder}", tmp_path, TINY).classes[:2] == ("class_0", "class_1")


def test_malformed_cifar100_files_are_one_line_naming_the_file(tmp_path):
    folder = cifar100_files(tmp_path / "cifar-100-python")
    (folder / "test").write_bytes(b"not a pickle")
    assert one_line(f"cifar100:{folder}", tmp_path, TINY).startswith(f"{folder / 'test'}: unreadable")
    folder = cifar100_files(tmp_path / "b" / "cifar-100-python")
    d = {b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 100], b"coarse_labels": [0, 1]}
    (folder / "train").write_bytes(pickle.dumps(d, protocol=2))
    assert "label 100 outside 0..99" in one_line(f"cifar100:{folder}", tmp_path, TINY)


# -- SVHN -------------------------------------------------------------------------------------------


def test_svhn_mat_files_load_with_10_meaning_the_digit_0(tmp_path):
    folder = svhn_files(tmp_path / "svhn")
    d = load(f"svhn:{folder}", tmp_path, TINY)
    mat = scipy.io.loadmat(folder / "test_32x32.mat")
    assert d.name == "svhn" and d.num_classes == 10
    assert list(d.test_labels[:10]) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]  # y = 10 became 0
    assert np.array_equal(d.test_images[3], mat["X"][:, :, :, 3])


def test_a_malformed_svhn_file_is_one_line_naming_it(tmp_path):
    folder = svhn_files(tmp_path / "svhn")
    (folder / "test_32x32.mat").write_bytes(b"MATLAB 5.0 garbage")
    message = one_line(f"svhn:{folder}", tmp_path, TINY)
    assert message.startswith(f"{folder / 'test_32x32.mat'}: unreadable SVHN .mat file")
    scipy.io.savemat(
        folder / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])}
    )
    assert "labels in 1..10" in one_line(f"svhn:{folder}", tmp_path, TINY)
    (folder / "train_32x32.mat").unlink()
    assert "train_32x32.mat: missing SVHN file" in one_line(f"svhn:{folder}", tmp_path, TINY)


# -- image folders ----------------------------------------------------------------------------------


def test_an_image_folder_takes_k_from_its_class_folders(tmp_path):
    root = class_tree(tmp_path / "tree", 12, 2, 1)
    d = load(f"imagefolder:{root}", tmp_path)
    assert d.num_classes == 12 and d.classes == tuple(f"c{c:03d}" for c in range(12))
    assert sorted(set(d.train_labels)) == list(range(12)) and len(d.test_labels) == 12
    # the same tree read as CIFAR-10 is refused (its folders are not CIFAR-10's classes)
    assert "unknown class folder" in one_line(str(root), tmp_path)


def test_an_image_folder_with_one_class_or_an_unknown_test_class_is_refused(tmp_path):
    root = class_tree(tmp_path / "one", 1, 2, 1)
    assert "1 class folders under train/" in one_line(f"imagefolder:{root}", tmp_path)
    root = class_tree(tmp_path / "two", 2, 2, 1)
    extra = root / "test" / "zebra"
    extra.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(extra / "0.png")
    assert "unknown class folder test/zebra" in one_line(f"imagefolder:{root}", tmp_path)


def test_the_jpeg_copy_read_as_an_image_folder_is_another_dataset(tmp_path):
    """Images of the real JPEG copy: as CIFAR-10 and as an image folder the arrays agree (CIFAR-10's
    classes are in sorted order) but the fingerprints differ: datasets are never pooled."""
    source = Path(__file__).resolve().parents[1].parent.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
    source = source if source.exists() else Path("/work/shared/data/cifar10-jpeg.tar.gz")
    if not source.exists():
        pytest.skip("the JPEG copy of CIFAR-10 is not here")
    root = tmp_path / "tree"
    with tarfile.open(source) as tar:
        chosen = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".jpg")]
        seen: dict[tuple[str, str], int] = {}
        for m in chosen:
            split, cls = Path(m.name).parts[-3:-1]
            if seen.get((split, cls), 0) < 3:
                seen[(split, cls)] = seen.get((split, cls), 0) + 1
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                (root / split / cls / Path(m.name).name).write_bytes(tar.extractfile(m).read())
    as_cifar = load(str(root), tmp_path, (30, 30))
    as_folder = load(f"imagefolder:{root}", tmp_path)
    assert as_folder.classes == CLASSES and np.array_equal(as_cifar.train_images, as_folder.train_images)
    assert as_cifar.fingerprint != as_folder.fingerprint
    assert as_cifar.mean == data_module.MEAN and as_folder.mean != data_module.MEAN


def test_cifar10_fingerprints_are_what_they_were(tmp_path):
    """The CIFAR-10 fingerprint hashes the arrays alone, exactly as before datasets had names (every
    store's recorded fingerprint still matches)."""
    from tests.test_data import write_tree

    d = load(str(write_tree(tmp_path / "tree")), tmp_path, (20, 10))
    h = hashlib.blake2b(digest_size=8)
    for a in (d.train_images, d.train_labels, d.test_images, d.test_labels):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    assert d.fingerprint == h.hexdigest() and d.name == "cifar10" and d.num_classes == 10


# -- the cache of a tree: stat-keyed, content verified on request -----------------------------------


def test_a_cached_tree_is_not_read_again_but_verify_reads_it(tmp_path, monkeypatch):
    root = class_tree(tmp_path / "tree", 3, 2, 1)
    first = load(f"imagefolder:{root}", tmp_path)
    opened = []
    real_open = open
    monkeypatch.setattr(
        data_module, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k), raising=False
    )
    monkeypatch.setattr(data_module, "_decode", lambda *a: pytest.fail("decoded again"))
    assert load(f"imagefolder:{root}", tmp_path).fingerprint == first.fingerprint
    assert opened == [], "the second load stats the files, it does not read them"
    assert load(f"imagefolder:{root}", tmp_path, verify=True).fingerprint == first.fingerprint
    assert len(opened) == 9, "verify hashes every file's content"


def test_store_check_data_says_when_the_content_no_longer_matches_the_runs(tmp_path):
    root = class_tree(tmp_path / "tree", 3, 2, 1)
    d = load(f"imagefolder:{root}", tmp_path)
    frame = pd.DataFrame({"dataset": ["imagefolder"], "data_fingerprint": [d.fingerprint]})
    assert f"fingerprint {d.fingerprint} (imagefolder, K = 3)" in check_data(f"imagefolder:{root}", frame)
    img = root / "train" / "c000" / "000.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    from harness import store

    with pytest.raises(store.StoreError, match="the data changed since they were trained"):
        check_data(f"imagefolder:{root}", frame)


# -- the unpickler: nothing allocates more than the pickle holds ------------------------------------


def tar_of(
    blob: bytes, path: Path, member: str = "cifar-10-batches-py/data_batch_1", size: int | None = None
) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.mark.parametrize(
    ("blob", "what"),
    [
        (b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00@\x85R.", "bytearray"),  # bytearray(1 GiB)
        (b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00@\x85R.", "bytes() with arguments"),
        (pickle.dumps(np.zeros(2, dtype=object), protocol=2), "numpy.dtype"),
    ],
)
def test_a_tiny_tar_cannot_make_the_unpickler_allocate(tmp_path, blob, what):
    archive = tar_of(blob, tmp_path / "evil.tar.gz")
    assert archive.stat().st_size < 400
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            load(str(archive), tmp_path, (20, 4))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"peak {peak} bytes"
    assert str(info.value).startswith(f"{archive}") or str(info.value).startswith("refused")
    assert what in str(info.value) or "unreadable" in str(info.value)


def test_a_member_claiming_a_huge_size_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "MAX_FILE_BYTES", 1000)
    archive = tar_of(pickle.dumps({b"data": b"x" * 2000}), tmp_path / "big.tar")
    assert "more than any CIFAR file" in one_line(str(archive), tmp_path, (20, 4))


# -- K through training -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_100_class_run_learns_above_chance(tmp_path):
    import torch

    from airbench_core import DeviceData, TrainConfig, train

    root = class_tree(tmp_path / "tree", 100, 6, 2, noise=15)
    d = load(f"imagefolder:{root}", tmp_path)
    data = DeviceData.build(d, "cpu")
    assert data.classes == 100
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=4.0, widths=(16, 32, 32), batch_size=50, whiten_samples=600, lookahead=False)
    result = train(cfg, 0, data)  # measured: 10% at TTA 0 (17 s on a busy 2-core machine)
    assert result.predictions.shape == (3, 200) and result.predictions.max() >= 10
    assert result.accuracy[0] > 0.05, f"chance is 0.01; got {result.accuracy}"


def test_the_head_has_k_outputs_and_the_pool_keeps_k_apart():
    import torch

    from airbench_core import TrainConfig
    from airbench_core.net import NetPool, make_net

    cfg = TrainConfig(widths=(8, 8, 8))
    pool = NetPool()
    net, forward = make_net(cfg, [0, 1], torch.device("cpu"), False, pool=pool, classes=37)
    assert forward(torch.zeros(2, 6, 32, 32)).shape == (2, 2, 37)
    ten, _ = make_net(cfg, [0, 1], torch.device("cpu"), False, pool=pool)
    assert ten is not net and ten.head.out_channels == 20


# -- calibration with K = 100 -----------------------------------------------------------------------


def test_calibration_with_100_classes_against_known_answers():
    """A unanimous ensemble right on 70% of examples: q ∈ {0, 1}, so CACE is exactly 2 x 0.3 = 0.6
    and class c's error is (wrong predictions of c + wrong examples labelled c) / n; a calibrated
    ensemble (labels drawn from its own frequencies) sits at its noise floor."""
    rng = np.random.default_rng(0)
    k, n, runs = 100, 4000, 40
    labels = rng.integers(0, k, n)
    predicted = labels.copy()
    wrong = rng.random(n) < 0.3
    predicted[wrong] = (labels[wrong] + rng.integers(1, k, wrong.sum())) % k
    preds = np.repeat(predicted[None, :].astype(np.uint8), runs, 0)
    gp = stats.group_predictions([(np.arange(runs), preds)], labels, stats.run_groups(runs, 8), classes=k)
    result = stats.calibration(gp, resamples=50)
    assert result.cace_raw == pytest.approx(2 * wrong.mean(), abs=1e-12)
    expected = (np.bincount(predicted[wrong], minlength=k) + np.bincount(labels[wrong], minlength=k)) / n
    assert np.allclose([e.value for e in result.classwise], expected)
    assert result.error == pytest.approx(wrong.mean()) and result.disagreement == pytest.approx(0)
    # calibrated: each example's runs predict from p(x), and its label is drawn from p(x) too
    p = rng.dirichlet(np.full(k, 0.05), n)
    cum = p.cumsum(1)
    draw = lambda: (rng.random((n, 1)) > cum).sum(1).clip(0, k - 1)  # noqa: E731
    labels = draw()
    preds = np.stack([draw() for _ in range(runs)]).astype(np.uint8)
    gp = stats.group_predictions([(np.arange(runs), preds)], labels, stats.run_groups(runs, 8), classes=k)
    result = stats.calibration(gp, resamples=50)
    # the truth is 0: the bias-corrected interval covers it (the raw value is biased upward at R = 40)
    assert result.cace.low <= 0 < result.cace.value < result.cace_raw <= 2
    assert abs(result.gap.value) < 0.02 and result.gap.low < 0 < result.gap.high


# -- the command line -------------------------------------------------------------------------------


def test_list_fields_and_list_show_the_new_fields_and_studies():
    root = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    fields = subprocess.run(
        [sys.executable, "-m", "harness.study", "--list-fields", "airbench94"],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=120,
    ).stdout
    assert "flip_switch_epoch" in fields and "translate_mode" in fields
    listed = subprocess.run(
        [sys.executable, "-m", "harness.study", "--list"],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=120,
    ).stdout
    assert "\ndatasets " in listed and "\nderandomized " in listed


# -- the two studies --------------------------------------------------------------------------------


def test_the_derandomized_grid_puts_every_variant_at_the_papers_length_beside_a_baseline_curve():
    from harness.spec.studies import find_study

    cells = find_study("derandomized").cells("full")
    variants = {c.factors["variant"]: c.config for c in cells if c.factors["variant"] != "baseline"}
    assert {cfg.epochs for cfg in variants.values()} == {9.9}
    assert sorted(cfg.flip_switch_epoch for cfg in variants.values() if cfg.flip_switch_epoch) == [1, 2, 3, 5]
    assert variants["alternating translation"].translate_mode == "alternating"
    baseline = [c.config for c in cells if c.factors["variant"] == "baseline"]
    assert 9.9 in {b.epochs for b in baseline} and len(baseline) >= 3
    assert all(
        b.translate_mode == "random" and b.flip_switch_epoch == 0 and b.flip == "alternating"
        for b in baseline
    )
    smoke = find_study("derandomized").cells("smoke")
    assert all(c.config.n_train == 2000 for c in smoke) and len(smoke) < len(cells)


def test_the_datasets_grid_crosses_flip_modes_with_lengths():
    from harness.spec.studies import find_study

    cells = find_study("datasets").cells("full")
    assert {(c.config.flip, c.config.epochs) for c in cells} == {
        (f, e) for f in ("none", "random", "alternating") for e in (4.0, 6.0, 9.9, 16.0)
    }


@pytest.mark.slow
def test_a_smoke_study_on_a_20_class_tree_runs_and_its_report_names_k(tmp_path):
    root = class_tree(tmp_path / "tree", 20, 10, 5)
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.study",
            "datasets",
            "--preset",
            "smoke",
            "--seeds",
            "2",
            "--backend",
            "local",
            "--device",
            "cpu",
            "--data",
            f"imagefolder:{root}",
            "--out",
            str(tmp_path / "out"),
            "--store",
            str(tmp_path / "store"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--set",
            "n_train=200",
            "--set",
            "n_test=100",
            "--set",
            "widths=8,8,8",
            "--set",
            "batch_size=50",
            "--set",
            "whiten_samples=200",
        ],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=900,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    text = (tmp_path / "out" / "report.md").read_text()
    assert text.startswith("# datasets — image folder tree, K = 20 — SMOKE preset")
    assert "does flipping help at all? (random − none)" in text
    from harness import store

    frame, preds = store.load(tmp_path / "out", dataset="imagefolder")
    assert len(frame) == 12 and set(frame["num_classes"]) == {20} and preds.max() < 20
    assert len(store.load(tmp_path / "out", dataset="cifar10")[0]) == 0
    from harness.cli.export import main as export_main

    assert export_main([str(tmp_path / "out"), "--to", str(tmp_path / "runs.csv")]) == 0
    exported = pd.read_csv(tmp_path / "runs.csv")
    assert list(exported.columns[:6]) == ["key", "study", "cell", "seed", "dataset", "num_classes"]
    assert set(exported["num_classes"]) == {20}


def test_a_combined_report_has_one_panel_per_dataset_and_pools_nothing(tmp_path):
    from harness import store
    from harness.cli.report import main as report_main
    from harness.run.simulate import simulated_campaign
    from harness.spec.studies import find_study

    study = find_study("datasets")
    folders = []
    for name, k, seed in (("CIFAR-100", 100, 1), ("SVHN", 10, 2)):
        out = simulated_campaign(tmp_path / name, study, runs_per_cell=3, n=300, seed=seed)
        m = store.read_manifest(out)
        store.write_manifest(out, {**m, "data_description": name, "num_classes": k})
        folders.append(out)
    assert report_main([str(f) for f in folders]) == 2  # several folders need --combined
    assert report_main([*map(str, folders), "--combined", str(tmp_path / "both")]) == 0
    text = (tmp_path / "both" / "report.md").read_text()
    assert "# Panel: CIFAR-100, K = 100" in text and "# Panel: SVHN, K = 10" in text
    links = re.findall(r"\]\(([^)]+\.png)\)", text)
    assert len(links) == 2 and all((tmp_path / "both" / link).resolve().exists() for link in links)


def test_download_names_fetch_through_torchvision_into_the_cache(tmp_path, monkeypatch):
    """No network here: a stand-in torchvision writes the files its download would, where it would."""
    import types

    calls = []

    def cifar100(root, train, download):
        calls.append(("cifar100", train))
        if not (Path(root) / "cifar-100-python").exists():
            cifar100_files(Path(root) / "cifar-100-python")

    def svhn(root, split, download):
        calls.append(("svhn", split))
        if not Path(root).exists():
            svhn_files(Path(root))

    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(CIFAR100=cifar100, SVHN=svhn))
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    d = load("cifar100:download", tmp_path, TINY)
    assert d.name == "cifar100" and d.source == f"cifar100:{tmp_path / 'cache' / 'cifar-100-python'}"
    assert load("svhn:download", tmp_path, TINY).name == "svhn"
    assert calls == [("cifar100", True), ("cifar100", False), ("svhn", "train"), ("svhn", "test")]

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    fake.datasets.CIFAR100 = offline
    message = one_line("cifar100:download", tmp_path / "elsewhere", TINY)
    assert "could not download CIFAR-100 (OSError" in message and "pass --data with a local copy" in message
