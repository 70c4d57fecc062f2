"""The restoration autoencoder of chapter 09: attribute restoration (Ye et al., ARNet).

Chapter 03's convolutional autoencoder, trained not to copy its input but to restore it: each
training image comes in erased (chapter 09: turned by a random multiple of 90°) and the target
is the original image (:mod:`companion.models.restoration`). The headline score, fixed before
any test image is seen, is that training loss per image averaged over the erasures,
``"restoration mse"`` (``"restoration l1"`` with ``loss="l1"``); with ``normalise=True`` each
erasure's error is first divided by its mean on the held-out normal images, and the headline is
``"normalised restoration mse"``. The plain reconstruction error of the image as it is
(``"mse"``) and each erasure's error come along for comparison. ``maps`` are |x − restored|
averaged over the erasures (the pixels behind the headline score); ``outputs`` restore the
image as it is.

A network can die in training: every ReLU off, one output for every input, the training loss
flat from then on (chapter 09's 64-map restorer on MNIST "1"). After training, a restorer whose
restorations of held-out normal images (training images without them) hardly vary is trained
again from new initial weights with a lower learning rate; ``History.restarts`` counts how
often.
"""

from __future__ import annotations

import warnings

import torch

from ..engine import History, in_memory, set_seed, train_epochs
from ..errors import ConfigError
from ..models import ConvAutoencoder
from ..models.restoration import (ERASURE_SETS, ERRORS, RestorationUNet, check_square,
                                  restoration_errors, restoration_loss, restoration_spread,
                                  restorations)
from ..scores import Scores
from ..settings import (Setting, flag, one_of, optional_positive_int, positive_int,
                        positive_number)
from .autoencoder import AutoencoderDetector
from .base import EVALUATION_BATCH_SIZE, in_batches

#: The grey an erased quadrant is painted: the middle of the value range.
MID_GREY = {"[-1, 1]": 0.0, "[0, 1]": 0.5}
ARCHITECTURES = {"conv": ConvAutoencoder, "unet": RestorationUNet}
#: Restorations of held-out normal images that vary less than this from image to image
#: (:func:`restoration_spread`) come from a dead network: a dead one's vary by 1e-8 to 7e-8, a
#: trained live one's by about 0.1, a tiny untrained test network's still by 3e-4.
DEAD_SPREAD = 1e-6
#: How many times a dead network is trained again, each time from new initial weights (the
#: seed plus 1000 times the restart's number) and with the learning rate divided by 3: new
#: weights alone died again on MNIST "1" (benchmarks/restoration_collapse_probe.py).
RESTARTS = 2
RESTART_SEED_STEP, RESTART_LR_DIVISOR = 1000, 3


class RestorationAEDetector(AutoencoderDetector):
    """A conv AE trained to restore erased images (chapter 09: turn them upright).

    With validation images the epoch of the lowest validation restoration error is kept; with
    ``normalise=True`` the same images give each erasure's mean error, and validation images
    are required.
    """

    name = "restoration_ae"
    headline = "restoration mse"
    SETTINGS = {"latent_dim": Setting(32, optional_positive_int, 32),
                "base_channels": Setting(32, positive_int, 32),
                "epochs": Setting(40, positive_int, 40),
                "batch_size": Setting(64, positive_int, 64),
                "lr": Setting(1e-3, positive_number, 1e-3),
                "architecture": Setting("conv", one_of(tuple(ARCHITECTURES)), "unet"),
                "loss": Setting("mse", one_of(tuple(ERRORS)), "l1"),
                "erasures": Setting("turns", one_of(tuple(ERASURE_SETS)), "turns+mirror"),
                "normalise": Setting(False, flag, True)}

    def __init__(self, **settings):
        super().__init__(**settings)
        self.headline = self.headline_for(self.settings)
        self.erasure_means: torch.Tensor | None = None

    @classmethod
    def headline_for(cls, settings: dict) -> str:
        error = settings.get("loss", "mse")
        return ("normalised " if settings.get("normalise") else "") + f"restoration {error}"

    def _network(self):
        check_square(self.image_shape)
        return ARCHITECTURES[self.settings["architecture"]](
            self.settings["latent_dim"], self.image_shape, self.settings["base_channels"],
            self.value_range)

    def _fit(self, train, val_images, after_epoch=None) -> History:
        if self.settings["normalise"] and val_images is None:
            raise ConfigError("normalise=True divides each erasure's error by its mean on held-out "
                              "normal images: call fit(train, val=...) (e.g. one_class_split(..., "
                              "val_fraction=0.1)), or use normalise=False")
        erasures, fill = self._erasures()
        probe = (self._images(train, "training data") if val_images is None
                 else val_images)[:EVALUATION_BATCH_SIZE].to(self.device)
        for restart in range(RESTARTS + 1):
            if restart:  # the same images, erasures and order; new initial weights
                set_seed(self.seed + RESTART_SEED_STEP * restart)
                self._build()
            lr = self.settings["lr"] / RESTART_LR_DIVISOR ** restart
            history = self._train(train, val_images, after_epoch, erasures, fill, lr)
            spread = restoration_spread(restorations(self.net.eval(), probe, erasures, fill))
            if spread >= DEAD_SPREAD:
                break
        else:
            times = f"{RESTARTS + 1} times" if RESTARTS else "once"
            warnings.warn(f"the restorer died in training {times} (restorations vary by "
                          f"{spread:.2g} < {DEAD_SPREAD} from image to image); its scores "
                          "measure one painted image, not the input: try a lower lr or fewer "
                          "base_channels", RuntimeWarning, stacklevel=3)
        history.restarts = restart
        self.erasure_means = None
        if self.settings["normalise"]:
            self.erasure_means = in_batches(self._erasure_errors, val_images,
                                            self.device).mean(dim=0)
        return history

    def _erasures(self) -> tuple:
        return ERASURE_SETS[self.settings["erasures"]], MID_GREY[self.value_range]

    def _erasure_errors(self, x):
        erasures, fill = self._erasures()
        return restoration_errors(x, restorations(self.net, x, erasures, fill),
                                  self.settings["loss"])

    def _train(self, train, val_images, after_epoch, erasures, fill, lr) -> History:
        net, error = self.net, self.settings["loss"]
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        draws = torch.Generator().manual_seed(self.seed)  # the erasures, by the seed alone

        def step(images, *_):
            loss = restoration_loss(net, images, draws, erasures, error, fill)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return {"loss": loss.item()}

        validate = self._validation(val_images, lambda x: self._erasure_errors(x).mean(dim=1))
        return train_epochs(step, self._loader(train, shuffle=True), self.settings["epochs"],
                            {"net": net}, self.device, validate, after_epoch, self.progress)

    def _score(self, images, classes, labels) -> Scores:
        return _erasure_scores(self, images, classes, labels)

    def _state(self) -> dict:
        return {**super()._state(), "erasure_means": self.erasure_means}

    def _load_state(self, state: dict) -> None:
        super()._load_state(state)
        self.erasure_means = state.get("erasure_means")


def score_with_erasures(detector: AutoencoderDetector, data) -> Scores:
    """Any fitted autoencoder detector scored the restoration way: each erasure of each image
    of ``data`` through its network, the error to the original image; headline
    ``"restoration mse"`` (chapter 09's turns unless the detector learned other erasures).
    Chapter 09 scores the plain conv AE with it."""
    if not isinstance(detector, AutoencoderDetector) or detector.image_shape is None:
        raise ConfigError(f"{detector!r} is not a fitted autoencoder detector; fit a conv_ae or "
                          "restoration_ae first")
    images = detector._images(data, "scored data")
    check_square(images.shape[1:])
    _, classes, labels = in_memory(data).tensors
    return _erasure_scores(detector, images, classes.numpy(), labels.numpy())


def _erasure_scores(detector, images, classes, labels) -> Scores:
    net, settings = detector.net, detector.settings
    error = settings.get("loss", "mse")
    erasures = ERASURE_SETS[settings.get("erasures", "turns")]
    fill = MID_GREY[detector.value_range]
    net.eval()

    def per_image(chunk):
        restored = restorations(net, chunk, erasures, fill)
        return {"errors": restoration_errors(chunk, restored, error),
                "maps": (restored - chunk).abs().sum(dim=2).mean(dim=0), "upright": restored[0]}

    columns = in_batches(per_image, images, detector.device)
    errors = columns["errors"]
    values = {f"restoration {error}": errors.mean(dim=1).numpy(),
              **{error if erasure.name == "as it is" else f"{error} {erasure.name}":
                 errors[:, j].numpy() for j, erasure in enumerate(erasures)}}
    means = getattr(detector, "erasure_means", None)
    if means is not None:
        values[f"normalised restoration {error}"] = (errors / means).mean(dim=1).numpy()
    # the restorer's own headline (a detector built on it may report another)
    headline = (RestorationAEDetector.headline_for(settings)
                if isinstance(detector, RestorationAEDetector) else f"restoration {error}")
    return Scores(values, headline, labels, classes, detector.value_range,
                  maps=columns["maps"].numpy(), inputs=images, outputs=columns["upright"])
