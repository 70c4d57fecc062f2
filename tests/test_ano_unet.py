"""Ano-Unet (chapter 07): the f-Net detector, its centre, and per-image U-Nets batched or one by
one, through the models and through the ``fnet_distance``, ``fnet_oe`` and ``ano_unet``
detectors."""

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from companion import detectors
from companion.detectors import AnoUnetDetector, FNetDetector
from companion.errors import ConfigError
from companion.detectors import ano_unet as ano_unet_detector, fnet as fnet_detector
from companion.detectors.ano_unet import (DEFAULT_MEMORY_BUDGET_BYTES, bytes_per_image,
                                          images_per_chunk, optimise_batched, optimise_one_by_one)
from companion.models import ano_unet, fnet as fnet_module
from companion.models.ano_unet import UNet, initial_unet
from companion.models.fnet import FeatureNet, class_targets, feature_distance
from companion.plots import plot_map_rows
from companion.profiling import PeakMemory, in_fresh_process
from conftest import bars, labelled_subset

ROOT = Path(__file__).resolve().parent.parent


def vertical_and_horizontal(n, seed=0):
    """``n`` vertical bars (class 3, normal) then ``n`` horizontal ones (class 7, anomaly)."""
    return labelled_subset(torch.cat([bars(n, True, seed), bars(n, False, seed)]),
                           [3] * n + [7] * n, anomaly_classes=[7])


@pytest.fixture(scope="module")
def trained():
    """An f-Net detector taught vertical bars (class 3) from horizontal ones (class 7); its
    centre C is that of 32 vertical bars.

    Unlike a chapter, the reference set holds the anomaly class: these tests check the plumbing
    (remapped ids, C, score direction), not how far f generalises to unseen classes.
    """
    reference = labelled_subset(torch.cat([bars(48, True), bars(48, False)]), [3] * 48 + [7] * 48)
    train = labelled_subset(bars(32, True, seed=1), [3] * 32)
    detector = detectors.make("fnet_distance", reference=reference, epochs=6, lr=3e-3,
                              batch_size=16, feature_dim=8, device="cpu", seed=0, progress=False)
    history = detector.fit(train)
    return detector, history, train


@pytest.fixture
def untrained():
    torch.manual_seed(0)
    net = FeatureNet(num_classes=3, feature_dim=8, base_channels=4)
    return net, net.features(torch.rand(4, 1, 28, 28)).mean(dim=0).detach()


def test_fnet_shapes_and_features_of_length_alpha():
    net = FeatureNet(channels=3, num_classes=5, feature_dim=12, alpha=7.0)
    x = torch.rand(6, 3, 28, 28)
    features = net.features(x)
    assert net(x).shape == (6, 5) and features.shape == (6, 12)
    assert torch.allclose(features.norm(dim=1), torch.full((6,), 7.0))
    assert torch.allclose(net(x), net.classifier(features))  # the logits see alpha * unit feature


def test_training_lowers_the_loss_and_remaps_class_ids(trained):
    detector, history, _ = trained
    assert isinstance(detector, FNetDetector)
    assert detector.classes == [3, 7]  # ids 3 and 7 became logits 0 and 1
    assert detector.net.classifier.out_features == 2
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] > 0.9
    assert history.chosen_epoch == 6


def test_class_targets_maps_ids_and_rejects_unknown_ones():
    assert class_targets(torch.tensor([9, 2, 9, 5]), [2, 5, 9]).tolist() == [2, 0, 2, 1]
    with pytest.raises(ConfigError, match="class 4"):
        class_targets(torch.tensor([2, 4]), [2, 5, 9])


def test_centre_is_the_mean_feature_and_distance_flags_the_other_orientation(trained):
    detector, _, train = trained
    normal = train.tensors()[0]
    assert detector.centre.shape == (8,)
    with torch.no_grad():
        assert torch.allclose(detector.centre, detector.net.features(normal).mean(dim=0),
                              atol=1e-5)
    test = vertical_and_horizontal(8, seed=2)
    scores = detector.score(test)
    assert scores.names == ["centre distance"] and scores.headline == "centre distance"
    distance = scores["centre distance"]
    assert distance.shape == (16,)
    assert distance[8:].min() > distance[:8].max()
    assert scores.auroc() == 1.0
    with torch.no_grad():
        by_hand = feature_distance(detector.net, test.tensors()[0], detector.centre)
    assert np.allclose(distance, by_hand.numpy(), rtol=1e-5)


def test_centre_images_limits_the_images_the_centre_is_computed_from(trained):
    detector, _, train = trained
    few = detectors.make("fnet_distance", reference=detector.settings["reference"], epochs=1,
                         feature_dim=8, centre_images=5, device="cpu", progress=False)
    few.fit(train)
    chosen = train.sample(5, few.seed).tensors()[0]
    with torch.no_grad():
        assert torch.allclose(few.centre, few.net.features(chosen).mean(dim=0), atol=1e-5)


def test_outlier_exposure_adds_the_normal_images_as_one_more_class(trained):
    detector, _, train = trained
    oe = detectors.make("fnet_oe", reference=detector.settings["reference"], epochs=6, lr=3e-3,
                        batch_size=16, feature_dim=8, device="cpu", progress=False)
    assert oe.settings["outlier_exposure"] is True
    oe.fit(train)
    assert oe.classes == [3, 7, 8]  # the normal images are class 8, one past the largest id
    scores = oe.score(vertical_and_horizontal(8, seed=2))
    assert scores.names == ["centre distance", "1 - P(normal)"]
    assert scores.headline == "centre distance"
    assert ((0 <= scores["1 - P(normal)"]) & (scores["1 - P(normal)"] <= 1)).all()


def test_outlier_exposure_takes_as_many_normal_images_as_a_reference_class_has():
    reference = labelled_subset(torch.cat([bars(48, False), torch.rand(48, 1, 28, 28)]),
                                [7] * 48 + [5] * 48)
    oe = detectors.make("fnet_oe", reference=reference, epochs=1, device="cpu", progress=False)
    oe.image_shape, oe.value_range = (1, 28, 28), "[0, 1]"
    _, classes = oe._reference(labelled_subset(bars(64, True), [3] * 64))
    assert torch.unique(classes, return_counts=True)[1].tolist() == [48, 48, 48]


def test_batched_equals_one_by_one(untrained):
    net, centre = untrained
    x = torch.rand(3, 1, 28, 28)
    settings = {"beta": 2.0, "num_steps": 3, "lr": 0.01, "seed": 5, "progress": False}
    alone = optimise_one_by_one(x, net, centre, **settings)
    together = optimise_batched(x, net, centre, **settings)
    with torch.no_grad():
        start = initial_unet(5)(x)
    assert not torch.allclose(alone.generated, start, atol=1e-4)  # the steps did change G
    assert together.chunk_size == 3 and alone.chunk_size == 1
    assert torch.allclose(alone.generated, together.generated, atol=1e-5)
    assert torch.allclose(alone.heatmaps, together.heatmaps, atol=1e-5)
    assert torch.allclose(alone.pixel_score, together.pixel_score, rtol=1e-4)
    assert torch.allclose(alone.lc_score, together.lc_score, rtol=1e-4)
    assert torch.allclose(alone.heatmaps.sum(dim=(1, 2)), alone.pixel_score, rtol=1e-4)


def test_results_do_not_depend_on_chunk_size(untrained):
    net, centre = untrained
    x = torch.rand(5, 1, 28, 28)
    fits = [optimise_batched(x, net, centre, num_steps=3, batch_size=size, progress=False)
            for size in (1, 2, None)]
    assert [fit.chunk_size for fit in fits] == [1, 2, 5]
    for fit in fits[1:]:
        assert torch.allclose(fit.generated, fits[0].generated, atol=1e-5)
        assert torch.allclose(fit.pixel_score, fits[0].pixel_score, rtol=1e-4)
        assert torch.allclose(fit.lc_score, fits[0].lc_score, rtol=1e-4)


def test_chunk_size_is_bounded_by_budget_and_batch_size(untrained):
    net, _ = untrained
    per_image = bytes_per_image(net, (1, 28, 28))
    assert bytes_per_image(net, (1, 28, 28), base_channels=16) > per_image > 0
    assert images_per_chunk(1000, None, 10 * per_image + 1, per_image) == 10
    assert images_per_chunk(1000, 4, 10 * per_image, per_image) == 4
    assert images_per_chunk(3, None, 10 * per_image, per_image) == 3
    assert images_per_chunk(1000, None, per_image // 2, per_image) == 1  # never below one image
    default_chunk = DEFAULT_MEMORY_BUDGET_BYTES // per_image
    assert images_per_chunk(10**6, None, None, per_image) == default_chunk
    with pytest.raises(ConfigError, match="unet_batch_size=0"):
        images_per_chunk(10, 0, None, per_image)


def test_optimise_batched_sizes_chunks_by_the_budget(untrained):
    net, centre = untrained
    per_image = bytes_per_image(net, (1, 28, 28))
    fit = optimise_batched(torch.rand(5, 1, 28, 28), net, centre, num_steps=1,
                           memory_budget_bytes=2 * per_image, progress=False)
    assert fit.chunk_size == 2 and fit.generated.shape == (5, 1, 28, 28)


def test_beta_zero_is_pure_reconstruction(untrained):
    net, centre = untrained
    far = centre + 3.0
    x = torch.rand(2, 1, 28, 28)

    def fit(beta, c):
        return optimise_batched(x, net, c, beta=beta, num_steps=4, progress=False)

    near_fit, far_fit = fit(0.0, centre), fit(0.0, far)
    assert torch.equal(near_fit.generated, far_fit.generated)  # C plays no part in the steps
    assert torch.equal(near_fit.pixel_score, far_fit.pixel_score)
    assert (far_fit.lc_score > near_fit.lc_score).all()  # L_C is still measured, against C
    assert not torch.allclose(fit(50.0, centre).generated, fit(50.0, far).generated, atol=1e-4)


def test_ano_unet_scores_highlight_the_anomaly(trained):
    fnet, _, train = trained
    detector = detectors.make("ano_unet", fnet=fnet, device="cpu", progress=False)
    assert isinstance(detector, AnoUnetDetector)
    history = detector.fit(train)
    assert history is fnet.history, "a fitted f-Net is used as it is, not trained again"
    test = vertical_and_horizontal(3, seed=3)
    images = test.tensors()[0]
    scores = detector.score(test)
    assert scores.headline == "pixel difference"
    assert scores.names == ["pixel difference", "L_C", "centre distance"]
    assert scores.classes.tolist() == [3, 3, 3, 7, 7, 7]
    assert scores.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert scores.maps.shape == (6, 28, 28) and scores.outputs.shape == (6, 1, 28, 28)
    assert np.allclose(scores.maps, np.abs(images.numpy() - scores.outputs.numpy()).sum(axis=1))
    assert np.allclose(scores["pixel difference"], scores.maps.reshape(6, -1).sum(axis=1),
                       rtol=1e-4)
    assert np.allclose(scores["centre distance"], fnet.score(test)["centre distance"])
    for name in ("pixel difference", "L_C"):
        assert scores[name][3:].min() > scores[name][:3].max(), name


def test_ano_unet_can_change_a_black_and_white_image(trained):
    """With G(x) = x at the start, every pixel of such an image sits on the clip's bound; the
    gradient must still reach U (a zero gradient there left G unchanged for ever)."""
    fnet, _, _ = trained
    detector = detectors.make("ano_unet", fnet=fnet, steps=10, device="cpu", progress=False)
    detector.fit(labelled_subset(bars(4, True), [3] * 4))
    scores = detector.score(labelled_subset(bars(2, False, edge=0.0), [7, 7], anomaly_classes=[7]))
    assert (scores["pixel difference"] > 0).all()


def test_ano_unet_trains_its_own_f_net_with_the_renamed_settings(trained):
    _, _, train = trained
    reference = labelled_subset(torch.cat([bars(8, True), bars(8, False)]), [3] * 8 + [7] * 8)
    detector = detectors.make("ano_unet", reference=reference, fnet_epochs=2, fnet_lr=0.002,
                              fnet_batch_size=4, feature_dim=8, lr=0.05, steps=1,
                              device="cpu", progress=False)
    history = detector.fit(train)
    assert detector.fnet.settings["epochs"] == 2 and detector.fnet.settings["batch_size"] == 4
    assert detector.fnet.settings["feature_dim"] == 8
    assert detector.fnet.settings["reference"] is reference
    assert history["epoch"] == [1, 2]
    with pytest.raises(ConfigError, match="fnet=3; use None"):
        detectors.make("ano_unet", fnet=3)
    with pytest.raises(ConfigError, match="a fitted fnet_distance detector"):
        detectors.make("ano_unet", fnet=detectors.make("fnet_distance"))


def test_the_f_net_trains_with_fnet_lr_not_the_u_net_s_lr():
    """fnet_lr is the f-Net's learning rate, lr the U-Net's; one must not overwrite the other."""
    detector = detectors.make("ano_unet", fnet_lr=0.002, lr=0.05, device="cpu", progress=False)
    detector.image_shape, detector.value_range = (1, 28, 28), "[0, 1]"
    detector._build()
    assert detector.settings["lr"] == 0.05
    assert detector.fnet.settings["lr"] == 0.002


def test_unet_has_no_normalisation_and_never_mixes_images():
    unet = UNet(base_channels=4).train()
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
    assert not any(isinstance(module, norms) for module in unet.modules())
    torch.manual_seed(0)
    for parameter in unet.parameters():  # whatever the initialisation, every layer does work
        nn.init.normal_(parameter, std=0.3)
    x = torch.rand(4, 1, 28, 28)
    together = unet(x)
    assert not torch.allclose(together, x, atol=1e-3)
    assert torch.allclose(together, torch.cat([unet(image[None]) for image in x]), atol=1e-5,
                          rtol=1e-4)


def test_fnet_has_no_normalisation_and_never_mixes_images():
    net = FeatureNet(num_classes=3, feature_dim=8).train()
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
    assert not any(isinstance(module, norms) for module in net.modules())
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(net.features(x), torch.cat([net.features(image[None]) for image in x]),
                          atol=1e-5)


def test_initial_unet_depends_on_the_seed_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = initial_unet(0), initial_unet(0), initial_unet(1)
    assert torch.equal(torch.rand(1), before)  # the global random state is left alone
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize("optimise", [optimise_one_by_one, optimise_batched])
@pytest.mark.parametrize("change, message", [
    ({"beta": -1.0}, "beta=-1.0"), ({"num_steps": 0}, "steps=0"), ({"lr": 0}, "lr=0"),
    ({"seed": 1.5}, "SEED=1.5"), ({"images": torch.rand(2, 28, 28)}, r"shape \(2, 28, 28\)"),
    ({"images": torch.rand(2, 1, 30, 30)}, r"shape \(2, 1, 30, 30\)"),
    ({"centre": torch.zeros(5)}, r"centre of shape \(5,\).*feature_dim=8"),
])
def test_bad_parameters_name_the_value(untrained, optimise, change, message):
    net, centre = untrained
    arguments = {"images": torch.rand(2, 1, 28, 28), "fnet": net, "centre": centre,
                 "num_steps": 1, "progress": False, **change}
    with pytest.raises(ConfigError, match=message):
        optimise(**arguments)


@pytest.mark.parametrize("make, message", [
    (lambda: FeatureNet(num_classes=1), "num_classes=1"), (lambda: FeatureNet(alpha=0), "alpha=0"),
    (lambda: UNet(base_channels=0), "unet_channels=0"),
])
def test_bad_network_sizes_name_the_value(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


@pytest.mark.parametrize("module", [fnet_module, ano_unet, ano_unet_detector])
def test_public_functions_name_their_chapter(module):
    functions = [f for name, f in inspect.getmembers(module, inspect.isfunction)
                 if not name.startswith("_") and f.__module__ == module.__name__]
    assert len(functions) >= 2
    for function in functions:
        assert "chapter 07" in (function.__doc__ or ""), function.__name__


def test_peak_memory_sees_a_block_below_the_process_s_earlier_peak():
    torch.ones(200 * 2**20 // 4)  # freed at once: a higher earlier peak must not hide the block
    with PeakMemory("cpu") as peak:
        torch.ones(50 * 2**20 // 4)
    assert 45 * 2**20 < peak.bytes < 120 * 2**20


def test_peak_memory_in_a_fresh_process_sees_what_a_call_allocates():
    ones, big = in_fresh_process(torch.ones, 50 * 2**20 // 4)  # 50 MiB, written so it is resident
    assert ones.shape == (50 * 2**20 // 4,) and bool((ones == 1).all())
    assert 45 * 2**20 < big < 400 * 2**20
    _, small = in_fresh_process(torch.zeros, 10)
    assert small < 20 * 2**20


def test_plot_map_rows_draws_images_in_grey_and_maps_in_colour():
    inputs = torch.rand(3, 1, 28, 28)
    fig = plot_map_rows(inputs, {"G(x)": torch.rand(3, 1, 28, 28),
                                 "|x - G(x)|": torch.rand(3, 28, 28) * 5},
                        "Ano-Unet", "[0, 1]", captions=["a", "b", "c"])
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 9
    assert [ax.get_title() for ax in image_axes[:3]] == ["a", "b", "c"]
    assert image_axes[3].images[0].get_cmap().name == "gray"
    heatmap = image_axes[6].images[0]
    assert heatmap.get_cmap().name == "inferno"
    assert heatmap.get_clim()[1] > 1  # one scale per map row, not clipped to [0, 1]
    extra_column = fig.axes[3::4]  # the narrow fourth column of each row holds colour bars
    assert [ax.axison for ax in extra_column] == [False, False, True]
    assert extra_column[2].get_ylim() == pytest.approx(heatmap.get_clim())


def test_throughput_benchmark_prints_one_row_per_setting():
    result = subprocess.run(
        [sys.executable, "benchmarks/ano_unet_throughput.py", "--num-images", "4", "--steps", "1",
         "--batch-sizes", "2", "4", "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines()
            if line.startswith("| one-by-one") or line.startswith("| batched")]
    assert [(name.strip(), int(chunk)) for name, chunk, *_ in rows] == [
        ("one-by-one", 1), ("batched", 2), ("batched", 4)]
    assert all(float(row[2]) > 0 and float(row[4]) >= 0 for row in rows)
    assert float(rows[0][3]) == 1.0  # the loop is the baseline of the ratios


def test_other_dataset_reference_is_the_paired_dataset_and_names_unknown_ones(tmp_path):
    reference = fnet_detector.other_dataset_reference("mnist", 200, seed=0, data_dir=tmp_path)
    assert len(reference) == 200
    assert type(reference.dataset).__name__ == "FashionMNIST"
    assert set(reference.class_counts()) == set(range(10))
    image = reference[0][0]
    assert image.shape == (1, 28, 28) and 0 <= float(image.min()) and float(image.max()) <= 1
    with pytest.raises(ConfigError, match="'cifar10'"):
        fnet_detector.other_dataset_reference("cifar10", 10, data_dir=tmp_path)
