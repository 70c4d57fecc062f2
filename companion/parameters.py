"""Every chapter parameter checked in one place, before a chapter does any work.

Defined in chapter 01. A chapter's first working cell calls ``check_parameters(globals())``:
each UPPER_CASE name the chapters use has one rule here (type, range, choices, paths, class
lists for the dataset in use), so ``EPOCHS=0`` or ``NORMAL_CLASSES=[10]`` stops the chapter with
one line naming the parameter, its value and what is allowed, before any data is read, anything
trains or any file is written. The same name means the same thing in every chapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .data import check_classes, dataset_info, wants_download
from .engine import resolve_device
from .errors import ConfigError
from .settings import (flag, fraction, integer, non_negative_int, non_negative_number, one_of,
                       optional_positive_int, positive_int, positive_number)
from .surfaces import TEXTURES

#: DATASET values that are no torchvision dataset: chapter 11's surfaces.
SURFACE_DATASETS = ("textures", "folder")


def _optional(check: Callable) -> Callable:
    return lambda value, name, _=None: None if value is None else check(value, name)


def _number_list(check: Callable, example: str) -> Callable:
    def numbers(value, name, _=None):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{name}={value!r}; use a non-empty list such as {example} "
                              f"(papermill: -y \"{name}: {example}\")")
        for item in value:
            check(item, f"{name} item")
        return list(value)
    return numbers


def _size_list(value, name, _=None):
    """Bottleneck sizes: positive integers, or None for no dense bottleneck (chapter 03)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{name}={value!r}; use a non-empty list such as [8, 32, None]")
    for item in value:
        optional_positive_int(item, f"{name} item", 32)
    return list(value)


def _path(value, name, _=None):
    """A folder the chapter reads or writes: a string or Path, not an existing file."""
    if isinstance(value, bool) or not isinstance(value, (str, Path)) or not str(value).strip():
        raise ConfigError(f"{name}={value!r}; use a folder path such as 'data'")
    if Path(value).is_file():
        raise ConfigError(f"{name}={str(value)!r} is a file; use a folder path such as 'data'")
    return Path(value)


def _results_file(value, name, _=None):
    """A committed results file (CSV or JSON); it may be missing (Colab has no clone): chapters
    say so."""
    if isinstance(value, bool) or not isinstance(value, (str, Path)) or Path(value).is_dir() \
            or Path(value).suffix not in (".csv", ".json"):
        raise ConfigError(f"{name}={value!r}; point it at the committed benchmark results, "
                          "'../benchmarks/results/one_class.csv'")
    return Path(value)


def _existing_folder(value, name, _=None):
    if isinstance(value, bool) or not isinstance(value, (str, Path)) or not Path(value).is_dir():
        raise ConfigError(f"{name}={value!r} is not a folder; give the folder that holds "
                          "<CATEGORY>/train/good/ (the MVTec-AD layout)")
    return Path(value)


def _dataset(value, name, _=None):
    if value in SURFACE_DATASETS:
        return value
    try:
        return dataset_info(value).name
    except ConfigError as error:  # its message says DATASET; this parameter may be another
        raise ConfigError(str(error).replace("DATASET", name, 1)) from None


def _device(value, name, _=None):
    resolve_device(value)  # its own errors name DEVICE and the fix
    return value


def _download(value, name, _=None):
    wants_download(value)
    return value


def _label(value, name, _=None):
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name}={value!r}; use a name such as 'brick'")
    return value


def _model(value, name, _=None):
    from .benchmark import MODELS  # the benchmark imports detectors; only chapter 10 needs it

    return one_of(sorted(MODELS))(value, name)


def _pair(value, name, _=None):
    """Chapter 07's second test: [dataset, normal classes, anomaly classes]."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ConfigError(f"{name}={value!r}; use [dataset, normal classes, anomaly classes] "
                          "such as ['mnist', [1], [8]]")
    info = dataset_info(value[0])
    check_classes(info, value[1], f"{name} normal classes")
    check_classes(info, value[2], f"{name} anomaly classes")
    return value


def _range(low: int, high: int, example: int) -> Callable:
    def within(value, name, _=None):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{name}={value!r}; use an integer from {low} to {high} such as "
                              f"{example}")
        return value
    return within


def _rule(check: Callable, example=None) -> Callable:
    return (lambda value, name: check(value, name, example)) if example is not None else check


#: One rule per parameter name; class lists are checked against their dataset afterwards.
PARAMETERS: dict[str, Callable] = {
    **{name: _rule(positive_int, 10) for name in (
        "EPOCHS", "BATCH_SIZE", "LATENT_DIM", "DENSE_LATENT_DIM", "FASHION_LATENT_DIM",
        "FASHION_EPOCHS", "AE_EPOCHS", "AE_LATENT_DIM", "ALOCC_EPOCHS", "SECOND_AE_EPOCHS",
        "FNET_EPOCHS", "BASE_CHANNELS", "FEATURE_DIM", "UNET_CHANNELS", "N_DIS", "STEPS",
        "SAMPLES", "CENTRE_IMAGES", "REFERENCE_IMAGES", "TEST_IMAGES", "GRID_IMAGES",
        "THROUGHPUT_IMAGES", "TUNING_IMAGES", "LOCALISATION_IMAGES", "TRAIN_TILES", "TEST_GOOD",
        "TEST_PER_KIND", "DEMO_EPOCHS", "DEMO_MAX_TRAIN", "DEMO_TEST_SIZE", "MEMORY_BUDGET_MB")},
    **{name: _optional(positive_int) for name in ("TRAIN_SIZE", "TEST_SIZE", "UNET_BATCH_SIZE")},
    "IMAGE_SIZE": _range(16, 1024, 64),
    "TILE_SIZE": _range(16, 512, 128),
    "CHANNELS": _optional(one_of((1, 3))),
    **{name: _rule(positive_number, 1e-3) for name in ("LR", "UNET_LR")},
    **{name: _rule(non_negative_number, 0.4) for name in ("L2_LAMBDA", "NOISE_STD", "BETA",
                                                          "ALPHA")},
    **{name: _rule(fraction, 0.2) for name in ("VAL_FRACTION", "TARGET_FPR", "MAX_FPR")},
    "SEED": _rule(integer, 0),
    "SEEDS": _number_list(lambda v, n: integer(v, n, 0), "[0, 1, 2]"),
    "BETAS": _number_list(lambda v, n: positive_number(v, n, 1.0), "[0.1, 4.0]"),
    "GRID_BETAS": _number_list(lambda v, n: non_negative_number(v, n, 10.0), "[2.0, 10.0]"),
    "GRID_STEPS": _number_list(lambda v, n: positive_int(v, n, 40), "[10, 40]"),
    "MAP_SIGMAS": _number_list(lambda v, n: non_negative_number(v, n, 2.0), "[0.0, 2.0, 4.0]"),
    "BOTTLENECK_SIZES": _size_list,
    "DATASET": _dataset, "DEMO_DATASET": _dataset, "TIMING_DATASET": _dataset,
    "DEMO_MODEL": _model,
    "SECOND_PAIR": _pair,
    "DEVICE": _device,
    "DOWNLOAD": _download,
    "PROGRESS": _rule(flag, True),
    **{name: _path for name in ("DATA_DIR", "RESULTS_DIR", "CHECKPOINT_DIR")},
    "BENCHMARK_RESULTS": _results_file, "FIX_RESULTS": _results_file, "RECORD_DIR": _path,
    "R_LATENT_DIM": _optional(positive_int),
    "D_INPUT": one_of(("reconstruction", "pair")),
    "PHASE_TWO_EPOCHS": _rule(non_negative_int, 1),
    "FOLDER": _optional(_existing_folder),
    "CATEGORY": _label,
    "DEMO_CLASS": _range(0, 9, 3),
}

#: Class-list parameters and the parameter naming the dataset they index (a fixed name is the
#: dataset itself): chapter 02's and 03's Fashion-MNIST sections always use fashion-mnist.
CLASS_LISTS = {"NORMAL_CLASSES": "DATASET", "ANOMALY_CLASSES": "DATASET",
               "WEAK_CLASSES": "DATASET", "FIX_NORMAL_CLASSES": "DATASET",
               "FASHION_NORMAL_CLASSES": "fashion-mnist",
               "FASHION_ANOMALY_CLASSES": "fashion-mnist"}
#: Class lists that may be None: every class that is not normal is an anomaly.
OPTIONAL_CLASS_LISTS = ("ANOMALY_CLASSES", "FASHION_ANOMALY_CLASSES")


def check_parameters(namespace: dict) -> None:
    """Check every chapter parameter in ``namespace`` (a chapter's ``globals()``); chapter 01.

    Raises :class:`~companion.errors.ConfigError` (or ``DeviceError``) on the first bad value,
    naming it and what is allowed; returns None when all are good. Names without a rule (a
    chapter's own variables) are left alone.
    """
    for name, check in PARAMETERS.items():
        if name in namespace:
            check(namespace[name], name)
    for name, source in CLASS_LISTS.items():
        if name not in namespace or (namespace[name] is None and name in OPTIONAL_CLASS_LISTS):
            continue
        dataset = namespace.get(source, source)
        if dataset in SURFACE_DATASETS:
            raise ConfigError(f"{name} does not apply to DATASET={dataset!r}: the surface sets "
                              "have one normal kind, 'good'")
        check_classes(dataset_info(dataset), namespace[name], name)
    normal = set(namespace.get("NORMAL_CLASSES") or ())
    overlap = normal & set(namespace.get("ANOMALY_CLASSES") or ())
    if overlap:
        raise ConfigError(f"class(es) {sorted(overlap)} are in both NORMAL_CLASSES and "
                          "ANOMALY_CLASSES; a class is either normal or an anomaly")
    if namespace.get("DATASET") == "textures" and namespace.get("CATEGORY", "brick") not in TEXTURES:
        raise ConfigError(f"CATEGORY={namespace['CATEGORY']!r} is not one of the offline textures "
                          f"{list(TEXTURES)}; for your own images use DATASET='folder'")
    if namespace.get("DATASET") == "folder" and namespace.get("FOLDER") is None:
        raise ConfigError("DATASET='folder' needs FOLDER, the folder that holds "
                          "<CATEGORY>/train/good/ (the MVTec-AD layout)")
