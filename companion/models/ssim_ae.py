"""The SSIM autoencoder (Bergmann et al., 2019): chapter 03's network, judged by structure; chapter 10.

A reconstruction model reproduces a smooth region well, so a per-pixel squared error barely
sees a patch of surface whose grain has gone. The structural similarity index compares each
neighbourhood's mean, contrast and correlation instead; trained on 1 − SSIM and mapped by the
local 1 − SSIM, the same convolutional autoencoder looks for lost structure, not lost intensity.
"""

from __future__ import annotations

import torch

from ..scores import ssim_image, ssim_map
from .conv_ae import ConvAutoencoder


class SSIMAutoencoder(ConvAutoencoder):
    """:class:`ConvAutoencoder` whose loss and anomaly map are SSIM's; chapter 10."""

    def loss(self, x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """Training loss: 1 − SSIM, averaged over every pixel's neighbourhood and channel."""
        return 1 - ssim_image(x, reconstruction, self.value_range).mean()

    def anomaly_map(self, x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """1 − local SSIM, averaged over channels: shape (N, H, W)."""
        return ssim_map(x, reconstruction, self.value_range)
