"""ALOCC, the adversarially learned one-class classifier (Sabokrou et al., 2018), chapter 06.

A reconstructor R (a denoising convolutional autoencoder) and a discriminator D play a game on
normal images only: D learns to tell real normal images from R's reconstructions of noisy ones;
R learns to fool D while staying close to the clean image. The architecture follows the Chainer
implementation that chapter 06 re-tells (the Chainer article): 16 base channels, BatchNorm, LeakyReLU;
chapter 06 shows why D does better without the BatchNorm (``norm="none"``).

OGNet's second phase (Zaheer et al., 2020, "Old is Gold") is here too: with R frozen, D learns
to tell good reconstructions from bad ones (:func:`phase_two_batch`, :func:`phase_two_loss`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


#: How D normalises its hidden layers: "batch" (the Chainer article), "layer" (per image, over channels
#: and pixels), "spectral" (each convolution's weight divided by its largest singular value,
#: Miyato et al. 2018, which bounds how fast D's verdict can change with its input) or "none".
NORMALISATIONS = ("batch", "layer", "spectral", "none")


def _conv_block(conv: nn.Module, channels: int, norm: str = "batch") -> list[nn.Module]:
    if norm == "spectral":
        return [nn.utils.parametrizations.spectral_norm(conv), nn.LeakyReLU(0.2)]
    layers = {"batch": [nn.BatchNorm2d(channels)], "layer": [nn.GroupNorm(1, channels)],
              "none": []}[norm]
    return [conv, *layers, nn.LeakyReLU(0.2)]


class Reconstructor(nn.Module):
    """R: 4 convolutions down to 5x5, 4 transposed convolutions back, sigmoid output in [0, 1]."""

    def __init__(self, channels: int = 1, base_channels: int = 16):
        super().__init__()
        c = base_channels
        self.net = nn.Sequential(
            *_conv_block(nn.Conv2d(channels, c, 4, 2, 1, bias=False), c),          # 28 -> 14
            *_conv_block(nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), 2 * c),         # 14 -> 7
            *_conv_block(nn.Conv2d(2 * c, 4 * c, 3, 1, 1, bias=False), 4 * c),     # 7 -> 7
            *_conv_block(nn.Conv2d(4 * c, 8 * c, 3, 1, 0, bias=False), 8 * c),     # 7 -> 5
            *_conv_block(nn.ConvTranspose2d(8 * c, 4 * c, 3, 1, 0, bias=False), 4 * c),  # 5 -> 7
            *_conv_block(nn.ConvTranspose2d(4 * c, 2 * c, 3, 1, 1, bias=False), 2 * c),  # 7 -> 7
            *_conv_block(nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False), c),          # 7 -> 14
            nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Sigmoid(),                      # 14 -> 28
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Discriminator(nn.Module):
    """D: 5 convolutions and global average pooling to 2 logits (index 1 = "real normal image").

    The paper's D ends in one sigmoid unit; the Chainer article uses a 2-way softmax so that D trains like an
    ordinary classifier. With two logits a and b, softmax gives P(real) = sigmoid(b - a): the
    same family of outputs, with one redundant degree of freedom. ``norm`` is one of
    :data:`NORMALISATIONS`; the Chainer article's is ``"batch"``.
    """

    def __init__(self, channels: int = 1, base_channels: int = 16, norm: str = "batch"):
        super().__init__()
        c = base_channels
        bias = norm in ("none", "spectral")  # a normalisation layer brings its own shift
        self.net = nn.Sequential(
            *_conv_block(nn.Conv2d(channels, c, 4, 2, 1, bias=bias), c, norm),
            *_conv_block(nn.Conv2d(c, 2 * c, 4, 2, 1, bias=bias), 2 * c, norm),
            *_conv_block(nn.Conv2d(2 * c, 4 * c, 3, 1, 1, bias=bias), 4 * c, norm),
            *_conv_block(nn.Conv2d(4 * c, 8 * c, 3, 1, 0, bias=bias), 8 * c, norm),
            nn.Conv2d(8 * c, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=(2, 3))  # global average pooling -> (N, 2) logits


def add_noise(x: torch.Tensor, noise_std: float) -> torch.Tensor:
    """The normal image plus Gaussian noise, clipped back to [0, 1]."""
    return (x + noise_std * torch.randn_like(x)).clamp(0, 1)


def discriminator_loss(d, x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """D's loss: real normal images are class 1, R's reconstructions class 0; chapter 06."""
    real = torch.ones(len(x), dtype=torch.long, device=x.device)
    return F.cross_entropy(d(x), real) + F.cross_entropy(d(reconstruction), torch.zeros_like(real))


def squared_error(x: torch.Tensor, reconstruction: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """‖x − R(x̃)‖² per image: summed over pixels (the paper) or their mean (the Chainer article)."""
    per_pixel = ((x - reconstruction) ** 2).flatten(1)
    return per_pixel.sum(dim=1) if reduction == "sum" else per_pixel.mean(dim=1)


def reconstructor_loss(d, x: torch.Tensor, reconstruction: torch.Tensor, l2_lambda: float,
                       reduction: str = "sum", judged: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """R's loss: make D say "real" on R(x̃), plus ``l2_lambda`` times ‖x − R(x̃)‖².

    The squared error is :func:`squared_error` with ``reduction``, averaged over the batch.
    ``judged`` is what D sees instead of the reconstruction alone (a pair D's :func:`pair`).
    Returns (total, adversarial part, squared-error part); chapter 06.
    """
    real = torch.ones(len(x), dtype=torch.long, device=x.device)
    adversarial = F.cross_entropy(d(reconstruction if judged is None else judged), real)
    l2 = squared_error(x, reconstruction, reduction).mean()
    return adversarial + l2_lambda * l2, adversarial, l2


def not_real_probability(d, images: torch.Tensor) -> torch.Tensor:
    """1 − P(real normal image) that D gives each image: ALOCC's anomaly score; chapter 06."""
    return 1 - F.softmax(d(images), dim=1)[:, 1]


def pair(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """An image and a candidate reconstruction of it, side by side as channels: what a pair D
    judges ("is y a faithful reconstruction of the normal image x?"), as ALAD's D_xx does
    (Zenati et al., 2018); chapter 06."""
    return torch.cat([x, y], dim=1)


#: The four kinds of image of OGNet's second phase, and D's target for each (1 = good).
PHASE_TWO_KINDS = {"real": 1, "new reconstruction": 1, "old reconstruction": 0, "pseudo anomaly": 0}


@torch.no_grad()
def phase_two_batch(r_new, r_old, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The images OGNet's second phase shows D for a batch ``x`` of normal images; chapter 06.

    Each kind of :data:`PHASE_TWO_KINDS` as (input, output). Good: the images themselves and
    R's reconstructions of them. Bad: the reconstructions of an early R (``r_old``, blurrier),
    and pseudo anomalies: R's reconstruction of the average of two early reconstructions, a
    normal-looking image that is no normal image, beside that average (its input).
    """
    old = r_old(x)
    mixed = (old + torch.roll(old, shifts=1, dims=0)) / 2  # image i with i - 1: two images
    return {"real": (x, x), "new reconstruction": (x, r_new(x)),
            "old reconstruction": (x, old), "pseudo anomaly": (mixed, r_new(mixed))}


def phase_two_loss(d, batch: dict, good_weight: float = 0.5, bad_weight: float = 0.5,
                   pairs: bool = False) -> torch.Tensor:
    """D's loss in the second phase: cross-entropy towards :data:`PHASE_TWO_KINDS`' targets.

    D judges each output alone, or (``pairs``) each :func:`pair` of input and output.
    ``good_weight`` weighs real images against new reconstructions (the paper's α),
    ``bad_weight`` old reconstructions against pseudo anomalies (its β).
    """
    weights = {"real": good_weight, "new reconstruction": 1 - good_weight,
               "old reconstruction": bad_weight, "pseudo anomaly": 1 - bad_weight}
    loss = 0.0
    for kind, (inputs, outputs) in batch.items():
        target = torch.full((len(outputs),), PHASE_TWO_KINDS[kind], dtype=torch.long,
                            device=outputs.device)
        judged = pair(inputs, outputs) if pairs else outputs
        loss = loss + weights[kind] * F.cross_entropy(d(judged), target)
    return loss
