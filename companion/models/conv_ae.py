"""The convolutional autoencoder of chapter 03."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .dense_ae import OUTPUT_ACTIVATIONS, DenseAutoencoder


class ConvAutoencoder(nn.Module):
    """Strided convolutions down to a bottleneck, transposed convolutions back; chapter 03.

    Two stride-2 convolutions shrink an image to a quarter of its side (28 -> 7) with
    ``2 * base_channels`` feature maps. With ``latent_dim`` an integer, a linear layer squeezes
    those maps into ``latent_dim`` numbers (the bottleneck) and another expands them again; with
    ``latent_dim=None`` the model is fully convolutional and its narrowest point is the feature
    map itself (``2 * base_channels * 7 * 7`` numbers for MNIST).
    """

    def __init__(self, latent_dim: int | None = 32, image_shape=(1, 28, 28), base_channels: int = 16,
                 value_range: str = "[-1, 1]"):
        super().__init__()
        if value_range not in OUTPUT_ACTIVATIONS:
            raise ConfigError(f"value_range={value_range!r}; use one of {list(OUTPUT_ACTIVATIONS)}")
        if latent_dim is not None and (isinstance(latent_dim, bool) or not isinstance(latent_dim, int)
                                       or latent_dim < 1):
            raise ConfigError(f"latent_dim={latent_dim!r}; use a positive integer, or None for a "
                              "fully convolutional model")
        channels, height, width = image_shape
        if height % 4 or width % 4:
            raise ConfigError(f"image_shape={tuple(image_shape)}: height and width must be "
                              "divisible by 4 (two stride-2 convolutions)")
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        feature_shape = (2 * base_channels, height // 4, width // 4)
        features = feature_shape[0] * feature_shape[1] * feature_shape[2]
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, base_channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(base_channels, 2 * base_channels, 3, stride=2, padding=1), nn.ReLU(),
            *([nn.Flatten(), nn.Linear(features, latent_dim)] if latent_dim else []),
        )
        self.decoder = nn.Sequential(
            *([nn.Linear(latent_dim, features), nn.ReLU(), nn.Unflatten(1, feature_shape)]
              if latent_dim else []),
            nn.ConvTranspose2d(2 * base_channels, base_channels, 3, stride=2, padding=1,
                               output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(base_channels, channels, 3, stride=2, padding=1, output_padding=1),
            OUTPUT_ACTIVATIONS[value_range](),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    # The dense model's training loss (MSE) and anomaly map (|x - x̂| summed over channels).
    loss = staticmethod(DenseAutoencoder.loss)
    anomaly_map = staticmethod(DenseAutoencoder.anomaly_map)
