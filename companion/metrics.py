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
