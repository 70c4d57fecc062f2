"""The one shape every detector of the book has: ``fit`` on normal images, ``score`` any images.

Defined in chapter 02, in the spirit of PyOD's ``BaseDetector``: chapters and the benchmark
train and score every model the same way::

    det = companion.detectors.make("conv_ae", latent_dim=32, epochs=20, device=device)
    history = det.fit(split.train, val=split.val)   # a History: losses per epoch, chosen epoch
    scores = det.score(split.test)                  # a Scores: per-image scores, labels, maps
    scores.auroc()                                  # AUROC of the headline score

Settings are keyword-only, checked once against the detector's :data:`Detector.SETTINGS`.
Each detector names its ``headline`` score before it sees any data, so nothing downstream
picks a score by its test AUROC.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..data import check_value_range
from ..engine import (History, in_memory, load_checkpoint, make_loader, resolve_device,
                      save_checkpoint, set_seed)
from ..errors import CheckpointError, ConfigError
from ..scores import Scores
from ..settings import Setting, flag, integer, validate

#: Images per batch when a detector scores data; scoring keeps no gradients, so batches are big.
EVALUATION_BATCH_SIZE = 512

REGISTRY: dict[str, type["Detector"]] = {}

#: The checkpoint layout :meth:`Detector.save` writes; :func:`load` refuses any other.
CHECKPOINT_FORMAT = "companion-detector/1"
_CHECKPOINT_KEYS = {"format", "detector", "settings", "seed", "image_shape", "value_range", "state"}


@torch.no_grad()
def in_batches(function, images: torch.Tensor, device) -> torch.Tensor | dict:
    """``function`` over ``images`` in evaluation batches on ``device``, results joined on the CPU.

    The one scoring loop of every detector: ``function`` takes a batch and returns a tensor, or
    a dict of tensors (several scores from one pass), each with one row per image.
    """
    parts = [function(chunk.to(device)) for chunk in images.split(EVALUATION_BATCH_SIZE)]
    if parts and isinstance(parts[0], dict):
        return {name: torch.cat([part[name].cpu() for part in parts]) for name in parts[0]}
    return torch.cat([part.cpu() for part in parts])


class Detector:
    """Base class: validated settings, device, seed; ``fit``, ``score``, ``save``, ``load``.

    A subclass sets ``name``, ``headline``, ``SETTINGS`` and ``value_ranges`` (the input ranges
    it can work with), and implements :meth:`_build` (make the networks for an image shape and
    value range), :meth:`_fit` and :meth:`_score`, and :meth:`_state` / :meth:`_load_state`.
    """

    name: ClassVar[str]
    headline: ClassVar[str]
    SETTINGS: ClassVar[dict[str, Setting]]
    value_ranges: ClassVar[tuple[str, ...]] = ("[-1, 1]", "[0, 1]")
    #: Scores that come with a threshold of their own (a probability's 0.5), for the F1 of a
    #: paper's protocol; most scores have none and need one set from normal images (chapter 05).
    natural_thresholds: ClassVar[dict[str, float]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTRY[cls.name] = cls

    def __init__(self, *, device="auto", seed: int = 0, progress: bool = True, **settings):
        self.settings = validate(settings, self.SETTINGS, f"detector {self.name!r}")
        self.device = resolve_device(device)
        self.seed = integer(seed, "SEED")
        self.progress = flag(progress, "PROGRESS")
        self.image_shape: tuple[int, ...] | None = None
        self.value_range: str | None = None
        self.history: History | None = None

    @classmethod
    def headline_for(cls, settings: dict) -> str:
        """The headline score a detector with ``settings`` reports (most detectors: always one)."""
        return cls.headline

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}({settings})"

    # -- the interface -------------------------------------------------------------------------
    def fit(self, train, val=None, after_epoch=None) -> History:
        """Train on the normal images of ``train``; returns (and keeps) the training log.

        ``val`` holds more normal images, used only to choose the epoch to keep.
        ``after_epoch(epoch)`` may return figures to log per epoch (a chapter's test curves);
        nothing is chosen by them.
        """
        self.value_range = None  # a new fit may take another value range
        images = self._images(train, "training data")
        self.image_shape, self.value_range = tuple(images.shape[1:]), train.value_range
        val_images = None if val is None else self._images(val, "validation data")
        set_seed(self.seed)  # the same seed gives the same initial weights and noise
        self._build()
        self.history = self._fit(train, val_images, after_epoch)
        return self.history

    def score(self, data) -> Scores:
        """Scores of every image of ``data`` (a labelled subset, e.g. ``split.test``)."""
        if self.image_shape is None:
            raise ConfigError(f"the {self.name} detector is not fitted yet; call fit(split.train) "
                              "before score(...)")
        images = self._images(data, "scored data")
        if tuple(images.shape[1:]) != self.image_shape:
            raise ConfigError(f"images of shape {tuple(images.shape[1:])}, but the detector was "
                              f"fitted on {self.image_shape}")
        _, classes, labels = in_memory(data).tensors
        return self._score(images, classes.numpy(), labels.numpy())

    def save(self, path) -> None:
        """Everything needed to score again, in one file, written atomically."""
        if self.image_shape is None:
            raise ConfigError("nothing to save: fit the detector first")
        save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "detector": self.name, "settings": self._plain_settings(),
                               "seed": self.seed, "image_shape": list(self.image_shape),
                               "value_range": self.value_range, "state": self._state()})

    # -- shared helpers ------------------------------------------------------------------------
    def _images(self, data, what: str) -> torch.Tensor:
        value_range = getattr(data, "value_range", None)
        if value_range is None:
            raise ConfigError(f"the {what} does not say its value range; make it with "
                              "one_class_split(..., value_range=...) or give it a .value_range")
        if check_value_range(value_range) not in self.value_ranges:
            raise ConfigError(f"the {self.name} detector takes images in "
                              f"{' or '.join(self.value_ranges)}, but the {what} is in "
                              f"{value_range}; load it with one_class_split(..., "
                              f"value_range={self.value_ranges[0]!r})")
        if self.value_range is not None and value_range != self.value_range:
            raise ConfigError(f"the {what} is in {value_range}, but the detector was fitted on "
                              f"images in {self.value_range}")
        if len(data) == 0:
            raise ConfigError(f"the {what} is empty")
        return in_memory(data).tensors[0]

    def _loader(self, data, shuffle: bool = False):
        batch_size = self.settings.get("batch_size", EVALUATION_BATCH_SIZE) if shuffle \
            else EVALUATION_BATCH_SIZE
        return make_loader(data, batch_size, shuffle=shuffle, seed=self.seed)

    def _validation(self, val_images, per_image_loss):
        """None without validation images, else a function: the mean of ``per_image_loss``
        over them (lower is better), for the engine's keep-the-best-epoch rule."""
        if val_images is None:
            return None

        def mean_loss() -> float:
            return float(in_batches(per_image_loss, val_images, self.device).mean())
        return mean_loss

    def _plain_settings(self) -> dict:
        return dict(self.settings)

    def _scores(self, values: dict, classes, labels, **extra) -> Scores:
        return Scores(values, self.headline, labels, classes, self.value_range, **extra)

    # -- what each detector implements -----------------------------------------------------------
    def _build(self) -> None:
        raise NotImplementedError

    def _fit(self, train, val_images, after_epoch=None) -> History:
        raise NotImplementedError

    def _score(self, images, classes, labels) -> Scores:
        raise NotImplementedError

    def _state(self) -> dict:
        raise NotImplementedError

    def _load_state(self, state: dict) -> None:
        raise NotImplementedError


def make(name: str, **settings) -> Detector:
    """The detector registered as ``name``, with keyword ``settings``; chapter 02."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown detector {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name](**settings)


def load(path, device="auto", progress: bool = True) -> Detector:
    """A detector saved by :meth:`Detector.save`, ready to score (``weights_only`` loading).

    Only this library's format is accepted: a weights-only file holding
    :data:`CHECKPOINT_FORMAT` and a registered detector's name; anything else is refused with a
    :class:`~companion.errors.CheckpointError` that says what the file holds.
    """
    checkpoint = load_checkpoint(path, resolve_device(device))
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        found = (f"format {checkpoint.get('format')!r}, keys {sorted(map(str, checkpoint))[:8]}"
                 if isinstance(checkpoint, dict) else f"a {type(checkpoint).__name__}")
        raise CheckpointError(f"{str(path)!r} is not a detector checkpoint of this library "
                              f"(expected format {CHECKPOINT_FORMAT!r}; found {found}); save one "
                              "with detector.save(path)")
    missing = sorted(_CHECKPOINT_KEYS - set(checkpoint))
    if missing or checkpoint["detector"] not in REGISTRY:
        raise CheckpointError(f"{str(path)!r}: detector {checkpoint.get('detector')!r}"
                              f"{', missing ' + str(missing) if missing else ''}; known detectors: "
                              f"{sorted(REGISTRY)}")
    detector = make(checkpoint["detector"], device=device, seed=checkpoint["seed"],
                    progress=progress, **checkpoint["settings"])
    detector.image_shape = tuple(checkpoint["image_shape"])
    detector.value_range = checkpoint["value_range"]
    detector._build()
    try:
        detector._load_state(checkpoint["state"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"{str(path)!r}: its weights do not fit a {checkpoint['detector']} "
                              f"detector with these settings ({str(error)[:160]})") from None
    return detector
