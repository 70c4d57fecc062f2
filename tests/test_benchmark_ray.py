"""The benchmark on Ray: a local cluster of two workers gives the sequential executor's rows.

A tiny real grid (conv AE, MNIST, 3 classes, 1 epoch on 64 images, 400 test images); one
local Ray for the module, two CPUs. These tests start Ray and train, so they are slow.
"""

from __future__ import annotations

import json

import pytest

from companion.benchmark import planned_runs, read_rows, run_benchmark, run_key, run_one
from companion.benchmark.executors import BenchmarkRunError, run_on_ray

ray = pytest.importorskip("ray", reason="Ray is the optional 'scale' extra; make test installs it")
pytestmark = pytest.mark.slow

GRID = dict(models=["conv_ae"], datasets=["mnist"], classes=[1, 3, 7], seeds=[0],
            overrides={"epochs": 1, "max_train": 64, "test_size": 400})


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def by_key(rows):
    return {run_key(row): row for row in rows}


def test_ray_gives_the_sequential_rows(local_ray, data_dir, tmp_path):
    sequential = run_benchmark(tmp_path / "seq.csv", **GRID, data_dir=data_dir, device="cpu",
                               progress=False)
    on_ray = run_benchmark(tmp_path / "ray.csv", **GRID, data_dir=data_dir, device="cpu",
                           progress=False, executor="ray")
    assert len(on_ray) == len(sequential) == 3
    assert by_key(on_ray).keys() == by_key(sequential).keys()
    for key, row in by_key(sequential).items():
        assert by_key(on_ray)[key]["auroc"] == pytest.approx(row["auroc"], abs=1e-3), key
        assert by_key(on_ray)[key]["device"] == "cpu"


def test_interrupted_ray_run_resumes_to_a_complete_file(local_ray, data_dir, tmp_path):
    out = tmp_path / "grid.csv"
    runs = planned_runs(GRID["models"], GRID["datasets"], GRID["classes"], GRID["seeds"],
                        GRID["overrides"])
    recorded = []

    def record_then_stop(row):  # the driver is stopped (Ctrl-C) after the first finished row
        from companion.benchmark import append_row

        append_row(out, row)
        recorded.append(row)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_on_ray(runs, run_one, record_then_stop, data_dir, "cpu", progress=False)
    assert len(read_rows(out)) == 1
    rows = run_benchmark(out, **GRID, data_dir=data_dir, device="cpu", progress=False,
                         executor="ray")
    keys = [run_key(row) for row in rows]
    assert len(keys) == len(set(keys)) == 3, "no duplicate and no lost row"
    assert {run_key(run) for run in runs} == set(keys)


def test_a_failing_run_names_its_key_and_the_others_finish(local_ray, data_dir, tmp_path):
    runs = planned_runs(GRID["models"], GRID["datasets"], GRID["classes"], GRID["seeds"],
                        GRID["overrides"])
    broken = json.loads(runs[1]["settings"])
    broken["latent_dim"] = -1  # refused by the detector inside the task, not by the planner
    runs[1] = {**runs[1], "settings": json.dumps(broken, sort_keys=True)}
    rows = []
    with pytest.raises(BenchmarkRunError) as failure:
        run_on_ray(runs, run_one, rows.append, data_dir, "cpu", progress=False)
    assert "conv_ae/mnist/class 3/seed 0" in str(failure.value)
    assert "latent_dim=-1" in str(failure.value)
    assert sorted(row["normal_class"] for row in rows) == [1, 7]
