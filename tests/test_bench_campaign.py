"""The scale benchmark's code path on a small simulated campaign: every run stored exactly once.
(Speed is the benchmark's to print, never a test's to assert.)"""

import numpy as np
import pytest

from airbench_core.simulated import METHOD, SimulatedConfig, SimulatedData, labels, predictions


def test_simulated_method_is_deterministic_and_real_shaped():
    config = SimulatedConfig(run_seconds=0.0)
    a, b = METHOD.train(config, 7), METHOD.train(config, 7)
    assert a.predictions.shape == (3, 10000) and a.predictions.dtype == np.uint8
    assert (a.predictions == b.predictions).all() and a.accuracy == b.accuracy
    assert not (predictions(config, 8) == a.predictions).all()
    assert 0.9 < a.accuracy[0] < 0.98 and labels().shape == (10000,)
    assert SimulatedData().fingerprint == "simulated-10000"


@pytest.mark.slow
def test_small_simulated_campaign_through_the_bench_loses_and_duplicates_nothing(tmp_path):
    from harness.bench.campaign import cluster, run_setting

    with cluster(4) as c:
        r = run_setting(c, 40, 0.05, tmp_path)
    assert (r.stored, r.unique, r.failed) == (40, 40, 0)
    assert r.wall_s > 0 and r.compact_s >= 0


def test_runs_written_together_are_one_small_pack_that_loads_and_compacts_like_single_runs(tmp_path):
    from harness import store
    from harness.store.compact import compact

    records = [{"key": f"k{i:02d}", "seed": i, "acc_tta0": 0.9, "note": "x" if i else None} for i in range(5)]
    preds = [np.full((3, 20), i, np.uint8) for i in range(5)]
    store.write_failure(tmp_path, {"key": "k03", "seed": 3}, "boom")
    store.write_runs(tmp_path, records[:3], preds[:3])
    store.write_runs(tmp_path, records[3:4], preds[3:4])  # one run: a single-run file
    store.write_runs(tmp_path, records[3:], preds[3:])  # k03 again: counted once
    assert len(list((tmp_path / "packs").glob("batch-*.parquet"))) == 2
    assert store.failed_keys(tmp_path) == set()
    frame, loaded = store.load(tmp_path)
    assert list(frame["key"]) == [f"k{i:02d}" for i in range(5)] and (loaded[:, 0, 0] == np.arange(5)).all()
    compact(tmp_path)
    again, loaded_again = store.load(tmp_path)
    assert again["key"].tolist() == frame["key"].tolist() and np.array_equal(loaded, loaded_again)


def test_store_only_setting_times_compaction_and_report_and_loses_nothing(tmp_path):
    """``--store-only``: the driver and store without Ray, 300 runs in batches of 8."""
    from harness.bench.campaign import store_only_line, store_only_setting

    r = store_only_setting(300, tmp_path)
    assert (r.stored, r.unique, r.failed) == (300, 300, 0)
    assert r.wall_s > 0 and r.compact_s > 0 and r.report_s > 0 and r.driver_cpu_s > 0
    assert store_only_line(r).endswith("ok") and not list(tmp_path.iterdir())  # its store removed after
