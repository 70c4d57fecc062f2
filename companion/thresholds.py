"""Turning scores into decisions: thresholds, confusion matrices, decisions at a threshold.

Defined in chapter 04 (scores and thresholds).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_curve

from .errors import ConfigError
from .plots import to_display


def percentile_threshold(normal_scores, target_fpr: float) -> float:
    """Threshold that flags ``target_fpr`` of held-out *normal* scores: needs no anomaly labels."""
    if not 0 < target_fpr < 1:
        raise ConfigError(f"TARGET_FPR={target_fpr!r}; use a fraction such as 0.05")
    return float(np.quantile(np.asarray(normal_scores), 1 - target_fpr))


def best_f1_threshold(labels, scores) -> float:
    """The threshold with the highest F1 on labelled data: an oracle, since it sees the labels."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[np.argmax(f1[:-1])])


def decision_report(labels, scores, threshold: float) -> dict:
    """Confusion matrix and rates when images scoring ``>= threshold`` are flagged anomalous."""
    labels = np.asarray(labels)
    flagged = (np.asarray(scores) >= threshold).astype(int)
    tn, fp, fn, tp = (int(n) for n in confusion_matrix(labels, flagged, labels=[0, 1]).ravel())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"threshold": float(threshold), "tn": tn, "fp": fp, "fn": fn, "tp": tp,
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0}


def plot_threshold_rows(scores, labels, images, thresholds: dict, value_range: str, captions=None,
                        per_side: int = 3):
    """One row per named threshold: its confusion matrix and rates, then the ``per_side`` images
    just below it (kept as normal) and just above it (flagged). Anomalies are framed in red."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    images = to_display(images, value_range).mean(dim=1)
    order = np.argsort(scores)
    fig, axes = plt.subplots(len(thresholds), 1 + 2 * per_side,
                             figsize=(1.25 * (2.4 + 2 * per_side), 1.75 * len(thresholds) + 0.4),
                             squeeze=False, gridspec_kw={"width_ratios": [2.4] + [1] * 2 * per_side})
    for row, (name, threshold) in enumerate(thresholds.items()):
        report = decision_report(labels, scores, threshold)
        text_ax = axes[row, 0]
        text_ax.axis("off")
        text_ax.text(0, 0.5, f"{name}\nthreshold {threshold:.4g}\n"
                             f"TP {report['tp']}  FP {report['fp']}\nFN {report['fn']}  TN {report['tn']}\n"
                             f"precision {report['precision']:.3f}\nrecall {report['recall']:.3f}\n"
                             f"F1 {report['f1']:.3f}  FPR {report['false_positive_rate']:.3f}",
                     va="center", fontsize=7.5, family="monospace", wrap=True)
        cut = np.searchsorted(scores[order], threshold)
        picked = list(order[max(cut - per_side, 0):cut]) + list(order[cut:cut + per_side])
        for col, ax in enumerate(axes[row, 1:]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(picked):
                ax.axis("off")
                continue
            i = picked[col]
            ax.imshow(images[i].numpy(), cmap="gray", vmin=0, vmax=1)
            for spine in ax.spines.values():
                spine.set_edgecolor("red" if labels[i] else "green")
                spine.set_linewidth(2)
            caption = f"{captions[i]}\n" if captions is not None else ""
            ax.set_title(f"{caption}{scores[i]:.3g}", fontsize=7)
            if row == 0 and col in (0, per_side):
                ax.text(0, -0.12, "just below: kept" if col == 0 else "just above: flagged",
                        transform=ax.transAxes, fontsize=8, va="top")
    fig.suptitle("Decisions at each threshold (frame: green normal, red anomaly)", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.8 / fig.get_figheight(), bottom=0.02,
                        wspace=0.12, hspace=0.55)
    return fig
