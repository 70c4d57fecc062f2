"""Metrics that judge per-image scores, and the tables that summarise them.

Defined in chapter 02; chapter 09 adds the per-class tables. Metrics come from scikit-learn;
the anomaly is the positive class and a higher score means more anomalous.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def detection_metrics(labels, scores) -> dict:
    """AUROC and average precision of ``scores`` against anomaly ``labels`` (1 = anomaly)."""
    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() == labels.max():
        raise ValueError("AUROC needs both normal (0) and anomalous (1) test items")
    return {"auroc": float(roc_auc_score(labels, scores)),
            "average_precision": float(average_precision_score(labels, scores))}


def metrics_by_anomaly_class(classes, labels, scores) -> dict:
    """:func:`detection_metrics` of the normal items against each anomaly class alone."""
    classes, labels, scores = np.asarray(classes), np.asarray(labels), np.asarray(scores)
    normal = labels == 0
    return {int(c): detection_metrics(labels[normal | (classes == c)], scores[normal | (classes == c)])
            for c in np.unique(classes[labels == 1])}


def format_table(rows: dict, columns, row_header: str = "", width: int = 12,
                 number_format: str = ".4f") -> str:
    """A plain-text table: one line per row name, ``rows[name][column]`` in each cell.

    Numbers use ``number_format``; other values are printed as they are; a missing cell is
    left blank. Used for every AUROC table the chapters print.
    """
    columns = list(columns)
    first = max([len(row_header)] + [len(str(name)) for name in rows]) + 2
    lines = [f"{row_header:<{first}}" + "".join(f"{str(c):>{width}}" for c in columns)]
    for name, cells in rows.items():
        formatted = []
        for column in columns:
            value = cells.get(column, "")
            formatted.append(f"{value:>{width}{number_format}}"
                             if isinstance(value, (float, np.floating)) else f"{str(value):>{width}}")
        lines.append(f"{str(name):<{first}}" + "".join(formatted))
    return "\n".join(lines)


#: The outlier shares of the ALOCC paper's MNIST table (Sabokrou et al. 2018, table 1).
OUTLIER_SHARES = (0.1, 0.2, 0.3, 0.4, 0.5)


def outlier_share_mixtures(labels, shares=OUTLIER_SHARES, seed: int = 0) -> dict:
    """Positions of test mixtures with each share of anomalies; chapter 05.

    Every normal item is in every mixture; ``round(n · s / (1 − s))`` anomalies are drawn at
    random (by ``seed``, without replacement) so that they make up the share ``s``. The ALOCC
    paper drew its inliers from the training images; here both come from the test split.
    """
    labels = np.asarray(labels)
    normal, anomalous = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    rng = np.random.default_rng(seed)
    mixtures = {}
    for share in shares:
        if not 0 < share < 1:
            raise ValueError(f"outlier share {share!r}; use a number between 0 and 1, e.g. 0.1")
        wanted = round(len(normal) * share / (1 - share))
        if wanted > len(anomalous):
            raise ValueError(f"a share of {share:g} needs {wanted} anomalies; the test set has "
                             f"{len(anomalous)}")
        mixtures[share] = np.sort(np.r_[normal, rng.choice(anomalous, wanted, replace=False)])
    return mixtures


def f1_by_outlier_share(labels, scores, threshold: float, shares=OUTLIER_SHARES, seed: int = 0,
                        positive: str = "normal") -> dict:
    """F1 of the rule "anomaly if score > threshold" on each :func:`outlier_share_mixtures`.

    Defined in chapter 05. ``positive="normal"``: F1 of the images kept as normal, which is how
    the paper's F1 falls as outliers grow; ``"anomaly"``: F1 of the images flagged.
    """
    if positive not in ("normal", "anomaly"):
        raise ValueError(f"positive={positive!r}; use 'normal' or 'anomaly'")
    labels, scores = np.asarray(labels), np.asarray(scores)
    f1 = {}
    for share, positions in outlier_share_mixtures(labels, shares, seed).items():
        truth, flagged = labels[positions] == 1, scores[positions] > threshold
        if positive == "normal":
            truth, flagged = ~truth, ~flagged
        hits = int(np.sum(truth & flagged))
        f1[share] = 2 * hits / (int(truth.sum()) + int(flagged.sum())) if hits else 0.0
    return f1
