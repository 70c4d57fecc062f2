"""Ano-Unet: a fresh U-Net trained on each test image, many of them at once; chapter 07.

The Ano-Unet article's method. A frozen f-Net f (:mod:`companion.models.fnet`) and the centre C of the
normal images' features are given. For every test image x, a fresh U-Net G is trained on x alone
with the loss

    L = L_R + β·L_C,   L_R = Σ|x − G(x)|,   L_C = Σ|f(G(x)) − C|.

L_R makes G copy the image; L_C pulls G's output towards what f considers normal. Where the two
disagree, G changes the image, so the heatmap |x − G(x)| shows what had to change to make the
image look normal: little for a normal image, the anomalous part of an anomaly.

The network and its losses live here, in plain torch; the per-image optimisation that trains
one U-Net per test image (one by one, or many at once) is in :mod:`companion.detectors.ano_unet`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..settings import positive_int
from .fnet import FeatureNet, feature_distance


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.LeakyReLU(0.2))


def _upsample(in_channels: int, out_channels: int) -> nn.Sequential:
    # Nearest-neighbour upsampling and a 3x3 convolution rather than a stride-2 transposed
    # convolution, whose uneven overlap paints checkerboard patterns into the heatmaps.
    return nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(in_channels, out_channels, 3,
                                                                padding=1))


class UNet(nn.Module):
    """G: a two-level U-Net whose output is added to the image, clipped to [0, 1]; chapter 07.

    28 -> 14 -> 7 and back up (nearest-neighbour upsampling and a convolution), one convolution
    per level (the U-Net paper has two; one halves the cost), with ``base_channels``, twice and
    four times as many feature maps per level, and skip connections. The Ano-Unet article's U-Net outputs
    the image itself and must first learn to copy it; in the few dozen steps a CPU can afford
    per image, a plain U-Net trained with L_R collapses to a black image instead (MNIST is
    mostly black). So G(x) = clip(x + U(x), 0, 1), and U's output convolution starts at zero:
    G(x) = x before the first step, so whatever G changes, L_C asked for (with β = 0 nothing
    changes at all). There is no normalisation layer: under ``vmap`` nothing may mix one
    image's U-Net with another's.
    """

    def __init__(self, channels: int = 1, base_channels: int = 8):
        super().__init__()
        positive_int(base_channels, "unet_channels", 8)
        c = base_channels
        self.encoder1 = _conv(channels, c)
        self.encoder2 = _conv(c, 2 * c)
        self.bottom = _conv(2 * c, 4 * c)
        self.up2 = _upsample(4 * c, 2 * c)
        self.decoder2 = _conv(4 * c, 2 * c)
        self.up1 = _upsample(2 * c, c)
        self.decoder1 = _conv(2 * c, c)
        self.output = nn.Conv2d(c, channels, 1)
        # Zero, so U(x) = 0 and G(x) = x at the start; the first step's gradient reaches this
        # layer alone, and the layers below it learn from the second step on.
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip1 = self.encoder1(x)                                   # 28x28
        skip2 = self.encoder2(F.max_pool2d(skip1, 2))              # 14x14
        bottom = self.bottom(F.max_pool2d(skip2, 2))               # 7x7
        up2 = self.decoder2(torch.cat([self.up2(bottom), skip2], dim=1))
        up1 = self.decoder1(torch.cat([self.up1(up2), skip1], dim=1))
        generated = x + self.output(up1)
        # Clipped to [0, 1], but with the gradient kept at 0 and 1 themselves, which
        # torch.clamp stops: with G(x) = x at the start, every black or white pixel lies there.
        inside = (generated >= 0) & (generated <= 1)
        return torch.where(inside, generated, generated.detach().clamp(0, 1))


def initial_unet(seed: int = 0, channels: int = 1, base_channels: int = 8) -> UNet:
    """The U-Net every test image starts from: G(x) = x, the weights below drawn under ``seed``.

    Defined in chapter 07. PyTorch's default initialisation, but the output convolution is
    zero (see :class:`UNet`). Every image starts from these same weights, in both
    :func:`~companion.detectors.ano_unet.optimise_one_by_one` and
    :func:`~companion.detectors.ano_unet.optimise_batched`, so an image's result depends on
    the image alone, not on its place in the test set. The global random state is left alone.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(channels, base_channels)


def ano_unet_losses(x: torch.Tensor, generated: torch.Tensor, fnet: FeatureNet,
                    centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, L_R = Σ|x − G(x)| over pixels and L_C = Σ|f(G(x)) − C| over features.

    Defined in chapter 07. Both are shape (N,); after the optimisation they are the two scores.
    """
    return (x - generated).abs().flatten(1).sum(dim=1), feature_distance(fnet, generated, centre)
