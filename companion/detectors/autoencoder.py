"""Autoencoders as detectors: the dense model of chapter 02 and the convolutional one of 03.

Trained on the mean squared error, so the headline score is the same error per image
(``"mse"``); the other score functions of chapter 05 come along for comparison, and the anomaly
map is |x − x̂| summed over channels.
"""

from __future__ import annotations

import torch

from ..engine import History, train_epochs
from ..models import ConvAutoencoder, DenseAutoencoder, SSIMAutoencoder
from ..scores import Scores, mse, reconstruction_scores
from ..settings import Setting, optional_positive_int, positive_int, positive_number
from .base import Detector, in_batches

_TRAINING = {
    "epochs": Setting(20, positive_int, 20),
    "batch_size": Setting(16, positive_int, 16),
    "lr": Setting(1e-3, positive_number, 1e-3),
}


def fit_autoencoder(net, loader, epochs: int, lr: float, device, validate=None, after_epoch=None,
                    progress: bool = True) -> History:
    """Train an autoencoder on its own loss with Adam: the training of chapter 02.

    Only what is particular to an autoencoder is here: the optimiser and a ``step`` that makes
    one update on one batch, the loss between the images and their reconstructions (the MSE
    for chapters 02 and 03, 1 − SSIM for chapter 11's model). The epochs, the batches, the
    progress bar, the log and the choice of epoch by ``validate`` are the book's one training
    loop, :func:`companion.engine.train_epochs`.
    """
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)

    def step(images, *_):
        loss = net.loss(images, net(images))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    return train_epochs(step, loader, epochs, {"net": net}, device, validate, after_epoch,
                        progress)


class AutoencoderDetector(Detector):
    """An autoencoder trained on normal images with Adam on the MSE; score = its error.

    Defined in chapter 02. With validation images the epoch of the lowest validation MSE is
    kept (:func:`fit_autoencoder`). ``score`` returns every score of :data:`companion.scores.SCORE_FUNCTIONS`, the
    reconstructions as ``outputs`` and |x − x̂| as ``maps``.
    """

    headline = "mse"

    def _network(self):
        raise NotImplementedError

    def _build(self) -> None:
        self.net = self._network().to(self.device)

    def _fit(self, train, val_images, after_epoch=None) -> History:
        validate = self._validation(val_images, lambda x: mse(x, self.net(x)))
        return fit_autoencoder(self.net, self._loader(train, shuffle=True),
                               self.settings["epochs"], self.settings["lr"], self.device,
                               validate, after_epoch, self.progress)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """x̂ for a batch of images, on the CPU."""
        self.net.eval()
        return in_batches(self.net, images, self.device)

    def _score(self, images, classes, labels) -> Scores:
        outputs = self.reconstruct(images)
        return self._scores(reconstruction_scores(images, outputs, self.value_range), classes,
                            labels, maps=self.net.anomaly_map(images, outputs).numpy(),
                            inputs=images, outputs=outputs)

    def _state(self) -> dict:
        return {"net": self.net.state_dict()}

    def _load_state(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])


class DenseAEDetector(AutoencoderDetector):
    """The dense autoencoder of chapter 02 (784-256-128-z)."""

    name = "dense_ae"
    SETTINGS = {"latent_dim": Setting(32, positive_int, 32), **_TRAINING}

    def _network(self):
        return DenseAutoencoder(self.settings["latent_dim"], self.image_shape, self.value_range)


class ConvAEDetector(AutoencoderDetector):
    """The convolutional autoencoder of chapter 03; ``latent_dim=None`` is fully convolutional."""

    name = "conv_ae"
    SETTINGS = {"latent_dim": Setting(32, optional_positive_int, 32),
                "base_channels": Setting(16, positive_int, 16), **_TRAINING}

    def _network(self):
        return ConvAutoencoder(self.settings["latent_dim"], self.image_shape,
                               self.settings["base_channels"], self.value_range)

    def bottleneck_size(self) -> int:
        """How many numbers pass the narrowest point (the feature maps if fully convolutional)."""
        with torch.no_grad():
            return int(self.net.encoder(torch.zeros(1, *self.image_shape,
                                                    device=self.device)).numel())


class SSIMAEDetector(ConvAEDetector):
    """The SSIM autoencoder of chapter 11 (Bergmann et al., 2019): chapter 03's network trained
    on 1 − SSIM; its map is the local 1 − SSIM and its headline score ``"1-ssim"``. Like the
    other autoencoders it keeps the epoch of the lowest held-out mean squared error."""

    name = "ssim_ae"
    headline = "1-ssim"

    def _network(self):
        return SSIMAutoencoder(self.settings["latent_dim"], self.image_shape,
                               self.settings["base_channels"], self.value_range)

    def _scores(self, values: dict, classes, labels, **extra):
        # The headline first, as every detector lists its scores.
        return super()._scores({self.headline: values[self.headline], **values}, classes, labels,
                               **extra)
