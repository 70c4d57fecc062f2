"""Turning scores into decisions: thresholds, confusion matrices, decisions at a threshold.

Defined in chapter 05 (scores and thresholds).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_curve

from .errors import ConfigError


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
