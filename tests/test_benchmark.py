"""The one-class benchmark runner (chapter 07): real tiny runs, resume, interruption, errors."""

import json
import re

import pytest

from companion import benchmark
from companion.benchmark import ModelSpec, main, planned_runs, read_rows, run_benchmark, summarise
from companion.errors import ConfigError

TINY = {"epochs": 1, "max_train": 40, "test_size": 300}


@pytest.fixture
def counting_model(monkeypatch):
    """A fast stand-in model that records each run it is asked to do."""
    calls = []

    def run(split, settings, device, seed, data_dir):
        calls.append((split.normal_classes[0], seed))
        # a score that depends on the data, so the row is not a constant
        return {"fraction normal": 1 - float(split.test.anomaly_labels.float().mean())}

    monkeypatch.setitem(benchmark.MODELS, "counting", ModelSpec(
        run, "[0, 1]", {"epochs": 1, "score": "fraction normal"}))
    return calls


def test_one_tiny_run_of_every_real_model(tmp_path):
    out = tmp_path / "results.csv"
    models = ["dense_ae", "conv_ae", "alocc", "fnet_distance", "fnet_oe"]
    rows = run_benchmark(out, models, ["mnist"], [7], [0], TINY, data_dir=tmp_path / "data",
                         progress=False)
    assert [row["model"] for row in rows] == models
    for row in rows:
        assert row["normal_class"] == 7 and row["seed"] == 0
        assert row["train_size"] == "40" and row["test_size"] == "300"
        assert 0 <= row["auroc"] <= 1
        assert row["auroc"] == row["auroc_by_score"][row["score"]]
        assert json.loads(row["settings"])["epochs"] == 1
    assert set(rows[2]["auroc_by_score"]) == {"D(x)", "D(R(x))", "R error"}
    assert set(rows[3]["auroc_by_score"]) == {"centre distance"}
    assert set(rows[4]["auroc_by_score"]) == {"centre distance", "1 - P(normal)"}


def test_second_call_redoes_nothing(tmp_path, counting_model):
    out = tmp_path / "results.csv"
    first = run_benchmark(out, ["counting"], ["mnist"], [1, 2], [0, 1], data_dir=tmp_path / "data",
                          progress=False)
    assert len(counting_model) == 4
    second = run_benchmark(out, ["counting"], ["mnist"], [1, 2], [0, 1],
                           data_dir=tmp_path / "data", progress=False)
    assert len(counting_model) == 4
    assert second == first


def test_interrupted_run_keeps_finished_rows_and_resumes(tmp_path, counting_model, monkeypatch):
    out = tmp_path / "results.csv"
    real_run = benchmark.MODELS["counting"].run

    def interrupted_on_third_run(split, settings, device, seed, data_dir):
        if len(counting_model) == 2:
            raise KeyboardInterrupt
        return real_run(split, settings, device, seed, data_dir)

    monkeypatch.setattr(benchmark.MODELS["counting"], "run", interrupted_on_third_run)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(out, ["counting"], ["mnist"], [1, 2, 3], [0], data_dir=tmp_path / "data",
                      progress=False)
    assert [row["normal_class"] for row in read_rows(out)] == [1, 2]
    assert list(tmp_path.glob(".results.csv.*")) == []  # no temporary file left behind

    monkeypatch.setattr(benchmark.MODELS["counting"], "run", real_run)
    rows = run_benchmark(out, ["counting"], ["mnist"], [1, 2, 3], [0], data_dir=tmp_path / "data",
                         progress=False)
    assert counting_model == [(1, 0), (2, 0), (3, 0)]  # class 3 once, nothing redone
    assert [row["normal_class"] for row in rows] == [1, 2, 3]


def test_changed_settings_are_a_new_run(tmp_path, counting_model):
    out = tmp_path / "results.csv"
    run_benchmark(out, ["counting"], ["mnist"], [1], [0], data_dir=tmp_path / "data", progress=False)
    run_benchmark(out, ["counting"], ["mnist"], [1], [0], {"epochs": 3}, data_dir=tmp_path / "data",
                  progress=False)
    assert len(counting_model) == 2
    assert [json.loads(row["settings"])["epochs"] for row in read_rows(out)] == [1, 3]


def test_test_size_subsamples_the_whole_test_split(tmp_path, counting_model):
    rows = run_benchmark(tmp_path / "r.csv", ["counting"], ["mnist"], [4], [0],
                         {"test_size": 500}, data_dir=tmp_path / "data", progress=False)
    assert rows[0]["test_size"] == "500"
    # digit 4 is about a tenth of the test split, so a random sample is mostly anomalies
    assert 0.05 < rows[0]["auroc"] < 0.2


def test_summarise_means_and_stds_over_seeds():
    rows = [{"model": "m", "dataset": "mnist", "normal_class": c, "seed": s, "auroc": a,
             "auroc_by_score": {"other": 1 - a}}
            for c, s, a in [(0, 0, 0.8), (0, 1, 0.9), (1, 0, 0.5)]]
    table = summarise(rows)[("m", "mnist")]
    assert table[0] == pytest.approx((0.85, 0.05, 2))
    assert table[1] == pytest.approx((0.5, 0.0, 1))
    assert summarise(rows, "other")[("m", "mnist")][0][0] == pytest.approx(0.15)


@pytest.mark.parametrize("arguments, message", [
    ((["nope"], ["mnist"], None, [0]), "unknown model(s) ['nope']"),
    ((["conv_ae"], ["mnistt"], None, [0]), "Did you mean 'mnist'"),
    ((["conv_ae"], ["mnist"], [10], [0]), "contains 10"),
    ((["conv_ae"], ["mnist"], None, []), "at least one"),
    ((["conv_ae"], ["mnist"], None, [0], {"epochs": 0}), "epochs=0"),
    ((["conv_ae"], ["mnist"], None, [0], {"lr": 1}), "unknown benchmark setting(s) ['lr']"),
])
def test_bad_arguments_fail_before_any_run(arguments, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        planned_runs(*arguments)


def test_command_line_prints_one_line_error(tmp_path, capsys):
    assert main(["--models", "alocc", "--classes", "10", "--out", str(tmp_path / "r.csv")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("ConfigError:") and "10" in error and "\n" not in error
    assert not (tmp_path / "r.csv").exists()


def test_published_anchors_match_the_papers_means():
    means = {name: round(sum(v) / 10, 2) for table in benchmark.PUBLISHED.values()
             for name, v in table.items()}
    assert means["DCAE (Ruff et al. 2018)"] == 89.65
    assert means["AnoGAN (Ruff et al. 2018)"] == 91.27
    assert means["Deep SVDD (Ruff et al. 2018)"] == 94.80
    assert abs(means["GEOM (Golan & El-Yaniv 2018)"] - 93.5) < 0.1  # the paper rounds
