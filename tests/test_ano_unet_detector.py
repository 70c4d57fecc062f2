"""Chapter 07's companion helpers: G(x) = x at the start, reference and tuning sets, map rows."""

import numpy as np
import pytest
import torch

import companion
from companion.detectors.ano_unet import (optimise_batched, optimise_one_by_one,
                                          timed_in_fresh_process, tuning_images)
from companion.detectors.fnet import reference_sets
from companion.errors import ConfigError
from companion.models.ano_unet import initial_unet
from companion.models.fnet import FeatureNet
from companion.plots import plot_detector_maps
from companion.scores import Scores


@pytest.fixture
def untrained():
    torch.manual_seed(0)
    net = FeatureNet(num_classes=3, feature_dim=8, base_channels=4)
    return net, net.features(torch.rand(4, 1, 28, 28)).mean(dim=0).detach()


@pytest.fixture(scope="module")
def mnist_split(tmp_path_factory):
    return companion.one_class_split("mnist", [1], [8], data_dir=tmp_path_factory.mktemp("data"),
                                     value_range="[0, 1]", verbose=False, val_fraction=0.2)


def test_every_u_net_starts_as_the_identity():
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(initial_unet(0)(x), x)
        assert torch.equal(initial_unet(7, base_channels=4)(x), x)


def test_beta_zero_leaves_every_image_as_it_is(untrained):
    net, centre = untrained
    x = torch.rand(3, 1, 28, 28)
    fit = optimise_batched(x, net, centre, beta=0.0, num_steps=5, progress=False)
    assert torch.equal(fit.generated, x) and torch.equal(fit.pixel_score, torch.zeros(3))


def test_black_and_white_pixels_can_change_from_the_first_step(untrained):
    net, centre = untrained
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 10:14, 4:24] = 1.0  # every pixel exactly 0 or 1, where torch.clamp stops gradients
    fit = optimise_batched(x, net, centre, beta=10.0, num_steps=5, progress=False)
    assert (fit.pixel_score > 0).all()
    assert fit.generated.min() >= 0 and fit.generated.max() <= 1


def test_batched_equals_one_by_one_from_the_identity_in_float64(untrained):
    net, centre = untrained
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    settings = {"beta": 10.0, "num_steps": 20, "lr": 0.01, "seed": 3, "progress": False}
    alone = optimise_one_by_one(x, net, centre, **settings)
    together = optimise_batched(x, net, centre, **settings)
    assert not torch.allclose(alone.generated, x, atol=1e-3)  # the steps did change G
    assert torch.allclose(alone.generated, together.generated, atol=1e-10)
    assert torch.allclose(alone.pixel_score, together.pixel_score, rtol=1e-10)
    assert torch.allclose(alone.lc_score, together.lc_score, rtol=1e-10)


def test_timed_in_fresh_process_reports_speed_memory_and_scores(untrained):
    net, centre = untrained
    x = torch.rand(2, 1, 28, 28)
    timing = timed_in_fresh_process(optimise_batched, x, net, centre, num_steps=1, progress=False)
    assert timing["U-Nets at once"] == 2 and timing["seconds"] > 0
    assert timing["images/s"] == pytest.approx(2 / timing["seconds"])
    assert timing["peak MiB"] is None or timing["peak MiB"] >= 0
    expected = optimise_batched(x, net, centre, num_steps=1, progress=False).pixel_score
    assert torch.allclose(timing["pixel_score"], expected, atol=1e-5)


def test_reference_sets_leave_out_the_anomaly_or_the_whole_dataset(mnist_split, tmp_path):
    own, other = reference_sets(mnist_split, 300, seed=0, data_dir=tmp_path).items()
    assert own[0] == "(a) mnist without [8]" and other[0] == "(b) fashion-mnist"
    assert len(own[1]) == len(other[1]) == 300
    assert set(own[1].class_counts()) == set(range(10)) - {8}  # the normal class "1" included
    assert own[1].dataset is mnist_split.train.dataset
    assert type(other[1].dataset).__name__ == "FashionMNIST"
    assert own[1].value_range == other[1].value_range == "[0, 1]"


def test_tuning_images_are_balanced_held_out_and_never_test_images(mnist_split, tmp_path):
    reference = reference_sets(mnist_split, 300, seed=0, data_dir=tmp_path)
    own = next(iter(reference.values()))
    tuning = tuning_images(mnist_split, 40, seed=1, exclude=[own])
    assert tuning.class_counts() == {1: 20, 8: 20}
    assert tuning.dataset is mnist_split.train.dataset  # the training split, not the test one
    normal = tuning.indices[tuning.anomaly_labels == 0]
    assert torch.isin(normal, mnist_split.val.indices).all()  # held out, so never in C
    assert not torch.isin(tuning.indices, mnist_split.train.indices).any()
    assert not torch.isin(tuning.indices, own.indices).any()
    assert torch.equal(tuning_images(mnist_split, 40, seed=1, exclude=[own]).indices,
                       tuning.indices)


def test_tuning_images_name_what_is_missing(mnist_split, tmp_path):
    no_val = companion.one_class_split("mnist", [1], [8], data_dir=tmp_path,
                                       value_range="[0, 1]", verbose=False)
    with pytest.raises(ConfigError, match="val_fraction"):
        tuning_images(no_val, 10)
    other = list(reference_sets(mnist_split, 10, data_dir=tmp_path).values())[1]
    with pytest.raises(ConfigError, match="another dataset"):
        tuning_images(mnist_split, 10, exclude=[other])
    with pytest.raises(ConfigError, match="GRID_IMAGES=0"):
        tuning_images(mnist_split, 0)


def scores_of(labels, seed=0):
    generator = torch.Generator().manual_seed(seed)
    n = len(labels)
    labels = np.asarray(labels)
    return Scores({"score": np.arange(n, dtype=float)}, "score", labels, labels * 7 + 1, "[0, 1]",
                  maps=torch.rand(n, 28, 28, generator=generator).numpy() * 3,
                  inputs=torch.rand(n, 1, 28, 28, generator=generator),
                  outputs=torch.rand(n, 1, 28, 28, generator=generator))


def test_plot_detector_maps_shows_the_first_normal_and_anomalous_images():
    first, second = scores_of([1, 0, 0, 1, 0, 1]), scores_of([1, 0, 0, 1, 0, 1], seed=1)
    fig = plot_detector_maps({"A output": (first, "outputs"), "A map": (first, "maps"),
                              "B map": (second, "maps")}, "maps", [str(c) for c in range(10)],
                             per_side=2)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 4 * 4  # the inputs and three rows, two normal and two anomalous
    assert [ax.get_title() for ax in image_axes[:4]] == ["1", "1", "8", "8"]
    positions = [1, 2, 0, 3]
    assert np.allclose(image_axes[8].images[0].get_array(), first.maps[positions[0]])
    assert np.allclose(image_axes[12].images[0].get_array(), second.maps[positions[0]])
    with pytest.raises(ValueError, match="different images"):
        plot_detector_maps({"A": (first, "maps"), "C": (scores_of([0, 1, 1, 0, 0, 1]), "maps")},
                           "maps")
