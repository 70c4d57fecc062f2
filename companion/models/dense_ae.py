"""The dense (fully connected) autoencoder of chapter 02."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

OUTPUT_ACTIVATIONS = {"[-1, 1]": nn.Tanh, "[0, 1]": nn.Sigmoid}


class DenseAutoencoder(nn.Module):
    """784-256-128-z encoder and z-128-256-784 decoder with ReLU; defined in chapter 02.

    The output activation matches the input scaling, so a perfect reconstruction is reachable:
    Tanh for inputs in [-1, 1], Sigmoid for inputs in [0, 1].
    """

    def __init__(self, latent_dim: int = 2, image_shape=(1, 28, 28), value_range: str = "[-1, 1]"):
        super().__init__()
        if value_range not in OUTPUT_ACTIVATIONS:
            raise ConfigError(f"value_range={value_range!r}; use one of {list(OUTPUT_ACTIVATIONS)}")
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ConfigError(f"LATENT_DIM={latent_dim!r}; use a positive integer such as 2 or 64")
        self.image_shape = tuple(image_shape)
        num_pixels = int(torch.tensor(self.image_shape).prod())
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(num_pixels, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128), nn.ReLU(),
            nn.Linear(128, 256), nn.ReLU(),
            nn.Linear(256, num_pixels), OUTPUT_ACTIVATIONS[value_range](),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)).view(-1, *self.image_shape)

    @staticmethod
    def loss(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """Training loss: mean squared error, as in the satolab article."""
        return nn.functional.mse_loss(reconstruction, x)

    @staticmethod
    def anomaly_map(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """Per-pixel absolute difference, summed over channels: shape (N, H, W)."""
        return (x - reconstruction).abs().sum(dim=1)
