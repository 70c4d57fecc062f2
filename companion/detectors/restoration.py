"""The restoration autoencoder of chapter 08: attribute restoration (Ye et al., ARNet).

Chapter 03's convolutional autoencoder, trained not to copy its input but to restore it: each
training image comes in turned by a random multiple of 90° and the target is the upright image
(:mod:`companion.models.restoration`). The headline score, fixed before any test image is seen,
is that training loss per image averaged over the four erasures, ``"restoration mse"``. The
plain reconstruction error of the upright image (``"mse"``, the erasure k = 0 alone) and each
turn's error come along for comparison. ``maps`` are |x − restored| averaged over the four
erasures (the pixels behind the headline score); ``outputs`` restore the upright image.
"""

from __future__ import annotations

import torch

from ..engine import History, in_memory, train_epochs
from ..errors import ConfigError
from ..models import ConvAutoencoder
from ..models.restoration import (QUARTER_TURNS, check_square, restoration_errors,
                                  restoration_loss, restorations)
from ..scores import Scores
from ..settings import Setting, optional_positive_int, positive_int, positive_number
from .autoencoder import AutoencoderDetector
from .base import in_batches

#: Score names: the headline, then the error of each erasure alone (k = 0 is the plain "mse").
TURN_SCORES = {0: "mse", 1: "mse 90°", 2: "mse 180°", 3: "mse 270°"}


class RestorationAEDetector(AutoencoderDetector):
    """A conv AE trained to turn randomly rotated images upright; chapter 08.

    With validation images the epoch of the lowest validation ``restoration mse`` is kept.
    """

    name = "restoration_ae"
    headline = "restoration mse"
    SETTINGS = {"latent_dim": Setting(32, optional_positive_int, 32),
                "base_channels": Setting(32, positive_int, 32),
                "epochs": Setting(40, positive_int, 40),
                "batch_size": Setting(64, positive_int, 64),
                "lr": Setting(1e-3, positive_number, 1e-3)}

    def _network(self):
        check_square(self.image_shape)
        return ConvAutoencoder(self.settings["latent_dim"], self.image_shape,
                               self.settings["base_channels"], self.value_range)

    def _fit(self, train, val_images, after_epoch=None) -> History:
        net = self.net
        optimizer = torch.optim.Adam(net.parameters(), lr=self.settings["lr"])
        turns = torch.Generator().manual_seed(self.seed)  # the erasures, by the seed alone

        def step(images, *_):
            loss = restoration_loss(net, images, turns)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return {"loss": loss.item()}

        validate = self._validation(val_images, lambda x: restoration_errors(
            x, restorations(net, x)).mean(dim=1))
        return train_epochs(step, self._loader(train, shuffle=True), self.settings["epochs"],
                            {"net": net}, self.device, validate, after_epoch, self.progress)

    def _score(self, images, classes, labels) -> Scores:
        return _erasure_scores(self, images, classes, labels)


def score_with_erasures(detector: AutoencoderDetector, data) -> Scores:
    """Any fitted autoencoder detector scored the restoration way: each erasure of each image
    of ``data`` through its network, the error to the upright image; headline
    ``"restoration mse"``. Chapter 08 scores the plain conv AE with it."""
    if not isinstance(detector, AutoencoderDetector) or detector.image_shape is None:
        raise ConfigError(f"{detector!r} is not a fitted autoencoder detector; fit a conv_ae or "
                          "restoration_ae first")
    images = detector._images(data, "scored data")
    check_square(images.shape[1:])
    _, classes, labels = in_memory(data).tensors
    return _erasure_scores(detector, images, classes.numpy(), labels.numpy())


def _erasure_scores(detector, images, classes, labels) -> Scores:
    net = detector.net
    net.eval()

    def per_image(chunk):
        restored = restorations(net, chunk)
        return {"errors": restoration_errors(chunk, restored),
                "maps": (restored - chunk).abs().sum(dim=2).mean(dim=0), "upright": restored[0]}

    columns = in_batches(per_image, images, detector.device)
    errors = columns["errors"]
    values = {RestorationAEDetector.headline: errors.mean(dim=1).numpy(),
              **{TURN_SCORES[k]: errors[:, k].numpy() for k in QUARTER_TURNS}}
    return Scores(values, RestorationAEDetector.headline, labels, classes, detector.value_range,
                  maps=columns["maps"].numpy(), inputs=images, outputs=columns["upright"])
