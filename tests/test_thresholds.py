"""Thresholds, decision reports and the threshold explorer (chapter 05) on hand-made scores
with known answers."""

import numpy as np
import pytest
import torch

from companion import ConfigError
from companion.plots import plot_threshold_rows
from companion.thresholds import best_f1_threshold, decision_report, percentile_threshold
from companion.widgets import threshold_explorer

LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1])
SCORES = np.array([1.0, 2.0, 3.0, 6.0, 4.0, 5.0, 7.0, 8.0])


def test_percentile_threshold_flags_the_asked_share_of_normal_scores():
    normal = np.arange(1, 101, dtype=float)  # 1..100
    threshold = percentile_threshold(normal, 0.05)
    assert np.mean(normal >= threshold) == pytest.approx(0.05, abs=0.011)
    with pytest.raises(ConfigError, match="TARGET_FPR=1.5"):
        percentile_threshold(normal, 1.5)


def test_decision_report_counts_by_hand():
    report = decision_report(LABELS, SCORES, 4.0)  # flagged: 6, 4, 5, 7, 8
    assert (report["tp"], report["fp"], report["fn"], report["tn"]) == (4, 1, 0, 3)
    assert report["precision"] == pytest.approx(0.8)
    assert report["recall"] == 1.0
    assert report["f1"] == pytest.approx(2 * 0.8 / 1.8)
    assert report["false_positive_rate"] == pytest.approx(0.25)
    nothing = decision_report(LABELS, SCORES, 100.0)
    assert (nothing["tp"], nothing["precision"], nothing["f1"]) == (0, 0.0, 0.0)


def test_best_f1_threshold_is_the_best_of_all_cuts():
    best = best_f1_threshold(LABELS, SCORES)
    best_f1 = decision_report(LABELS, SCORES, best)["f1"]
    assert best_f1 == max(decision_report(LABELS, SCORES, t)["f1"] for t in SCORES)
    assert best == 4.0


def test_static_view_and_explorer_draw_every_threshold():
    images = torch.rand(len(SCORES), 1, 28, 28)
    fig = plot_threshold_rows(SCORES, LABELS, images, {"low": 2.5, "high": 6.5}, "[0, 1]")
    assert len(fig.axes) == 2 * (1 + 2 * 3)
    text = fig.axes[0].texts[0].get_text()
    name, threshold = text.splitlines()[:2]
    assert name == "low" and float(threshold.split()[1]) == 2.5
    assert "TP 4  FP 2" in text  # 3, 6 normal and every anomaly above 2.5
    shown = [ax for ax in fig.axes[1:7] if ax.images]
    # just below 2.5 only two scores exist (1, 2); just above, three (3, 4, 5)
    assert [float(ax.get_title()) for ax in shown] == [1, 2, 3, 4, 5]
    assert all(ax.images[0].get_clim() == (0, 1) for ax in shown)
    explorer = threshold_explorer(SCORES, LABELS, images, "[0, 1]", initial=4.0)
    slider = explorer.children[0]
    assert slider.value == 4.0 and slider.min == 1.0 and slider.max == 8.0


def test_images_in_minus_one_one_are_shown_in_the_same_greys():
    images = torch.rand(len(SCORES), 1, 28, 28)
    unit = plot_threshold_rows(SCORES, LABELS, images, {"t": 4.0}, "[0, 1]")
    minus_one_one = plot_threshold_rows(SCORES, LABELS, images * 2 - 1, {"t": 4.0}, "[-1, 1]")
    for a, b in zip(unit.axes, minus_one_one.axes):
        if a.images:
            np.testing.assert_allclose(a.images[0].get_array(), b.images[0].get_array(), atol=1e-6)
