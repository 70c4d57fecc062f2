"""Tests of companion.scores: per-image scores, reconstructions and detection metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn
from torch.utils.data import TensorDataset

from companion import make_loader
from companion.scores import (SCORE_FUNCTIONS, Reconstructions, blurred_max, detection_metrics,
                              l1_sum, metrics_by_anomaly_class, mse, one_minus_ssim, reconstruct)


class Lambda(nn.Module):
    """A network made of one function, for reconstructions with known scores."""

    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


@pytest.fixture
def known_pair():
    """Two 1x2x2 images of zeros and reconstructions with hand-picked pixel values."""
    x = torch.zeros(2, 1, 2, 2)
    reconstruction = torch.tensor([[1.0, -2.0, 3.0, -4.0],
                                   [0.5, 0.5, -0.5, 0.0]]).view(2, 1, 2, 2)
    return x, reconstruction


# --------------------------------------------------------------------------------------------
# score functions
# --------------------------------------------------------------------------------------------

def test_l1_sum_is_the_sum_of_absolute_differences_per_image(known_pair):
    x, reconstruction = known_pair
    assert l1_sum(x, reconstruction).tolist() == [10.0, 1.5]


def test_mse_is_the_mean_of_squared_differences_per_image(known_pair):
    x, reconstruction = known_pair
    assert mse(x, reconstruction).tolist() == pytest.approx([(1 + 4 + 9 + 16) / 4, 0.75 / 4])


def test_scores_are_symmetric_and_zero_for_a_perfect_reconstruction(known_pair):
    x, reconstruction = known_pair
    for score in (l1_sum, mse):
        assert torch.equal(score(x, reconstruction), score(reconstruction, x))
        assert torch.all(score(reconstruction, reconstruction) == 0)


def test_scores_cover_every_channel_of_each_image():
    x = torch.zeros(3, 3, 4, 4)
    reconstruction = torch.zeros(3, 3, 4, 4)
    reconstruction[1, 2, 0, 0] = -6.0  # one pixel of the blue channel of image 1
    assert l1_sum(x, reconstruction).tolist() == [0.0, 6.0, 0.0]
    assert mse(x, reconstruction).tolist() == pytest.approx([0.0, 36.0 / 48, 0.0])


def test_reconstructions_scores_use_the_named_function(known_pair):
    x, reconstruction = known_pair
    results = Reconstructions(x, reconstruction, np.array([1, 8]), np.array([0, 1]))
    np.testing.assert_allclose(results.scores(), [10.0, 1.5])
    np.testing.assert_allclose(results.scores("mse"), [7.5, 0.1875])
    assert set(SCORE_FUNCTIONS) == {"l1_sum", "mse", "blurred_max", "1-ssim"}


# --------------------------------------------------------------------------------------------
# reconstruct
# --------------------------------------------------------------------------------------------

@pytest.fixture
def labelled_images():
    """10 images, each filled with its own class, in a (image, class, label) data set."""
    classes = torch.tensor([1, 8, 1, 9, 1, 8, 1, 1, 9, 1])
    images = classes.float().view(-1, 1, 1, 1).expand(-1, 1, 28, 28).clone() / 10
    labels = (classes != 1).long()
    return TensorDataset(images, classes, labels)


def test_identity_network_gives_zero_scores_and_keeps_order(labelled_images):
    images, classes, labels = labelled_images.tensors
    results = reconstruct(nn.Identity(), make_loader(labelled_images, 4))
    assert np.all(results.scores("l1_sum") == 0) and np.all(results.scores("mse") == 0)
    assert torch.equal(results.inputs, images)
    assert results.classes.tolist() == classes.tolist()
    assert results.labels.tolist() == labels.tolist()


def test_reconstruct_keeps_images_classes_and_labels_together_when_shuffled(labelled_images):
    results = reconstruct(nn.Identity(), make_loader(labelled_images, 3, shuffle=True, seed=2))
    assert results.classes.tolist() != labelled_images.tensors[1].tolist()  # really shuffled
    assert sorted(results.classes.tolist()) == sorted(labelled_images.tensors[1].tolist())
    np.testing.assert_allclose(results.inputs[:, 0, 0, 0].numpy(), results.classes / 10, rtol=1e-6)
    assert results.labels.tolist() == [int(c != 1) for c in results.classes]


def test_reconstruct_scores_what_the_network_returns(labelled_images):
    images = labelled_images.tensors[0]
    results = reconstruct(Lambda(torch.zeros_like), make_loader(labelled_images, 4))
    assert torch.equal(results.outputs, torch.zeros_like(images))
    expected = images.abs().flatten(1).sum(dim=1).numpy()
    np.testing.assert_allclose(results.scores("l1_sum"), expected, rtol=1e-6)
    assert results.scores("l1_sum")[1] == pytest.approx(0.8 * 784, rel=1e-6)


def test_reconstruct_puts_the_network_in_eval_mode_without_gradients(labelled_images):
    seen = []

    def record(x):
        seen.append(torch.is_grad_enabled())
        return x

    net = Lambda(record).train()
    reconstruct(net, make_loader(labelled_images, 5))
    assert not net.training
    assert seen == [False, False]


# --------------------------------------------------------------------------------------------
# detection metrics
# --------------------------------------------------------------------------------------------

def test_perfect_separation_gives_auroc_and_ap_one():
    metrics = detection_metrics([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.9])
    assert metrics == {"auroc": 1.0, "average_precision": 1.0}
    assert all(type(value) is float for value in metrics.values())


def test_reversed_scores_give_auroc_zero():
    labels, scores = [0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]
    metrics = detection_metrics(labels, scores)
    assert metrics["auroc"] == 0.0
    # positives ranked last: precision 1/3 at recall 1/2, 2/4 at recall 1
    assert metrics["average_precision"] == pytest.approx(0.5 * 1 / 3 + 0.5 * 2 / 4)
    assert metrics["average_precision"] == pytest.approx(average_precision_score(labels, scores))


def test_higher_score_means_more_anomalous():
    metrics = detection_metrics([0, 1, 0, 1], [1.0, 3.0, 2.0, 4.0])
    assert metrics["auroc"] == 1.0
    assert detection_metrics([1, 0, 1, 0], [1.0, 3.0, 2.0, 4.0])["auroc"] == 0.0


def test_partial_overlap_matches_sklearn():
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    scores = np.array([1.0, 2.0, 3.0, 4.0, 2.5, 5.0, 0.5])
    metrics = detection_metrics(labels, scores)
    assert metrics["auroc"] == pytest.approx(6 / 12)  # 2.5, 5.0, 0.5 win 2 + 4 + 0 of 12 pairs
    assert metrics["auroc"] == roc_auc_score(labels, scores)
    assert metrics["average_precision"] == average_precision_score(labels, scores)


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1], np.zeros(4, dtype=int)])
def test_metrics_need_both_normal_and_anomalous_items(labels):
    with pytest.raises(ValueError, match="needs both normal"):
        detection_metrics(labels, np.arange(len(labels), dtype=float))


def test_metrics_by_anomaly_class_uses_normal_plus_that_class():
    normal_scores = [1.0, 2.0, 3.0, 4.0]
    classes = np.array([1, 1, 1, 1, 8, 8, 9, 9])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array(normal_scores + [10.0, 11.0] + [2.5, 0.5])

    by_class = metrics_by_anomaly_class(classes, labels, scores)

    assert list(by_class) == [8, 9]
    assert all(type(c) is int for c in by_class)
    assert by_class[8] == {"auroc": 1.0, "average_precision": 1.0}
    # class 9: 2.5 beats two normal scores, 0.5 beats none: 2 of 8 pairs
    assert by_class[9]["auroc"] == 0.25
    assert by_class[9]["auroc"] == roc_auc_score([0, 0, 0, 0, 1, 1], normal_scores + [2.5, 0.5])
    assert by_class[8]["auroc"] == roc_auc_score([0, 0, 0, 0, 1, 1], normal_scores + [10.0, 11.0])
    overall = detection_metrics(labels, scores)["auroc"]
    assert overall == roc_auc_score(labels, scores) == pytest.approx((8 + 2) / 16)


def test_metrics_by_anomaly_class_with_several_normal_classes():
    classes = np.array([0, 1, 0, 1, 7, 7, 5])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.4, 0.2, 0.3, 0.35, 0.9, 0.05])
    by_class = metrics_by_anomaly_class(classes, labels, scores)
    assert list(by_class) == [5, 7]
    assert by_class[5]["auroc"] == 0.0
    assert by_class[7]["auroc"] == pytest.approx(7 / 8)  # 0.35 loses to 0.4 only


def test_blurred_max_prefers_one_strong_patch_to_thin_noise_of_the_same_total():
    x = torch.zeros(2, 1, 28, 28)
    reconstruction = x.clone()
    reconstruction[0, 0, 10:14, 10:14] = 1.0  # a 4x4 patch: total 16
    reconstruction[1, 0] = 16.0 / 784  # the same total, spread over every pixel
    np.testing.assert_allclose(l1_sum(x, reconstruction), [16.0, 16.0], rtol=1e-5)
    patch, spread = blurred_max(x, reconstruction).tolist()
    assert patch > 10 * spread
    assert blurred_max(x, x).tolist() == [0.0, 0.0]


def test_one_minus_ssim_is_zero_for_a_perfect_copy_and_grows_with_damage():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 28, 28, generator=generator) * 2 - 1  # images in [-1, 1]
    damaged = x.clone()
    damaged[1, 0, 8:20, 8:20] = -1.0
    damaged[2] = -x[2]
    scores = one_minus_ssim(x, damaged)
    assert scores[0].item() == pytest.approx(0.0, abs=1e-5)
    assert 0 < scores[1].item() < scores[2].item()
