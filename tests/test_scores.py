"""Tests of companion.scores (score functions, the Scores container), the autoencoder
detectors' reconstructions, and companion.metrics (detection metrics, tables)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

from companion import ConfigError, detectors
from companion.metrics import detection_metrics, format_table, metrics_by_anomaly_class
from companion.models import DenseAutoencoder
from companion.scores import (SCORE_FUNCTIONS, Scores, blurred_max, l1_sum, mse, one_minus_ssim,
                              reconstruction_scores)
from conftest import labelled_subset


class Lambda(nn.Module):
    """A network made of one function, for reconstructions with known scores."""

    anomaly_map = staticmethod(DenseAutoencoder.anomaly_map)

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


def test_reconstruction_scores_give_every_score_function():
    x = torch.zeros(2, 1, 28, 28)
    reconstruction = x.clone()
    reconstruction[0, 0, 3, 4] = 2.0
    reconstruction[1] = 0.5
    values = reconstruction_scores(x, reconstruction, "[-1, 1]")
    assert list(values) == list(SCORE_FUNCTIONS) == ["mse", "l1_sum", "blurred_max", "1-ssim"]
    assert all(isinstance(v, np.ndarray) and v.shape == (2,) for v in values.values())
    np.testing.assert_allclose(values["l1_sum"], [2.0, 0.5 * 784])
    np.testing.assert_allclose(values["mse"], [4.0 / 784, 0.25], rtol=1e-6)
    for name, function in SCORE_FUNCTIONS.items():
        np.testing.assert_array_equal(values[name], function(x, reconstruction, "[-1, 1]").numpy())
    with pytest.raises(ConfigError, match=r"value_range='0-1'"):
        reconstruction_scores(x, reconstruction, "0-1")


# --------------------------------------------------------------------------------------------
# the Scores container
# --------------------------------------------------------------------------------------------

@pytest.fixture
def scores():
    """Six images: three normal (class 1), two of class 8, one of class 9; two score names."""
    return Scores({"error": np.array([1.0, 2.0, 3.0, 10.0, 2.5, 0.5]),
                   "other": np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])}, "error",
                  np.array([0, 0, 0, 1, 1, 1]), np.array([1, 1, 1, 8, 8, 9]), "[0, 1]",
                  maps=np.arange(6 * 4).reshape(6, 2, 2), inputs=torch.arange(6.0).view(6, 1, 1, 1),
                  outputs=torch.zeros(6, 1, 1, 1))


def test_scores_headline_auroc_and_every_auroc(scores):
    assert len(scores) == 6 and scores.names == ["error", "other"]
    assert scores.auroc() == scores.auroc("error") == roc_auc_score(scores.labels, scores["error"])
    assert scores.auroc("other") == 0.0
    assert list(scores.aurocs()) == ["error", "other"]
    assert scores.metrics() == detection_metrics(scores.labels, scores["error"])
    by_class = scores.by_anomaly_class()
    assert list(by_class) == [8, 9] and by_class[9]["auroc"] == 0.0
    assert by_class[8]["auroc"] == pytest.approx(5 / 6)  # 10 beats all three, 2.5 two of three


def test_scores_aurocs_put_the_headline_first(scores):
    other_first = Scores(scores.values, "other", scores.labels, scores.classes, "[0, 1]")
    assert list(other_first.aurocs()) == ["other", "error"]


def test_unknown_score_names_are_config_errors(scores):
    with pytest.raises(ConfigError,
                       match=r"^no score 'mse'; this detector gives \['error', 'other'\]$"):
        scores["mse"]
    with pytest.raises(ConfigError, match="headline score 'mse' is not among"):
        Scores(scores.values, "mse", scores.labels, scores.classes, "[0, 1]")


def test_select_keeps_every_field_aligned(scores):
    part = scores.select([4, 0])
    assert part["error"].tolist() == [2.5, 1.0] and part["other"].tolist() == [2.0, 6.0]
    assert part.labels.tolist() == [1, 0] and part.classes.tolist() == [8, 1]
    assert np.array_equal(part.maps, scores.maps[[4, 0]])
    assert part.inputs.flatten().tolist() == [4.0, 0.0] and part.outputs.shape == (2, 1, 1, 1)
    assert part.headline == "error" and part.value_range == "[0, 1]"
    assert len(scores) == 6, "the original is left alone"
    bare = Scores(scores.values, "error", scores.labels, scores.classes, "[0, 1]").select([1])
    assert bare.maps is None and bare.inputs is None and bare.outputs is None


# --------------------------------------------------------------------------------------------
# the autoencoder detectors' reconstructions and scores
# --------------------------------------------------------------------------------------------

@pytest.fixture
def labelled_images():
    """10 images in [0, 1], each filled with its own class / 10; classes 8 and 9 anomalies."""
    classes = torch.tensor([1, 8, 1, 9, 1, 8, 1, 1, 9, 1])
    images = classes.float().view(-1, 1, 1, 1).expand(-1, 1, 28, 28).clone() / 10
    return labelled_subset(images, classes, anomaly_classes=[8, 9])


def detector_with(net, data):
    """A dense autoencoder detector fitted for one epoch, then given ``net`` as its network."""
    detector = detectors.make("dense_ae", latent_dim=2, epochs=1, device="cpu", progress=False)
    detector.fit(data)
    detector.net = net
    return detector


def test_identity_network_gives_zero_scores_and_keeps_order(labelled_images):
    images, classes, labels = labelled_images.tensors()
    scores = detector_with(Lambda(lambda x: x), labelled_images).score(labelled_images)
    assert scores.headline == "mse"
    assert all(np.all(scores[name] == 0) for name in ("l1_sum", "mse", "blurred_max"))
    assert np.allclose(scores["1-ssim"], 0, atol=1e-5)
    assert torch.equal(scores.inputs, images) and torch.equal(scores.outputs, images)
    assert scores.classes.tolist() == classes.tolist()
    assert scores.labels.tolist() == labels.tolist() == [int(c in (8, 9)) for c in classes]
    assert scores.value_range == "[0, 1]" and np.all(scores.maps == 0)


def test_autoencoder_scores_what_the_network_returns(labelled_images):
    images = labelled_images.tensors()[0]
    scores = detector_with(Lambda(torch.zeros_like), labelled_images).score(labelled_images)
    assert torch.equal(scores.outputs, torch.zeros_like(images))
    expected = images.abs().flatten(1).sum(dim=1).numpy()
    np.testing.assert_allclose(scores["l1_sum"], expected, rtol=1e-6)
    assert scores["l1_sum"][1] == pytest.approx(0.8 * 784, rel=1e-6)
    np.testing.assert_allclose(scores.maps, images[:, 0].numpy())
    assert scores.auroc() == 1.0  # the anomalies are the brighter images


def test_reconstruct_runs_the_network_in_eval_mode_without_gradients(labelled_images):
    seen = []

    def record(x):
        seen.append(torch.is_grad_enabled())
        return x

    net = Lambda(record).train()
    detector = detector_with(net, labelled_images)
    images = torch.rand(1200, 1, 28, 28)
    assert torch.equal(detector.reconstruct(images), images)
    assert not net.training
    assert seen == [False, False, False], "in chunks of EVALUATION_BATCH_SIZE (512)"


def test_score_checks_the_images_against_the_fitted_detector(labelled_images):
    detector = detectors.make("dense_ae", latent_dim=2, epochs=1, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="not fitted yet; call fit"):
        detector.score(labelled_images)
    detector.fit(labelled_images)
    other_range = labelled_subset(labelled_images.tensors()[0] * 2 - 1, [1] * 10,
                                  value_range="[-1, 1]")
    with pytest.raises(ConfigError, match=r"is in \[-1, 1\], but the detector was fitted on "
                                          r"images in \[0, 1\]"):
        detector.score(other_range)
    with pytest.raises(ConfigError, match=r"images of shape \(1, 14, 14\), but the detector was "
                                          r"fitted on \(1, 28, 28\)"):
        detector.score(labelled_subset(torch.zeros(2, 1, 14, 14), [1, 1]))
    with pytest.raises(ConfigError, match="does not say its value range"):
        detector.score(torch.utils.data.TensorDataset(torch.zeros(2, 1, 28, 28)))


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
    scores = one_minus_ssim(x, damaged, "[-1, 1]")
    assert scores[0].item() == pytest.approx(0.0, abs=1e-5)
    assert 0 < scores[1].item() < scores[2].item()


def test_one_minus_ssim_is_told_the_value_range_and_never_guesses():
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 28, 28, generator=generator)
    damaged = x.clone()
    damaged[:, 0, 5:15, 5:15] = 0.0
    in_unit_range = one_minus_ssim(x, damaged, "[0, 1]")
    in_minus_one_one = one_minus_ssim(x * 2 - 1, damaged * 2 - 1, "[-1, 1]")
    assert torch.allclose(in_unit_range, in_minus_one_one, atol=1e-5)
    assert not torch.allclose(one_minus_ssim(x, damaged, "[-1, 1]"), in_unit_range, atol=1e-3)


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------

def test_format_table_aligns_numbers_text_and_blanks():
    table = format_table({"conv_ae": {"auroc": 0.91234, "note": "ok"}, "alocc": {"auroc": 0.5}},
                         ["auroc", "note"], "model", width=8)
    assert table.splitlines() == ["model       auroc    note",
                                  "conv_ae    0.9123      ok",
                                  "alocc      0.5000        "]
    percent = format_table({"a": {"x": np.float32(0.25)}}, ["x"], number_format=".1%")
    assert percent.endswith("25.0%")


def test_format_table_widens_a_column_that_a_header_or_cell_overflows():
    # chapter 10's settings table once printed "40normalised restoration mse", chapter 04's
    # header "aurocaverage_precision": a cell longer than the width ran into its neighbour
    table = format_table({"restoration_plus": {"epochs": 40, "score": "normalised restoration mse"},
                          "vae": {"epochs": 20, "score": "nll"}},
                         ["epochs", "score"], "model", width=8).splitlines()
    assert [line.split(maxsplit=2) for line in table] == [
        ["model", "epochs", "score"], ["restoration_plus", "40", "normalised restoration mse"],
        ["vae", "20", "nll"]]
    assert len({len(line) for line in table}) == 1, "every line as wide as the widest"
    header = format_table({"m": {"auroc": 0.5, "average_precision": 0.25}},
                          ["auroc", "average_precision"], width=12).splitlines()[0]
    assert header.split() == ["auroc", "average_precision"]
