"""Chapter 09's restoration autoencoder with chapter 02's dense autoencoder beside it.

Round three of the record attempt (``benchmarks/results/restoration_record_rule.md``): where a
quarter turn erases little (an MNIST "0" looks much the same turned), the restorer is weak and
a plain reconstruction error is not, so a second network of another kind gives a second
opinion. Both train on the same normal images; each one's headline (the restorer's, the dense
AE's ``mse``) is divided by its mean on the held-out normal images, so the two are on one
scale, and the headline ``"restoration + dense"`` is their average. Every score of the restorer
comes along, and the dense AE's as ``"dense mse"``; ``maps`` and ``outputs`` are the restorer's.
"""

from __future__ import annotations

import numpy as np

from ..engine import History, set_seed
from ..errors import ConfigError
from ..scores import Scores
from ..settings import Setting, positive_int
from .autoencoder import DenseAEDetector
from .restoration import RestorationAEDetector, _erasure_scores


class RestorationPairDetector(RestorationAEDetector):
    """The restoration AE and a dense AE (``partner_*`` settings), their scaled headlines
    averaged. Held-out normal images are required: they set each network's scale."""

    name = "restoration_pair"
    headline = "restoration + dense"
    SETTINGS = {**RestorationAEDetector.SETTINGS,
                "partner_latent_dim": Setting(32, positive_int, 32),
                "partner_epochs": Setting(20, positive_int, 20),
                "partner_batch_size": Setting(16, positive_int, 16)}

    def __init__(self, **settings):
        super().__init__(**settings)
        self.scales: dict[str, float] | None = None

    @classmethod
    def headline_for(cls, settings: dict) -> str:
        return cls.headline

    @property
    def restorer_headline(self) -> str:
        return RestorationAEDetector.headline_for(self.settings)

    def _make_partner(self) -> None:
        """The dense AE, built from this detector's seed as a dense AE of that seed is."""
        self.partner = DenseAEDetector(
            latent_dim=self.settings["partner_latent_dim"], epochs=self.settings["partner_epochs"],
            batch_size=self.settings["partner_batch_size"], lr=self.settings["lr"],
            device=self.device, seed=self.seed, progress=self.progress)
        self.partner.image_shape, self.partner.value_range = self.image_shape, self.value_range
        set_seed(self.seed)
        self.partner._build()

    def _fit(self, train, val_images, after_epoch=None) -> History:
        if val_images is None:
            raise ConfigError("the restoration pair puts its two networks on one scale with "
                              "held-out normal images: call fit(train, val=...) (e.g. "
                              "one_class_split(..., val_fraction=0.1))")
        history = super()._fit(train, val_images, after_epoch)
        self._make_partner()
        self.partner.history = self.partner._fit(train, val_images)
        none = np.zeros(len(val_images), dtype=int)
        restorer, partner = self._parts(val_images, none, none)
        self.scales = {"restorer": float(restorer[self.restorer_headline].mean()),
                       "partner": float(partner["mse"].mean())}
        return history

    def _parts(self, images, classes, labels) -> tuple[Scores, Scores]:
        return (_erasure_scores(self, images, classes, labels),
                self.partner._score(images, classes, labels))

    def _score(self, images, classes, labels) -> Scores:
        restorer, partner = self._parts(images, classes, labels)
        pair = (restorer[self.restorer_headline] / self.scales["restorer"]
                + partner["mse"] / self.scales["partner"]) / 2
        return Scores({self.headline: pair, **restorer.values, "dense mse": partner["mse"]},
                      self.headline, labels, classes, self.value_range, maps=restorer.maps,
                      inputs=images, outputs=restorer.outputs)

    def _state(self) -> dict:
        return {**super()._state(), "partner": self.partner._state(), "scales": self.scales}

    def _load_state(self, state: dict) -> None:
        super()._load_state(state)
        self._make_partner()
        self.partner._load_state(state["partner"])
        self.scales = state["scales"]
