"""The ALOCC paper's F1 protocol: test mixtures with a given share of anomalies (chapter 06)."""

import numpy as np
import pytest

from companion.benchmark import outlier_share_f1
from companion.metrics import OUTLIER_SHARES, f1_by_outlier_share, outlier_share_mixtures


def test_each_mixture_holds_every_normal_item_and_the_share_of_anomalies():
    labels = np.r_[np.zeros(300), np.ones(2700)].astype(int)
    np.random.default_rng(0).shuffle(labels)
    mixtures = outlier_share_mixtures(labels, seed=3)
    assert list(mixtures) == list(OUTLIER_SHARES)
    for share, positions in mixtures.items():
        assert len(set(positions.tolist())) == len(positions), "no item drawn twice"
        assert np.sum(labels[positions] == 0) == 300, "every normal item, each once"
        anomalies = int(np.sum(labels[positions] == 1))
        assert anomalies == round(300 * share / (1 - share))
        assert abs(anomalies / len(positions) - share) < 1 / 300
    again = outlier_share_mixtures(labels, seed=3)
    other = outlier_share_mixtures(labels, seed=4)
    assert all(np.array_equal(again[s], mixtures[s]) for s in OUTLIER_SHARES)
    assert not np.array_equal(other[0.1], mixtures[0.1])


def test_too_few_anomalies_or_a_bad_share_is_an_error():
    labels = np.r_[np.zeros(100), np.ones(50)]
    with pytest.raises(ValueError, match="a share of 0.4 needs 67 anomalies; the test set has 50"):
        outlier_share_mixtures(labels)
    with pytest.raises(ValueError, match="outlier share 1.0"):
        outlier_share_mixtures(labels, shares=(1.0,))


def test_f1_against_hand_counts():
    labels = np.r_[np.zeros(90), np.ones(910)].astype(int)
    perfect = labels.astype(float)
    assert f1_by_outlier_share(labels, perfect, 0.5) == {s: 1.0 for s in OUTLIER_SHARES}
    flag_all = np.ones(len(labels))
    assert f1_by_outlier_share(labels, flag_all, 0.5) == {s: 0.0 for s in OUTLIER_SHARES}
    as_anomaly = f1_by_outlier_share(labels, flag_all, 0.5, positive="anomaly")
    for share, f1 in as_anomaly.items():  # precision = share, recall 1
        anomalies = round(90 * share / (1 - share))
        assert f1 == pytest.approx(2 * anomalies / (anomalies + 90 + anomalies))
    # Keep everything as normal: precision of "normal" = 1 - share, recall 1.
    keep_all = f1_by_outlier_share(labels, np.zeros(len(labels)), 0.5)
    for share, f1 in keep_all.items():
        anomalies = round(90 * share / (1 - share))
        assert f1 == pytest.approx(2 * 90 / (90 + anomalies + 90))
    with pytest.raises(ValueError, match="positive='inlier'"):
        f1_by_outlier_share(labels, perfect, 0.5, positive="inlier")


def test_benchmark_summary_averages_seeds_then_classes():
    rows = [{"model": "alocc", "dataset": "mnist", "normal_class": c, "seed": s,
             "f1_by_outlier_share": {"D(R(x))": {"0.1": f, "0.5": f / 2}}}
            for c, s, f in [(0, 0, 0.8), (0, 1, 0.6), (1, 0, 1.0)]]
    rows.append({"model": "conv_ae", "dataset": "mnist", "normal_class": 0, "seed": 0,
                 "f1_by_outlier_share": {}})
    assert outlier_share_f1(rows, "alocc", "mnist", "D(R(x))") == pytest.approx(
        {"0.1": (0.7 + 1.0) / 2, "0.5": (0.35 + 0.5) / 2})
    assert outlier_share_f1(rows, "conv_ae", "mnist", "D(R(x))") == {}
