"""The book's figures: image grids, reconstructions, losses, score histograms, ROC curves.

Defined in chapters 01 and 02. Each function draws one titled, labelled figure and returns it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import roc_curve
from torchvision.utils import make_grid


def to_display(images: torch.Tensor) -> torch.Tensor:
    """Map images in [-1, 1] (or [0, 1]) to [0, 1] for display."""
    return (images + 1) / 2 if images.min() < 0 else images


def show_images(images: torch.Tensor, title: str, nrow: int = 8, labels=None):
    """A grid of images (the seeds' ``imshow``), optionally with one label per image."""
    grid = make_grid(to_display(images.detach().cpu()), nrow=nrow, padding=2, pad_value=1.0)
    fig, ax = plt.subplots(figsize=(nrow * 0.8, (len(images) + nrow - 1) // nrow * 0.8 + 0.5))
    ax.imshow(grid.permute(1, 2, 0).clamp(0, 1).numpy(), cmap="gray")
    ax.set_title(title)
    ax.axis("off")
    if labels is not None:
        size = images.shape[-1] + 2
        for i, label in enumerate(labels):
            ax.text((i % nrow) * size + 3, (i // nrow) * size + 9, str(label), color="red",
                    fontsize=8)
    fig.tight_layout()
    return fig


def plot_reconstructions(inputs, outputs, scores, title: str, score_name: str = "score"):
    """Rows: input, reconstruction, difference image; the score above each column (seed 001)."""
    inputs, outputs = to_display(inputs.detach().cpu()), to_display(outputs.detach().cpu())
    difference = (inputs - outputs).abs().sum(dim=1)
    n = len(inputs)
    fig, axes = plt.subplots(3, n, figsize=(1.2 * n, 4.2), squeeze=False)
    rows = [("input", inputs.mean(dim=1), "gray"), ("reconstruction", outputs.mean(dim=1), "gray"),
            ("|difference|", difference, "inferno")]
    for r, (name, images, cmap) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c].numpy(), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == 0:
                ax.set_title(f"{score_name}\n{scores[c]:.1f}", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_loss(history, title: str = "Training loss", ylabel: str = "mean squared error"):
    """Loss per epoch; ``history`` is a list or a dict of named lists."""
    curves = history if isinstance(history, dict) else {"training": history}
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_score_histogram(scores, classes, class_names, title: str, xlabel: str = "anomaly score"):
    """Histogram of scores, one colour per original class."""
    scores, classes = np.asarray(scores), np.asarray(classes)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bins = np.histogram_bin_edges(scores, bins=40)
    for c in np.unique(classes):
        ax.hist(scores[classes == c], bins=bins, alpha=0.6, label=f"class {class_names[c]}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("number of test images")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_roc(labels, scores_by_name: dict, title: str = "ROC curve"):
    """ROC curves, one per named score array, with AUROC in the legend."""
    from .scores import detection_metrics

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for name, scores in scores_by_name.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        auroc = detection_metrics(labels, scores)["auroc"]
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auroc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="chance")
    ax.set_xlabel("false-positive rate (normal flagged)")
    ax.set_ylabel("true-positive rate (anomalies caught)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_heatmap_overlay(inputs, maps, title: str, captions=None, map_label: str = "|x - x̂|"):
    """Each input in grey with its anomaly map laid over it in colour; chapter 03.

    ``maps`` has shape (N, H, W); one colour scale for all images, so they can be compared.
    """
    inputs = to_display(inputs.detach().cpu()).mean(dim=1)
    maps = maps.detach().cpu()
    n = len(inputs)
    fig, axes = plt.subplots(1, n, figsize=(1.25 * n + 0.8, 1.9), squeeze=False)
    vmax = float(maps.max())
    for i, ax in enumerate(axes[0]):
        ax.imshow(inputs[i].numpy(), cmap="gray", vmin=0, vmax=1)
        overlay = ax.imshow(maps[i].numpy(), cmap="inferno", alpha=0.55, vmin=0, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
        if captions is not None:
            ax.set_title(str(captions[i]), fontsize=8)
    fig.colorbar(overlay, ax=axes[0].tolist(), shrink=0.8, label=map_label)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_precision_recall(labels, scores_by_name: dict, title: str = "Precision-recall curve"):
    """Precision-recall curves with average precision in the legend; chapter 04."""
    from sklearn.metrics import precision_recall_curve

    from .scores import detection_metrics

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for name, scores in scores_by_name.items():
        precision, recall, _ = precision_recall_curve(labels, scores)
        ap = detection_metrics(labels, scores)["average_precision"]
        ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
    ax.axhline(np.mean(labels), color="grey", linestyle="--", label="chance (share of anomalies)")
    ax.set_xlabel("recall (anomalies caught)")
    ax.set_ylabel("precision (flagged that are anomalies)")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_noisy_reconstructions(clean, noisy, reconstructed, captions, title: str):
    """Rows: clean input, noisy input, reconstruction of the noisy input; chapter 05 (ALOCC)."""
    n = len(clean)
    fig, axes = plt.subplots(3, n, figsize=(1.1 * n, 3.8), squeeze=False)
    rows = [("clean x", clean), ("noisy x̃", noisy), ("R(x̃)", reconstructed)]
    for r, (name, images) in enumerate(rows):
        images = to_display(images.detach().cpu()).mean(dim=1)
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == 0:
                ax.set_title(str(captions[c]), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_map_rows(inputs, rows: dict, title: str, captions=None):
    """The inputs in the top row, then one row per entry of ``rows``; chapter 06.

    ``rows`` maps a row name to images (N, C, H, W), drawn in grey, or to anomaly maps
    (N, H, W), drawn in colour on one scale per row with its own colour bar, so the methods can
    be compared image by image and each row's maps against each other.
    """
    inputs = to_display(torch.as_tensor(inputs).detach().cpu()).mean(dim=1)
    n = len(inputs)
    # One narrow extra column holds the colour bars, so every image column keeps its width.
    fig, axes = plt.subplots(len(rows) + 1, n + 1, squeeze=False,
                             figsize=(1.1 * n + 2.0, 1.2 * (len(rows) + 1) + 0.5),
                             gridspec_kw={"width_ratios": [1] * n + [0.08]})
    named_rows = [("input", inputs)] + [(name, torch.as_tensor(values).detach().cpu())
                                        for name, values in rows.items()]
    for row_axes, (name, values) in zip(axes, named_rows):
        is_map = name != "input" and values.dim() == 3
        if values.dim() == 4:
            values = to_display(values).mean(dim=1)
        vmax = float(values.max()) if is_map else 1.0
        for i, ax in enumerate(row_axes[:n]):
            image = ax.imshow(values[i].numpy(), cmap="inferno" if is_map else "gray", vmin=0,
                              vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if captions is not None and name == "input":
                ax.set_title(str(captions[i]), fontsize=8)
        row_axes[0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
        if is_map:
            fig.colorbar(image, cax=row_axes[n])
            row_axes[n].tick_params(labelsize=7)
        else:
            row_axes[n].set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
