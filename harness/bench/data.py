"""``python -m harness.bench data``: the decode-once cache (first load, second load, a verified
load that re-reads every file), optionally of a source unpacked into an image tree of one file per
image; and, with ``--classes``, whether a K-class run trains as fast as a 10-class run."""

from __future__ import annotations

import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def timed(step: Callable[[], T]) -> tuple[float, T]:
    t0 = time.perf_counter()
    value = step()
    return time.perf_counter() - t0, value


def unpack(source: str, folder: Path) -> Path:
    """The images of a tar of an image tree, as files under ``folder`` (what a user's tree looks like)."""
    with tarfile.open(source) as tar:
        tar.extractall(folder, filter="data")
    roots = {p.parent for p in folder.rglob("*") if p.is_dir() and p.name in ("train", "test")}
    return min(roots, key=lambda p: len(p.parts)) if roots else folder


def bench_data(source: str, tree: bool, tmp: str | None, prefix: str = "") -> None:
    from airbench_core.data import load_data

    with tempfile.TemporaryDirectory(dir=tmp) as folder:
        where = Path(folder)
        if tree:
            t, root = timed(lambda: unpack(source, where / "tree"))
            files = sum(p.is_file() for p in root.rglob("*"))
            print(f"unpacked {source} into {files:,} files in {t:.1f}s")
            source = f"{prefix}{root}"
        cache = where / "cache"
        first, data = timed(lambda: load_data(source, cache))
        second, again = timed(lambda: load_data(source, cache))
        verified, checked = timed(lambda: load_data(source, cache, verify=True))
        assert again.fingerprint == data.fingerprint == checked.fingerprint
        print(
            f"{data.description} (K = {data.num_classes}): {len(data.train_labels):,} + {len(data.test_labels):,} images"
        )
        print(f"  first load (decode, then cache)            {first:6.2f}s")
        print(f"  second load (from the cache)               {second:6.2f}s")
        print(f"  load with verify (re-hash every file)      {verified:6.2f}s   (store check --data)")


def bench_classes(classes: list[int], device: str, n_train: int, widths: tuple[int, int, int]) -> None:
    """Train one run per K on random images (same widths, steps and batch), timing training alone."""
    import numpy as np

    from airbench_core import DeviceData, TrainConfig
    from airbench_core.data import Dataset
    from airbench_core.train import train

    rng = np.random.default_rng(0)
    cfg = TrainConfig(widths=widths, n_train=None, n_test=None)
    for k in classes:
        labels = rng.integers(0, k, n_train)
        data = Dataset(
            rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
            labels,
            rng.integers(0, 256, (2000, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, k, 2000),
            "random",
            "random images",
            name="imagefolder",
            classes=tuple(str(i) for i in range(k)),
        )
        on_device = DeviceData.build(data, device)
        train(cfg.replace(epochs=1.0), 0, on_device, device)  # warm-up
        result = train(cfg, 1, on_device, device)
        print(
            f"K = {k:>3}: {result.train_seconds:6.2f}s training, {result.eval_seconds:5.2f}s evaluation ({device})"
        )
