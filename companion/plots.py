"""The book's figures: image grids, reconstructions, losses, score histograms, ROC curves,
decisions at thresholds, PRO curves, anomaly maps.

Defined in chapters 01 and 02, with later chapters' figures added where they are first drawn. Each function draws one titled, labelled figure and returns it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import torch
from sklearn.metrics import precision_recall_curve, roc_curve
from torchvision.utils import make_grid

from .data import to_unit_range
from .metrics import MAX_FPR, detection_metrics, pro_area, pro_curve
from .thresholds import decision_report


def _label(fig, ax, xlabel: str, ylabel: str, title: str, **legend):
    """Axis labels, title and legend: every figure of the book is labelled the same way."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(**legend)
    fig.tight_layout()
    return fig


def to_display(images: torch.Tensor, value_range: str) -> torch.Tensor:
    """Images of ``value_range`` on the CPU, in [0, 1] for display."""
    return to_unit_range(torch.as_tensor(images).detach().cpu(), value_range)


def show_images(images: torch.Tensor, title: str, value_range: str, nrow: int = 8, labels=None):
    """A grid of images (the seeds' ``imshow``), optionally with one label per image."""
    grid = make_grid(to_display(images, value_range), nrow=nrow, padding=2, pad_value=1.0)
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


def plot_reconstructions(scores, positions, title: str, score: str | None = None):
    """Rows: input, reconstruction, difference image; a score above each column (the satolab article).

    ``scores`` is a detector's :class:`~companion.scores.Scores`; ``positions`` picks the
    images; ``score`` names the score shown (the headline by default).
    """
    positions = np.asarray(positions)
    score = score or scores.headline
    values = scores[score][positions]
    inputs = to_display(scores.inputs[positions], scores.value_range)
    outputs = to_display(scores.outputs[positions], scores.value_range)
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
                ax.set_title(f"{score}\n{values[c]:.3g}", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_loss(history, title: str = "Training loss", ylabel: str = "mean squared error"):
    """Loss per epoch; ``history`` is a list or a dict of named lists."""
    curves = history if isinstance(history, dict) else {"training": history}
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
    return _label(fig, ax, "epoch", ylabel, title)


def plot_score_histogram(scores, classes, class_names, title: str, xlabel: str = "anomaly score"):
    """Histogram of scores, one colour per original class."""
    scores, classes = np.asarray(scores), np.asarray(classes)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bins = np.histogram_bin_edges(scores, bins=40)
    for c in np.unique(classes):
        ax.hist(scores[classes == c], bins=bins, alpha=0.6, label=f"class {class_names[c]}")
    return _label(fig, ax, xlabel, "number of test images", title)


def _plot_curves(labels, scores_by_name: dict, curve, metric: str, short: str):
    """One curve per named score array, its metric in the legend (ROC and precision-recall)."""
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for name, scores in scores_by_name.items():
        x, y = curve(labels, scores)
        ax.plot(x, y, label=f"{name} ({short} {detection_metrics(labels, scores)[metric]:.3f})")
    return fig, ax


def plot_roc(labels, scores_by_name: dict, title: str = "ROC curve"):
    """ROC curves, one per named score array, with AUROC in the legend."""
    fig, ax = _plot_curves(labels, scores_by_name, lambda y, s: roc_curve(y, s)[:2], "auroc",
                           "AUROC")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="chance")
    return _label(fig, ax, "false-positive rate (normal flagged)",
                  "true-positive rate (anomalies caught)", title, loc="lower right", fontsize=8)


def plot_precision_recall(labels, scores_by_name: dict, title: str = "Precision-recall curve"):
    """Precision-recall curves with average precision in the legend; chapter 05."""
    fig, ax = _plot_curves(labels, scores_by_name,
                           lambda y, s: precision_recall_curve(y, s)[1::-1], "average_precision",
                           "AP")
    ax.axhline(np.mean(labels), color="grey", linestyle="--", label="chance (share of anomalies)")
    return _label(fig, ax, "recall (anomalies caught)", "precision (flagged that are anomalies)",
                  title, loc="lower left", fontsize=8)


def plot_noisy_reconstructions(clean, noisy, reconstructed, captions, title: str,
                               value_range: str = "[0, 1]"):
    """Rows: clean input, noisy input, reconstruction of the noisy input; chapter 06 (ALOCC)."""
    n = len(clean)
    fig, axes = plt.subplots(3, n, figsize=(1.1 * n, 3.8), squeeze=False)
    rows = [("clean x", clean), ("noisy x̃", noisy), ("R(x̃)", reconstructed)]
    for r, (name, images) in enumerate(rows):
        images = to_display(images, value_range).mean(dim=1)
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


def plot_map_rows(inputs, rows: dict, title: str, value_range: str, captions=None,
                  shared_scale: bool = False):
    """The inputs in the top row, then one row per entry of ``rows``; chapter 07.

    ``rows`` maps a row name to images (N, C, H, W), drawn in grey (or colour, with three
    channels), or to anomaly maps
    (N, H, W), drawn in colour on one scale per row with its own colour bar, so the methods can
    be compared image by image and each row's maps against each other; with ``shared_scale``
    every map row uses the same scale, so rows can be compared too.
    """
    n = len(inputs)
    # One narrow extra column holds the colour bars, so every image column keeps its width.
    fig, axes = plt.subplots(len(rows) + 1, n + 1, squeeze=False,
                             figsize=(1.1 * n + 2.0, 1.2 * (len(rows) + 1) + 0.5),
                             gridspec_kw={"width_ratios": [1] * n + [0.08]})
    named_rows = [("input", inputs)] + [(name, torch.as_tensor(values).detach().cpu())
                                        for name, values in rows.items()]
    map_max = max((float(v.max()) for name, v in named_rows[1:] if v.dim() == 3), default=1.0)
    for row_axes, (name, values) in zip(axes, named_rows):
        is_map = name != "input" and values.dim() == 3
        if values.dim() == 4:  # images: in colour if they have three channels, else grey
            values = to_display(values, value_range)
            values = values.permute(0, 2, 3, 1) if values.shape[1] == 3 else values.mean(dim=1)
        vmax = (map_max if shared_scale else float(values.max())) if is_map else 1.0
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


def plot_training_log(history, curves: dict, title: str, ylabel: str):
    """Logged values per epoch of a :class:`~companion.engine.History`, the kept epoch marked.

    Defined in chapter 06. ``curves`` maps a legend label to a name in ``history.log``; the
    dashed line is ``history.chosen_epoch``, the epoch whose weights the detector kept.
    """
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, name in curves.items():
        ax.plot(history["epoch"], history[name], marker="o", label=label)
    ax.axvline(history.chosen_epoch, color="grey", linestyle="--",
               label=f"kept epoch ({history.chosen_epoch})")
    return _label(fig, ax, "epoch", ylabel, title, fontsize=8)


def plot_runs_by_epoch(runs: dict, curves: dict, marks: dict, title: str, ylabel: str,
                       ncols: int = 5):
    """One small panel per run of values logged per epoch, a marked epoch dashed; chapter 06.

    ``runs`` maps a panel title to a training log (name -> one value per epoch), ``curves`` a
    legend label to a name in those logs, ``marks`` a panel title to the epoch to mark (where a
    stopping rule ends that run). The panels share their axes so that they can be compared.
    """
    nrows = -(-len(runs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 2.1 * nrows + 0.6),
                             sharex=True, sharey=True, squeeze=False)
    for ax, (panel, log) in zip(axes.flat, runs.items()):
        for label, name in curves.items():
            ax.plot(log["epoch"], log[name], marker=".", label=label)
        ax.axvline(marks[panel], color="grey", linestyle="--", label="where the rule stops")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(panel, fontsize=9)
    for ax in axes.flat[len(runs):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_class_reconstructions(scores, counts: dict, title: str, class_names,
                               score: str | None = None):
    """:func:`plot_reconstructions` of the first ``counts[c]`` test images of each class ``c``.

    Defined in chapter 02. Each column is titled with its class name and score, so an anomaly
    that scores like a normal image (a missed detection) shows at a glance. The images are the
    first of each class in test order: a fixed number per class, none chosen by its score.
    """
    positions = np.concatenate([np.flatnonzero(scores.classes == c)[:n] for c, n in counts.items()])
    score = score or scores.headline
    fig = plot_reconstructions(scores, positions, title, score)
    for ax, c, value in zip(fig.axes, scores.classes[positions], scores[score][positions]):
        ax.set_title(f"{class_names[c]}\n{score} {value:.3g}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_score_density(scores, groups, group_names, title: str, xlabel: str = "anomaly score",
                       legend_title: str = "class"):
    """Histogram of scores per group (class or label), each normalised to area 1; chapter 02.

    Normalised, a group of 1,000 images and one of 9,000 compare by shape, not by size; the
    legend gives each group's number of images.
    """
    scores, groups = np.asarray(scores), np.asarray(groups)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bins = np.histogram_bin_edges(scores, bins=40)
    for g in np.unique(groups):
        ax.hist(scores[groups == g], bins=bins, density=True, alpha=0.6,
                label=f"{group_names[g]}: {int((groups == g).sum()):,} images")
    fig = _label(fig, ax, xlabel, "density (each group's area is 1)", title, fontsize=8)
    ax.get_legend().set_title(legend_title)
    return fig


def plot_class_aurocs(summary: dict, dataset: str, published: dict, title: str):
    """Per-class AUROC (%) of a benchmark summary's entries for ``dataset``; chapter 10.

    ``summary`` is ``{(name, dataset): {class: (mean, std, seeds)}}`` (``benchmark.summarise``
    or ``headline_summary``): points are means over seeds, bars the sample std. ``published``
    maps a name to per-class values in %, drawn dashed.
    """
    fig, ax = plt.subplots(figsize=(10, 4))
    classes = set()
    for (name, d), per_class in summary.items():
        if d == dataset:
            means, stds = np.array([(m, s) for m, s, _ in per_class.values()]).T
            ax.errorbar(list(per_class), 100 * means, 100 * stds, marker="o", capsize=3, label=name)
            classes.update(per_class)
    for name, values in published.items():
        ax.plot(range(len(values)), values, linestyle="--", marker="x", label=name)
        classes.update(range(len(values)))
    ax.axhline(50, color="black", linewidth=0.8, linestyle=":", label="chance (50 %)")
    ax.set_xticks(sorted(classes))
    return _label(fig, ax, "normal class (all other classes are anomalies)", "test AUROC (%)",
                  title, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))


def plot_detector_maps(rows: dict, title: str, class_names=None, per_side: int = 4,
                       shared_scale: bool = False):
    """The first ``per_side`` normal and anomalous images of detectors' Scores, in rows; chapter 07.

    ``rows`` maps a row name to ``(scores, "maps")`` or ``(scores, "outputs")``: that detector's
    anomaly maps or its outputs (a reconstruction, G(x)) of the same images. Every Scores must
    cover the same images in the same order; the first one's inputs head the figure, captioned
    with ``class_names`` of their classes. Drawn by :func:`plot_map_rows`.
    """
    first = next(iter(rows.values()))[0]
    positions = np.concatenate([np.flatnonzero(first.labels == 0)[:per_side],
                                np.flatnonzero(first.labels == 1)[:per_side]])
    for scores, _ in rows.values():
        if not np.array_equal(scores.classes, first.classes):
            raise ValueError("the rows' Scores cover different images; score the same subset")
    captions = None if class_names is None else [class_names[c] for c in first.classes[positions]]
    return plot_map_rows(first.inputs[torch.as_tensor(positions)],
                         {name: getattr(scores, kind)[positions]
                          for name, (scores, kind) in rows.items()},
                         title, first.value_range, captions, shared_scale)


def plot_threshold_rows(scores, labels, images, thresholds: dict, value_range: str, captions=None,
                        per_side: int = 3):
    """One row per named threshold: its confusion matrix and rates, then the ``per_side`` images
    just below it (kept as normal) and just above it (flagged). Anomalies are framed in red;
    chapter 05."""
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


def plot_pro_curves(maps_by_name: dict, masks, title: str, max_fpr: float = MAX_FPR):
    """PRO against false-positive rate up to ``max_fpr``, one curve per map; chapter 08.

    ``maps_by_name`` maps a detector's name to its (N, H, W) maps of the images whose ``masks``
    are given; the legend holds each curve's normalised area (:func:`~companion.metrics.pro_area`).
    """
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, maps in maps_by_name.items():
        fpr, pro, _ = pro_curve(maps, masks)
        shown = int(np.searchsorted(fpr, max_fpr, side="right")) + 1  # one point past the axis
        ax.plot(fpr[:shown], pro[:shown],
                label=f"{name} (area {pro_area(maps, masks, max_fpr):.3f})")
    ax.plot([0, max_fpr], [0, max_fpr], color="grey", linestyle="--",
            label=f"random map (area {max_fpr / 2:.2f})")
    ax.set_xlim(0, max_fpr)
    ax.set_ylim(0, 1)
    return _label(fig, ax, "false-positive rate (share of normal pixels flagged)",
                  "per-region overlap (mean share of each anomaly flagged)", title,
                  loc="lower right", fontsize=8)


def plot_latent_codes(codes, labels, title: str, label_names=("normal", "anomaly")):
    """Latent codes in two dimensions, coloured by label; chapter 04.

    Codes of more than two dimensions are projected on their first two principal components
    (scikit-learn's PCA, fitted on the normal images' codes, so the axes are the directions in
    which normal images vary most).
    """
    from sklearn.decomposition import PCA

    codes, labels = np.asarray(codes), np.asarray(labels)
    axes = ("z1", "z2")
    if codes.shape[1] > 2:
        pca = PCA(2).fit(codes[labels == 0])
        codes = pca.transform(codes)
        axes = tuple(f"principal component {k + 1} ({share:.0%} of the normal codes' variance)"
                     for k, share in enumerate(pca.explained_variance_ratio_))
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for label in (0, 1):
        chosen = labels == label
        ax.scatter(codes[chosen, 0], codes[chosen, 1], s=6, alpha=0.5,
                   label=f"{label_names[label]}: {int(chosen.sum()):,} images")
    return _label(fig, ax, axes[0], axes[1], title, fontsize=8, markerscale=2)
