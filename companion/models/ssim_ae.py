"""The SSIM autoencoder (Bergmann et al., 2019): chapter 03's network, judged by structure; chapter 11.

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
    """:class:`ConvAutoencoder` whose loss and anomaly map are SSIM's; chapter 11."""

    def __init__(self, latent_dim: int | None = 32, image_shape=(1, 28, 28), base_channels: int = 16,
                 value_range: str = "[-1, 1]"):
        super().__init__(latent_dim, image_shape, base_channels, value_range)
        self.value_range = value_range  # SSIM compares images in [0, 1]

    def loss(self, x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """Training loss: 1 − SSIM, averaged over every pixel's neighbourhood and channel."""
        return 1 - ssim_image(x, reconstruction, self.value_range).mean()

    def anomaly_map(self, x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """1 − local SSIM, averaged over channels: shape (N, H, W)."""
        return ssim_map(x, reconstruction, self.value_range)
