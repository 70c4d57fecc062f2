"""Where is the anomaly? Synthetic anomalies with exact masks, and the metrics that judge maps.

Defined in chapter 08. No MNIST-like dataset comes with pixel labels, so the chapter makes its
own: real normal images, each changed in one known way (a patch of another class pasted in, a
stroke, a blot, an erased piece), and the mask is by construction the set of pixels that
changed. An anomaly map is then judged as the MVTec AD protocol and anomalib judge one: pixel
AUROC over every pixel of every image, and the per-region overlap (PRO) curve up to a 30 %
false-positive rate (:func:`companion.metrics.pixel_auroc`, :func:`companion.metrics.pro_area`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from .data import ClassSubset
from .errors import ConfigError
from .metrics import MAX_FPR, format_table, pixel_auroc, pro_area
from .settings import fraction, integer, optional_positive_int

#: The kinds of synthetic anomaly, in the order they are handed out.
KINDS = ("patch", "stroke", "blot", "erase")
#: The kind of an image left as it was.
NORMAL = "normal"
#: The smallest anomaly, in changed pixels: none is a handful of pixels nobody could see.
MIN_CHANGED_PIXELS = 6
#: A pixel brighter than this belongs to the object; an erased piece is centred on one.
INK = 0.25
_TRIES = 100  # draws per image before a kind is declared impossible for it


def _uniform(generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(generator, high: int) -> int:
    return int(torch.randint(high, (), generator=generator))


def _grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(height, dtype=torch.float32),
                          torch.arange(width, dtype=torch.float32), indexing="ij")


def _patch(image, generator, donor):
    """A square of another class's image, pasted where it was in that image."""
    height, width = image.shape[1:]
    side = max(2, round(0.3 * min(height, width)))
    top, left = _randint(generator, height - side + 1), _randint(generator, width - side + 1)
    changed = image.clone()
    changed[:, top:top + side, left:left + side] = donor[:, top:top + side, left:left + side]
    return changed


def _stroke(image, generator, donor=None):
    """A white line about two pixels wide, like a pen mark or a scratch."""
    height, width = image.shape[1:]
    rows, cols = _grid(height, width)
    start = torch.tensor([_uniform(generator, 0, height - 1), _uniform(generator, 0, width - 1)])
    angle = _uniform(generator, 0, math.pi)
    length = _uniform(generator, 0.3, 0.7) * min(height, width)
    end = (start + length * torch.tensor([math.sin(angle), math.cos(angle)])).clamp(
        torch.zeros(2), torch.tensor([height - 1.0, width - 1.0]))
    # Distance of each pixel centre to the segment from start to end.
    direction = end - start
    along = (((rows - start[0]) * direction[0] + (cols - start[1]) * direction[1])
             / direction.pow(2).sum().clamp_min(1e-6)).clamp(0, 1)
    distance = torch.hypot(rows - start[0] - along * direction[0],
                           cols - start[1] - along * direction[1])
    changed = image.clone()
    changed[:, distance <= 1.0] = 1.0
    return changed


def _blot(image, generator, donor=None):
    """A disc of one mid-grey, anywhere: a stain, dark on the object and bright beside it."""
    height, width = image.shape[1:]
    rows, cols = _grid(height, width)
    radius = _uniform(generator, 1.5, 3.5)
    centre = (_uniform(generator, 0, height - 1), _uniform(generator, 0, width - 1))
    grey = round(_uniform(generator, 0.3, 0.7) * 255) / 255  # a value an 8-bit image can hold
    changed = image.clone()
    changed[:, torch.hypot(rows - centre[0], cols - centre[1]) <= radius] = grey
    return changed


def _erase(image, generator, donor=None):
    """A square piece of the object set to the background's black: something missing."""
    height, width = image.shape[1:]
    side = max(2, round(0.25 * min(height, width)))
    ink = (image.amax(dim=0) > INK).nonzero()
    if len(ink) == 0:
        return image  # nothing to erase; the caller's check of the changed pixels refuses it
    row, col = ink[_randint(generator, len(ink))].tolist()
    top, left = max(0, row - side // 2), max(0, col - side // 2)
    changed = image.clone()
    changed[:, top:top + side, left:left + side] = 0.0
    return changed


_MAKERS = {"patch": _patch, "stroke": _stroke, "blot": _blot, "erase": _erase}


def _check_images(images) -> None:
    if not torch.is_tensor(images) or images.dim() != 4 or not images.is_floating_point():
        raise ConfigError(f"images of shape {tuple(getattr(images, 'shape', ()))}; pass a float "
                          "(N, channels, height, width) tensor in [0, 1]")
    if len(images) and (images.min() < 0 or images.max() > 1):
        raise ConfigError("images outside [0, 1]; load them with one_class_split(..., "
                          "value_range='[0, 1]')")


def make_anomalies(images: torch.Tensor, kinds, generator: torch.Generator,
                   donors: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image changed as ``kinds[i]`` says (``"normal"``: left as it is); chapter 08.

    ``images`` (N, C, H, W) in [0, 1]; ``donors`` are images of another class, a random one of
    them lending each ``"patch"``; every random draw comes from ``generator``, so the same seed
    makes the same anomalies. Returns ``(changed, masks)``: the new images, and (N, H, W) bool
    masks that are *exactly* the pixels where an image changed in any channel. An anomaly that
    would change fewer than :data:`MIN_CHANGED_PIXELS` pixels (a stroke along a white edge, a
    patch of black on black) is drawn again.
    """
    _check_images(images)
    kinds = list(kinds)
    if len(kinds) != len(images):
        raise ConfigError(f"{len(kinds)} kinds for {len(images)} images; give one kind per image")
    unknown = sorted(set(kinds) - set(KINDS) - {NORMAL})
    if unknown:
        raise ConfigError(f"unknown anomaly kind {unknown[0]!r}; use {NORMAL!r} or one of "
                          f"{list(KINDS)}")
    if "patch" in kinds:
        if donors is None or len(donors) == 0:
            raise ConfigError("'patch' anomalies need donors: images of another class to cut "
                              "the patches from")
        _check_images(donors)
    changed = images.clone()
    for i, kind in enumerate(kinds):
        if kind == NORMAL:
            continue
        for _ in range(_TRIES):
            donor = donors[_randint(generator, len(donors))] if kind == "patch" else None
            candidate = _MAKERS[kind](images[i], generator, donor)
            if int((candidate != images[i]).any(dim=0).sum()) >= MIN_CHANGED_PIXELS:
                changed[i] = candidate
                break
        else:
            raise ConfigError(f"image {i}: no {kind!r} anomaly of at least {MIN_CHANGED_PIXELS} "
                              f"pixels in {_TRIES} tries; is the image blank?")
    return changed, (changed != images).any(dim=1)


@dataclass
class MaskedImages:
    """Images whose anomalous pixels are known, in the form detectors score; chapter 08.

    ``images`` (N, C, H, W) in ``value_range``; ``masks`` (N, H, W) bool, the anomalous pixels;
    ``kinds`` the kind of anomaly of each image (``"normal"`` for a normal one), one of
    ``kind_names``, which also gives the order of the tables; ``classes`` a class id per image.
    Chapter 08 makes them (:func:`synthetic_anomalies`), chapter 11 reads them from a folder.
    Like a :class:`~companion.data.ClassSubset`, ``tensors()`` gives (images, classes, labels),
    the label 1 for every anomaly, so ``detector.score(images)`` works as on a test set.
    """

    images: torch.Tensor
    masks: torch.Tensor
    kinds: np.ndarray
    classes: torch.Tensor
    value_range: str = "[0, 1]"
    kind_names: tuple[str, ...] = KINDS

    @property
    def labels(self) -> torch.Tensor:
        return torch.as_tensor(self.kinds != NORMAL, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.classes[i]), int(self.labels[i])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.images, self.classes, self.labels

    def kind_counts(self) -> dict[str, int]:
        """Number of images of each kind, normal first."""
        return {kind: int((self.kinds == kind).sum()) for kind in (NORMAL, *self.kind_names)
                if (self.kinds == kind).any()}

    def mask_sizes(self) -> dict[str, float]:
        """Mean number of anomalous pixels per image of each anomaly kind."""
        return {kind: float(self.masks[torch.as_tensor(self.kinds == kind)].flatten(1).sum(1)
                            .double().mean()) for kind in self.kind_names
                if (self.kinds == kind).any()}

    def positions(self, kind: str = "all") -> np.ndarray:
        """Positions of the normal images and of those of ``kind`` (``"all"``: every image)."""
        if kind != "all" and kind not in self.kinds:
            raise ConfigError(f"no images of kind {kind!r}; these are {list(self.kind_counts())}")
        return np.flatnonzero((self.kinds == NORMAL) | (self.kinds == kind) | (kind == "all"))

    def examples(self, per_kind: int = 1) -> np.ndarray:
        """Positions of the first ``per_kind`` images of each kind, normal first: for figures."""
        return np.concatenate([np.flatnonzero(self.kinds == kind)[:per_kind]
                               for kind in self.kind_counts()])

    def select(self, positions) -> "MaskedImages":
        positions = np.asarray(positions)
        index = torch.as_tensor(positions)
        return replace(self, images=self.images[index], masks=self.masks[index],
                       kinds=self.kinds[positions], classes=self.classes[index])


def synthetic_anomalies(split, size: int | None, seed: int = 0, part: str = "test",
                        kinds=KINDS) -> MaskedImages:
    """``size`` images made from real normal images of ``split`` (None: all of them); chapter 08.

    Half of them (rounded up) are left as they are; the others get one anomaly each, the
    ``kinds`` in turn, in an order shuffled by ``seed``. ``part="test"`` takes the test split's
    normal images and cuts the patches from its anomaly-class images; ``part="val"`` takes the
    normal images held out of training (``split.val``) and the anomaly classes of the training
    split: images to choose settings on, none of them a test image. The same split, size and
    seed give the same images, masks and kinds.
    """
    kinds = tuple(kinds)
    if not kinds or not set(kinds) <= set(KINDS):
        raise ConfigError(f"KINDS={list(kinds)!r}; use some of {list(KINDS)}")
    parameter = "TUNING_IMAGES" if part == "val" else "TEST_IMAGES"  # as chapter 08 names them
    optional_positive_int(size, parameter, 128)
    integer(seed, "SEED")
    if split.value_range != "[0, 1]":
        raise ConfigError(f"the split is in {split.value_range}; synthetic anomalies are drawn "
                          "in [0, 1]: make it with one_class_split(..., value_range='[0, 1]')")
    if part == "test":
        normal, donor_source = ClassSubset(split.test.dataset, split.normal_classes,
                                           value_range=split.value_range), split.test.dataset
    elif part == "val":
        if split.val is None:
            raise ConfigError("the split holds no normal images out of training; make it with "
                              "one_class_split(..., val_fraction=0.2)")
        normal, donor_source = split.val, split.train.dataset
    else:
        raise ConfigError(f"part={part!r}; use 'test' or 'val'")
    size = len(normal) if size is None else size
    if len(normal) < size:
        raise ConfigError(f"{parameter}={size}, but the {part} part holds only {len(normal)} "
                          f"normal images; use at most {len(normal)}, or None for all of them")
    if size // 2 < len(kinds):
        raise ConfigError(f"{parameter}={size} gives fewer than one anomaly of each of the "
                          f"{len(kinds)} kinds; use at least {2 * len(kinds)}")
    donors = ClassSubset(donor_source, [], split.anomaly_classes, value_range=split.value_range)
    images, classes, _ = normal.sample(size, seed).tensors()
    generator = torch.Generator().manual_seed(seed)
    anomalous = size // 2
    kind_list = np.array([NORMAL] * (size - anomalous) +
                         [kinds[i % len(kinds)] for i in range(anomalous)])
    kind_list = kind_list[torch.randperm(size, generator=generator).numpy()]
    changed, masks = make_anomalies(images, kind_list, generator,
                                    donors.sample(size, seed).tensors()[0])
    return MaskedImages(changed, masks, kind_list, classes, split.value_range, kinds)


def localisation_metrics(scores, data: MaskedImages, max_fpr: float = MAX_FPR) -> dict:
    """Pixel AUROC, PRO area and image AUROC of a detector's maps on ``data``; chapter 08.

    ``scores`` is the detector's :class:`~companion.scores.Scores` of ``data``. One entry per
    anomaly kind, each measured on the normal images together with that kind's anomalies, and
    ``"all"`` on every image. The image AUROC is the detector's headline score's, on the same
    images, so that finding an anomaly and finding *where* it is stand side by side.
    """
    if scores.maps is None:
        raise ConfigError(f"this detector (headline {scores.headline!r}) paints no anomaly maps")
    if len(scores) != len(data) or not np.array_equal(scores.labels, data.labels.numpy()):
        raise ConfigError("the scores are not of these images; score the MaskedImages "
                          "themselves: detector.score(anomalies)")
    results = {}
    for kind in [k for k in data.kind_names if k in data.kinds] + ["all"]:
        positions = data.positions(kind)
        maps, masks = scores.maps[positions], data.masks[torch.as_tensor(positions)]
        results[kind] = {"pixel_auroc": pixel_auroc(maps, masks),
                         "pro": pro_area(maps, masks, max_fpr),
                         "image_auroc": scores.select(positions).auroc()}
    return results


#: How the tables name each metric of :func:`localisation_metrics`.
METRIC_NAMES = {"pixel_auroc": "pixel AUROC", "pro": "PRO to 0.3", "image_auroc": "image AUROC"}


def metrics_table(rows: dict, row_header: str = "") -> str:
    """Rows of :func:`localisation_metrics` values (one kind's, or ``"all"``), a column per
    metric: e.g. the settings of a grid; chapter 08."""
    return format_table({name: {METRIC_NAMES[metric]: value for metric, value in cells.items()}
                         for name, cells in rows.items()}, METRIC_NAMES.values(), row_header)


def localisation_table(results: dict, metric: str) -> str:
    """One metric of several detectors' :func:`localisation_metrics`: a row per detector, a
    column per kind; chapter 08."""
    if metric not in METRIC_NAMES:
        raise ConfigError(f"metric={metric!r}; use one of {list(METRIC_NAMES)}")
    kinds = list(next(iter(results.values())))
    return format_table({name: {kind: per_kind[kind][metric] for kind in kinds}
                         for name, per_kind in results.items()}, kinds, METRIC_NAMES[metric])


def choose_map(scores, tuning: MaskedImages, maps=("l2", "ssim"), sigmas=(0.0, 2.0, 4.0),
               max_fpr: float = MAX_FPR) -> tuple[tuple[str, float], dict]:
    """The anomaly map, and its smoothing, with the largest PRO area on ``tuning``; chapter 11.

    ``scores`` are a detector's scores of the tuning images (never of a test image): each map of
    :data:`~companion.scores.MAP_FUNCTIONS` named in ``maps``, smoothed by each of ``sigmas``, is
    measured by :func:`localisation_metrics`. Returns the chosen ``(map, sigma)`` and every
    setting's metrics over all tuning images, for the record.
    """
    grid = {(name, float(sigma)): localisation_metrics(scores.with_map(name, sigma), tuning,
                                                       max_fpr)["all"]
            for name in maps for sigma in sigmas}
    return max(grid, key=lambda setting: grid[setting]["pro"]), grid


def scale_to_normal(maps, normal_maps, quantile: float = 0.99) -> np.ndarray:
    """``maps`` divided by the ``quantile`` of ``normal_maps``' pixel values; chapter 11.

    Maps of different models (a squared error, a 1 − SSIM) have no common unit; after this, 1
    is as bright as the brightest 1 % of a model's pixels on normal images, so several models'
    maps can share one colour scale.
    """
    fraction(quantile, "quantile", 0.99)
    level = float(np.quantile(np.asarray(normal_maps, dtype=np.float64), quantile))
    return np.asarray(maps, dtype=np.float64) / max(level, 1e-12)
