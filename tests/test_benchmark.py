"""The one-class benchmark runner (chapter 08): real tiny runs, resume, interruption, errors,
and the summaries chapters print from its CSV file."""

import json
import math
import re
import sys

import numpy as np
import pytest

from companion import benchmark
from companion.benchmark import (BenchmarkModel, class_table, headline_summary, markdown_summary,
                                 mean_over_classes, planned_runs, read_rows, run_benchmark, run_key,
                                 score_table, summarise)
from companion.benchmark.__main__ import main
from companion.detectors import REGISTRY, Detector
from companion.engine import History, resolve_device
from companion.errors import ConfigError
from companion.settings import Setting, positive_int

from conftest import ROOT

TINY = {"epochs": 1, "max_train": 40, "test_size": 300}


class Counting(Detector):
    """A fast stand-in detector that records what each run gave it."""

    headline = "mean pixel"
    value_ranges = ("[0, 1]",)
    SETTINGS = {"epochs": Setting(1, positive_int, 1)}
    calls: list = []
    interrupt_at: int | None = None

    def _build(self):
        pass

    def _fit(self, train, val_images, after_epoch=None):
        if len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append({"normal_class": int(train.targets[0]), "seed": self.seed,
                           "train_size": len(train)})
        return History(chosen_epoch=1)

    def _score(self, images, classes, labels):
        self.calls[-1].update(test_size=len(labels), anomaly_share=float(labels.mean()))
        mean = images.mean(dim=(1, 2, 3)).numpy()  # a score that depends on the data
        return self._scores({"mean pixel": mean, "minus mean pixel": -mean}, classes, labels)

    def _state(self):
        return {}

    def _load_state(self, state):
        pass


Counting.name = "counting"  # named after the class statement, so it is not registered for good


@pytest.fixture
def counting(monkeypatch):
    """The stand-in registered as detector and benchmark model ``counting``; its calls."""
    calls = []
    monkeypatch.setattr(Counting, "calls", calls)
    monkeypatch.setitem(REGISTRY, "counting", Counting)
    monkeypatch.setitem(benchmark.MODELS, "counting",
                        BenchmarkModel("counting", {"max_train": 20, "test_size": 200}))
    return calls


def classes_and_seeds(calls):
    return [(call["normal_class"], call["seed"]) for call in calls]


def test_one_tiny_run_of_every_real_model(tmp_path):
    out = tmp_path / "results.csv"
    models = ["dense_ae", "conv_ae", "alocc", "fnet_distance", "fnet_oe"]
    rows = run_benchmark(out, models, ["mnist"], [7], [0], TINY, data_dir=tmp_path / "data",
                         progress=False)
    assert [row["model"] for row in rows] == models
    for row in rows:
        assert row["normal_class"] == 7 and row["seed"] == 0
        assert row["train_size"] == 40 and row["test_size"] == 300
        assert 0 <= row["auroc"] <= 1 and row["seconds"] > 0
        assert row["score"] == REGISTRY[benchmark.MODELS[row["model"]].detector].headline
        assert row["auroc"] == row["auroc_by_score"][row["score"]]
        assert list(row["auroc_by_score"])[0] == row["score"], "the headline comes first"
        assert json.loads(row["settings"])["epochs"] == 1
        assert row["device"] == str(resolve_device("auto"))
        assert "shipped" in row["train_source"]
    by_model = {row["model"]: row for row in rows}
    assert set(by_model["dense_ae"]["auroc_by_score"]) == {"mse", "l1_sum", "blurred_max", "1-ssim"}
    assert set(by_model["alocc"]["auroc_by_score"]) == {"D(x)", "D(R(x))", "R error"}
    assert set(by_model["fnet_distance"]["auroc_by_score"]) == {"centre distance"}
    assert set(by_model["fnet_oe"]["auroc_by_score"]) == {"centre distance", "1 - P(normal)"}
    assert json.loads(by_model["alocc"]["settings"])["val_fraction"] == 0.2
    f1 = by_model["alocc"]["f1_by_outlier_share"]  # the ALOCC paper's protocol, at D's 0.5
    assert set(f1) == {"D(R(x))", "D(x)"}
    assert all(list(per_share) == ["0.1", "0.2", "0.3", "0.4", "0.5"] and
               all(0 <= v <= 1 for v in per_share.values()) for per_share in f1.values())
    assert all(row["f1_by_outlier_share"] == {} for row in rows if row["model"] != "alocc")
    assert read_rows(out) == rows


def test_rows_written_before_the_f1_column_existed_still_read(tmp_path):
    out = tmp_path / "old.csv"
    old_columns = [c for c in benchmark.COLUMNS if c != "f1_by_outlier_share"]
    out.write_text(",".join(old_columns) + "\n" + 'conv_ae,mnist,3,0,0.9,mse,"{""mse"": 0.9}",'
                   '1.5,6131,10000,shipped,cpu,"{}"\n')
    (row,) = read_rows(out)
    assert row["f1_by_outlier_share"] == {} and row["auroc_by_score"] == {"mse": 0.9}
    benchmark.append_row(out, {**row, "seed": 1})
    assert [r["seed"] for r in read_rows(out)] == [0, 1]
    assert out.read_text().splitlines()[0] == ",".join(benchmark.COLUMNS)


def test_second_call_redoes_nothing(tmp_path, counting):
    out = tmp_path / "results.csv"
    first = run_benchmark(out, ["counting"], ["mnist"], [1, 2], [0, 1], data_dir=tmp_path / "data",
                          progress=False)
    assert classes_and_seeds(counting) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(call["train_size"] == 20 and call["test_size"] == 200 for call in counting)
    second = run_benchmark(out, ["counting"], ["mnist"], [1, 2], [0, 1],
                           data_dir=tmp_path / "data", progress=False)
    assert len(counting) == 4
    assert second == first
    assert len({run_key(row) for row in first}) == 4, "one row per run"


def test_interrupted_run_keeps_finished_rows_and_resumes(tmp_path, counting, monkeypatch):
    out = tmp_path / "results.csv"
    monkeypatch.setattr(Counting, "interrupt_at", 2)  # the third run is interrupted
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(out, ["counting"], ["mnist"], [1, 2, 3], [0], data_dir=tmp_path / "data",
                      progress=False)
    assert [row["normal_class"] for row in read_rows(out)] == [1, 2]
    assert list(tmp_path.glob(".results.csv.*")) == []  # no temporary file left behind

    monkeypatch.setattr(Counting, "interrupt_at", None)
    rows = run_benchmark(out, ["counting"], ["mnist"], [1, 2, 3], [0], data_dir=tmp_path / "data",
                         progress=False)
    assert classes_and_seeds(counting) == [(1, 0), (2, 0), (3, 0)]  # class 3 once, nothing redone
    assert [row["normal_class"] for row in rows] == [1, 2, 3]


def test_a_crash_while_writing_keeps_the_previous_file_whole(tmp_path, counting, monkeypatch):
    out = tmp_path / "results.csv"
    run_benchmark(out, ["counting"], ["mnist"], [1], [0], data_dir=tmp_path / "data",
                  progress=False)
    before = out.read_bytes()
    real_writerow = benchmark.results.csv.DictWriter.writerow

    def crash_on_the_new_row(writer, row):
        if row["normal_class"] == 2:
            raise OSError("disk full")
        return real_writerow(writer, row)

    monkeypatch.setattr(benchmark.results.csv.DictWriter, "writerow", crash_on_the_new_row)
    with pytest.raises(OSError, match="disk full"):
        run_benchmark(out, ["counting"], ["mnist"], [1, 2], [0], data_dir=tmp_path / "data",
                      progress=False)
    assert out.read_bytes() == before
    # no temporary file is left behind; the lock file that serialises writers stays
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "data") == \
        ["results.csv", "results.csv.lock"]


def test_changed_settings_are_a_new_run(tmp_path, counting):
    out = tmp_path / "results.csv"
    run_benchmark(out, ["counting"], ["mnist"], [1], [0], data_dir=tmp_path / "data",
                  progress=False)
    run_benchmark(out, ["counting"], ["mnist"], [1], [0], {"epochs": 3}, data_dir=tmp_path / "data",
                  progress=False)
    assert len(counting) == 2
    assert [json.loads(row["settings"])["epochs"] for row in read_rows(out)] == [1, 3]


def test_test_size_subsamples_the_whole_test_split(tmp_path, counting):
    rows = run_benchmark(tmp_path / "r.csv", ["counting"], ["mnist"], [4], [0],
                         {"test_size": 500}, data_dir=tmp_path / "data", progress=False)
    assert rows[0]["test_size"] == 500 == counting[0]["test_size"]
    # digit 4 is about a tenth of the test split, so a random sample is mostly anomalies
    assert 0.8 < counting[0]["anomaly_share"] < 0.95
    assert rows[0]["auroc_by_score"]["minus mean pixel"] == pytest.approx(1 - rows[0]["auroc"])


def test_planned_runs_cover_every_class_model_and_seed():
    runs = planned_runs(["conv_ae", "alocc"], ["mnist"], None, [0, 1])
    assert len(runs) == 2 * 10 * 2
    assert {(r["model"], r["normal_class"], r["seed"]) for r in runs} == {
        (m, c, s) for m in ("conv_ae", "alocc") for c in range(10) for s in (0, 1)}
    settings = json.loads(runs[0]["settings"])
    assert settings["score"] == "mse" and settings["epochs"] == 20 and "data_dir" not in settings
    run = planned_runs(["ano_unet"], ["mnist"], [1], [0], {"epochs": 2})[0]
    ano_unet = json.loads(run["settings"])
    assert ano_unet["fnet_epochs"] == 2 and "epochs" not in ano_unet  # the f-Net's epochs


def test_summarise_means_and_sample_stds_over_seeds():
    rows = [{"model": "m", "dataset": "mnist", "normal_class": c, "seed": s, "auroc": a,
             "auroc_by_score": {"other": 1 - a}}
            for c, s, a in [(0, 0, 0.8), (0, 1, 0.9), (1, 0, 0.5)]]
    table = summarise(rows)[("m", "mnist")]
    assert table[0] == pytest.approx((0.85, np.std([0.8, 0.9], ddof=1), 2))
    assert table[0][1] == pytest.approx(0.05 * math.sqrt(2))
    mean, std, seeds = table[1]
    assert (mean, seeds) == (0.5, 1) and math.isnan(std)  # one seed: no spread to report
    assert summarise(rows, "other")[("m", "mnist")][0][0] == pytest.approx(0.15)
    assert mean_over_classes(table) == pytest.approx((0.85 + 0.5) / 2)


def test_class_table_shows_percent_means_stds_and_published_rows():
    summary = {("conv_ae", "mnist"): {0: (0.9, 0.01, 3), 1: (0.8, float("nan"), 1)},
               ("conv_ae", "fashion-mnist"): {0: (0.1, 0.0, 2)}}
    table = class_table(summary, "mnist", {"paper": [95.0, 85.0]})
    lines = table.splitlines()
    assert lines[0].split() == ["model", "0", "1", "mean"]
    assert lines[1].split() == ["conv_ae", "90.0±1.0", "80.0", "85.00"]
    assert lines[2].split() == ["paper", "95.0", "85.0", "90.00"]
    assert len(lines) == 3, "other datasets' rows stay out"
    with_means = class_table(summary, "mnist", {"paper": [95.0, 85.0]}, {"mean only": 97.5})
    assert with_means.splitlines()[3].split() == ["mean", "only", "97.50"]
    assert with_means.splitlines()[3].rstrip().endswith("97.50")  # in the mean column, no cells


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


def test_every_benchmark_model_is_a_registered_detector_with_its_settings():
    for name, model in benchmark.MODELS.items():
        detector = REGISTRY[model.detector]
        settings = model.defaults()
        assert settings["score"] == detector.headline_for(settings), name
        run_only = {"val_fraction", "max_train", "test_size", "score"}
        assert set(settings) - run_only <= set(detector.SETTINGS), name


def test_published_anchors_match_the_papers_means():
    means = {(dataset, name): round(sum(v) / 10, 2)
             for dataset, table in benchmark.PUBLISHED.items() for name, v in table.items()}
    assert means["mnist", "DCAE (Ruff et al. 2018)"] == 89.65
    assert means["mnist", "AnoGAN (Ruff et al. 2018)"] == 91.27
    assert means["mnist", "Deep SVDD (Ruff et al. 2018)"] == 94.80
    # the papers' own means, rounded as they print them
    assert abs(means["mnist", "OCGAN (Perera et al. 2019)"] - 97.5) < 0.05
    assert abs(means["mnist", "GEOM (Golan & El-Yaniv 2018)"] - 98.0) < 0.05
    assert abs(means["mnist", "ARNet (Ye et al. 2022)"] - 98.3) < 0.05
    assert abs(means["fashion-mnist", "GEOM (Golan & El-Yaniv 2018)"] - 93.5) < 0.1
    assert abs(means["fashion-mnist", "ARNet (Ye et al. 2022)"] - 93.9) < 0.1


def test_dataset_settings_apply_to_their_dataset_only(monkeypatch):
    monkeypatch.setitem(benchmark.MODELS, "conv_ae_long", BenchmarkModel(
        "conv_ae", {"epochs": 20}, {"fashion-mnist": {"epochs": 80}}))
    runs = planned_runs(["conv_ae_long"], ["mnist", "fashion-mnist"], [0], [0])
    epochs = {run["dataset"]: json.loads(run["settings"])["epochs"] for run in runs}
    assert epochs == {"mnist": 20, "fashion-mnist": 80}
    overridden = planned_runs(["conv_ae_long"], ["fashion-mnist"], [0], [0], {"epochs": 3})
    assert json.loads(overridden[0]["settings"])["epochs"] == 3, "the command line wins"


def test_score_table_marks_each_models_headline_once():
    rows = [{"model": "m", "dataset": "mnist", "normal_class": c, "seed": 0, "auroc": a,
             "score": "mse", "auroc_by_score": {"mse": a, "ssim": 1 - a}}
            for c, a in [(0, 0.8), (1, 0.6)]]
    lines = score_table(rows, {"m": "mse"}).splitlines()[1:]
    assert [line.split()[2:] for line in lines] == [["mse", "70.00", "headline"], ["ssim", "30.00"]]
    long_name = score_table([{**row, "model": "restoration_plus", "dataset": "fashion-mnist"}
                             for row in rows], {"restoration_plus": "mse"}).splitlines()
    assert long_name[1].split()[:3] == ["restoration_plus", "fashion-mnist", "mse"]


def test_markdown_summary_gives_each_model_and_the_whole_benchmarks_minutes():
    rows = [{"model": m, "dataset": d, "normal_class": c, "seed": 0, "auroc": 0.5 + c / 10,
             "seconds": 60.0 * (1 + c)} for m in ("a", "b") for d in ("mnist", "fashion-mnist")
            for c in (0, 1)]
    rows = [row for row in rows if (row["model"], row["dataset"]) != ("b", "fashion-mnist")]
    lines = markdown_summary(rows, {"a": "mse", "b": "nll"}, {"mnist": {"P": 97.0}}).splitlines()
    assert lines[2] == "| a | `mse` | 2 of 30 | 55.00 | 3.0 | 2 of 30 | 55.00 | 3.0 |"
    assert lines[3] == "| b | `nll` | 2 of 30 | 55.00 | 3.0 | 0 of 30 |  |  |"
    assert lines[4] == ("| every model | (one thread, runs in turn) | 4 in all |  | 6.0 | "
                        "2 in all |  | 3.0 |")
    assert lines[5] == "| P | published |  | 97.00 |  |  |  |  |"


def test_benchmarks_readme_shows_what_the_committed_grid_holds():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import grid_summary
    finally:
        sys.path.pop(0)
    readme = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    assert grid_summary.readme_table(readme) == grid_summary.grid_table(), \
        "run .venv/bin/python benchmarks/grid_summary.py --update benchmarks/README.md"


def test_headline_summary_labels_each_model_by_its_headline_score():
    rows = [{"model": "m", "dataset": "mnist", "normal_class": 0, "seed": s, "auroc": a,
             "score": "mse", "auroc_by_score": {"mse": a, "ssim": 1 - a}}
            for s, a in [(0, 0.8), (1, 0.9)]]
    summary = headline_summary(rows, {"m": "ssim"})
    assert list(summary) == [("m: ssim", "mnist")]
    assert summary[("m: ssim", "mnist")][0][0] == pytest.approx(0.15)


def test_the_benchmark_modules_import_without_a_cycle():
    """Within the benchmark package, imports go one way (no module imports one that imports it)."""
    import ast
    from pathlib import Path

    import companion.benchmark

    folder = Path(companion.benchmark.__file__).parent
    imports = {path.stem: {node.module for node in ast.walk(ast.parse(path.read_text()))
                           if isinstance(node, ast.ImportFrom) and node.level == 1}
               for path in folder.glob("*.py") if path.stem != "__init__"}

    def reaches(start, target, seen=()):
        return any(name == target or (name not in seen and reaches(name, target, seen + (name,)))
                   for name in imports.get(start, ()))

    assert imports["runner"] >= {"executors", "results"}
    assert not [module for module in imports if reaches(module, module)], imports


def fake_rows(model, means_by_class, seeds=(0, 1, 2), dataset="mnist"):
    """Rows of one (model, dataset): each class's AUROC over the seeds averages to its mean."""
    return [{"model": model, "dataset": dataset, "normal_class": c, "seed": s,
             "auroc": mean + 0.01 * (s - 1), "score": "mse", "settings": '{"epochs": 2}',
             "auroc_by_score": {"mse": mean + 0.01 * (s - 1)}, "seconds": 60.0,
             "train_size": 100 + c, "test_size": 500}
            for c, mean in enumerate(means_by_class) for s in seeds]


def test_versus_published_picks_the_best_complete_model_and_splits_the_classes():
    rows = (fake_rows("good", [0.9, 0.5]) + fake_rows("better_but_incomplete", [1.0, 1.0], seeds=[0])
            + fake_rows("weak", [0.6, 0.4]))
    headlines = {"good": "mse", "better_but_incomplete": "mse", "weak": "mse"}
    model, mean, above, below = benchmark.results.versus_published(
        rows, headlines, "mnist", [80.0, 60.0], runs_per_group=6)
    assert (model, above, below) == ("good", [0], [1])
    assert mean == pytest.approx(70.0)


def test_run_table_and_settings_table_show_one_line_per_group_and_setting(monkeypatch):
    rows = fake_rows("m", [0.9, 0.5]) + fake_rows("m", [0.7], dataset="fashion-mnist")
    lines = benchmark.results.run_table(rows, {"m": "mse"}, runs_per_group=6).splitlines()
    assert lines[1].split() == ["m", "/", "mnist", "6", "of", "6", "3", "100-101", "500", "2",
                                "mse", "6.0"]
    assert lines[2].split()[:6] == ["m", "/", "fashion-mnist", "3", "of", "6"]
    models = {"a": BenchmarkModel("conv_ae", {"epochs": 3}, {"fashion-mnist": {"epochs": 9}})}
    table = benchmark.results.settings_table(models)
    assert table.splitlines()[1].split() == ["detector", "conv_ae"]
    assert "epochs" in table and table.endswith("per dataset: {'a': {'fashion-mnist': {'epochs': 9}}}")


def test_every_published_figure_names_its_reference_and_has_ten_classes():
    import re

    from companion.benchmark import PUBLISHED, PUBLISHED_MEANS, SOURCES
    from conftest import ROOT

    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "book" / "references.bib").read_text(), re.M))
    names = {name for tables in (PUBLISHED, PUBLISHED_MEANS) for table in tables.values()
             for name in table}
    assert names and {name: SOURCES.get(name) for name in names if SOURCES.get(name) not in keys} == {}
    for table in PUBLISHED.values():
        for name, values in table.items():
            assert len(values) == 10 and all(0 < v <= 100 for v in values), name


def test_summarise_candidates_means_each_candidates_rows():
    from companion.benchmark import summarise_candidates

    def row(candidate, c, selection, test, r_error):
        return {"candidate": candidate, "class": c, "selection": {"D(R(x))": selection},
                "test": {"D(R(x))": test, "R error": r_error}}
    trials = [row("a", 0, 0.6, 0.5, 0.9), row("a", 1, 0.8, 0.7, 0.7), row("b", 0, 0.4, 0.9, 0.8)]
    means = summarise_candidates(trials)
    assert means["a"] == pytest.approx({"selection D(R(x))": 0.7, "test D(R(x))": 0.6,
                                        "test R error": 0.8})
    assert means["b"]["selection D(R(x))"] == pytest.approx(0.4) and list(means) == ["a", "b"]


def test_a_row_stays_done_when_its_detector_gains_a_setting():
    from companion.benchmark import done_key
    planned = planned_runs(["restoration_ae"], ["mnist"], [3], [0])[0]
    old = json.loads(planned["settings"])
    for later in ("architecture", "loss", "erasures", "normalise"):  # added after the rows
        old.pop(later)
    row = {**planned, "settings": json.dumps(old, sort_keys=True)}
    assert run_key(row) != run_key(planned) and done_key(row) == run_key(planned)
    changed = {**row, "settings": json.dumps({**old, "epochs": 7}, sort_keys=True)}
    assert done_key(changed) != run_key(planned), "a setting that differs is another run"


def test_restoration_record_rule_adopts_what_beats_the_baseline_then_combines():
    from companion.benchmark import choose_restoration_record
    candidates = {"baseline": {}, "U-Net": {"architecture": "unet"}, "L1": {"loss": "l1"},
                  "turns + mirror": {"erasures": "turns+mirror"},
                  "turns + patches": {"erasures": "turns+patches"}}
    selection = {"baseline": (0.90, 0.91), "U-Net": (0.89, 0.90), "L1": (0.92, 0.93),
                 "turns + mirror": (0.93, 0.94), "turns + patches": (0.92, 0.95)}

    def rows(name, plain, normalised):
        return [{"candidate": name, "class": c,
                 "selection": {"plain": plain + d, "normalised": normalised + d}}
                for c, d in ((0, -0.01), (2, 0.01))]
    trials = [r for name, (p, n) in selection.items() for r in rows(name, p, n)]
    assert choose_restoration_record(trials[:-1], candidates)["chosen"] is None, "incomplete"
    decision = choose_restoration_record(trials, candidates)
    # normalised means: baseline .91, U-Net .90 (out), L1 .93, mirror .94, patches .95 (better)
    assert decision["normalise"] is True
    assert decision["adopted"] == ["L1", "turns + patches"]
    assert decision["combination"] == {"loss": "l1", "erasures": "turns+patches"}
    assert decision["chosen"] is None, "the combination has not run yet"
    decision = choose_restoration_record(trials + rows("combination", 0.9, 0.94), candidates)
    assert decision["chosen"] == "turns + patches"
    assert decision["settings"] == {"erasures": "turns+patches", "normalise": True}
    decision = choose_restoration_record(trials + rows("combination", 0.9, 0.97), candidates)
    assert decision["chosen"] == "combination"
    assert decision["settings"] == {"loss": "l1", "erasures": "turns+patches", "normalise": True}


def test_restoration_ablation_gives_each_candidates_classes_and_means_in_percent():
    from companion.benchmark import restoration_ablation
    trials = [{"candidate": "baseline", "class": c, "selection": {"plain": s, "normalised": s + .01},
               "test": {"plain": t, "normalised": t + .02}}
              for c, s, t in ((0, 0.9, 0.8), (2, 0.7, 0.6))]
    table = restoration_ablation(trials)
    assert list(table) == ["baseline", "baseline, norm."]
    assert table["baseline"] == pytest.approx({0: 80.0, 2: 60.0, "test": 70.0,
                                               "sel. set": 80.0})
    assert table["baseline, norm."]["test"] == pytest.approx(72.0)
    assert table["baseline, norm."]["sel. set"] == pytest.approx(81.0)


def test_restoration_record_rule_runs_a_second_round_when_the_baseline_stays():
    from companion.benchmark import RESTORATION_CANDIDATES, choose_restoration_record

    def rows(name, value):
        return [{"candidate": name, "class": c, "selection": {"plain": value, "normalised": value}}
                for c in (0, 2)]
    first = [r for name in RESTORATION_CANDIDATES
             for r in rows(name, 0.90 if name == "baseline" else 0.80)]
    waiting = choose_restoration_record(first)
    assert waiting["adopted"] == [] and waiting["chosen"] is None, "round two not run yet"
    both = first + rows("64 feature maps", 0.93) + rows("3-seed ensemble", 0.92)
    decision = choose_restoration_record(both)
    assert decision["round_two"]["chosen"] == decision["chosen"] == "64 feature maps"
    assert decision["settings"] == {"base_channels": 64, "normalise": False}
    neither = first + rows("64 feature maps", 0.89) + rows("3-seed ensemble", 0.90)
    assert choose_restoration_record(neither)["chosen"] == "baseline"


def test_restoration_round_three_adopts_a_candidate_only_above_round_twos_choice():
    from companion.benchmark import restoration_round_three

    def rows(name, values):
        return [{"candidate": name, "class": c, "selection": {"plain": 0.0, "normalised": v}}
                for c, v in zip((0, 2), values)]
    chosen = rows("64 feature maps", (0.90, 0.96))
    waiting = restoration_round_three(chosen + rows("+ dense AE", (0.99,)))
    assert waiting["adopted"] is None, "one class of two is not a mean"
    better = restoration_round_three(chosen + rows("+ dense AE", (0.92, 0.95)))
    assert better["means"] == pytest.approx({"64 feature maps": 0.93, "+ dense AE": 0.935})
    assert better["adopted"] == ["+ dense AE"]
    level = restoration_round_three(chosen + rows("+ dense AE", (0.96, 0.90)))
    assert level["adopted"] == [], "a tie is no gain"
