"""Ano-Unet: a fresh U-Net trained on each test image, many of them at once; chapter 06.

The Ano-Unet article's method. A frozen f-Net f (:mod:`companion.models.fnet`) and the centre C of the
normal images' features are given. For every test image x, a fresh U-Net G is trained on x alone
with the loss

    L = L_R + β·L_C,   L_R = Σ|x − G(x)|,   L_C = Σ|f(G(x)) − C|.

L_R makes G copy the image; L_C pulls G's output towards what f considers normal. Where the two
disagree, G changes the image, so the heatmap |x − G(x)| shows what had to change to make the
image look normal: little for a normal image, the anomalous part of an anomaly.

The Ano-Unet article builds one model per image and trains them one after the other: slow, and out of memory
after about 20 images. :func:`optimise_batched` trains many independent U-Nets as one
computation instead (``torch.func.vmap`` over stacked weights), in chunks that a batch size or a
memory budget bounds, so the number of test images no longer matters.
:func:`optimise_one_by_one` is the Ano-Unet article's loop, kept as the reference the batched version must
match.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..profiling import in_fresh_process
from ..settings import (integer, non_negative_number, optional_positive_int, positive_int,
                        positive_number)
from .fnet import FeatureNet, check_centre, feature_distance

#: The memory budget of one chunk of U-Nets when neither a batch size nor a budget is given.
DEFAULT_MEMORY_BUDGET_BYTES = 1024 * 2**20


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.LeakyReLU(0.2))


def _upsample(in_channels: int, out_channels: int) -> nn.Sequential:
    # Nearest-neighbour upsampling and a 3x3 convolution rather than a stride-2 transposed
    # convolution, whose uneven overlap paints checkerboard patterns into the heatmaps.
    return nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(in_channels, out_channels, 3,
                                                                padding=1))


class UNet(nn.Module):
    """G: a two-level U-Net whose output is added to the image, clipped to [0, 1]; chapter 06.

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

    Defined in chapter 06. PyTorch's default initialisation, but the output convolution is
    zero (see :class:`UNet`). Every image starts from these same weights, in both
    :func:`optimise_one_by_one` and :func:`optimise_batched`, so an image's result depends on
    the image alone, not on its place in the test set. The global random state is left alone.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(channels, base_channels)


def ano_unet_losses(x: torch.Tensor, generated: torch.Tensor, fnet: FeatureNet,
                    centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, L_R = Σ|x − G(x)| over pixels and L_C = Σ|f(G(x)) − C| over features.

    Defined in chapter 06. Both are shape (N,); after the optimisation they are the two scores.
    """
    return (x - generated).abs().flatten(1).sum(dim=1), feature_distance(fnet, generated, centre)


@dataclass
class AnoUnetResult:
    """What the per-image optimisation leaves, as CPU tensors; chapter 06.

    ``generated`` (N, C, H, W) is G(x) with each image's final weights and ``heatmaps``
    (N, H, W) is |x − G(x)| summed over channels. The scores, higher = more anomalous:
    ``pixel_score`` (N,) is L_R, how much G had to change the image, and ``lc_score`` (N,) is
    L_C, how far from C the features of G(x) still are. ``chunk_size`` is how many U-Nets were
    trained together (1 for the one-by-one loop).
    """

    generated: torch.Tensor
    heatmaps: torch.Tensor
    pixel_score: torch.Tensor
    lc_score: torch.Tensor
    chunk_size: int
    seconds: float


def _check_settings(images, fnet, centre, beta, num_steps, lr, seed) -> None:
    if not torch.is_tensor(images) or images.dim() != 4 or len(images) == 0:
        raise ConfigError(f"images of shape {tuple(getattr(images, 'shape', ()))}; pass a "
                          "non-empty (N, channels, height, width) tensor")
    if images.shape[1] != fnet.channels or images.shape[2] % 4 or images.shape[3] % 4:
        raise ConfigError(f"images of shape {tuple(images.shape)}; the f-Net takes "
                          f"{fnet.channels} channel(s) and the U-Net's two poolings need a height "
                          "and width divisible by 4 (28x28 works)")
    non_negative_number(beta, "beta", 2)
    positive_int(num_steps, "steps", 40)
    positive_number(lr, "lr", 0.01)
    integer(seed, "SEED")
    check_centre(fnet, centre)


def _frozen_copy(fnet: FeatureNet, device, dtype) -> FeatureNet:
    # A copy, so that freezing f for the U-Nets' sake leaves the caller's net as it was.
    return copy.deepcopy(fnet).to(device, dtype).eval().requires_grad_(False)


def _result(images, generated, pixel_score, lc_score, chunk_size, start) -> AnoUnetResult:
    return AnoUnetResult(generated, (images - generated).abs().sum(dim=1), pixel_score, lc_score,
                         chunk_size, time.perf_counter() - start)


def optimise_one_by_one(images: torch.Tensor, fnet: FeatureNet, centre: torch.Tensor,
                        beta: float = 2.0, num_steps: int = 40, lr: float = 0.01, seed: int = 0,
                        base_channels: int = 8, device="cpu", progress: bool = True) -> AnoUnetResult:
    """The Ano-Unet article's loop: one fresh U-Net per image, trained with Adam, one image after another.

    Defined in chapter 06, as the reference for :func:`optimise_batched`. ``images`` is an
    (N, C, H, W) tensor in [0, 1]; every U-Net starts from :func:`initial_unet` (``seed``) and
    takes ``num_steps`` Adam steps with learning rate ``lr`` on L_R + ``beta``·L_C. f stays
    frozen (a frozen copy is used).
    """
    _check_settings(images, fnet, centre, beta, num_steps, lr, seed)
    start = time.perf_counter()
    device = torch.device(device)
    fnet, centre = _frozen_copy(fnet, device, images.dtype), centre.to(device, images.dtype)
    start_unet = initial_unet(seed, images.shape[1], base_channels).to(device, images.dtype)
    generated, pixel_scores, lc_scores = [], [], []
    for image in tqdm(images, desc="images", disable=not progress):
        image = image.unsqueeze(0).to(device)
        unet = copy.deepcopy(start_unet)
        optimizer = torch.optim.Adam(unet.parameters(), lr=lr)
        for _ in range(num_steps):
            pixel_loss, lc_loss = ano_unet_losses(image, unet(image), fnet, centre)
            optimizer.zero_grad()
            (pixel_loss + beta * lc_loss).sum().backward()
            optimizer.step()
        with torch.no_grad():
            output = unet(image)
            pixel_loss, lc_loss = ano_unet_losses(image, output, fnet, centre)
        generated.append(output.cpu())
        pixel_scores.append(pixel_loss.cpu())
        lc_scores.append(lc_loss.cpu())
    return _result(images.cpu(), torch.cat(generated), torch.cat(pixel_scores),
                   torch.cat(lc_scores), 1, start)


def bytes_per_image(fnet: FeatureNet, image_shape, base_channels: int = 8) -> int:
    """Memory that one more image adds to a chunk of :func:`optimise_batched`, in bytes.

    Defined in chapter 06. Counted, not guessed: one image goes through the loss while autograd's
    saved-tensor hook records every storage kept for the backward pass (the activations of G and
    f, not their weights). The backward pass needs about as much again for the gradients of those
    activations, and each image's U-Net brings four copies of its weights: the weights, their
    gradients and Adam's two moment estimates.
    """
    unet = UNet(image_shape[0], base_channels)
    fnet = _frozen_copy(fnet, "cpu", torch.float32)
    weights = {p.untyped_storage().data_ptr() for p in [*unet.parameters(), *fnet.parameters()]}
    saved: dict[int, int] = {}  # storage address -> bytes; a tensor is often saved twice

    def record(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    image = torch.zeros(1, *image_shape)
    with torch.autograd.graph.saved_tensors_hooks(record, lambda tensor: tensor):
        ano_unet_losses(image, unet(image), fnet, torch.zeros(fnet.feature_dim))
    weight_bytes = sum(p.numel() * p.element_size() for p in unet.parameters())
    return 2 * sum(saved.values()) + 4 * weight_bytes


def images_per_chunk(num_images: int, batch_size: int | None = None,
                     memory_budget_bytes: int | None = None, image_bytes: int = 1) -> int:
    """How many U-Nets to train at once: the tightest of the limits given, and at least 1.

    Defined in chapter 06. ``batch_size`` caps the count directly; ``memory_budget_bytes`` caps
    it at ``memory_budget_bytes // image_bytes`` (see :func:`bytes_per_image`); with neither,
    the budget is :data:`DEFAULT_MEMORY_BUDGET_BYTES`. A budget smaller than one image still
    trains one image at a time: nothing smaller exists.
    """
    optional_positive_int(batch_size, "unet_batch_size", 64)
    optional_positive_int(memory_budget_bytes, "memory budget in bytes", 2**30)
    if batch_size is None and memory_budget_bytes is None:
        memory_budget_bytes = DEFAULT_MEMORY_BUDGET_BYTES
    chunk = num_images if batch_size is None else min(num_images, batch_size)
    if memory_budget_bytes is not None:
        chunk = min(chunk, memory_budget_bytes // image_bytes)
    return max(1, chunk)


def optimise_chunk(images, start_unet, fnet, centre, beta, num_steps, lr, bar):
    """Train ``len(images)`` independent copies of ``start_unet``, copy i on image i alone.

    Defined in chapter 06: the one chunk of :func:`optimise_batched`, which picks the chunk's
    size, the start U-Net, the frozen f-Net and the device. ``bar`` is a tqdm bar advanced by
    ``len(images)`` per step. Returns G(x), the pixel difference and L_C, all on the CPU.
    """
    # Each weight gets a leading image axis; vmap runs G once per image with its own slice (for
    # convolutions PyTorch turns this into one grouped convolution), so no weight is shared.
    weights = {name: p.detach().expand(len(images), *p.shape).clone().requires_grad_()
               for name, p in start_unet.named_parameters()}
    generate = vmap(lambda w, image: functional_call(start_unet, w, (image[None],))[0])
    # Adam works element by element, so one Adam over the stacked weights is N separate Adams.
    optimizer = torch.optim.Adam(weights.values(), lr=lr)
    for _ in range(num_steps):
        pixel_loss, lc_loss = ano_unet_losses(images, generate(weights, images), fnet, centre)
        # Image i's loss depends on weights[i] alone, so the gradient of the sum with respect
        # to weights[i] is that image's own gradient: summing does not mix images.
        optimizer.zero_grad()
        (pixel_loss + beta * lc_loss).sum().backward()
        optimizer.step()
        bar.update(len(images))
    with torch.no_grad():
        generated = generate(weights, images)
        pixel_loss, lc_loss = ano_unet_losses(images, generated, fnet, centre)
    return generated.cpu(), pixel_loss.cpu(), lc_loss.cpu()


def optimise_batched(images: torch.Tensor, fnet: FeatureNet, centre: torch.Tensor,
                     beta: float = 2.0, num_steps: int = 40, lr: float = 0.01, seed: int = 0,
                     base_channels: int = 8, batch_size: int | None = None,
                     memory_budget_bytes: int | None = None, device="cpu",
                     progress: bool = True) -> AnoUnetResult:
    """:func:`optimise_one_by_one`, with many independent U-Nets trained as one computation.

    Defined in chapter 06. The same result as the loop, up to floating-point rounding: every
    image gets its own U-Net, started from the same :func:`initial_unet` (``seed``), and its own
    Adam state. The images go through in chunks of :func:`images_per_chunk` (``batch_size``
    and/or ``memory_budget_bytes``, by default a 1 GiB budget), so memory depends on the chunk,
    not on how many images there are.
    """
    _check_settings(images, fnet, centre, beta, num_steps, lr, seed)
    start = time.perf_counter()
    device = torch.device(device)
    start_unet = initial_unet(seed, images.shape[1], base_channels).to(device, images.dtype)
    chunk = images_per_chunk(len(images), batch_size, memory_budget_bytes,
                             bytes_per_image(fnet, images.shape[1:], base_channels))
    fnet, centre = _frozen_copy(fnet, device, images.dtype), centre.to(device, images.dtype)
    generated, pixel_scores, lc_scores = [], [], []
    with tqdm(total=len(images) * num_steps, desc=f"U-Net steps, {chunk} images at a time",
              unit="image-step", disable=not progress) as bar:
        for first in range(0, len(images), chunk):
            outputs = optimise_chunk(images[first:first + chunk].to(device), start_unet, fnet,
                                     centre, beta, num_steps, lr, bar)
            generated.append(outputs[0])
            pixel_scores.append(outputs[1])
            lc_scores.append(outputs[2])
    return _result(images.cpu(), torch.cat(generated), torch.cat(pixel_scores),
                   torch.cat(lc_scores), chunk, start)


def timed_in_fresh_process(optimise, images: torch.Tensor, fnet: FeatureNet, centre: torch.Tensor,
                           **settings) -> dict:
    """``optimise(images, fnet, centre, **settings)`` in a fresh process: its speed and memory.

    Defined in chapter 06, to set :func:`optimise_one_by_one` against :func:`optimise_batched`
    (``benchmarks/ano_unet_throughput.py`` does the same for many chunk sizes). The call runs
    through :func:`~companion.profiling.in_fresh_process` after a one-image warm-up there, so
    its peak memory is its own. Returns the U-Nets trained at once, the seconds, images per
    second, the peak memory in MiB (None where it cannot be read) and the pixel scores.
    """
    fit, peak_bytes = in_fresh_process(optimise, images, fnet, centre,
                                       warm_up_args=(images[:1], fnet, centre), **settings)
    return {"U-Nets at once": fit.chunk_size, "seconds": fit.seconds,
            "images/s": len(images) / fit.seconds,
            "peak MiB": None if peak_bytes is None else peak_bytes / 2**20,
            "pixel_score": fit.pixel_score}
