"""Ano-Unet as a detector: a frozen f-Net and a fresh U-Net per test image; chapter 07.

The Ano-Unet article builds one model per image and trains them one after the other: slow, and
out of memory after about 20 images. :func:`optimise_batched` trains many independent U-Nets as
one computation instead (``torch.func.vmap`` over stacked weights), in chunks that a batch size
or a memory budget bounds, so the number of test images no longer matters.
:func:`optimise_one_by_one` is the article's loop, kept as the reference the batched version
must match. The U-Net and its losses are in :mod:`companion.models.ano_unet`.

``fit`` trains the f-Net and its centre C on the normal images (or takes an f-Net detector
that is already fitted); ``score`` trains one U-Net per scored image with
L = Σ|x − G(x)| + β·Σ|f(G(x)) − C|, many at once (:func:`optimise_batched`).
The headline score is how much G had to change the image, ``"pixel difference"`` = Σ|x − G(x)|;
``"L_C"`` and the f-Net's own ``"centre distance"`` come along, the heatmaps |x − G(x)| are the
maps and G(x) the outputs.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch.func import functional_call, vmap
from tqdm.auto import tqdm

from ..data import ClassSubset
from ..engine import History
from ..errors import ConfigError
from ..models.ano_unet import UNet, ano_unet_losses, initial_unet
from ..models.fnet import FeatureNet, check_centre
from ..profiling import in_fresh_process
from ..scores import Scores
from ..settings import (Setting, integer, non_negative_number, optional_positive_int,
                        positive_int, positive_number)
from .base import Detector
from .fnet import FNET_SETTINGS, FNetDetector

#: The memory budget of one chunk of U-Nets when neither a batch size nor a budget is given.
DEFAULT_MEMORY_BUDGET_BYTES = 1024 * 2**20

# The f-Net's own training settings, renamed where the U-Net has a setting of the same name.
_FNET_NAMES = {"epochs": "fnet_epochs", "lr": "fnet_lr", "batch_size": "fnet_batch_size"}


@dataclass
class AnoUnetResult:
    """What the per-image optimisation leaves, as CPU tensors; chapter 07.

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

    Defined in chapter 07, as the reference for :func:`optimise_batched`. ``images`` is an
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

    Defined in chapter 07. Counted, not guessed: one image goes through the loss while autograd's
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

    Defined in chapter 07. ``batch_size`` caps the count directly; ``memory_budget_bytes`` caps
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

    Defined in chapter 07: the one chunk of :func:`optimise_batched`, which picks the chunk's
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

    Defined in chapter 07. The same result as the loop, up to floating-point rounding: every
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

    Defined in chapter 07, to set :func:`optimise_one_by_one` against :func:`optimise_batched`
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


def check_fnet(value, name: str, example=None):
    """The ``fnet`` setting of chapter 07: None, or an ``fnet_distance`` detector already fitted."""
    if value is None or (isinstance(value, FNetDetector) and value.image_shape is not None):
        return value
    raise ConfigError(f"{name}={value!r}; use None (fit trains an f-Net) or a fitted "
                      "fnet_distance detector")


def tuning_images(split, size: int, seed: int = 0, exclude=()) -> ClassSubset:
    """Labelled images to choose β and the steps on, none of them a test image; chapter 07.

    Half of ``size`` are normal images held out of training (``split.val``, so never in the
    f-Net's centre), half anomaly-class images of the *training* split, all drawn at random and
    none of them in a subset of ``exclude`` (the f-Net's reference images). The test split is
    left for the scores that are reported; the price is a few labelled anomalies.
    """
    positive_int(size, "GRID_IMAGES", 64)
    if split.val is None:
        raise ConfigError("the split holds no normal images out of training; make it with "
                          "one_class_split(..., val_fraction=0.2)")
    candidates = ClassSubset(split.train.dataset, split.normal_classes, split.anomaly_classes,
                             value_range=split.value_range)
    usable = torch.ones(len(candidates), dtype=torch.bool)
    for subset in exclude:
        if subset.dataset is not candidates.dataset:
            raise ConfigError("exclude= holds images of another dataset; pass only subsets of "
                              "the split's training split (reference (a))")
        usable &= ~torch.isin(candidates.indices, subset.indices)
    normal = usable & torch.isin(candidates.indices, split.val.indices)
    anomalous = usable & candidates.anomaly_labels.bool()
    generator = torch.Generator().manual_seed(seed)
    chosen = [positions[torch.randperm(len(positions), generator=generator)[:count]]
              for positions, count in [(normal.nonzero().flatten(), size // 2),
                                       (anomalous.nonzero().flatten(), size - size // 2)]]
    return candidates._select(torch.cat(chosen))


class AnoUnetDetector(Detector):
    """The Ano-Unet article's method; chapter 07."""

    name = "ano_unet"
    headline = "pixel difference"
    value_ranges = ("[0, 1]",)
    SETTINGS = {
        "fnet": Setting(None, check_fnet),
        **{_FNET_NAMES.get(name, name): setting for name, setting in FNET_SETTINGS.items()
           if name != "outlier_exposure"},
        "beta": Setting(10.0, non_negative_number, 10.0),
        "steps": Setting(40, positive_int, 40),
        "lr": Setting(0.01, positive_number, 0.01),
        "unet_channels": Setting(8, positive_int, 8),
        "unet_batch_size": Setting(None, optional_positive_int, 64),  # None: by memory budget
        "memory_budget_mb": Setting(1024, optional_positive_int, 1024),
    }

    def _fnet_settings(self) -> dict:
        # By the f-Net's own names: its "lr" is this detector's "fnet_lr", never the U-Net's "lr".
        return {name: self.settings[_FNET_NAMES.get(name, name)] for name in FNET_SETTINGS
                if name != "outlier_exposure"}

    def _build(self) -> None:
        self.fnet = self.settings["fnet"] or FNetDetector(
            device=self.device, seed=self.seed, progress=self.progress, **self._fnet_settings())

    def _fit(self, train, val_images, after_epoch=None) -> History:
        if self.fnet.image_shape is not None and self.settings["fnet"] is not None:
            return self.fnet.history or History()
        return self.fnet.fit(train, after_epoch=after_epoch)

    def _score(self, images, classes, labels) -> Scores:
        s = self.settings
        budget = None if s["memory_budget_mb"] is None else s["memory_budget_mb"] * 2**20
        result = optimise_batched(images, self.fnet.net, self.fnet.centre, s["beta"], s["steps"],
                                  s["lr"], self.seed, s["unet_channels"], s["unet_batch_size"],
                                  budget, self.device, self.progress)
        values = {"pixel difference": result.pixel_score.numpy(), "L_C": result.lc_score.numpy(),
                  "centre distance": self.fnet.centre_distance(images).numpy()}
        return self._scores(values, classes, labels, maps=result.heatmaps.numpy(),
                            inputs=images, outputs=result.generated)

    def _plain_settings(self) -> dict:
        plain = {name: value for name, value in self.settings.items() if name != "fnet"}
        if plain["reference"] != "other-dataset":
            del plain["reference"]
        return plain

    def _state(self) -> dict:
        return {"fnet": self.fnet._state(), "fnet_image_shape": list(self.fnet.image_shape)}

    def _load_state(self, state: dict) -> None:
        self.fnet.image_shape, self.fnet.value_range = tuple(state["fnet_image_shape"]), "[0, 1]"
        self.fnet._load_state(state["fnet"])
