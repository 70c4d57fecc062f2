"""The variational autoencoder (Kingma & Welling 2014; An & Cho 2015 for anomalies); chapter 04.

The encoder of chapter 03's convolutional autoencoder, ending in two heads instead of one: the
mean μ(x) and the log-variance log σ²(x) of a Gaussian q(z|x) over the latent code. A code is
drawn from it with the reparameterisation z = μ + σ·ε, ε ~ N(0, I), so gradients flow through
the draw; the decoder (chapter 03's) turns z into the logits of a Bernoulli p(x|z) per pixel.
Training maximises the evidence lower bound

    ELBO(x) = E_q[log p(x|z)] − KL(q(z|x) ‖ N(0, I)),

the two terms computed by :func:`elbo_terms`. Images are in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..settings import non_negative_number, positive_int
from .conv_ae import ConvAutoencoder


def reparameterise(mu: torch.Tensor, log_var: torch.Tensor, generator=None) -> torch.Tensor:
    """z = μ + σ·ε with ε ~ N(0, I): a draw from q(z|x) that gradients pass through; chapter 04."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * log_var) * eps


def kl_to_standard_normal(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per image, in closed form: ½ Σ (μ² + σ² − 1 − log σ²); chapter 04."""
    return 0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var).sum(dim=1)


def bernoulli_nll(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """−log p(x|z) per pixel for a Bernoulli decoder with these logits: the binary cross-entropy."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def bernoulli_entropy(x: torch.Tensor) -> torch.Tensor:
    """Σ −x log x − (1 − x) log(1 − x) per image: the lowest −log p(x|z) any decoder reaches.

    Defined in chapter 04. A Bernoulli likelihood treats a grey pixel as a coin; even a perfect
    reconstruction (x̂ = x) leaves this much, so an image with many grey pixels has a high
    reconstruction NLL whether it is normal or not.
    """
    return bernoulli_nll(x, torch.logit(x, eps=1e-6)).flatten(1).sum(dim=1)


def elbo_terms(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor,
               log_var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ELBO's two terms per image: −log p(x|z) summed over pixels, and the KL; chapter 04.

    −ELBO = the first + the second, each of shape (N,), in nats.
    """
    return bernoulli_nll(x, logits).flatten(1).sum(dim=1), kl_to_standard_normal(mu, log_var)


class ConvVAE(nn.Module):
    """A convolutional VAE: chapter 03's encoder and decoder around a Gaussian latent; chapter 04.

    ``forward(x)`` returns the decoder's logits for one reparameterised draw, with μ and
    log σ²; ``beta`` weighs the KL term in :meth:`loss` (1 is the ELBO itself, β-VAE otherwise).
    """

    def __init__(self, latent_dim: int = 16, image_shape=(1, 28, 28), base_channels: int = 16,
                 beta: float = 1.0):
        super().__init__()
        positive_int(latent_dim, "latent_dim", 16)
        self.beta = non_negative_number(beta, "beta", 1.0)
        # Chapter 03's network, its last layer producing logits (no output activation).
        backbone = ConvAutoencoder(latent_dim, image_shape, base_channels, "[0, 1]")
        self.image_shape, self.latent_dim = tuple(image_shape), latent_dim
        self.encoder = backbone.encoder[:-1]  # up to the flattened feature maps
        features = backbone.encoder[-1].in_features
        self.mu = nn.Linear(features, latent_dim)
        self.log_var = nn.Linear(features, latent_dim)
        self.decoder = backbone.decoder[:-1]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ(x) and log σ²(x), each (N, latent_dim)."""
        hidden = self.encoder(x)
        return self.mu(hidden), self.log_var(hidden).clamp(-20, 10)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The logits of p(x|z), shape (N, C, H, W); ``torch.sigmoid`` gives the mean image."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator=None):
        mu, log_var = self.encode(x)
        return self.decode(reparameterise(mu, log_var, generator)), mu, log_var

    def loss(self, x: torch.Tensor, output) -> dict:
        """Training loss, the batch mean of −log p(x|z) + β·KL, with its two terms (for the log)."""
        if x.min() < 0 or x.max() > 1:
            raise ConfigError("the VAE's Bernoulli decoder takes images in [0, 1]; make the split "
                              "with value_range='[0, 1]'")
        nll, kl = elbo_terms(x, *output)
        return {"loss": (nll + self.beta * kl).mean(), "reconstruction": nll.mean(), "KL": kl.mean()}
