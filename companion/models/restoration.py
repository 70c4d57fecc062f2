"""Attribute restoration (Ye et al., ARNet): erase an attribute, learn to put it back; chapter 08.

The erased attribute here is orientation: an image turned by a multiple of 90° has lost which
way is up, and only a model that knows what the normal class looks like can turn it back. The
turn is :func:`torch.rot90`, a permutation of the pixels, so nothing is interpolated and every
erasure can be undone exactly. Any autoencoder of the book can be trained or scored this way.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

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


def restoration_loss(net, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Training loss: each image turned by a random quarter turn, the MSE of the net's
    output to the *upright* image. The turns are drawn from ``generator`` (on the CPU)."""
    turns = torch.randint(len(QUARTER_TURNS), (len(images),), generator=generator)
    return torch.nn.functional.mse_loss(net(rotate(images, turns.to(images.device))), images)


@torch.no_grad()
def restorations(net, images: torch.Tensor) -> torch.Tensor:
    """What ``net`` makes of each erasure of each image: (len(QUARTER_TURNS), N, C, H, W)."""
    return torch.stack([net(rotate(images, k)) for k in QUARTER_TURNS])


def restoration_errors(images: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
    """Per-image MSE of each restoration to the upright image: (N, len(QUARTER_TURNS))."""
    return ((restored - images) ** 2).flatten(2).mean(dim=2).T
