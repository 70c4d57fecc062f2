"""ALOCC, the adversarially learned one-class classifier (Sabokrou et al., 2018), chapter 05.

A reconstructor R (a denoising convolutional autoencoder) and a discriminator D play a game on
normal images only: D learns to tell real normal images from R's reconstructions of noisy ones;
R learns to fool D while staying close to the clean image. The architecture follows the Chainer
implementation that chapter 05 re-tells (seed 002): 16 base channels, BatchNorm, LeakyReLU.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..files import atomic_path
from ..scores import l1_sum


def _conv_block(conv: nn.Module, channels: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(channels), nn.LeakyReLU(0.2)]


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

    The paper's D ends in one sigmoid unit; the seed uses a 2-way softmax so that D trains like an
    ordinary classifier. With two logits a and b, softmax gives P(real) = sigmoid(b - a): the
    same family of outputs, with one redundant degree of freedom.
    """

    def __init__(self, channels: int = 1, base_channels: int = 16):
        super().__init__()
        c = base_channels
        self.net = nn.Sequential(
            *_conv_block(nn.Conv2d(channels, c, 4, 2, 1, bias=False), c),
            *_conv_block(nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), 2 * c),
            *_conv_block(nn.Conv2d(2 * c, 4 * c, 3, 1, 1, bias=False), 4 * c),
            *_conv_block(nn.Conv2d(4 * c, 8 * c, 3, 1, 0, bias=False), 8 * c),
            nn.Conv2d(8 * c, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=(2, 3))  # global average pooling -> (N, 2) logits


def add_noise(x: torch.Tensor, noise_std: float) -> torch.Tensor:
    """The normal image plus Gaussian noise, clipped back to [0, 1]."""
    return (x + noise_std * torch.randn_like(x)).clamp(0, 1)


def train_step(r, d, opt_r, opt_d, x, noise_std: float, n_dis: int, l2_lambda: float) -> dict:
    """One ALOCC update on a batch of normal images ``x``; chapter 05.

    ``n_dis`` steps of D (real x -> class 1, R(noisy x) -> class 0), each with fresh noise, then
    one step of R: make D say 1 on R(noisy x), plus ``l2_lambda`` times the MSE to the clean x.
    """
    real = torch.ones(len(x), dtype=torch.long, device=x.device)
    fake = torch.zeros_like(real)
    for _ in range(n_dis):
        with torch.no_grad():
            reconstruction = r(add_noise(x, noise_std))
        d_loss = F.cross_entropy(d(x), real) + F.cross_entropy(d(reconstruction), fake)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
    reconstruction = r(add_noise(x, noise_std))
    adversarial = F.cross_entropy(d(reconstruction), real)
    l2 = F.mse_loss(reconstruction, x)
    r_loss = adversarial + l2_lambda * l2
    opt_r.zero_grad()
    r_loss.backward()
    opt_r.step()
    return {"d_loss": d_loss.item(), "r_adversarial": adversarial.item(), "r_l2": l2.item()}


@torch.no_grad()
def alocc_scores(r, d, loader, device="cpu") -> dict:
    """Anomaly scores of every test image (higher = more anomalous); chapter 05.

    ``D(x)``: 1 - P(real) that D gives the image itself; ``D(R(x))``: the same for R's
    reconstruction (the paper's detector); ``R error``: sum of absolute differences |x - R(x)|.
    Also returns the classes and anomaly labels carried by the loader.
    """
    r.to(device).eval()
    d.to(device).eval()
    columns = {"D(x)": [], "D(R(x))": [], "R error": [], "classes": [], "labels": []}
    for images, classes, labels in loader:
        images = images.to(device)
        reconstruction = r(images)
        columns["D(x)"].append(1 - F.softmax(d(images), dim=1)[:, 1])
        columns["D(R(x))"].append(1 - F.softmax(d(reconstruction), dim=1)[:, 1])
        columns["R error"].append(l1_sum(images, reconstruction))
        columns["classes"].append(classes)
        columns["labels"].append(labels)
    return {name: torch.cat(values).cpu().numpy() for name, values in columns.items()}


def train_alocc(r, d, loader, num_epochs: int, lr: float = 2e-4, noise_std: float = 0.15,
                n_dis: int = 1, l2_lambda: float = 0.4, device="cpu", progress: bool = True,
                val_loader=None, after_epoch=None) -> dict:
    """Train R and D with Adam; chapter 05.

    With ``val_loader`` (held-out *normal* images) the R and D of the epoch with the lowest
    validation reconstruction error are kept: a stopping rule that needs no anomaly labels.
    ``after_epoch(epoch, r, d)`` may return a dict of figures to log (e.g. test metrics for a
    plot); it is never used to choose the epoch. Returns the history of every logged value.
    """
    if isinstance(n_dis, bool) or not isinstance(n_dis, int) or n_dis < 1:
        raise ConfigError(f"N_DIS={n_dis!r}; use a positive integer such as 1")
    if not 0 <= noise_std:
        raise ConfigError(f"NOISE_STD={noise_std!r}; use a non-negative number such as 0.15")
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 1:
        raise ConfigError(f"EPOCHS={num_epochs!r}; use a positive integer such as 10")
    device = torch.device(device)
    r.to(device)
    d.to(device)
    opt_r = torch.optim.Adam(r.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))
    history: dict[str, list] = {}
    best = (float("inf"), None)
    start = time.perf_counter()
    for epoch in tqdm(range(1, num_epochs + 1), desc="epochs", disable=not progress):
        r.train()
        d.train()
        sums: dict[str, float] = {}
        for images, *_ in loader:
            for name, value in train_step(r, d, opt_r, opt_d, images.to(device), noise_std,
                                          n_dis, l2_lambda).items():
                sums[name] = sums.get(name, 0.0) + value
        logged = {name: total / len(loader) for name, total in sums.items()}
        if val_loader is not None:
            logged["val_l2"] = _mean_reconstruction_error(r, val_loader, device)
            if logged["val_l2"] < best[0]:
                best = (logged["val_l2"], (epoch, copy.deepcopy(r.state_dict()),
                                           copy.deepcopy(d.state_dict())))
        if after_epoch is not None:
            logged.update(after_epoch(epoch, r, d))
        for name, value in {"epoch": epoch, **logged}.items():
            history.setdefault(name, []).append(value)
    history["seconds"] = time.perf_counter() - start
    if best[1] is not None:
        history["chosen_epoch"], r_state, d_state = best[1]
        r.load_state_dict(r_state)
        d.load_state_dict(d_state)
    r.eval()
    d.eval()
    return history


@torch.no_grad()
def _mean_reconstruction_error(r, loader, device) -> float:
    r.eval()
    total, count = 0.0, 0
    for images, *_ in loader:
        images = images.to(device)
        total += F.mse_loss(r(images), images, reduction="sum").item() / images[0].numel()
        count += len(images)
    return total / count


def save_alocc(path, r, d, **extra) -> None:
    """Save both networks (and plain ``extra`` values) in one file, atomically; chapter 05."""
    with atomic_path(path) as tmp:
        torch.save({"reconstructor": r.state_dict(), "discriminator": d.state_dict(), **extra}, tmp)


def load_alocc(path, r, d, device="cpu") -> dict:
    """Load both networks saved by :func:`save_alocc` (tensors and plain values only)."""
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    r.load_state_dict(checkpoint["reconstructor"])
    d.load_state_dict(checkpoint["discriminator"])
    return checkpoint
