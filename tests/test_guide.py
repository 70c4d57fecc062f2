"""The page "Which detector should I use?" is what companion.guide writes from the results."""

import json
from pathlib import Path

import pytest

from companion import guide
from companion.benchmark import append_row

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "book" / "which_detector.md"
BENCHMARK = ROOT / "benchmarks" / "results" / "one_class.csv"
RESULTS = ROOT / "chapters" / "results"


def _section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def test_committed_image_table_is_what_the_committed_benchmark_gives():
    # The benchmark CSV is committed, so this part of the page is checked on every clone.
    table = "\n".join(guide._image_table(guide.image_level(guide.read_benchmark(BENCHMARK))))
    assert table in _section(PAGE.read_text(encoding="utf-8"), "## Is this image anomalous?")


def test_committed_page_is_what_the_generator_writes_now(tmp_path, monkeypatch):
    missing = [chapter for chapter in (guide.DIGITS_CHAPTER, guide.SURFACES_CHAPTER)
               if not (RESULTS / f"{chapter}.json").exists()]
    if missing:
        pytest.skip(f"chapters/results lacks {missing}: execute those chapters (make book)")
    monkeypatch.chdir(ROOT)  # the page names the files by the CLI's default, relative paths
    out = guide.write_detector_page(tmp_path / "page.md")
    assert out.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8"), \
        "book/which_detector.md is stale: run `python -m companion.guide`"


def _run(model, dataset, normal_class, seed, auroc, seconds, by_score):
    return {"model": model, "dataset": dataset, "normal_class": normal_class, "seed": seed,
            "auroc": auroc, "score": next(iter(by_score)), "auroc_by_score": by_score,
            "f1_by_outlier_share": {}, "seconds": seconds, "train_size": 10, "test_size": 20,
            "train_source": "test", "device": "cpu", "settings": "{}"}


def _localisation(pro_by_model):
    return {model: {"all": {"image_auroc": 0.5, "pixel_auroc": pixel, "pro": pro}}
            for model, (pixel, pro) in pro_by_model.items()}


@pytest.fixture
def tiny_results(tmp_path):
    csv = tmp_path / "one_class.csv"
    for dataset, big, small in (("mnist", 0.90, 0.89), ("fashion-mnist", 0.80, 0.785)):
        for normal_class in (0, 1):
            for seed, shift in ((0, 0.01), (1, -0.01)):  # seeds average out to big / small
                append_row(csv, _run("big_ae", dataset, normal_class, seed, big + shift, 100.0,
                                     {"mse": big + shift}))
                append_row(csv, _run("small_ae", dataset, normal_class, seed, small, 20.0,
                                     {"mse": small}))
                append_row(csv, _run("alocc", dataset, normal_class, seed, 0.52, 60.0,
                                     {"D(R(x))": 0.52, "R error": 0.70}))
    results = tmp_path / "results"
    results.mkdir()
    (results / f"{guide.DIGITS_CHAPTER}.json").write_text(json.dumps({
        "dataset": "mnist", "normal_classes": [3], "device": "cpu", "max_fpr": 0.3,
        "localisation": _localisation({"dense AE": (0.95, 0.70), "ALOCC": (0.97, 0.60)})}))
    (results / f"{guide.SURFACES_CHAPTER}.json").write_text(json.dumps({
        "category": "brick", "device": "cpu", "max_fpr": 0.3,
        "localisation": _localisation({"conv AE": (0.60, 0.55), "SSIM AE": (0.70, 0.65)})}))
    return csv, results


def test_tables_and_recommendations_are_computed_from_the_numbers(tiny_results, tmp_path):
    csv, results = tiny_results
    text = guide.write_detector_page(tmp_path / "page.md", csv, results).read_text()
    assert "| `mse` | 90.00 | 80.00 | 100.0 |" in text        # big_ae: seeds averaged
    assert "| small_ae | `mse` | 89.00 | 78.50 | 20.0 |" in text
    assert f"({3 * 2 * 2 * 2} benchmark runs" in text
    assert "best image AUROC on both datasets (90.00 % on MNIST and 80.00 % on Fashion-MNIST)" in text
    # small_ae loses 1.00 and 1.50 points, within the 2-point rule, at a fifth of the time.
    assert "small_ae is the fastest model within 2 points of big_ae" in text
    assert "(1.00 and 1.50 points lower): 20.0 s per run against 100.0 s" in text
    assert "do not use alocc's `D(R(x))` alone: 52.00 % and 52.00 %" in text
    assert "ranked by `R error` reach 70.00 % and 70.00 %" in text
    assert "| dense AE | 0.950 | 0.700 |" in text
    assert "Use the map of dense AE: the best PRO on MNIST (0.700); ALOCC has the best pixel AUROC" in text
    assert "Use the map of SSIM AE: the best PRO on brick surfaces (0.650) and the best pixel AUROC (0.700)" in text


def _page(rows, csv, results):
    """The page from ``rows`` and the tiny chapter results."""
    read = lambda chapter: json.loads((results / f"{chapter}.json").read_text())
    return guide.detector_page(rows, read(guide.DIGITS_CHAPTER), read(guide.SURFACES_CHAPTER),
                               csv, results)


def test_a_model_with_part_of_the_grid_is_marked_and_recommends_nothing(tiny_results, tmp_path):
    csv, results = tiny_results
    rows = guide.read_benchmark(csv) + [  # one MNIST run only, far above every full model
        _run("new_ae", "mnist", 0, 0, 0.99, 5.0, {"mse": 0.99})]
    text = _page(rows, csv, results)
    assert "| new_ae | `mse` | 99.00 (1 of 4 runs) |  | 5.0 |" in text
    assert "| small_ae | `mse` | 89.00 | 78.50 | 20.0 |" in text, "full models stay unmarked"
    assert "Use big_ae: the best image AUROC on both datasets" in text.replace(
        "{doc}`big_ae <../chapters/10_one_class_benchmark>`", "big_ae")
    assert "new_ae is the fastest" not in text


def test_no_alocc_warning_when_the_score_detects(tiny_results, tmp_path):
    csv, results = tiny_results
    rows = [row for row in guide.read_benchmark(csv) if row["model"] != "alocc"]
    text = _page(rows, csv, results)
    assert "does not detect" not in text


def test_missing_benchmark_names_the_path_and_make_benchmark(tiny_results, tmp_path):
    _, results = tiny_results
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(guide.ResultsNotFoundError, match="make benchmark") as error:
        guide.write_detector_page(tmp_path / "page.md", missing, results)
    assert str(missing) in str(error.value)
    assert not (tmp_path / "page.md").exists()


def test_missing_chapter_results_name_the_chapter_to_execute(tiny_results, tmp_path, capsys):
    csv, results = tiny_results
    (results / f"{guide.SURFACES_CHAPTER}.json").unlink()
    with pytest.raises(guide.ResultsNotFoundError,
                       match=r"11_inspecting_surfaces\.json is missing: execute the chapter"):
        guide.write_detector_page(tmp_path / "page.md", csv, results)
    with pytest.raises(SystemExit) as exit_:
        guide.main(["--out", str(tmp_path / "page.md"), "--benchmark", str(csv),
                    "--results", str(results)])
    assert exit_.value.code == 1
    assert "companion.execute chapters/11_inspecting_surfaces.ipynb" in capsys.readouterr().err
