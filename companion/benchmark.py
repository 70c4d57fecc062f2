"""The one-class benchmark runner of chapter 07.

Each class of a dataset in turn is the normal class, every other class an anomaly; a model
trains on the normal class alone and is scored by AUROC on the whole test split. One run is
one (model, dataset, normal class, seed, settings); it appends one row to a CSV file as soon
as it finishes, so an interrupted benchmark loses at most the run in progress, and a second
call with the same arguments skips every run already in the file::

    python -m companion.benchmark --models conv_ae alocc --datasets mnist \\
        --classes 0 1 2 3 4 5 6 7 8 9 --seeds 0 1 2 --out benchmarks/results/one_class.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from .data import check_classes, dataset_info, image_transform, one_class_split
from .errors import CompanionError, ConfigError
from .files import atomic_path
from .models import ConvAutoencoder, DenseAutoencoder, Discriminator, FeatureNet, Reconstructor
from .models.alocc import alocc_scores, train_alocc
from .models.fnet import (centre_distance_scores, feature_centre, other_dataset_reference,
                          train_fnet)
from .scores import detection_metrics, reconstruct
from .training import in_memory, make_loader, resolve_device, set_seed, train

# Published one-class AUROC (%) per normal class 0-9, printed beside ours in chapter 07.
PUBLISHED = {
    "mnist": {
        "DCAE (Ruff et al. 2018)":
            [97.6, 98.3, 85.4, 86.7, 86.5, 78.2, 94.6, 92.3, 86.5, 90.4],
        "AnoGAN (Ruff et al. 2018)":
            [96.6, 99.2, 85.0, 88.7, 89.4, 88.3, 94.7, 93.5, 84.9, 92.4],
        "Deep SVDD (Ruff et al. 2018)":
            [98.0, 99.7, 91.7, 91.9, 94.9, 88.5, 98.3, 94.6, 93.9, 96.5],
    },
    "fashion-mnist": {
        "GEOM (Golan & El-Yaniv 2018)":
            [99.4, 97.6, 91.1, 89.9, 92.1, 93.4, 83.3, 98.9, 90.8, 99.2],
    },
}
COLUMNS = ["model", "dataset", "normal_class", "seed", "auroc", "score", "auroc_by_score",
           "seconds", "train_size", "test_size", "train_source", "device", "settings"]
EVALUATION_BATCH_SIZE = 512


@dataclass
class ModelSpec:
    """A benchmark model: how to train and score it, and its default settings; chapter 07.

    ``run(split, settings, device, seed, data_dir)`` trains on ``split.train`` and returns the
    test AUROC of every score it computes; ``settings["score"]`` names the headline score.
    """

    run: Callable[..., dict]
    value_range: str
    defaults: dict = field(default_factory=dict)


def _test_auroc(labels, scores) -> float:
    return detection_metrics(labels, scores)["auroc"]


def _run_autoencoder(make_net):
    def run(split, settings, device, seed, data_dir):
        set_seed(seed)
        net = make_net(settings, tuple(split.train[0][0].shape))
        train(net, make_loader(split.train, settings["batch_size"], shuffle=True, seed=seed),
              settings["epochs"], settings["lr"], device, progress=False)
        recon = reconstruct(net, make_loader(split.test, EVALUATION_BATCH_SIZE), device)
        labels = split.test.anomaly_labels.numpy()
        return {name: _test_auroc(labels, recon.scores(name)) for name in ("l1_sum", "mse")}
    return run


def _run_alocc(split, settings, device, seed, data_dir):
    set_seed(seed)
    channels = split.train[0][0].shape[0]
    r, d = Reconstructor(channels), Discriminator(channels)
    train_alocc(r, d, make_loader(split.train, settings["batch_size"], shuffle=True, seed=seed),
                settings["epochs"], lr=settings["lr"], noise_std=settings["noise_std"],
                n_dis=settings["n_dis"], l2_lambda=settings["l2_lambda"], device=device,
                progress=False, val_loader=make_loader(split.val, EVALUATION_BATCH_SIZE))
    scores = alocc_scores(r, d, make_loader(split.test, EVALUATION_BATCH_SIZE), device)
    return {name: _test_auroc(scores["labels"], scores[name])
            for name in ("D(x)", "D(R(x))", "R error")}


def _run_fnet(split, settings, device, seed, data_dir):
    """Chapter 06's f-Net and its centre distance, with or without outlier exposure."""
    set_seed(seed)
    images, classes, _ = in_memory(other_dataset_reference(
        split.info.name, settings["reference_images"], seed, data_dir)).tensors
    normal_class = int(classes.max()) + 1  # the logit of the normal images under exposure
    if settings["outlier_exposure"]:
        # The normal training images join as one more class, as many as a reference class
        # has: f learns to tell normal images from the auxiliary "outliers" of another dataset.
        normal = in_memory(split.train.sample(len(images) // normal_class, seed))
        images = torch.cat([images, normal.tensors[0]])
        classes = torch.cat([classes, torch.full((len(normal),), normal_class)])
    fnet = FeatureNet(1, int(classes.max()) + 1, settings["feature_dim"], settings["alpha"])
    train_fnet(fnet, make_loader(TensorDataset(images, classes), settings["batch_size"],
                                 shuffle=True, seed=seed),
               settings["epochs"], settings["lr"], device, progress=False)
    centre = feature_centre(fnet, make_loader(split.train, EVALUATION_BATCH_SIZE), device)
    test_loader = make_loader(split.test, EVALUATION_BATCH_SIZE)
    labels = split.test.anomaly_labels.numpy()
    aurocs = {"centre distance": _test_auroc(
        labels, centre_distance_scores(fnet, centre, test_loader, device))}
    if settings["outlier_exposure"]:
        with torch.no_grad():
            normal_probability = torch.cat([fnet(x.to(device)).softmax(dim=1)[:, normal_class].cpu()
                                            for x, *_ in test_loader])
        aurocs["1 - P(normal)"] = _test_auroc(labels, (1 - normal_probability).numpy())
    return aurocs


_FNET_DEFAULTS = {"reference_images": 3000, "epochs": 5, "batch_size": 64, "lr": 1e-3,
                  "feature_dim": 32, "alpha": 16.0, "score": "centre distance"}

MODELS: dict[str, ModelSpec] = {
    "dense_ae": ModelSpec(
        _run_autoencoder(lambda s, shape: DenseAutoencoder(s["latent_dim"], shape)), "[-1, 1]",
        {"latent_dim": 32, "epochs": 20, "batch_size": 16, "lr": 1e-3, "score": "l1_sum"}),
    "conv_ae": ModelSpec(
        _run_autoencoder(lambda s, shape: ConvAutoencoder(s["latent_dim"], shape)), "[-1, 1]",
        {"latent_dim": 32, "epochs": 20, "batch_size": 16, "lr": 1e-3, "score": "l1_sum"}),
    # Chapter 05's settings; its reconstruction error is the score chapter 05 found reliable.
    "alocc": ModelSpec(
        _run_alocc, "[0, 1]",
        {"epochs": 10, "batch_size": 16, "lr": 1e-3, "noise_std": 0.15, "n_dis": 1,
         "l2_lambda": 0.4, "val_fraction": 0.2, "score": "R error"}),
    # Chapter 06's f-Net alone (the DOC-style detector), strictly one-class ...
    "fnet_distance": ModelSpec(_run_fnet, "[0, 1]", {**_FNET_DEFAULTS, "outlier_exposure": False}),
    # ... and with the normal images as an extra class among the reference ones (outlier exposure).
    "fnet_oe": ModelSpec(_run_fnet, "[0, 1]", {**_FNET_DEFAULTS, "outlier_exposure": True}),
}


def run_key(row: dict) -> tuple:
    """What makes two runs the same run (settings included); chapter 07."""
    return (row["model"], row["dataset"], int(row["normal_class"]), int(row["seed"]),
            row["settings"])


def read_rows(path) -> list[dict]:
    """The rows of a benchmark CSV file (none if it does not exist yet); chapter 07."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        row["normal_class"], row["seed"] = int(row["normal_class"]), int(row["seed"])
        row["auroc"], row["seconds"] = float(row["auroc"]), float(row["seconds"])
        row["auroc_by_score"] = json.loads(row["auroc_by_score"])
    return rows


def _append_row(path, row: dict) -> None:
    """Rewrite the file with one more row, atomically: a crash leaves the old file whole."""
    rows = read_rows(path) + [row]
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        for each in rows:
            writer.writerow({**each, "auroc_by_score": json.dumps(each["auroc_by_score"])})


def _settings(model: str, overrides: dict) -> dict:
    spec = MODELS[model]
    unknown = sorted(set(overrides) - {"epochs", "max_train", "test_size"})
    if unknown:
        raise ConfigError(f"unknown benchmark setting(s) {unknown}; the runner overrides only "
                          "epochs, max_train and test_size")
    settings = {**spec.defaults, **{k: v for k, v in overrides.items() if v is not None}}
    for name in ("epochs", "max_train", "test_size"):
        value = settings.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ConfigError(f"{name}={value!r}; use a positive integer")
    return settings


def planned_runs(models, datasets, classes, seeds, overrides=None) -> list[dict]:
    """Every run the arguments ask for, checked before anything trains; chapter 07.

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
            settings = json.dumps(_settings(model, overrides or {}), sort_keys=True)
            runs += [{"model": model, "dataset": info.name, "normal_class": c, "seed": s,
                      "settings": settings} for c in normal_classes for s in seeds]
    return runs


def run_benchmark(out, models, datasets, classes=None, seeds=(0,), overrides=None,
                  data_dir="data", device="auto", progress=True) -> list[dict]:
    """Run every planned run that ``out`` does not hold yet; return all rows; chapter 07."""
    runs = planned_runs(models, datasets, classes, seeds, overrides)
    device = resolve_device(device)
    done = {run_key(row) for row in read_rows(out)}
    todo = [run for run in runs if run_key(run) not in done]
    if progress:
        print(f"{len(runs)} runs planned, {len(runs) - len(todo)} already in {out}, "
              f"{len(todo)} to do", flush=True)
    for run in tqdm(todo, desc="benchmark runs", disable=not progress):
        spec, settings = MODELS[run["model"]], json.loads(run["settings"])
        split = one_class_split(run["dataset"], [run["normal_class"]], None, data_dir,
                                image_transform(dataset_info(run["dataset"]).channels,
                                                spec.value_range),
                                verbose=False, val_fraction=settings.get("val_fraction", 0.0),
                                seed=run["seed"])
        if settings.get("max_train"):
            split.train = split.train.sample(settings["max_train"], run["seed"])
        if settings.get("test_size"):
            split.test = split.test.sample(settings["test_size"], run["seed"])
        start = time.perf_counter()
        auroc_by_score = spec.run(split, settings, device, run["seed"], data_dir)
        _append_row(out, {
            **run, "auroc": auroc_by_score[settings["score"]], "score": settings["score"],
            "auroc_by_score": auroc_by_score, "seconds": round(time.perf_counter() - start, 2),
            "train_size": len(split.train), "test_size": len(split.test),
            "train_source": split.train_source, "device": str(device)})
    return read_rows(out)


def summarise(rows, score: str | None = None) -> dict:
    """Mean and standard deviation of AUROC over seeds, per (model, dataset, class); chapter 07.

    ``score`` picks an entry of ``auroc_by_score`` instead of the headline score. Returns
    ``{(model, dataset): {normal_class: (mean, std, number_of_seeds)}}``.
    """
    values: dict = {}
    for row in rows:
        auroc = row["auroc"] if score is None else row["auroc_by_score"][score]
        values.setdefault((row["model"], row["dataset"]), {}).setdefault(
            row["normal_class"], []).append(auroc)
    return {key: {c: (float(np.mean(v)), float(np.std(v)), len(v))
                  for c, v in sorted(per_class.items())}
            for key, per_class in values.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion.benchmark",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=sorted(MODELS), metavar="MODEL",
                        help=f"any of {sorted(MODELS)} (default: all)")
    parser.add_argument("--datasets", nargs="+", default=["mnist"], metavar="DATASET")
    parser.add_argument("--classes", nargs="+", type=int, default=None,
                        help="normal classes to run (default: every class)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="override every model's number of epochs")
    parser.add_argument("--max-train", type=int, help="train on at most this many images")
    parser.add_argument("--test-size", type=int, help="score a random part of the test split")
    parser.add_argument("--out", default="benchmarks/results/one_class.csv")
    parser.add_argument("--data-dir", default="chapters/data",
                        help="torchvision layout; shared with the chapters by default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        rows = run_benchmark(args.out, args.models, args.datasets, args.classes, args.seeds,
                             {"epochs": args.epochs, "max_train": args.max_train,
                              "test_size": args.test_size},
                             args.data_dir, args.device, not args.no_progress)
    except CompanionError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    for (model, dataset), per_class in summarise(rows).items():
        means = [mean for mean, _, _ in per_class.values()]
        print(f"{model:>10} {dataset:<14} mean AUROC {np.mean(means):.4f} over "
              f"{len(per_class)} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
