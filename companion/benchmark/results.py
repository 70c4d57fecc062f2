"""The benchmark's one record, a CSV file of runs, and the summaries chapters print from it.

Defined in chapter 10. One row per finished run; the file is rewritten atomically with each new
row, so an interrupted benchmark leaves a whole file behind, and under a lock, so two runners
appending to one file at once lose nothing. Runs that failed go to a second file beside it
(:func:`failures_path`), never into the results.
"""

from __future__ import annotations

import csv
import json
import time
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; run one runner per file there
    fcntl = None

import numpy as np

from ..files import atomic_path
from ..metrics import format_table

COLUMNS = ["model", "dataset", "normal_class", "seed", "auroc", "score", "auroc_by_score",
           "f1_by_outlier_share", "seconds", "train_size", "test_size", "train_source", "device",
           "settings", "restarts"]
_JSON_COLUMNS = ("auroc_by_score", "f1_by_outlier_share")


def run_key(row: dict) -> tuple:
    """What makes two runs the same run (settings included); chapter 10."""
    return (row["model"], row["dataset"], int(row["normal_class"]), int(row["seed"]),
            row["settings"])


def read_rows(path) -> list[dict]:
    """The rows of a benchmark CSV file (none if it does not exist yet); chapter 10."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        row["normal_class"], row["seed"] = int(row["normal_class"]), int(row["seed"])
        row["auroc"], row["seconds"] = float(row["auroc"]), float(row["seconds"])
        row["train_size"], row["test_size"] = int(row["train_size"]), int(row["test_size"])
        row["restarts"] = int(row.get("restarts") or 0)  # rows from before restarts existed: none
        for column in _JSON_COLUMNS:  # rows written before a column existed read as empty
            row[column] = json.loads(row.get(column) or "{}")
    return rows


@contextmanager
def locked(path):
    """Hold an exclusive lock on ``path``'s ``.lock`` file beside it (a no-op without fcntl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)


def append_row(path, row: dict) -> bool:
    """Rewrite the file with one more row, atomically and under :func:`locked`.

    A crash leaves the old file whole; a row whose :func:`run_key` the file already holds (a
    second runner finished the same run) is not written twice. Returns whether it was written.
    """
    with locked(path):
        rows = read_rows(path)
        if run_key(row) in {run_key(each) for each in rows}:
            return False
        rows.append(row)
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, COLUMNS)
            writer.writeheader()
            for each in rows:
                writer.writerow({**each, **{column: json.dumps(each.get(column, {}))
                                            for column in _JSON_COLUMNS}})
    return True


def failures_path(path) -> Path:
    """Where the runs that failed are recorded: ``<results>.failures.jsonl`` beside the CSV."""
    path = Path(path)
    return path.with_name(path.stem + ".failures.jsonl")


def record_failure(path, run: dict, error: str) -> None:
    """Append one failed run (its key, settings and error) to :func:`failures_path`, locked.

    The run stays out of the results, so the next call runs it again.
    """
    with locked(path), failures_path(path).open("a", encoding="utf-8") as file:
        file.write(json.dumps({**{k: run[k] for k in ("model", "dataset", "normal_class", "seed",
                                                       "settings")},
                               "error": error, "time": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")


def read_failures(path) -> list[dict]:
    """The failed runs recorded beside the results file ``path`` (none if the file is absent)."""
    failures = failures_path(path)
    if not failures.exists():
        return []
    return [json.loads(line) for line in failures.read_text(encoding="utf-8").splitlines() if line]


def summarise(rows, score: str | None = None) -> dict:
    """Mean and sample standard deviation of AUROC over seeds, per (model, dataset, class).

    ``score`` picks an entry of ``auroc_by_score`` instead of the headline score. Returns
    ``{(model, dataset): {normal_class: (mean, std, number_of_seeds)}}``; the std is NaN for a
    single seed.
    """
    values: dict = {}
    for row in rows:
        auroc = row["auroc"] if score is None else row["auroc_by_score"][score]
        values.setdefault((row["model"], row["dataset"]), {}).setdefault(
            row["normal_class"], []).append(auroc)
    return {key: {c: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
                      len(v))
                  for c, v in sorted(per_class.items())}
            for key, per_class in values.items()}


def class_table(summary: dict, dataset: str, published: dict | None = None,
                published_means: dict | None = None) -> str:
    """Per-class AUROC (%) of every model of ``dataset``: mean ± std over seeds, and the mean
    over classes; ``published`` rows (name -> ten values in %) go underneath, then
    ``published_means`` (name -> the paper's mean in %, no per-class cells); chapter 10."""
    rows = {}
    for (model, d), per_class in summary.items():
        if d == dataset:
            rows[model] = {c: f"{100 * m:.1f}±{100 * s:.1f}" if s == s else f"{100 * m:.1f}"
                           for c, (m, s, _) in per_class.items()}
            rows[model]["mean"] = f"{100 * np.mean([m for m, _, _ in per_class.values()]):.2f}"
    for name, values in (published or {}).items():
        rows[name] = {**{c: f"{v:.1f}" for c, v in enumerate(values)}, "mean": f"{np.mean(values):.2f}"}
    for name, mean in (published_means or {}).items():
        rows[name] = {"mean": f"{mean:.2f}"}
    classes = sorted({c for cells in rows.values() for c in cells if c != "mean"})
    return format_table(rows, classes + ["mean"], "model", width=11)


def mean_over_classes(per_class: dict) -> float:
    """The mean over classes of the per-class mean AUROC of one (model, dataset)."""
    return float(np.mean([mean for mean, _, _ in per_class.values()]))


def headline_summary(rows, headlines: dict) -> dict:
    """:func:`summarise` under each model's headline score, for :func:`class_table` and the
    figures; keys are ``("model: score", dataset)``, ``headlines`` maps a model to its headline
    (``MODELS[m].defaults()["score"]``); chapter 10."""
    summary = {}
    for model in dict.fromkeys(row["model"] for row in rows):
        model_rows = [row for row in rows if row["model"] == model]
        summary.update({(f"{model}: {headlines[model]}", dataset): per_class
                        for (_, dataset), per_class in summarise(model_rows, headlines[model]).items()})
    return summary


def outlier_share_f1(rows, model: str, dataset: str, score: str) -> dict:
    """F1 at each outlier share, mean over classes of the mean over seeds; chapter 06.

    Returns ``{share: mean F1}`` (shares as the rows store them, "0.1", ...), empty if no row
    of ``(model, dataset)`` recorded ``score``.
    """
    per_class: dict = {}
    for row in rows:
        if (row["model"], row["dataset"]) == (model, dataset) and score in row["f1_by_outlier_share"]:
            per_class.setdefault(row["normal_class"], []).append(row["f1_by_outlier_share"][score])
    shares = sorted({share for runs in per_class.values() for run in runs for share in run}, key=float)
    return {share: float(np.mean([np.mean([run[share] for run in runs])
                                  for runs in per_class.values()])) for share in shares}


def mean_by_score(rows) -> dict:
    """Mean over classes of every score the rows recorded: ``{model: {dataset: {score: mean}}}``.

    The score lever of chapter 10: the same trained networks, ranked by each of their scores.
    """
    means: dict = {}
    for model, dataset in dict.fromkeys((row["model"], row["dataset"]) for row in rows):
        group = [row for row in rows if (row["model"], row["dataset"]) == (model, dataset)]
        means.setdefault(model, {})[dataset] = {
            score: mean_over_classes(summarise(group, score)[(model, dataset)])
            for score in group[0]["auroc_by_score"]}
    return means


def score_table(rows, headlines: dict) -> str:
    """:func:`mean_by_score` in % as a table, one line per (model, dataset, score), marking the
    headline score ``headlines`` names for each model; chapter 10."""
    by_score = mean_by_score(rows)
    # the model and dataset columns as wide as their longest name, and a space more
    model_width = max([len("model")] + [len(model) for model in by_score]) + 1
    dataset_width = max([len("dataset")] + [len(d) for per_dataset in by_score.values()
                                            for d in per_dataset]) + 1
    lines = {}
    for model, per_dataset in by_score.items():
        for dataset, means in per_dataset.items():
            for score, mean in means.items():
                lines[f"{model:<{model_width}}{dataset:<{dataset_width}}{score}"] = {
                    "mean AUROC (%)": f"{100 * mean:.2f}",
                    "headline": "headline" if headlines.get(model) == score else ""}
    return format_table(lines, ["mean AUROC (%)", "headline"],
                        f"{'model':<{model_width}}{'dataset':<{dataset_width}}score", width=16)


def markdown_summary(rows, headlines: dict, published_means: dict) -> str:
    """The committed grid in one Markdown table (benchmarks/README.md): per model and dataset,
    runs of 30, mean AUROC (%) of the headline over the classes present, and minutes; then the
    minutes of every run together, and the published means underneath. A test checks that the
    README shows what the file holds."""
    datasets = ["mnist", "fashion-mnist"]
    lines = ["| model | headline | " + " | ".join(f"{d}: runs | {d}: mean AUROC (%) | {d}: minutes"
                                              for d in datasets) + " |",
             "| --- | --- |" + " ---: | ---: | ---: |" * len(datasets)]
    summary = summarise(rows)
    for model in dict.fromkeys(row["model"] for row in rows):
        cells = []
        for dataset in datasets:
            group = [row for row in rows if (row["model"], row["dataset"]) == (model, dataset)]
            if not group:
                cells += ["0 of 30", "", ""]
                continue
            mean = 100 * mean_over_classes(summary[(model, dataset)])
            cells += [f"{len(group)} of 30", f"{mean:.2f}",
                      f"{sum(row['seconds'] for row in group) / 60:.1f}"]
        lines.append(f"| {model} | `{headlines[model]}` | " + " | ".join(cells) + " |")
    # the whole benchmark's CPU time: what one thread would take to run every row in turn
    totals = [[f"{sum(row['dataset'] == d for row in rows)} in all", "",
               f"{sum(row['seconds'] for row in rows if row['dataset'] == d) / 60:.1f}"]
              for d in datasets]
    lines.append("| every model | (one thread, runs in turn) | "
                 + " | ".join(c for cells in totals for c in cells) + " |")
    for dataset, means in published_means.items():
        for name, mean in means.items():
            cells = [["", f"{mean:.2f}", ""] if d == dataset else ["", "", ""] for d in datasets]
            lines.append(f"| {name} | published | " + " | ".join(c for d in cells for c in d) + " |")
    return "\n".join(lines)


def settings_table(models: dict) -> str:
    """Every benchmark model's detector, headline score and settings, one column per model,
    then the settings one dataset changes; ``models`` is ``MODELS``; chapter 10."""
    columns = {}
    for name, model in models.items():
        settings = model.defaults()
        columns[name] = {"detector": model.detector, "headline score": settings.pop("score"),
                         **{setting: str(value) for setting, value in settings.items()}}
    names = dict.fromkeys(setting for settings in columns.values() for setting in settings)
    table = format_table({setting: {model: settings[setting] for model, settings in columns.items()
                                    if setting in settings} for setting in names},
                         list(models), "setting", width=17)
    per_dataset = {name: model.dataset_settings for name, model in models.items()
                   if model.dataset_settings}
    return f"{table}\n\nper dataset: {per_dataset}"


def run_table(rows, headlines: dict, runs_per_group: int = 30) -> str:
    """What the file holds per (model, dataset), models in the order of ``headlines``: runs,
    seeds, training images (smallest and largest class), test images, epochs, headline score
    and minutes of training and scoring; chapter 10."""
    groups: dict = {}
    for row in sorted(rows, key=lambda row: list(headlines).index(row["model"])):
        groups.setdefault(f"{row['model']} / {row['dataset']}", []).append(row)
    lines = {}
    for label, group in groups.items():
        settings = json.loads(group[0]["settings"])
        train_sizes = sorted({min(r["train_size"] for r in group), max(r["train_size"] for r in group)})
        lines[label] = {"runs": f"{len(group)} of {runs_per_group}",
                        "seeds": len({r["seed"] for r in group}),
                        "train images": "-".join(f"{n:,}" for n in train_sizes),
                        "test images": f"{group[0]['test_size']:,}",
                        "epochs": settings.get("epochs", settings.get("fnet_epochs")),
                        "headline": headlines[group[0]["model"]],
                        "minutes": f"{sum(r['seconds'] for r in group) / 60:.1f}"}
    return format_table(lines, ["runs", "seeds", "train images", "test images", "epochs",
                                "headline", "minutes"], "model / dataset", width=17)


def versus_published(rows, headlines: dict, dataset: str, published, runs_per_group: int = 30):
    """The best complete model of ``dataset`` (all ``runs_per_group`` runs in, highest mean
    AUROC of its headline) against one published per-class row (ten values in %); chapter 10.

    Returns ``(model, mean AUROC in %, classes above the row, classes below it)``, each class
    judged by its mean over seeds.
    """
    per_model = {}
    for model, headline in headlines.items():
        group = [row for row in rows if (row["model"], row["dataset"]) == (model, dataset)]
        if len(group) == runs_per_group:
            per_model[model] = summarise(group, headline)[(model, dataset)]
    best = max(per_model, key=lambda model: mean_over_classes(per_model[model]))
    above = [c for c, (mean, _, _) in per_model[best].items() if 100 * mean > published[c]]
    return (best, 100 * mean_over_classes(per_model[best]), above,
            [c for c in per_model[best] if c not in above])


def summarise_candidates(trials: list[dict]) -> dict:
    """Mean AUROCs of each candidate of a pre-registered choice (``benchmarks/alocc_fix.py``'s
    rows: one per candidate and class, with ``selection`` and ``test`` AUROCs per score);
    chapter 06. Returns ``{candidate: {"selection D(R(x))", "test D(R(x))", "test R error"}}``.
    """
    columns = {"selection D(R(x))": ("selection", "D(R(x))"), "test D(R(x))": ("test", "D(R(x))"),
               "test R error": ("test", "R error")}
    by_candidate: dict = {}
    for row in trials:
        by_candidate.setdefault(row["candidate"], []).append(row)
    return {name: {column: float(np.mean([row[part][score] for row in rows]))
                   for column, (part, score) in columns.items()}
            for name, rows in by_candidate.items()}


#: The candidates of ``benchmarks/results/restoration_record_rule.md``: the baseline (chapter
#: 09's restoration AE) and four single changes to it, as detector settings.
RESTORATION_CANDIDATES = {"baseline": {}, "U-Net": {"architecture": "unet"}, "L1": {"loss": "l1"},
                          "turns + mirror": {"erasures": "turns+mirror"},
                          "turns + patches": {"erasures": "turns+patches"}}


#: The rule's second round, run when round one keeps the baseline: more feature maps, and
#: three networks (seeds 0, 1, 2), each headline divided by its held-out normal mean, averaged.
RESTORATION_ROUND_TWO = {"64 feature maps": {"base_channels": 64},
                         "3-seed ensemble": {"seeds": [0, 1, 2]}}


#: The rule's third round, on top of round two's choice: a dense AE beside the 64-map restorer,
#: each network's headline divided by its held-out normal mean, the two averaged.
RESTORATION_ROUND_THREE = {"+ dense AE": {"base_channels": 64, "partner": "dense_ae"}}


def restoration_round_three(trials: list[dict]) -> dict:
    """Round three of ``benchmarks/results/restoration_record_rule.md`` on one dataset's rows:
    the mean selection AUROC (normalised, over the classes of round two's 64-map rows) of
    round two's choice and of each candidate, and the candidates adopted (those above it);
    ``adopted`` is None until every run is in; chapter 09."""
    classes = {row["class"] for row in trials if row["candidate"] == "64 feature maps"}

    def mean(name):
        values = {row["class"]: row["selection"]["normalised"] for row in trials
                  if row["candidate"] == name}
        return float(np.mean(list(values.values()))) if classes and set(values) == classes else None

    means = {name: mean(name) for name in ["64 feature maps", *RESTORATION_ROUND_THREE]}
    if any(value is None for value in means.values()):
        return {"means": means, "adopted": None}
    return {"means": means, "adopted": [name for name in RESTORATION_ROUND_THREE
                                        if means[name] > means["64 feature maps"]]}


def choose_restoration_record(trials: list[dict], candidates: dict = RESTORATION_CANDIDATES) -> dict:
    """The pre-registered choice of ``benchmarks/results/restoration_record_rule.md`` applied to
    ``benchmarks/choose_restoration_record.py``'s rows (one per candidate and class, with
    ``selection`` AUROCs ``plain`` and ``normalised``); chapter 09.

    ``candidates`` maps each single change's name to its settings, ``"baseline"`` to none.
    Returns the mean selection AUROCs, whether normalisation is adopted, the adopted changes,
    their ``combination`` (settings, or None with fewer than two) and, once every run the rule
    needs is in, the ``chosen`` model and its ``settings``; when round one keeps the baseline,
    ``round_two`` holds the second round's means and choice, which then becomes ``chosen``.
    """
    classes = {row["class"] for row in trials if row["candidate"] == "baseline"}

    def mean(name, kind):
        values = {row["class"]: row["selection"][kind] for row in trials
                  if row["candidate"] == name}
        complete = classes and set(values) == classes
        return float(np.mean(list(values.values()))) if complete else None

    decision = {"normalise": None, "adopted": [], "combination": None, "means": {},
                "chosen": None, "settings": None}
    if any(mean(name, "plain") is None for name in candidates):
        return decision  # the single changes are not all measured yet
    kind = "normalised" if mean("baseline", "normalised") > mean("baseline", "plain") else "plain"
    means = {name: mean(name, kind) for name in candidates}
    adopted = [name for name in candidates if name != "baseline" and means[name] > means["baseline"]]
    erasure_sets = [name for name in adopted if "erasures" in candidates[name]]
    if len(erasure_sets) > 1:  # only the better erasure set can be adopted
        worse = min(erasure_sets, key=lambda n: means[n])
        adopted = [name for name in adopted if name != worse]
    settings = {name: dict(candidates[name]) for name in candidates}
    if len(adopted) >= 2:
        combination = {k: v for name in adopted for k, v in candidates[name].items()}
        decision["combination"] = combination
        settings["combination"] = combination
        means["combination"] = mean("combination", kind)
    decision.update(normalise=kind == "normalised", adopted=adopted, means=means)
    if any(value is None for value in means.values()):
        return decision  # the combination is still to run
    # highest mean; a tie goes to the one with fewer changes
    chosen = max(means, key=lambda name: (means[name], -len(settings[name])))
    decision.update(chosen=chosen, settings={**settings[chosen], "normalise": kind == "normalised"})
    if chosen == "baseline":
        decision["round_two"] = _round_two(trials, kind, means["baseline"], mean)
        if decision["round_two"]["chosen"] is None:  # round two still running
            decision.update(chosen=None, settings=None)
        elif decision["round_two"]["chosen"] != "baseline":
            decision.update(chosen=decision["round_two"]["chosen"], settings={
                **RESTORATION_ROUND_TWO[decision["round_two"]["chosen"]],
                "normalise": kind == "normalised"})
    return decision


def _round_two(trials, kind, baseline, mean) -> dict:
    """The rule's second round: each candidate against round one's choice (the baseline); the
    higher of those above it is chosen; None until every run is in."""
    means = {name: mean(name, kind) for name in RESTORATION_ROUND_TWO}
    if any(value is None for value in means.values()):
        return {"means": means, "chosen": None}
    better = {name: value for name, value in means.items() if value > baseline}
    return {"means": means, "chosen": max(better, key=better.get) if better else "baseline"}


def restoration_ablation(trials: list[dict]) -> dict:
    """The ablation of chapter 09: for each candidate of ``benchmarks/choose_restoration_record.py``
    (rows with ``selection`` and ``test`` AUROCs, ``plain`` and ``normalised``), its test AUROC
    (%) per class and the means over classes, without and with per-erasure normalisation.
    Returns ``{"candidate" or "candidate, norm.": {class: %, "test": mean, "sel. set":
    mean}}`` for :func:`~companion.metrics.format_table`; the selection means are what the rule
    reads.
    """
    table = {}
    for name in dict.fromkeys(row["candidate"] for row in trials):
        rows = [row for row in trials if row["candidate"] == name]
        for kind, label in (("plain", name), ("normalised", f"{name}, norm.")):
            table[label] = {**{row["class"]: 100 * row["test"][kind] for row in rows},
                            "test": 100 * float(np.mean([r["test"][kind] for r in rows])),
                            "sel. set": 100 * float(np.mean([r["selection"][kind]
                                                              for r in rows]))}
    return table
