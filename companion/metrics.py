"""Metrics that judge per-image scores, and the tables that summarise them.

Defined in chapter 02; chapter 08 adds the metrics of anomaly maps (pixel AUROC, PRO), chapter
10 the per-class tables. ROC computations come from scikit-learn, connected regions from SciPy;
the anomaly is the positive class and a higher score means more anomalous.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from .errors import ConfigError
from .settings import fraction

#: The usual end of the PRO curve: a false-positive rate of 30 % (MVTec AD, anomalib).
MAX_FPR = 0.3


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
    left blank. Columns are ``width`` characters wide, wider where a header or a cell needs it,
    so that neighbouring cells never run together. Used for every AUROC table the chapters print.
    """
    columns = list(columns)
    cells = {name: [format(value, number_format) if isinstance(value, (float, np.floating))
                    else str(value) for value in (row.get(c, "") for c in columns)]
             for name, row in rows.items()}
    widths = [max([width, len(str(c)) + 1] + [len(line[k]) + 1 for line in cells.values()])
              for k, c in enumerate(columns)]
    first = max([len(row_header)] + [len(str(name)) for name in rows]) + 2
    lines = [f"{row_header:<{first}}" + "".join(f"{str(c):>{w}}" for c, w in zip(columns, widths))]
    for name, line in cells.items():
        lines.append(f"{str(name):<{first}}"
                     + "".join(f"{cell:>{w}}" for cell, w in zip(line, widths)))
    return "\n".join(lines)


#: The outlier shares of the ALOCC paper's MNIST table (Sabokrou et al. 2018, table 1).
OUTLIER_SHARES = (0.1, 0.2, 0.3, 0.4, 0.5)


def outlier_share_mixtures(labels, shares=OUTLIER_SHARES, seed: int = 0) -> dict:
    """Positions of test mixtures with each share of anomalies; chapter 06.

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

    Defined in chapter 06. ``positive="normal"``: F1 of the images kept as normal, which is how
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


def _as_arrays(maps, masks) -> tuple[np.ndarray, np.ndarray]:
    maps = np.asarray(torch.as_tensor(maps).detach().cpu(), dtype=np.float64)
    masks = np.asarray(torch.as_tensor(masks).cpu(), dtype=bool)
    if maps.ndim != 3 or maps.shape != masks.shape:
        raise ConfigError(f"maps of shape {maps.shape} and masks of shape {masks.shape}; give one "
                          "(N, H, W) map per (N, H, W) mask")
    if not masks.any() or masks.all():
        raise ConfigError("the masks need anomalous and normal pixels both; add normal images "
                          "or images with an anomaly")
    return maps, masks


def pixel_auroc(maps, masks) -> float:
    """AUROC of the map's values as scores of each pixel being anomalous; chapter 08.

    Over every pixel of every image given, the normal images' included, as anomalib computes
    it: a map that lights up normal images is penalised for it, not only for the normal pixels
    around an anomaly.
    """
    maps, masks = _as_arrays(maps, masks)
    return float(roc_auc_score(masks.ravel(), maps.ravel()))


def regions(masks) -> tuple[np.ndarray, int]:
    """The connected regions of each mask, numbered 1, 2, ... across all images, and their count.

    Pixels touching at a side or a corner belong to one region (8-connectivity, as in the MVTec
    AD evaluation); regions never cross from one image to the next.
    """
    masks = np.asarray(torch.as_tensor(masks).cpu(), dtype=bool)
    labels = np.zeros(masks.shape, dtype=np.int64)
    count = 0
    for i, mask in enumerate(masks):
        labels[i], found = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
        labels[i][mask] += count
        count += found
    return labels, count


def pro_curve(maps, masks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-region overlap curve: (false-positive rates, PROs, thresholds); chapter 08.

    At a threshold t every pixel whose map value is >= t is called anomalous. The PRO is the
    mean over the connected :func:`regions` of the masks of the share of each region called
    anomalous; the false-positive rate is the share of all pixels outside the masks called
    anomalous. Each region counts the same however small it is, where pixel AUROC lets one large
    region outweigh many small ones. The curve is exact at every threshold where something
    changes, the thresholds falling: the PRO is a true-positive rate in which each pixel of a
    region of n pixels weighs 1/n, so scikit-learn's ROC curve with those weights is the PRO curve.
    """
    maps, masks = _as_arrays(maps, masks)
    labels, _ = regions(masks)
    sizes = np.bincount(labels.ravel())
    weights = np.where(labels > 0, 1.0 / sizes[labels], 1.0)
    return roc_curve(masks.ravel(), maps.ravel(), sample_weight=weights.ravel(),
                     drop_intermediate=False)


def pro_area(maps, masks, max_fpr: float = MAX_FPR) -> float:
    """Area under the PRO curve from FPR 0 to ``max_fpr``, divided by ``max_fpr``; chapter 08.

    1 is a perfect map; a map of random numbers has PRO = FPR on average and gets
    ``max_fpr / 2`` (0.15 at 0.3). Between its points the curve is a straight line, so at
    ``max_fpr`` it is interpolated (the rule of the MVTec AD evaluation).
    """
    fraction(max_fpr, "MAX_FPR", MAX_FPR)
    fpr, pro, _ = pro_curve(maps, masks)
    above = int(np.searchsorted(fpr, max_fpr, side="right"))  # first point past max_fpr
    share = (max_fpr - fpr[above - 1]) / (fpr[above] - fpr[above - 1])
    x = np.append(fpr[:above], max_fpr)
    y = np.append(pro[:above], pro[above - 1] + share * (pro[above] - pro[above - 1]))
    return float(np.trapezoid(y, x) / max_fpr)
