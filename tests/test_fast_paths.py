"""Fast paths give the eager path's results: packed runs, and packing through a campaign (torch.compile
through a long-lived worker: test_fidelity)."""

from collections import deque

import pytest
from conftest import tiny_config
from helpers import ACCURACY_TOL, assert_same_run

from airbench_core import DeviceData, train
from airbench_core.train import train_many
from harness.bench import bench_throughput, parse_mode
from harness.run.backends import take_pack
from harness.spec.grid import Cell, RunSpec

CFG = tiny_config(n_train=2000, epochs=2.0, batch_size=200)


@pytest.fixture(scope="module")
def data(cifar):
    return DeviceData.build(cifar, "cpu", CFG.n_train, CFG.n_test)


@pytest.fixture(scope="module")
def separate(data):
    return [train(CFG, seed, data, save_logits=True) for seed in (4, 5, 6)]


@pytest.mark.slow
def test_packed_runs_equal_separate_runs(data, separate):
    packed = train_many(CFG, [4, 5, 6], data, save_logits=True)
    for one, many in zip(separate, packed):
        assert many.env["packed"] == 3
        assert_same_run(one, many)
    assert len({r.accuracy for r in packed}) > 1, "the packed runs are distinct runs"


def test_take_pack_groups_runs_of_one_config():
    a, b = Cell({"x": 1}, CFG), Cell({"x": 2}, CFG.replace(epochs=1.0))
    queue = deque(RunSpec(c, s) for s in range(3) for c in (a, b))
    first = take_pack(queue, 2)
    assert [(s.cell.factors["x"], s.seed) for s in first] == [(1, 0), (1, 1)]
    assert [(s.cell.factors["x"], s.seed) for s in queue] == [(2, 0), (2, 1), (1, 2), (2, 2)]


@pytest.mark.slow
def test_throughput_benchmark_runs_on_cpu(data_source, capsys):
    rows = bench_throughput(data_source, None, 2, ["eager", "pack2"], "cpu", "tiny")
    assert [r["mode"] for r in rows] == ["eager", "pack2"]
    assert all(r["runs"] == 2 and r["runs_per_hour"] > 0 for r in rows)
    # the same seeds eager and packed: the same runs up to summation order, not bit for bit
    assert rows[0]["tta2"].value == pytest.approx(rows[1]["tta2"].value, abs=ACCURACY_TOL)
    assert "runs/h" in capsys.readouterr().out
    assert parse_mode("compile+pack4") == (True, 4)
    with pytest.raises(ValueError):
        parse_mode("turbo")


@pytest.mark.slow
def test_campaign_with_packing_records_each_run_once(cifar, tmp_path):
    from harness import store
    from harness.run import campaign
    from harness.run.backends import LocalBackend
    from harness.spec.grid import Study

    study = Study("tiny", "one tiny cell", lambda preset, base: [Cell({"cell": "tiny"}, tiny_config())])
    backend = LocalBackend(cifar.source, None, "cpu", False, pack=3)
    summary = campaign.run(study, "smoke", 3, tmp_path, cifar, backend, progress=False)
    frame, preds = store.load(tmp_path)
    assert summary.trained == 3 and len(frame) == 3 and frame["key"].is_unique
    assert set(frame["packed"]) == {3} and sorted(frame["seed"]) == [0, 1, 2]
    assert len({bytes(p) for p in preds[:, 2]}) == 3
