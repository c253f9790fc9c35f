"""The run store: round trip, integrity (checksums, bit flips), atomic writes under faults,
compaction (also killed midway), study folders reading from a shared store, old layouts."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import ROOT

from harness import store
from harness.store.compact import compact


def record(key: str, **extra) -> dict:
    return {"key": key, "study": "s", "cell": "c", "seed": 0, "acc_tta2": 0.5, **extra}


def fill(root: Path, n: int, examples: int = 7, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    preds = {f"k{i:03d}": rng.integers(0, 10, (3, examples), dtype=np.uint8) for i in range(n)}
    for i, (k, p) in enumerate(preds.items()):
        store.write_run(root, record(k, seed=i, acc_tta0=float(i) / 7), p)
    return preds


def test_roundtrip_aligns_predictions_with_rows_and_leaves_no_temp_files(tmp_path):
    rng = np.random.default_rng(0)
    preds = {k: rng.integers(0, 10, (3, 7), dtype=np.uint8) for k in ("b", "a", "c")}
    logits = rng.normal(size=(3, 7, 10)).astype(np.float16)
    for k, p in preds.items():
        store.write_run(tmp_path, record(k), p, logits if k == "c" else None)
    frame, loaded, lg = store.load(tmp_path, with_logits=True)
    assert list(frame["key"]) == ["a", "b", "c"]
    for i, k in enumerate(frame["key"]):
        assert np.array_equal(loaded[i], preds[k])
    assert loaded.dtype == np.uint8 and loaded.shape == (3, 3, 7)
    assert np.array_equal(lg[2], logits) and np.isnan(lg[0].astype(float)).all()
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert store.done_keys(tmp_path) == {"a", "b", "c"}


def test_store_files_hold_no_pickle(tmp_path):
    store.write_run(tmp_path, record("k"), np.zeros((3, 4), np.uint8))
    raw = (tmp_path / "runs" / "k.parquet").read_bytes()
    assert raw[:4] == b"PAR1" and b"pickle" not in raw.lower()


def test_pages_carry_checksums_that_the_loader_verifies(tmp_path):
    store.write_run(
        tmp_path, record("k"), np.random.default_rng(1).integers(0, 10, (3, 2000), dtype=np.uint8)
    )
    path = tmp_path / "runs" / "k.parquet"
    meta = pq.ParquetFile(path)
    chunk = meta.metadata.row_group(0).column(meta.schema_arrow.names.index(store.PRED_COLUMN))
    raw = bytearray(path.read_bytes())
    raw[chunk.data_page_offset + chunk.total_compressed_size - 3] ^= 0x10  # inside the page's data
    path.write_bytes(bytes(raw))
    with pytest.raises(OSError, match="CRC checksum verification failed"):
        pq.read_table(path, page_checksum_verification=True)
    with pytest.raises(store.StoreError, match="k.parquet: corrupt Parquet file .*CRC checksum"):
        store.load(tmp_path)


def test_failure_record_is_replaced_by_a_later_success(tmp_path):
    store.write_failure(tmp_path, record("k"), "RuntimeError: boom")
    assert store.failed_keys(tmp_path) == {"k"}
    assert store.load_failures(tmp_path)["error"].tolist() == ["RuntimeError: boom"]
    store.write_run(tmp_path, record("k"), np.zeros((3, 4), np.uint8))
    assert store.failed_keys(tmp_path) == set() and store.done_keys(tmp_path) == {"k"}


def test_corrupt_file_is_reported_by_name(tmp_path):
    store.write_run(tmp_path, record("good"), np.zeros((3, 4), np.uint8))
    bad = tmp_path / "runs" / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    for call in (store.done_keys, store.load):
        with pytest.raises(store.StoreError, match="bad.parquet: corrupt Parquet"):
            call(tmp_path)


STRIDE = 29  # bits between flips: odd, so every position within a byte is flipped somewhere; ~280 per KB


@pytest.mark.parametrize("packed", [False, True])
def test_no_single_bit_flip_loads_changed_values(tmp_path, packed):
    """Defect 10: every bit flip either fails loudly naming the file or changes nothing we read."""
    rng = np.random.default_rng(1)
    preds = rng.integers(0, 10, (3, 50), dtype=np.uint8)
    store.write_run(tmp_path, record("k", acc_tta0=0.25, acc_tta1=0.5, seed=12345, device_name="cpu"), preds)
    if packed:
        compact(tmp_path)
    path = store.run_files(tmp_path)[0]
    frame0, preds0 = store.load(tmp_path)
    original = path.read_bytes()
    silent, loud = [], 0
    for bit in range(0, 8 * len(original), STRIDE):  # across the whole file
        raw = bytearray(original)
        raw[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(raw))
        try:
            frame, loaded = store.load(tmp_path)
        except store.StoreError as exc:
            message = str(exc)
        else:
            message = None
        if message is not None:
            assert path.name in message
            loud += 1
            continue
        if not (frame.equals(frame0) and np.array_equal(loaded, preds0)):
            silent.append(bit)
    path.write_bytes(original)
    assert not silent, f"{len(silent)} flips loaded changed values (bits {silent[:10]})"
    assert loud > 0.5 * len(range(0, 8 * len(original), STRIDE))  # most flips are caught, not harmless


def test_a_changed_prediction_fails_its_checksum_by_name(tmp_path):
    store.write_run(tmp_path, record("k"), np.zeros((3, 40), np.uint8))
    path = tmp_path / "runs" / "k.parquet"
    table = pq.read_table(path)
    blob = bytearray(table.column(store.PRED_COLUMN)[0].as_py())
    blob[5] = 3
    table = table.set_column(
        table.schema.get_field_index(store.PRED_COLUMN),
        store.PRED_COLUMN,
        pa.array([bytes(blob)], table.schema.field(store.PRED_COLUMN).type),
    )
    pq.write_table(table, path)  # a valid file whose payload no longer matches its checksum
    with pytest.raises(store.StoreError, match="k.parquet: corrupt Parquet file \\(predictions checksum"):
        store.load(tmp_path)


def test_an_exception_mid_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    store.write_run(tmp_path, record("k", acc_tta2=0.5), np.zeros((3, 4), np.uint8))
    path = tmp_path / "runs" / "k.parquet"
    before = path.read_bytes()

    def half_then_fail(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        store.write_run(tmp_path, record("k", acc_tta2=0.9), np.ones((3, 4), np.uint8))
    with pytest.raises(OSError):
        store.write_run(tmp_path, record("new"), np.ones((3, 4), np.uint8))
    assert path.read_bytes() == before
    assert not (tmp_path / "runs" / "new.parquet").exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["k.parquet"]


KILL_MID_WRITE = """
import os, signal, sys
from pathlib import Path
import numpy as np
import pyarrow.parquet as pq
from harness import store
real = pq.write_table
def write_then_die(table, where, **kw):
    real(table, where, **kw)
    data = Path(where).read_bytes()
    Path(where).write_bytes(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)
pq.write_table = write_then_die
store.write_run(Path(sys.argv[1]), {"key": sys.argv[2], "seed": 1, "cell": "c"}, np.ones((3, 4), np.uint8))
"""


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )


def test_a_kill_mid_write_leaves_nothing_under_the_final_name_and_the_previous_file_intact(tmp_path):
    store.write_run(tmp_path, record("k"), np.zeros((3, 4), np.uint8))
    before = (tmp_path / "runs" / "k.parquet").read_bytes()
    for key in ("k", "fresh"):
        r = run_python(KILL_MID_WRITE, str(tmp_path), key)
        assert r.returncode == -signal.SIGKILL, r.stderr
    assert (tmp_path / "runs" / "k.parquet").read_bytes() == before
    assert not (tmp_path / "runs" / "fresh.parquet").exists()
    frame, preds = store.load(tmp_path)
    assert list(frame["key"]) == ["k"] and not preds.any()
    assert compact(tmp_path).removed >= 2, "the next writer removes the half-written temporaries"
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_compaction_keeps_every_run_once_and_loads_the_same(tmp_path):
    preds = fill(tmp_path, 25)
    frame0, preds0 = store.load(tmp_path)
    done = compact(tmp_path, pack_rows=10)
    assert (done.runs, done.packs) == (25, 3) and not list((tmp_path / "runs").glob("*.parquet"))
    frame, loaded = store.load(tmp_path)
    assert frame.equals(frame0) and np.array_equal(loaded, preds0)
    assert np.array_equal(loaded[3], preds["k003"])
    fill(tmp_path, 2, seed=5)  # two keys again (same keys: k000, k001 rewritten as single files)
    store.write_run(tmp_path, record("z"), np.zeros((3, 7), np.uint8))
    compact(tmp_path, pack_rows=10)
    frame, _ = store.load(tmp_path)
    assert len(frame) == 26 and frame["key"].is_unique
    assert store.done_keys(tmp_path) == set(frame["key"])


KILL_DURING_COMPACTION = """
import os, signal, sys
from pathlib import Path
from harness.store import compact
from harness.store import runs as store     # the module compaction calls into, so the patches below reach it
where = sys.argv[2]
if where == "before-remove":        # every pack written, none of the files it replaces removed yet
    real_remove = store.remove_durably
    store.remove_durably = lambda paths: os.kill(os.getpid(), signal.SIGKILL) if paths else real_remove(paths)
else:
    real, count = store.atomic_write, [0]
    def die_on_second_pack(path, write):
        count[0] += 1
        if count[0] == 2:
            write(path.with_name(f".{path.name}.tmp{os.getpid()}"))
            os.kill(os.getpid(), signal.SIGKILL)
        real(path, write)
    store.atomic_write = die_on_second_pack
compact.compact(Path(sys.argv[1]), pack_rows=10)
"""


@pytest.mark.parametrize("where", ["before-remove", "mid-pack"])
def test_a_killed_compaction_then_rerun_keeps_every_run_exactly_once(tmp_path, where):
    fill(tmp_path, 25)
    frame0, preds0 = store.load(tmp_path)
    r = run_python(KILL_DURING_COMPACTION, str(tmp_path), where)
    assert r.returncode == -signal.SIGKILL, r.stderr
    if where == "before-remove":
        assert (
            len(list((tmp_path / "packs").glob("*.parquet"))) == 3
            and len(list((tmp_path / "runs").glob("*"))) == 25
        )
    frame, loaded = store.load(tmp_path)  # right after the kill: each run once
    assert frame.equals(frame0) and np.array_equal(loaded, preds0)
    compact(tmp_path, pack_rows=10)  # the rerun
    frame, loaded = store.load(tmp_path)
    assert frame.equals(frame0) and np.array_equal(loaded, preds0)
    assert not list((tmp_path / "runs").glob("*.parquet"))
    in_packs = [k for p in store.run_files(tmp_path) for k in store.keys_in(p)]
    assert sorted(in_packs) == sorted(frame0["key"]), "every run in exactly one pack"


def study_folder(out: Path, root: Path, entries: list[dict], study: str = "other") -> Path:
    store.write_manifest(out, {"study": study, "preset": "smoke", "store": os.path.relpath(root, out)})
    store.write_study_keys(out, entries)
    return out


def test_a_study_folder_reads_its_keys_from_the_shared_store_with_its_own_labels(tmp_path):
    root = tmp_path / "store"
    preds = fill(root, 5)
    entries = [
        {"key": "k001", "cell": "variant=baseline", "seed": 1, "factors": {"variant": "baseline"}},
        {"key": "k003", "cell": "variant=baseline", "seed": 3, "factors": {"variant": "baseline"}},
        {"key": "missing", "cell": "variant=baseline", "seed": 4, "factors": {"variant": "baseline"}},
    ]
    out = study_folder(tmp_path / "study", root, entries)
    frame, loaded = store.load(out)
    assert list(frame["key"]) == ["k001", "k003"] and set(frame["cell"]) == {"variant=baseline"}
    assert list(frame["variant"]) == ["baseline"] * 2 and set(frame["study"]) == {"other"}
    assert np.array_equal(loaded[1], preds["k003"])
    assert len(store.load(root)[0]) == 5, "the store itself holds every run"


def test_each_cell_and_seed_counts_once_even_when_the_store_holds_an_older_key_for_it(tmp_path):
    """Defect 1: runs under old keys for the same (cell, seed) are never pooled with the new ones."""
    root = tmp_path / "store"
    fill(root, 4)  # k000..k003: suppose k002, k003 are (cell c, seeds 0, 1) under an older scheme
    out = study_folder(
        tmp_path / "study",
        root,
        [
            {"key": "k000", "cell": "c", "seed": 0, "factors": {}},
            {"key": "k001", "cell": "c", "seed": 1, "factors": {}},
        ],
    )
    frame, _ = store.load(out)
    assert len(frame) == 2 and not frame.duplicated(["cell", "seed"]).any()
    # the grid's keys change (a new key scheme, a changed config): the study counts only the new ones
    store.write_study_keys(
        out,
        [
            {"key": "k002", "cell": "c", "seed": 0, "factors": {}},
            {"key": "k003", "cell": "c", "seed": 1, "factors": {}},
        ],
    )
    frame, _ = store.load(out)
    assert list(frame["key"]) == ["k002", "k003"] and not frame.duplicated(["cell", "seed"]).any()


def test_an_empty_store_or_study_loads_as_a_well_formed_empty_frame(tmp_path):
    for folder in (tmp_path / "nothing", study_folder(tmp_path / "study", tmp_path / "store", [])):
        frame, preds = store.load(folder)
        assert len(frame) == 0 and preds.shape == (0, 3, 0)
        assert {"key", "cell", "seed", "acc_tta0", "acc_tta1", "acc_tta2"} <= set(frame.columns)
        assert len(store.load_failures(folder)) == 0


def write_legacy_run(out: Path, key: str, config: dict, seed: int, preds: np.ndarray) -> None:
    """A run file exactly as the store wrote it before the shared store (format 1)."""
    row = {
        "key": [key],
        "study": ["tta_variance"],
        "cell": ["epochs=2.0"],
        "seed": [seed],
        "acc_tta2": [0.5],
        "config_json": [json.dumps(config, sort_keys=True)],
        "code_version": ["abc"],
    }
    for i in range(3):
        row[f"pred_tta{i}"] = [preds[i].tobytes()]
    (out / "runs").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(row), out / "runs" / f"{key}.parquet")


def test_an_old_layout_folder_loads_as_is_and_migrates_into_a_store(tmp_path, data_source):
    from airbench_core import TrainConfig, load_cifar10
    from harness.store.migrate import migrate

    old = tmp_path / "old"
    cfg = TrainConfig(epochs=2.0, n_train=2000, n_test=1000)
    preds = {s: np.full((3, 5), s, np.uint8) for s in (0, 1)}
    for s, p in preds.items():
        write_legacy_run(old, f"oldkey{s}", cfg.to_dict(), s, p)
    store.write_manifest(
        old,
        {
            "study": "tta_variance",
            "preset": "smoke",
            "code_version": "abc",
            "grid": [{"label": "epochs=2.0", "factors": {"epochs": 2.0}}],
        },
    )
    frame, loaded = store.load(old)
    assert list(frame["key"]) == ["oldkey0", "oldkey1"] and np.array_equal(loaded[1], preds[1])
    root = tmp_path / "store"
    assert migrate(old, root, load_cifar10(data_source).fingerprint, "legacy-abc") == 2
    frame, loaded = store.load(old)
    assert sorted(frame["key"]) == sorted(cfg.key(s) for s in (0, 1))
    assert set(frame["method_version"]) == {"legacy-abc"} and np.array_equal(
        loaded[list(frame["seed"]).index(1)], preds[1]
    )
    assert not list((old / "runs").glob("*.parquet")) and store.read_identity(root)["method_versions"] == [
        "legacy-abc"
    ]


def store_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.store", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )


def test_store_command_compacts_checks_and_refuses_a_locked_store(tmp_path):
    from harness.store.lock import hold

    fill(tmp_path, 3)
    with hold(tmp_path, "store"):
        r = store_cli("compact", str(tmp_path))
        assert r.returncode == 2 and f"in use by pid {os.getpid()}" in r.stderr
    r = store_cli("compact", str(tmp_path))
    assert r.returncode == 0 and "compacted 3 runs into 1 pack(s)" in r.stderr, r.stderr
    r = store_cli("check", str(tmp_path))
    assert r.returncode == 0 and "3 runs, every checksum verified" in r.stdout
    pack = store.run_files(tmp_path)[0]
    meta = pq.ParquetFile(pack)
    chunk = meta.metadata.row_group(0).column(meta.schema_arrow.names.index(store.PRED_COLUMN))
    raw = bytearray(pack.read_bytes())
    raw[chunk.data_page_offset + chunk.total_compressed_size - 3] ^= 0x40  # in the predictions' page
    pack.write_bytes(bytes(raw))
    r = store_cli("check", str(tmp_path))
    assert r.returncode == 2 and r.stderr.startswith(f"error: {pack}: corrupt Parquet file"), r.stderr


def test_when_a_pack_and_a_single_run_file_disagree_the_packs_copy_is_kept(tmp_path):
    """Issue 20, item 12: a key in a pack and in a single-run file (a leftover of an interrupted
    compaction, or a bad copy) counts once, and always as the pack's copy: the loader reads packs
    first, and compaction folds the leftover away without replacing the pack's values."""
    old = np.full((3, 7), 1, np.uint8)
    store.write_run(tmp_path, record("k", acc_tta2=0.5), old)
    store.write_run(tmp_path, record("j", acc_tta2=0.25), np.full((3, 7), 2, np.uint8))
    compact(tmp_path)
    store.write_run(tmp_path, record("k", acc_tta2=0.9), np.full((3, 7), 9, np.uint8))  # disagrees
    for _ in range(2):  # before and after the next compaction
        frame, preds = store.load(tmp_path)
        assert list(frame["key"]) == ["j", "k"] and frame["acc_tta2"].tolist() == [25.0, 50.0]  # percent
        assert np.array_equal(preds[1], old)
        compact(tmp_path)
    assert not list((tmp_path / "runs").glob("*.parquet"))


def test_compaction_streams_full_packs_across_read_batches_and_keeps_every_run_once(tmp_path, monkeypatch):
    """More files than compaction decodes at once (READ_AHEAD), and more runs than a pack holds: packs
    are written as they fill (not all at the end: memory stays one pack), a key stored twice is packed
    once, and every run loads as written."""
    from harness.store import compact as compaction
    from harness.store.compact import READ_AHEAD

    packs_when_read = []

    def spy(path):
        packs_when_read.append(len(list((tmp_path / "packs").glob("pack-*.parquet"))))
        return normalized(path)

    normalized = compaction.normalized
    monkeypatch.setattr(compaction, "normalized", spy)
    rng = np.random.default_rng(3)
    preds = {i: rng.integers(0, 10, (3, 50)).astype(np.uint8) for i in range(100)}

    def record(i):
        return {"key": f"k{i:03d}", "seed": i, "acc_tta0": 0.5}

    for i in range(70):  # single-run files
        store.write_run(tmp_path, record(i), preds[i])
    for start in range(70, 100, 3):  # a campaign's batch files
        store.write_runs(
            tmp_path,
            [record(i) for i in range(start, start + 3)],
            [preds[i] for i in range(start, start + 3)],
        )
    store.write_runs(tmp_path, [record(5), record(71)], [preds[5], preds[71]])  # already stored: counted once
    assert READ_AHEAD < 70 + 11
    done = compact(tmp_path, pack_rows=8)
    sizes = sorted(pq.ParquetFile(p).metadata.num_rows for p in (tmp_path / "packs").glob("*.parquet"))
    assert sizes == [4] + [8] * 12 and (done.runs, done.packs, done.removed) == (100, 13, 81)
    assert not list((tmp_path / "runs").glob("*.parquet"))
    assert packs_when_read[0] == 0 and packs_when_read[-1] >= 7, (
        "the first 64 files' packs were written before the rest was read"
    )
    frame, loaded = store.load(tmp_path)
    assert list(frame["key"]) == [f"k{i:03d}" for i in range(100)]
    assert all((loaded[i] == preds[i]).all() for i in range(100))


def test_users_see_percent_while_the_store_keeps_fractions(tmp_path):
    """Issue 28.9: one accuracy scale for users, percent, in load() and load_records(); the harness's
    own statistics read the stored fractions through read_runs() and read_records()."""
    store.write_run(
        tmp_path, record("k", acc_tta0=0.25, acc_tta1=0.5, acc_tta2=0.9375), np.zeros((3, 4), np.uint8)
    )
    frame, _ = store.load(tmp_path)
    assert frame[["acc_tta0", "acc_tta1", "acc_tta2"]].iloc[0].tolist() == [25.0, 50.0, 93.75]
    assert store.load_records(tmp_path)["acc_tta2"].tolist() == [93.75]
    assert store.read_runs(tmp_path)[0]["acc_tta2"].tolist() == [0.9375]
    assert store.read_records(tmp_path)["acc_tta0"].tolist() == [0.25]
