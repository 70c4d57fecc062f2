"""The one-class benchmark runner of chapter 10.

Each class of a dataset in turn is the normal class, every other class an anomaly; a detector
trains on the normal class alone and is scored on the whole test split (or a random part of it
where a model's settings say so). One run is one (model, dataset, normal class, seed,
settings); every model goes through the same :func:`run_one`: ``make``, ``fit``, ``score``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..data import check_classes, dataset_info, one_class_split
from ..detectors import REGISTRY, make
from ..engine import resolve_device
from ..errors import ConfigError
from ..metrics import f1_by_outlier_share
from ..settings import optional_positive_int
from .executors import EXECUTORS, run_on_ray, run_sequentially
from .results import append_row, read_rows, record_failure, run_key

@dataclass(frozen=True)
class BenchmarkModel:
    """A benchmark entry: a registered detector and the settings it runs with; chapter 10."""

    detector: str
    settings: dict = field(default_factory=dict)
    #: Settings for one dataset only, e.g. ``{"fashion-mnist": {"epochs": 80}}``.
    dataset_settings: dict = field(default_factory=dict)

    def defaults(self, dataset: str | None = None) -> dict:
        """Every setting of a run on ``dataset``, detector defaults filled in, headline named."""
        detector = REGISTRY[self.detector]
        chosen = _detector_defaults(self.detector)
        chosen = {**chosen, **self.settings, **self.dataset_settings.get(dataset, {})}
        return {**chosen, "score": detector.headline_for(chosen)}


def _detector_defaults(detector: str) -> dict:
    return {name: setting.default for name, setting in REGISTRY[detector].SETTINGS.items()
            if name not in ("data_dir", "reference", "fnet")}


def done_key(row: dict) -> tuple:
    """A row's :func:`run_key` with the settings its detector gained after the row was written
    filled in at their defaults (a new setting's default keeps the old behaviour), so a row
    stays done when a detector learns something new; chapter 10."""
    settings = json.loads(row["settings"])
    if row["model"] in MODELS:
        settings = {**_detector_defaults(MODELS[row["model"]].detector), **settings}
    return run_key({**row, "settings": json.dumps(settings, sort_keys=True)})


MODELS: dict[str, BenchmarkModel] = {
    "dense_ae": BenchmarkModel("dense_ae", {"latent_dim": 32, "epochs": 20}),
    "conv_ae": BenchmarkModel("conv_ae", {"latent_dim": 32, "epochs": 20}),
    "alocc": BenchmarkModel("alocc", {"val_fraction": 0.2}),
    # Chapter 06's fix, chosen on training images only (benchmarks/results/alocc_fix_rule.md):
    # R with a 32-number code, D judging (x, R(x)) pairs, then OGNet's second phase.
    "alocc_fixed": BenchmarkModel("alocc", {"val_fraction": 0.2, "r_latent_dim": 32,
                                            "d_input": "pair", "phase_two_epochs": 1}),
    # Chapter 07's f-Net alone, strictly one-class (features from the other dataset) ...
    "fnet_distance": BenchmarkModel("fnet_distance"),
    # ... and with the normal images as an extra class among the reference ones.
    "fnet_oe": BenchmarkModel("fnet_oe"),
    # A U-Net per test image costs seconds on a CPU: a random 500 test images per run.
    "ano_unet": BenchmarkModel("ano_unet", {"test_size": 500}),
    # Chapter 09's settings, fixed on training-split images only (the chapter tells how);
    # Fashion-MNIST's still improved from 40 to 80 epochs there, MNIST's had levelled off.
    "restoration_ae": BenchmarkModel("restoration_ae", {"latent_dim": 32, "base_channels": 32,
                                                        "epochs": 40, "batch_size": 64},
                                     {"fashion-mnist": {"epochs": 80}}),
    # Chapter 09's record attempt, chosen on training images only by the two rounds of
    # benchmarks/results/restoration_record_rule.md: 64 feature maps, each erasure's error
    # normalised (the rule adopted it on MNIST; on Fashion-MNIST it moved the selection mean by
    # 1e-6, and one headline per model keeps the tables comparable); 10 % of the class held out
    # (the epoch kept, the normalisation means).
    "restoration_plus": BenchmarkModel("restoration_ae", {"latent_dim": 32, "base_channels": 64,
                                                          "epochs": 40, "batch_size": 64,
                                                          "normalise": True, "val_fraction": 0.1},
                                       {"fashion-mnist": {"epochs": 80}}),
    # Round three of the same rule: restoration_plus with chapter 02's dense AE beside it
    # (latent 32, 20 epochs, batches of 16), each network's headline divided by its mean on
    # the held-out 10 %, the two averaged; adopted on MNIST's selection set, run on both.
    "restoration_pair": BenchmarkModel("restoration_pair", {"latent_dim": 32, "base_channels": 64,
                                                            "epochs": 40, "batch_size": 64,
                                                            "normalise": True, "val_fraction": 0.1},
                                       {"fashion-mnist": {"epochs": 80}}),
    # Chapter 04's VAE with the conv AE's budget (its bottleneck size and epochs), not tuned.
    "vae": BenchmarkModel("vae", {"latent_dim": 32, "epochs": 20}),
}


def _settings(model: str, dataset: str, overrides: dict) -> dict:
    unknown = sorted(set(overrides) - {"epochs", "max_train", "test_size"})
    if unknown:
        raise ConfigError(f"unknown benchmark setting(s) {unknown}; the runner overrides only "
                          "epochs, max_train and test_size")
    settings = MODELS[model].defaults(dataset)
    for name, value in overrides.items():
        if value is None:
            continue
        optional_positive_int(value, name)
        # An f-Net's epochs are the epochs of a model that trains one (Ano-Unet).
        target = name if name in settings or name != "epochs" else "fnet_epochs"
        settings[target] = value
    return settings


def planned_runs(models, datasets, classes, seeds, overrides=None) -> list[dict]:
    """Every run the arguments ask for, checked before anything trains; chapter 10.

    ``classes=None`` means every class of each dataset.
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; known: {sorted(MODELS)}")
    if not models or not datasets or not seeds:
        raise ConfigError("name at least one model, one dataset and one seed")
    runs = []
    for dataset in datasets:
        info = dataset_info(dataset)
        normal_classes = (range(info.num_classes) if classes is None
                          else check_classes(info, list(classes), "--classes"))
        for model in models:
            settings = json.dumps(_settings(model, info.name, overrides or {}), sort_keys=True)
            runs += [{"model": model, "dataset": info.name, "normal_class": c, "seed": s,
                      "settings": settings} for c in normal_classes for s in seeds]
    return runs


def run_one(run: dict, data_dir="data", device="auto") -> dict:
    """Train and score one planned run; return its row. The one code path of every model."""
    settings = json.loads(run["settings"])
    detector_name = MODELS[run["model"]].detector
    known = REGISTRY[detector_name].SETTINGS
    detector = make(detector_name, device=device, seed=run["seed"], progress=False,
                    **{k: v for k, v in settings.items() if k in known},
                    **({"data_dir": str(data_dir)} if "data_dir" in known else {}))
    split = one_class_split(run["dataset"], [run["normal_class"]], None, data_dir,
                            value_range=detector.value_ranges[0], verbose=False,
                            val_fraction=settings.get("val_fraction", 0.0), seed=run["seed"])
    if settings.get("max_train"):
        split.train = split.train.sample(settings["max_train"], run["seed"])
    if settings.get("test_size"):
        split.test = split.test.sample(settings["test_size"], run["seed"])
    start = time.perf_counter()
    history = detector.fit(split.train, val=split.val)
    scores = detector.score(split.test)
    aurocs = scores.aurocs()
    seconds = round(time.perf_counter() - start, 2)
    # The ALOCC paper's own protocol: F1 at the score's natural threshold, test mixtures with
    # 10-50 % anomalies (chapter 06).
    f1 = {name: {f"{share:g}": f for share, f in
                 f1_by_outlier_share(scores.labels, scores[name], threshold, seed=run["seed"]).items()}
          for name, threshold in detector.natural_thresholds.items()}
    return {**run, "auroc": aurocs[scores.headline], "score": scores.headline,
            "auroc_by_score": aurocs, "f1_by_outlier_share": f1, "seconds": seconds,
            "train_size": len(split.train), "test_size": len(split.test),
            "train_source": split.train_source, "device": str(detector.device),
            "restarts": history.restarts}


def run_benchmark(out, models, datasets, classes=None, seeds=(0,), overrides=None,
                  data_dir="data", device="auto", progress=True, executor: str = "sequential",
                  address: str | None = None, workers: int | None = None,
                  gpus_per_run: float = 0.0) -> list[dict]:
    """Run every planned run that ``out`` does not hold yet; return all rows; chapter 10.

    ``executor="ray"`` runs them as Ray tasks (:mod:`companion.benchmark.executors`): on a
    local cluster of ``workers`` CPUs (all cores by default) or on the cluster at ``address``,
    each task with one CPU or ``gpus_per_run`` of a GPU. Either way each finished run is one
    atomic, locked row of ``out`` (another runner on the same file loses nothing), and a run
    that fails is recorded in ``out``'s failures file and tried again by the next call.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"executor={executor!r}; use one of {list(EXECUTORS)}")
    if Path(out).is_dir() or Path(out).suffix != ".csv":
        raise ConfigError(f"--out {str(out)!r}; name a .csv file, e.g. "
                          "benchmarks/results/one_class.csv")
    optional_positive_int(workers, "--workers", 2)
    resolve_device(device)  # an unknown or absent device stops the benchmark before any run
    runs = planned_runs(models, datasets, classes, seeds, overrides)
    device = resolve_device(device) if executor == "sequential" else device
    done = {done_key(row) for row in read_rows(out)}
    todo = [run for run in runs if run_key(run) not in done]
    if progress:
        print(f"{len(runs)} runs planned, {len(runs) - len(todo)} already in {out}, "
              f"{len(todo)} to do", flush=True)

    def record(row: dict) -> None:
        # A run Ray retried, or another runner finished, is not written twice (append_row).
        if run_key(row) not in done:
            append_row(out, row)
            done.add(run_key(row))

    def fail(run: dict, error: str) -> None:
        record_failure(out, run, error)

    if executor == "ray":
        run_on_ray(todo, run_one, record, data_dir, device, progress, address, workers,
                   gpus_per_run=gpus_per_run, fail=fail)
    else:
        run_sequentially(todo, run_one, record, data_dir, device, progress, fail=fail)
    return read_rows(out)
