import numpy as np
import pytest

from harness import store


def record(key: str, **extra) -> dict:
    return {"key": key, "study": "s", "cell": "c", "seed": 0, "acc_tta2": 0.5, **extra}


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
