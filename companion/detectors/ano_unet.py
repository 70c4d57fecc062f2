"""Ano-Unet as a detector: a frozen f-Net and a fresh U-Net per test image; chapter 06.

``fit`` trains the f-Net and its centre C on the normal images (or takes an f-Net detector
that is already fitted); ``score`` trains one U-Net per scored image with
L = Σ|x − G(x)| + β·Σ|f(G(x)) − C|, many at once (:func:`~companion.models.ano_unet.optimise_batched`).
The headline score is how much G had to change the image, ``"pixel difference"`` = Σ|x − G(x)|;
``"L_C"`` and the f-Net's own ``"centre distance"`` come along, the heatmaps |x − G(x)| are the
maps and G(x) the outputs.
"""

from __future__ import annotations

import torch

from ..data import ClassSubset
from ..engine import History
from ..errors import ConfigError
from ..models.ano_unet import optimise_batched
from ..scores import Scores
from ..settings import (Setting, non_negative_number, optional_positive_int, positive_int,
                        positive_number)
from .base import Detector
from .fnet import FNET_SETTINGS, FNetDetector

# The f-Net's own training settings, renamed where the U-Net has a setting of the same name.
_FNET_NAMES = {"epochs": "fnet_epochs", "lr": "fnet_lr", "batch_size": "fnet_batch_size"}


def check_fnet(value, name: str, example=None):
    if value is None or (isinstance(value, FNetDetector) and value.image_shape is not None):
        return value
    raise ConfigError(f"{name}={value!r}; use None (fit trains an f-Net) or a fitted "
                      "fnet_distance detector")


def tuning_images(split, size: int, seed: int = 0, exclude=()) -> ClassSubset:
    """Labelled images to choose β and the steps on, none of them a test image; chapter 06.

    Half of ``size`` are normal images held out of training (``split.val``, so never in the
    f-Net's centre), half anomaly-class images of the *training* split, all drawn at random and
    none of them in a subset of ``exclude`` (the f-Net's reference images). The test split is
    left for the scores that are reported; the price is a few labelled anomalies.
    """
    positive_int(size, "GRID_IMAGES", 64)
    if split.val is None:
        raise ConfigError("the split holds no normal images out of training; make it with "
                          "one_class_split(..., val_fraction=0.2)")
    candidates = ClassSubset(split.train.dataset, split.normal_classes, split.anomaly_classes,
                             value_range=split.value_range)
    usable = torch.ones(len(candidates), dtype=torch.bool)
    for subset in exclude:
        if subset.dataset is not candidates.dataset:
            raise ConfigError("exclude= holds images of another dataset; pass only subsets of "
                              "the split's training split (reference (a))")
        usable &= ~torch.isin(candidates.indices, subset.indices)
    normal = usable & torch.isin(candidates.indices, split.val.indices)
    anomalous = usable & candidates.anomaly_labels.bool()
    generator = torch.Generator().manual_seed(seed)
    chosen = [positions[torch.randperm(len(positions), generator=generator)[:count]]
              for positions, count in [(normal.nonzero().flatten(), size // 2),
                                       (anomalous.nonzero().flatten(), size - size // 2)]]
    return candidates._select(torch.cat(chosen))


class AnoUnetDetector(Detector):
    """The Ano-Unet article's method; chapter 06."""

    name = "ano_unet"
    headline = "pixel difference"
    value_ranges = ("[0, 1]",)
    SETTINGS = {
        "fnet": Setting(None, check_fnet),
        **{_FNET_NAMES.get(name, name): setting for name, setting in FNET_SETTINGS.items()
           if name != "outlier_exposure"},
        "beta": Setting(10.0, non_negative_number, 10.0),
        "steps": Setting(40, positive_int, 40),
        "lr": Setting(0.01, positive_number, 0.01),
        "unet_channels": Setting(8, positive_int, 8),
        "unet_batch_size": Setting(None, optional_positive_int, 64),  # None: by memory budget
        "memory_budget_mb": Setting(1024, optional_positive_int, 1024),
    }

    def _fnet_settings(self) -> dict:
        # By the f-Net's own names: its "lr" is this detector's "fnet_lr", never the U-Net's "lr".
        return {name: self.settings[_FNET_NAMES.get(name, name)] for name in FNET_SETTINGS
                if name != "outlier_exposure"}

    def _build(self) -> None:
        self.fnet = self.settings["fnet"] or FNetDetector(
            device=self.device, seed=self.seed, progress=self.progress, **self._fnet_settings())

    def _fit(self, train, val_images, after_epoch=None) -> History:
        if self.fnet.image_shape is not None and self.settings["fnet"] is not None:
            return self.fnet.history or History()
        return self.fnet.fit(train, after_epoch=after_epoch)

    def _score(self, images, classes, labels) -> Scores:
        s = self.settings
        budget = None if s["memory_budget_mb"] is None else s["memory_budget_mb"] * 2**20
        result = optimise_batched(images, self.fnet.net, self.fnet.centre, s["beta"], s["steps"],
                                  s["lr"], self.seed, s["unet_channels"], s["unet_batch_size"],
                                  budget, self.device, self.progress)
        values = {"pixel difference": result.pixel_score.numpy(), "L_C": result.lc_score.numpy(),
                  "centre distance": self.fnet.centre_distance(images).numpy()}
        return self._scores(values, classes, labels, maps=result.heatmaps.numpy(),
                            inputs=images, outputs=result.generated)

    def _plain_settings(self) -> dict:
        plain = {name: value for name, value in self.settings.items() if name != "fnet"}
        if plain["reference"] != "other-dataset":
            del plain["reference"]
        return plain

    def _state(self) -> dict:
        return {"fnet": self.fnet._state(), "fnet_image_shape": list(self.fnet.image_shape)}

    def _load_state(self, state: dict) -> None:
        self.fnet.image_shape, self.fnet.value_range = tuple(state["fnet_image_shape"]), "[0, 1]"
        self.fnet._load_state(state["fnet"])
