"""Attribute restoration (Ye et al., ARNet): erase an attribute, learn to put it back; chapter 09.

The erased attribute of chapter 09 is orientation: an image turned by a multiple of 90° has
lost which way is up, and only a model that knows what the normal class looks like can turn it
back. The turn is :func:`torch.rot90`, a permutation of the pixels, so nothing is interpolated
and every erasure can be undone exactly. Any autoencoder of the book can be trained or scored
this way. The record attempt of chapter 09 adds two more erasures (a mirror image, a quadrant
painted grey), an L1 error, per-erasure normalisation and a U-Net restorer
(:class:`RestorationUNet`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .conv_ae import ConvAutoencoder

#: The erasures: turns by k * 90° counter-clockwise, k = 0 (the image as it is) to 3.
QUARTER_TURNS = (0, 1, 2, 3)


def check_square(image_shape) -> None:
    """A quarter turn maps an image onto itself only if it is square."""
    if image_shape[-1] != image_shape[-2]:
        raise ConfigError(f"image_shape={tuple(image_shape)}: turning by 90° needs square images")


def rotate(images: torch.Tensor, quarter_turns) -> torch.Tensor:
    """Each image of (N, C, H, W) turned by its own number of quarter turns (an int or N ints)."""
    turns = torch.as_tensor(quarter_turns, device=images.device).expand(len(images)) % 4
    turned = images.clone()
    for k in QUARTER_TURNS[1:]:
        chosen = turns == k
        turned[chosen] = torch.rot90(images[chosen], k, dims=(-2, -1))
    return turned


@dataclass(frozen=True)
class Erasure:
    """One erasure: mirror left-right (or not), turn by ``quarter_turns``, then paint quadrant
    ``patch`` (0 top left, 1 top right, 2 bottom left, 3 bottom right) with ``fill``."""

    quarter_turns: int = 0
    mirrored: bool = False
    patch: int | None = None

    @property
    def name(self) -> str:
        parts = ([f"{90 * self.quarter_turns}°"] if self.quarter_turns else []) + \
            (["mirrored"] if self.mirrored else []) + \
            ([f"quadrant {self.patch} grey"] if self.patch is not None else [])
        return ", ".join(parts) or "as it is"

    def __call__(self, images: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        erased = rotate(images.flip(-1) if self.mirrored else images, self.quarter_turns)
        if self.patch is not None:
            half_h, half_w = images.shape[-2] // 2, images.shape[-1] // 2
            top, left = (self.patch // 2) * half_h, (self.patch % 2) * half_w
            erased[..., top:top + half_h, left:left + half_w] = fill
        return erased


TURNS = tuple(Erasure(k) for k in QUARTER_TURNS)
#: The erasure sets a restoration model can learn; "turns" is chapter 09's.
ERASURE_SETS = {
    "turns": TURNS,
    # the eight symmetries of a square: a mirror image is restored as well as a turn
    "turns+mirror": TURNS + tuple(Erasure(k, mirrored=True) for k in QUARTER_TURNS),
    # a quarter of the upright image painted grey, to be painted back
    "turns+patches": TURNS + tuple(Erasure(patch=q) for q in range(4)),
}
#: The error of a restoration to the original image, per pixel.
ERRORS = {"mse": lambda a, b: (a - b) ** 2, "l1": lambda a, b: (a - b).abs()}


def erase(images: torch.Tensor, erasures, choice: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Image ``i`` erased by ``erasures[choice[i]]``."""
    erased = images.clone()
    for j, erasure in enumerate(erasures):
        chosen = choice == j
        if chosen.any():
            erased[chosen] = erasure(images[chosen], fill)
    return erased


def restoration_loss(net, images: torch.Tensor, generator: torch.Generator,
                     erasures=TURNS, error: str = "mse", fill: float = 0.0) -> torch.Tensor:
    """Training loss: each image erased by one of ``erasures`` drawn at random (chapter 09: a
    random quarter turn), the mean ``error`` of the net's output to the *original* image. The
    draws come from ``generator`` (on the CPU)."""
    choice = torch.randint(len(erasures), (len(images),), generator=generator)
    restored = net(erase(images, erasures, choice.to(images.device), fill))
    return ERRORS[error](restored, images).mean()


@torch.no_grad()
def restorations(net, images: torch.Tensor, erasures=TURNS, fill: float = 0.0) -> torch.Tensor:
    """What ``net`` makes of each erasure of each image: (len(erasures), N, C, H, W)."""
    return torch.stack([net(erasure(images, fill)) for erasure in erasures])


def restoration_spread(restored: torch.Tensor) -> float:
    """How much restorations (from :func:`restorations`) differ from image to image: the standard
    deviation over the images, averaged over erasures and pixels. 0 means one output for every
    input: the network died in training (chapter 09's 64-map restorer on MNIST "1")."""
    return float(restored.std(dim=1).mean())


def restoration_errors(images: torch.Tensor, restored: torch.Tensor,
                       error: str = "mse") -> torch.Tensor:
    """Per-image error of each restoration to the original image: (N, number of erasures)."""
    return ERRORS[error](restored, images).flatten(2).mean(dim=2).T


class RestorationUNet(nn.Module):
    """Chapter 03's convolutional autoencoder with a U-Net skip connection, as ARNet's restorer
    has: the decoder's 14 x 14 feature maps get the encoder's 14 x 14 maps added before the
    last up-sampling.

    The 32-number bottleneck is what can undo a turn (it sees the whole image); the skip carries
    the strokes' detail around it. The sum costs no more than the plain model (no extra layer),
    so the comparison with it is one change. There is no skip at full size: it would let the
    net copy an unerased image pixel by pixel.
    """

    def __init__(self, latent_dim: int = 32, image_shape=(1, 28, 28), base_channels: int = 32,
                 value_range: str = "[-1, 1]"):
        super().__init__()
        if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
            raise ConfigError(f"latent_dim={latent_dim!r}: the U-Net restorer needs a positive "
                              "integer bottleneck (it is what undoes a turn)")
        self.plain = ConvAutoencoder(latent_dim, image_shape, base_channels, value_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        down, bottleneck = self.plain.encoder[:2], self.plain.encoder[2:]
        up, last = self.plain.decoder[:-2], self.plain.decoder[-2:]
        half = down(x)
        return last(up(bottleneck(half)) + half)
