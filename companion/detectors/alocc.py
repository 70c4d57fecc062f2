"""ALOCC as a detector: R and D trained against each other on normal images; chapter 06.

The headline score is the paper's, D(R(x)): 1 − the probability that D calls R's
reconstruction a real normal image. D(x) and R's reconstruction error |x − R(x)| come along as
what they are: D alone, and R used as a plain autoencoder. With ``phase_two_epochs`` > 0, D is
fine-tuned after the usual training as OGNet does (:meth:`ALOCCDetector.phase_two`).
"""

from __future__ import annotations

import copy
import math

import torch

from ..engine import History, train_epochs
from ..errors import ConfigError
from ..models.alocc import (NORMALISATIONS, Discriminator, Reconstructor, add_noise,
                            discriminator_loss, not_real_probability, pair, phase_two_batch,
                            phase_two_loss, reconstructor_loss, squared_error)
from ..models.conv_ae import ConvAutoencoder
from ..scores import Scores, l1_sum
from ..settings import (Setting, fraction, non_negative_int, non_negative_number, one_of,
                        optional_positive_int, optional_positive_number, positive_int,
                        positive_number)
from .base import Detector, in_batches


def alocc_step(r, d, opt_r, opt_d, x, noise_std: float, n_dis: int, l2_lambda: float,
               reduction: str = "sum", pairs: bool = False) -> dict:
    """One ALOCC update on a batch of normal images ``x`` (the Chainer article's ``update_core``).

    Defined in chapter 06. ``n_dis`` steps of D (real x -> class 1, R(noisy x) -> class 0),
    each with fresh noise, then one step of R on :func:`reconstructor_loss`. With ``pairs``, D
    judges (x, x) as real and (x, R(noisy x)) as fake instead (:func:`~companion.models.alocc.pair`).
    """
    for _ in range(n_dis):
        with torch.no_grad():
            reconstruction = r(add_noise(x, noise_std))
        real, fake = (pair(x, x), pair(x, reconstruction)) if pairs else (x, reconstruction)
        d_loss = discriminator_loss(d, real, fake)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
    reconstruction = r(add_noise(x, noise_std))
    r_loss, adversarial, l2 = reconstructor_loss(d, x, reconstruction, l2_lambda, reduction,
                                                 pair(x, reconstruction) if pairs else None)
    opt_r.zero_grad()
    r_loss.backward()
    opt_r.step()
    return {"d_loss": d_loss.item(), "r_adversarial": adversarial.item(), "r_l2": l2.item()}


class ALOCCDetector(Detector):
    """R (denoising conv AE) and D (conv classifier), Adam with β1 = 0.5; chapter 06.

    As the Chainer article, except in two defaults: D has no normalisation (``d_norm="batch"`` is the
    Chainer article's), and R's squared error is summed over each image as the paper writes it
    (``l2_reduction="mean"`` is the Chainer article's per-pixel mean).

    With validation images, training stops as the paper says (Sec. 3.3): after the first epoch
    in which R's squared error per pixel on them is below ``stop_below``, keeping that epoch; if
    it never is (or ``stop_below=None``), the epoch of the lowest such error is kept. Both rules
    look at normal images only. ``score`` gives ``"D(R(x))"`` (headline), ``"D(x)"`` and
    ``"R error"``, R(x) as ``outputs`` and |x − R(x)| as ``maps``.

    With ``d_input="pair"`` D judges an image beside its reconstruction, (x, R(x)), and
    ``"D(R(x))"`` is its verdict on that pair (``"D(x)"`` on (x, x)).

    ``phase_two_epochs`` > 0 adds OGNet's second phase (:meth:`phase_two`); ``r_old`` is R as it
    was ``old_after`` of the way through the first epoch, the early R whose blurrier
    reconstructions D learns to call bad.
    """

    name = "alocc"
    headline = "D(R(x))"
    natural_thresholds = {"D(R(x))": 0.5, "D(x)": 0.5}  # D's verdict: more likely fake than real
    value_ranges = ("[0, 1]",)  # R ends in a sigmoid and the noise is clipped to [0, 1]
    SETTINGS = {
        "epochs": Setting(10, positive_int, 10),
        "batch_size": Setting(16, positive_int, 16),
        "lr": Setting(1e-3, positive_number, 1e-3),
        "noise_std": Setting(0.15, non_negative_number, 0.15),
        "n_dis": Setting(1, positive_int, 1),
        "l2_lambda": Setting(0.4, non_negative_number, 0.4),
        # The paper's per-image ‖x − R(x̃)‖²; "mean" is the Chainer article's per-pixel mean, which leaves
        # λ·L2 negligible beside the adversarial term (chapter 06 measures both).
        "l2_reduction": Setting("sum", one_of(("mean", "sum")), "sum"),
        # Not the Chainer article's BatchNorm: D trains on all-real and all-reconstructed batches, so batch
        # statistics carry the answer in training and are gone at scoring (chapter 06).
        "d_norm": Setting("none", one_of(NORMALISATIONS), "none"),
        # The paper's ρ: stop once R reconstructs held-out normals this well (squared error per
        # pixel). 0.004 is what R reaches at chapter 06's defaults on 400 images (0.0031-0.0037,
        # benchmarks/results/alocc_loss.json); fixed before any benchmark run with it.
        "stop_below": Setting(0.004, optional_positive_number, 0.004),
        # None: the Chainer article's R, whose narrowest point (128 maps of 5x5) holds more numbers than the
        # image. An integer: R is chapter 03's conv autoencoder with a code of that size, the
        # bottleneck the paper's argument needs (chapter 06 measures both).
        "r_latent_dim": Setting(None, optional_positive_int, 32),
        # OGNet's second phase (0: ALOCC as published). Its length, learning rate and the early
        # R's age were fixed before any run (benchmarks/results/alocc_fix_rule.md): one pass
        # over the training images at a tenth of phase one's rate, R from half-way through
        # epoch 1; good and bad images weighted equally (the paper's α = β = 0.5).
        "phase_two_epochs": Setting(0, non_negative_int, 1),
        # What D judges: R's output alone (the paper) or beside its input, (x, R(x)), as ALAD's
        # D_xx (Zenati et al., 2018): "is this a faithful reconstruction of a normal image?"
        "d_input": Setting("reconstruction", one_of(("reconstruction", "pair")), "pair"),
        "phase_two_lr": Setting(1e-4, positive_number, 1e-4),
        "old_after": Setting(0.5, fraction, 0.5),
    }

    def _build(self) -> None:
        channels = self.image_shape[0]
        latent_dim = self.settings["r_latent_dim"]
        self.r = (Reconstructor(channels) if latent_dim is None else
                  ConvAutoencoder(latent_dim, self.image_shape, value_range="[0, 1]")).to(self.device)
        d_channels = channels * (2 if self.settings["d_input"] == "pair" else 1)
        self.d = Discriminator(d_channels, norm=self.settings["d_norm"]).to(self.device)
        self.r_old = None

    def _fit(self, train, val_images, after_epoch=None) -> History:
        s = self.settings
        opt_r = torch.optim.Adam(self.r.parameters(), lr=s["lr"], betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.d.parameters(), lr=s["lr"], betas=(0.5, 0.999))
        loader = self._loader(train, shuffle=True)
        old_at_step, steps = max(1, math.ceil(s["old_after"] * len(loader))), 0

        def step(images, *_):
            nonlocal steps
            losses = alocc_step(self.r, self.d, opt_r, opt_d, images, s["noise_std"],
                                s["n_dis"], s["l2_lambda"], s["l2_reduction"],
                                pairs=s["d_input"] == "pair")
            steps += 1
            if steps == old_at_step:
                self.r_old = copy.deepcopy(self.r).eval().requires_grad_(False)
            return losses

        # R's squared error per pixel on held-out normal images: the paper's stopping signal
        validate = self._validation(val_images, lambda x: squared_error(x, self.r(x), "mean"))
        history = train_epochs(step, loader, s["epochs"], {"r": self.r, "d": self.d},
                               self.device, validate, after_epoch, self.progress,
                               stop_below=s["stop_below"])
        self.phase_two_history = None
        if s["phase_two_epochs"]:
            self.phase_two(train)
        return history

    def phase_two(self, train, epochs: int | None = None) -> History:
        """OGNet's second phase (Zaheer et al., 2020): R frozen, D fine-tuned; chapter 06.

        D learns to call the training images and R's reconstructions of them good, and the early
        R's reconstructions and pseudo anomalies bad (:func:`~companion.models.alocc.phase_two_batch`),
        for ``epochs`` passes (the ``phase_two_epochs`` setting by default) at ``phase_two_lr``.
        Afterwards D(R(x)) asks "is R's output a good reconstruction of a normal image?", which
        an anomaly's reconstruction is not. Returns (and keeps as ``phase_two_history``) the log.
        """
        if getattr(self, "r_old", None) is None:
            raise ConfigError("phase two needs the early R that fit() keeps; call fit(...) first")
        epochs = self.settings["phase_two_epochs"] if epochs is None else epochs
        positive_int(epochs, "phase_two_epochs", 1)
        images = self._images(train, "training data")
        if tuple(images.shape[1:]) != self.image_shape:
            raise ConfigError(f"images of shape {tuple(images.shape[1:])}, but the detector was "
                              f"fitted on {self.image_shape}")
        self.r.eval().requires_grad_(False)
        opt_d = torch.optim.Adam(self.d.parameters(), lr=self.settings["phase_two_lr"],
                                 betas=(0.5, 0.999))

        def step(x, *_):
            loss = phase_two_loss(self.d, phase_two_batch(self.r, self.r_old, x),
                                  pairs=self.settings["d_input"] == "pair")
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            return {"d_phase_two_loss": loss.item()}

        try:
            self.phase_two_history = train_epochs(step, self._loader(train, shuffle=True), epochs,
                                                  {"d": self.d}, self.device,
                                                  progress=self.progress, desc="phase two")
        finally:
            self.r.requires_grad_(True)
        return self.phase_two_history

    def _score(self, images, classes, labels) -> Scores:
        self.r.eval()
        self.d.eval()

        def judged(x, y):
            return pair(x, y) if self.settings["d_input"] == "pair" else y

        def columns(chunk):
            reconstruction = self.r(chunk)
            return {"D(R(x))": not_real_probability(self.d, judged(chunk, reconstruction)),
                    "D(x)": not_real_probability(self.d, judged(chunk, chunk)),
                    "R error": l1_sum(chunk, reconstruction), "outputs": reconstruction}

        values = in_batches(columns, images, self.device)
        outputs = values.pop("outputs")
        return self._scores({name: v.numpy() for name, v in values.items()},
                            classes, labels, maps=(images - outputs).abs().sum(dim=1).numpy(),
                            inputs=images, outputs=outputs)

    def _state(self) -> dict:  # the early R only teaches D; scoring never needs it
        return {"r": self.r.state_dict(), "d": self.d.state_dict()}

    def _load_state(self, state: dict) -> None:
        self.r.load_state_dict(state["r"])
        self.d.load_state_dict(state["d"])
