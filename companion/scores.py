"""Per-image anomaly scores: the functions, and the one container every detector returns.

Defined in chapter 02; chapter 05 compares more score functions. Images carry their value
range (``"[-1, 1]"`` or ``"[0, 1]"``, see :mod:`companion.data`); a score that needs to know it
(SSIM) is told, never guesses from the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure
from torchvision.transforms.functional import gaussian_blur

from .data import VALUE_RANGES, to_unit_range
from .errors import ConfigError
from .metrics import detection_metrics, metrics_by_anomaly_class
from .settings import non_negative_number


def l1_sum(x: torch.Tensor, reconstruction: torch.Tensor, value_range: str = "[-1, 1]") -> torch.Tensor:
    """Sum of absolute pixel differences per image (the satolab article's score)."""
    return (x - reconstruction).abs().flatten(1).sum(dim=1)


def mse(x: torch.Tensor, reconstruction: torch.Tensor, value_range: str = "[-1, 1]") -> torch.Tensor:
    """Mean squared pixel difference per image: the autoencoders' training loss, per image."""
    return ((x - reconstruction) ** 2).flatten(1).mean(dim=1)


def blurred_max(x: torch.Tensor, reconstruction: torch.Tensor, value_range: str = "[-1, 1]",
                sigma: float = 1.0) -> torch.Tensor:
    """Maximum of the Gaussian-blurred difference map: one strong local defect, not total ink.

    Defined in chapter 05. The blur makes a single noisy pixel count less than a patch.
    """
    difference = (x - reconstruction).abs().sum(dim=1, keepdim=True)
    kernel = 2 * round(3 * sigma) + 1
    return gaussian_blur(difference, [kernel, kernel], [sigma, sigma]).flatten(1).amax(dim=1)


def one_minus_ssim(x: torch.Tensor, reconstruction: torch.Tensor,
                   value_range: str = "[-1, 1]") -> torch.Tensor:
    """1 - SSIM (torchmetrics) between image and reconstruction, so higher = more anomalous.

    Defined in chapter 05. SSIM compares local means, contrasts and structure rather than
    pixels one by one. Both images are mapped from ``value_range`` to [0, 1] first.
    """
    similarity = structural_similarity_index_measure(
        to_unit_range(reconstruction, value_range).clamp(0, 1), to_unit_range(x, value_range),
        data_range=1.0, reduction="none")
    return 1 - similarity


def ssim_image(x: torch.Tensor, reconstruction: torch.Tensor, value_range: str = "[-1, 1]",
               kernel_size: int = 11) -> torch.Tensor:
    """SSIM of each pixel's neighbourhood (N, C, H, W), torchmetrics' Gaussian window; chapter 11.

    The local luminance, contrast and structure terms of Wang et al. (2004), the image's own
    size; both images mapped from ``value_range`` to [0, 1] first. Differentiable, so it also
    serves as a training loss (the SSIM autoencoder).
    """
    _, full = structural_similarity_index_measure(
        to_unit_range(reconstruction, value_range).clamp(0, 1), to_unit_range(x, value_range),
        data_range=1.0, kernel_size=kernel_size, reduction="none", return_full_image=True)
    return full


def l1_map(x, reconstruction, value_range: str = "[-1, 1]") -> torch.Tensor:
    """|x − x̂| summed over channels (N, H, W): the book's map since chapter 03."""
    return (x - reconstruction).abs().sum(dim=1)


def l2_map(x, reconstruction, value_range: str = "[-1, 1]") -> torch.Tensor:
    """(x − x̂)² summed over channels (N, H, W): the per-pixel squared error; chapter 11."""
    return ((x - reconstruction) ** 2).sum(dim=1)


def ssim_map(x, reconstruction, value_range: str = "[-1, 1]") -> torch.Tensor:
    """1 − local SSIM, averaged over channels (N, H, W): the structural map of Bergmann et al.
    (2019), which sees texture lost where the squared error sees little; chapter 11."""
    return 1 - ssim_image(x, reconstruction, value_range).mean(dim=1)


#: Anomaly maps of a reconstruction, by name; chapter 11 compares them.
MAP_FUNCTIONS = {"l1": l1_map, "l2": l2_map, "ssim": ssim_map}


#: The score functions of a reconstruction, by name; chapter 05.
SCORE_FUNCTIONS = {"mse": mse, "l1_sum": l1_sum, "blurred_max": blurred_max,
                   "1-ssim": one_minus_ssim}


def reconstruction_scores(x: torch.Tensor, reconstruction: torch.Tensor,
                          value_range: str) -> dict[str, np.ndarray]:
    """Every function of :data:`SCORE_FUNCTIONS` on the same images, as NumPy arrays."""
    if value_range not in VALUE_RANGES:
        raise ConfigError(f"value_range={value_range!r}; use one of {list(VALUE_RANGES)}")
    return {name: function(x, reconstruction, value_range).numpy()
            for name, function in SCORE_FUNCTIONS.items()}


@dataclass
class Scores:
    """What a detector's ``score`` returns: per-image scores under each name, and more.

    Defined in chapter 02. ``values[name]`` is one score per image (higher = more anomalous);
    ``headline`` names the score the detector committed to before any test image was seen.
    ``labels`` (1 = anomaly) and ``classes`` come from the data. ``maps`` (N, H, W) are anomaly
    maps where the detector paints them; ``inputs`` and ``outputs`` (N, C, H, W) the images and
    what the detector made of them (a reconstruction, R(x), G(x)) in ``value_range``.
    """

    values: dict[str, np.ndarray]
    headline: str
    labels: np.ndarray
    classes: np.ndarray
    value_range: str
    maps: np.ndarray | None = None
    inputs: torch.Tensor | None = None
    outputs: torch.Tensor | None = None

    def __post_init__(self):
        if self.headline not in self.values:
            raise ConfigError(f"headline score {self.headline!r} is not among {list(self.values)}")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.values:
            raise ConfigError(f"no score {name!r}; this detector gives {list(self.values)}")
        return self.values[name]

    @property
    def names(self) -> list[str]:
        return list(self.values)

    def auroc(self, name: str | None = None) -> float:
        """Test AUROC of one score, the headline score by default."""
        return detection_metrics(self.labels, self[name or self.headline])["auroc"]

    def aurocs(self) -> dict[str, float]:
        """AUROC of every score, the headline first."""
        return {name: self.auroc(name) for name in [self.headline] +
                [n for n in self.values if n != self.headline]}

    def metrics(self, name: str | None = None) -> dict:
        """AUROC and average precision of one score (the headline by default)."""
        return detection_metrics(self.labels, self[name or self.headline])

    def by_anomaly_class(self, name: str | None = None) -> dict:
        """:func:`~companion.metrics.metrics_by_anomaly_class` of one score."""
        return metrics_by_anomaly_class(self.classes, self.labels, self[name or self.headline])

    def with_map(self, name: str, sigma: float = 0.0) -> "Scores":
        """The same scores with the maps recomputed from inputs and outputs by
        :data:`MAP_FUNCTIONS` ``[name]``, then smoothed by a Gaussian of ``sigma`` pixels
        (0: not smoothed), as inspection maps usually are; chapter 11."""
        if name not in MAP_FUNCTIONS:
            raise ConfigError(f"map={name!r}; use one of {list(MAP_FUNCTIONS)}")
        non_negative_number(sigma, "sigma", 2.0)
        if self.inputs is None or self.outputs is None:
            raise ConfigError("these scores keep no inputs and outputs to compute a map from")
        maps = torch.cat([MAP_FUNCTIONS[name](x, y, self.value_range) for x, y in
                          zip(self.inputs.split(512), self.outputs.split(512))])
        if sigma:
            kernel = 2 * round(3 * sigma) + 1
            maps = gaussian_blur(maps[:, None], [kernel, kernel], [sigma, sigma])[:, 0]
        return replace(self, maps=maps.numpy())

    def select(self, positions) -> "Scores":
        """The same scores for a subset of the images (positions into this container)."""
        positions = np.asarray(positions)
        pick = lambda value: None if value is None else value[positions]
        return replace(self, values={n: v[positions] for n, v in self.values.items()},
                       labels=self.labels[positions], classes=self.classes[positions],
                       maps=pick(self.maps),
                       inputs=None if self.inputs is None else self.inputs[torch.as_tensor(positions)],
                       outputs=None if self.outputs is None else self.outputs[torch.as_tensor(positions)])
