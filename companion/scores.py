"""Per-image anomaly scores and the metrics that judge them.

Defined in chapter 02; chapter 04 compares more score functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torchmetrics.functional.image import structural_similarity_index_measure
from torchvision.transforms.functional import gaussian_blur


def l1_sum(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Sum of absolute pixel differences per image (seed 001's score)."""
    return (x - reconstruction).abs().flatten(1).sum(dim=1)


def mse(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel difference per image."""
    return ((x - reconstruction) ** 2).flatten(1).mean(dim=1)


def blurred_max(x: torch.Tensor, reconstruction: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Maximum of the Gaussian-blurred difference map: one strong local defect, not total ink.

    Defined in chapter 04. The blur makes a single noisy pixel count less than a patch.
    """
    difference = (x - reconstruction).abs().sum(dim=1, keepdim=True)
    kernel = 2 * round(3 * sigma) + 1
    return gaussian_blur(difference, [kernel, kernel], [sigma, sigma]).flatten(1).amax(dim=1)


def one_minus_ssim(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (torchmetrics) between image and reconstruction, so higher = more anomalous.

    Defined in chapter 04. SSIM compares local means, contrasts and structure rather than
    pixels one by one. Images are mapped to [0, 1] first.
    """
    low = min(float(x.min()), 0.0)
    high = 1.0 if low == 0.0 else 2.0  # [0, 1] or [-1, 1] inputs
    similarity = structural_similarity_index_measure(
        (reconstruction - low).clamp(0, high), x - low, data_range=high, reduction="none")
    return 1 - similarity


SCORE_FUNCTIONS = {"l1_sum": l1_sum, "mse": mse, "blurred_max": blurred_max,
                   "1-ssim": one_minus_ssim}


@dataclass
class Reconstructions:
    """Inputs, reconstructions, original classes and anomaly labels of a whole test set."""

    inputs: torch.Tensor
    outputs: torch.Tensor
    classes: np.ndarray
    labels: np.ndarray

    def scores(self, score: str = "l1_sum") -> np.ndarray:
        """One score per image with a function from :data:`SCORE_FUNCTIONS`."""
        return SCORE_FUNCTIONS[score](self.inputs, self.outputs).numpy()


@torch.no_grad()
def reconstruct(net, loader, device="cpu") -> Reconstructions:
    """Run ``net`` over a loader of ``(image, class, label)`` items; chapter 02."""
    net.to(device).eval()
    inputs, outputs, classes, labels = [], [], [], []
    for images, image_classes, image_labels in loader:
        inputs.append(images)
        outputs.append(net(images.to(device)).cpu())
        classes.append(image_classes)
        labels.append(image_labels)
    return Reconstructions(torch.cat(inputs), torch.cat(outputs),
                           torch.cat(classes).numpy(), torch.cat(labels).numpy())


def detection_metrics(labels, scores) -> dict:
    """AUROC and average precision (anomaly = positive class, higher score = more anomalous)."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        raise ValueError("AUROC needs both normal (0) and anomalous (1) test items")
    return {"auroc": float(roc_auc_score(labels, scores)),
            "average_precision": float(average_precision_score(labels, scores))}


def metrics_by_anomaly_class(classes, labels, scores) -> dict:
    """:func:`detection_metrics` of the normal items against each anomaly class alone."""
    classes, labels, scores = np.asarray(classes), np.asarray(labels), np.asarray(scores)
    normal = labels == 0
    return {int(c): detection_metrics(labels[normal | (classes == c)], scores[normal | (classes == c)])
            for c in np.unique(classes[labels == 1])}
