"""The book's page "Which detector should I use?", written from the measured results.

``python -m companion.guide [--out PAGE] [--benchmark CSV] [--results DIR]`` reads the one-class
benchmark's CSV (chapter 10) and the results files of chapters 08 and 11, and writes a short
MyST page: one table per question and a recommendation per situation, each chosen from the
numbers by the fixed rules below and stated with the figure that supports it. No figure on the
page is typed by hand; a test checks that the committed page is what this module writes now.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .benchmark import mean_by_score, mean_over_classes, read_rows, summarise
from .errors import CompanionError
from .files import atomic_path

DATASETS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
DIGITS_CHAPTER, SURFACES_CHAPTER = "08_where_is_the_anomaly", "11_inspecting_surfaces"
#: A cheaper model is worth naming when it loses at most this many AUROC points on every dataset.
CHEAPER_WITHIN_POINTS = 2.0
#: A headline score below this mean AUROC (%) on every dataset is called one that does not detect.
DOES_NOT_DETECT_BELOW = 60.0
#: Where each benchmark model is built, for the page's links.
MODEL_CHAPTERS = {"dense_ae": "02_dense_autoencoder", "conv_ae": "03_conv_autoencoder",
                  "alocc": "06_alocc", "alocc_fixed": "06_alocc", "ano_unet": "07_ano_unet",
                  "fnet_distance": "07_ano_unet", "fnet_oe": "07_ano_unet",
                  "restoration_ae": "09_restoration_autoencoder",
                  "restoration_plus": "09_restoration_autoencoder",
                  "restoration_pair": "09_restoration_autoencoder",
                  "vae": "04_variational_autoencoder"}


class ResultsNotFoundError(CompanionError, FileNotFoundError):
    """A results file the page is written from is missing: names the path and how to make it."""


def _doc(chapter: str, text: str | None = None) -> str:
    target = f"../chapters/{chapter}"
    return f"{{doc}}`{text} <{target}>`" if text else f"{{doc}}`{target}`"


def _model_link(model: str) -> str:
    return _doc(MODEL_CHAPTERS[model], model) if model in MODEL_CHAPTERS else model


def read_benchmark(path) -> list[dict]:
    """The benchmark's rows; a clear error if the file is missing or holds no runs."""
    path = Path(path)
    rows = read_rows(path)
    if not rows:
        raise ResultsNotFoundError(f"{path} is missing or holds no runs: run `make benchmark` "
                                   "(chapter 10) to make it")
    return rows


def read_chapter_results(results_dir, chapter: str) -> dict:
    """A chapter's results file; a clear error naming the chapter to execute if it is missing."""
    path = Path(results_dir) / f"{chapter}.json"
    if not path.exists():
        raise ResultsNotFoundError(
            f"{path} is missing: execute the chapter to write it "
            f"(`python -m companion.execute chapters/{chapter}.ipynb`, or `make book`)")
    return json.loads(path.read_text(encoding="utf-8"))


def image_level(rows) -> dict:
    """Per model: its headline score, mean AUROC (%) per dataset and mean seconds per run."""
    summary = summarise(rows)
    table = {}
    for model in dict.fromkeys(row["model"] for row in rows):
        runs = [row for row in rows if row["model"] == model]
        table[model] = {
            "score": runs[0]["score"], "runs": len(runs),
            "seconds": float(np.mean([row["seconds"] for row in runs])),
            **{dataset: 100 * mean_over_classes(summary[(model, dataset)])
               for dataset in DATASETS if (model, dataset) in summary},
            "runs_per_dataset": {dataset: sum(row["dataset"] == dataset for row in runs)
                                 for dataset in DATASETS}}
    return table


def _localisation(results: dict) -> dict:
    return {model: metrics["all"] for model, metrics in results["localisation"].items()}


def _full_grid(table: dict) -> dict:
    """Per dataset, the most runs any model has there: the full grid (30 in the benchmark)."""
    return {d: max(cells["runs_per_dataset"][d] for cells in table.values()) for d in DATASETS}


def _image_table(table: dict) -> list[str]:
    lines = ["| model | headline score | " + " | ".join(f"{name} mean AUROC (%)"
                                                       for name in DATASETS.values())
             + " | seconds per run |", "| --- | --- |" + " ---: |" * (len(DATASETS) + 1)]
    full = _full_grid(table)
    for model, cells in table.items():
        # a mean over part of the grid is not comparable with a full one: say how much it holds
        means = [f"{cells[d]:.2f}" + (f" ({cells['runs_per_dataset'][d]} of {full[d]} runs)"
                                      if cells["runs_per_dataset"][d] < full[d] else "")
                 if d in cells else "" for d in DATASETS]
        lines.append(f"| {_model_link(model)} | `{cells['score']}` | " + " | ".join(means)
                     + f" | {cells['seconds']:.1f} |")
    return lines


def _localisation_table(metrics: dict) -> list[str]:
    lines = ["| model | pixel AUROC | PRO |", "| --- | ---: | ---: |"]
    lines += [f"| {model} | {m['pixel_auroc']:.3f} | {m['pro']:.3f} |" for model, m in metrics.items()]
    return lines


def image_recommendations(table: dict, rows) -> list[str]:
    """The image-level rules: the best on every dataset, a cheaper near-best, a score that fails."""
    full = _full_grid(table)
    complete = {m: c for m, c in table.items()
                if all(c["runs_per_dataset"][d] == full[d] for d in DATASETS)}
    advice = []
    best_per_dataset = {d: max(complete, key=lambda m: complete[m][d]) for d in DATASETS}
    figures = " and ".join(f"{complete[m][d]:.2f} % on {DATASETS[d]}"
                           for d, m in best_per_dataset.items())
    if len(set(best_per_dataset.values())) == 1:
        best = next(iter(best_per_dataset.values()))
        advice.append(f"**Is this image anomalous?** Use {_model_link(best)}: the best image "
                      f"AUROC on both datasets ({figures}).")
    else:
        best = max(complete, key=lambda m: np.mean([complete[m][d] for d in DATASETS]))
        advice.append("**Is this image anomalous?** No model is best on both datasets: "
                      + ", ".join(f"{_model_link(m)} on {DATASETS[d]} ({complete[m][d]:.2f} %)"
                                  for d, m in best_per_dataset.items()) + ".")
    near = [m for m in complete if m != best and complete[m]["seconds"] < complete[best]["seconds"]
            and all(complete[best][d] - complete[m][d] <= CHEAPER_WITHIN_POINTS for d in DATASETS)]
    if near:
        cheap = min(near, key=lambda m: complete[m]["seconds"])
        losses = " and ".join(f"{complete[best][d] - complete[cheap][d]:.2f}" for d in DATASETS)
        advice.append(f"**Short of time?** {_model_link(cheap)} is the fastest model within "
                      f"{CHEAPER_WITHIN_POINTS:g} points of {best} on both datasets ({losses} "
                      f"points lower): {complete[cheap]['seconds']:.1f} s per run against "
                      f"{complete[best]['seconds']:.1f} s.")
    else:
        advice.append(f"**Short of time?** No faster model comes within "
                      f"{CHEAPER_WITHIN_POINTS:g} points of {best} on both datasets.")
    by_score = mean_by_score(rows)
    for model, cells in complete.items():
        if all(cells[d] < DOES_NOT_DETECT_BELOW for d in DATASETS):
            headline = cells["score"]
            others = {s for d in DATASETS for s in by_score[model][d]} - {headline}
            better = max(others, key=lambda s: min(by_score[model][d].get(s, 0) for d in DATASETS),
                         default=None)
            text = (f"**A score that does not detect:** do not use {model}'s `{headline}` alone: "
                    + " and ".join(f"{cells[d]:.2f} %" for d in DATASETS)
                    + f" mean AUROC, near chance (50 %; see {_doc(MODEL_CHAPTERS.get(model, '10_one_class_benchmark'))}).")
            if better is not None:
                text += (f" The same networks ranked by `{better}` reach "
                         + " and ".join(f"{100 * by_score[model][d][better]:.2f} %" for d in DATASETS)
                         + ".")
            advice.append(text)
    return advice


def _localisation_advice(question: str, metrics: dict, where: str) -> str:
    best_pro = max(metrics, key=lambda m: metrics[m]["pro"])
    best_pixel = max(metrics, key=lambda m: metrics[m]["pixel_auroc"])
    text = (f"**{question}** Use the map of {best_pro}: the best PRO {where} "
            f"({metrics[best_pro]['pro']:.3f})")
    if best_pixel == best_pro:
        return text + f" and the best pixel AUROC ({metrics[best_pro]['pixel_auroc']:.3f})."
    return (text + f"; {best_pixel} has the best pixel AUROC ({metrics[best_pixel]['pixel_auroc']:.3f}"
            f" against {metrics[best_pro]['pixel_auroc']:.3f}), but PRO weighs small defects "
            "as much as large ones.")


def detector_page(rows, digits: dict, surfaces: dict, benchmark_csv, results_dir) -> str:
    """The page's MyST text from the benchmark rows and chapters 08 and 11's results."""
    table = image_level(rows)
    digit_metrics, surface_metrics = _localisation(digits), _localisation(surfaces)
    results_dir = Path(results_dir).as_posix()
    normal = ", ".join(str(c) for c in digits.get("normal_classes", []))
    devices = " and ".join(dict.fromkeys([digits["device"], surfaces["device"]]))
    lines = [
        "# Which detector should I use?", "",
        f"Every figure below is computed by `companion.guide` from measured results: "
        f"`{Path(benchmark_csv).as_posix()}` ({len(rows)} benchmark runs, "
        f"{_doc('10_one_class_benchmark')}), `{results_dir}/{DIGITS_CHAPTER}.json` and "
        f"`{results_dir}/{SURFACES_CHAPTER}.json` (one execution of each chapter at its defaults, "
        f"on {devices}). Rerun `python -m companion.guide` after "
        "any of them changes.", "",
        "## Is this image anomalous?", "",
        "Mean AUROC over the ten one-class tasks of each dataset (each class in turn normal), "
        "averaged over seeds; seconds are training plus scoring, mean over every run of the "
        "model, on the machine the benchmark ran on.", "",
        *_image_table(table), "",
        "## Where is the anomaly?", "",
        f"Defects pasted into {DATASETS.get(digits['dataset'], digits['dataset'])} class {normal} "
        f"images ({_doc(DIGITS_CHAPTER)}), all defect kinds together; PRO is the area under "
        f"the per-region overlap curve up to a false-positive rate of {digits['max_fpr']:g}.", "",
        *_localisation_table(digit_metrics), "",
        f"Defects on {surfaces['category']} surfaces ({_doc(SURFACES_CHAPTER)}), all defect "
        f"kinds together, PRO up to a false-positive rate of {surfaces['max_fpr']:g}.", "",
        *_localisation_table(surface_metrics), "",
        "## Recommendations", "",
        *[f"- {advice}" for advice in image_recommendations(table, rows)],
        "- " + _localisation_advice("Where is the defect in an object image?", digit_metrics,
                                    f"on {DATASETS.get(digits['dataset'], digits['dataset'])}"),
        "- " + _localisation_advice("Where is the defect on a surface?", surface_metrics,
                                    f"on {surfaces['category']} surfaces"),
        "",
        "These rules rank mean figures of one benchmark and one run per localisation chapter; "
        "the chapters show the spread behind each mean.", ""]
    return "\n".join(lines)


def write_detector_page(out="book/which_detector.md", benchmark_csv="benchmarks/results/one_class.csv",
                        results_dir="chapters/results") -> Path:
    """Write the page atomically from the benchmark CSV and chapters 08 and 11's results."""
    rows = read_benchmark(benchmark_csv)
    digits = read_chapter_results(results_dir, DIGITS_CHAPTER)
    surfaces = read_chapter_results(results_dir, SURFACES_CHAPTER)
    text = detector_page(rows, digits, surfaces, benchmark_csv, results_dir)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="book/which_detector.md", type=Path)
    parser.add_argument("--benchmark", default="benchmarks/results/one_class.csv", type=Path)
    parser.add_argument("--results", default="chapters/results", type=Path)
    args = parser.parse_args(argv)
    try:
        path = write_detector_page(args.out, args.benchmark, args.results)
    except CompanionError as error:
        parser.exit(1, f"{type(error).__name__}: {error}\n")
    print("written", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
