"""ALOCC (chapter 06): networks, losses, one training step, and the detector's fit/score/save."""

import numpy as np
import pytest
import torch
from torch import nn

import companion
from companion import detectors
from companion.detectors.alocc import alocc_step
from companion.errors import ConfigError
from companion.models.alocc import (NORMALISATIONS, PHASE_TWO_KINDS, Discriminator,
                                    Reconstructor, add_noise, pair, phase_two_batch,
                                    phase_two_loss, reconstructor_loss, squared_error)
from companion.models.conv_ae import ConvAutoencoder

from conftest import labelled_subset


def strokes(n, column):
    """Images in [0, 1] with one vertical bar (a crude "1") at ``column``."""
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 4:24, column:column + 3] = 1.0
    return images


def bars(n):
    """Horizontal bars: the anomalies of these tests."""
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 12:15, 4:24] = 1.0
    return images


def small_alocc(**settings):
    return detectors.make("alocc", **{"epochs": 2, "device": "cpu", "progress": False, **settings})


@pytest.mark.parametrize("norm", NORMALISATIONS)
def test_shapes_ranges_and_normalisation(norm):
    torch.manual_seed(0)
    r, d = Reconstructor(), Discriminator(norm=norm)
    x = torch.rand(5, 1, 28, 28)
    reconstruction = r(x)
    assert reconstruction.shape == x.shape
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1  # sigmoid output
    assert d(x).shape == (5, 2)
    has_batch_norm = any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    assert has_batch_norm == (norm == "batch")


def test_d_without_batch_norm_scores_each_image_alone():
    """Without BatchNorm, D's output for an image does not depend on the rest of the batch."""
    torch.manual_seed(0)
    d = Discriminator(norm="none").train()
    x = torch.rand(6, 1, 28, 28)
    assert torch.allclose(d(x)[:3], d(x[:3]), atol=1e-6)


def test_add_noise_stays_in_unit_range():
    x = torch.rand(100, 1, 28, 28)
    noisy = add_noise(x, 0.5)
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert not torch.equal(noisy, x)
    assert torch.equal(add_noise(x, 0.0), x)


def test_squared_error_sum_is_the_pixel_count_times_the_mean():
    x, y = torch.rand(3, 1, 28, 28), torch.rand(3, 1, 28, 28)
    assert torch.allclose(squared_error(x, y, "sum"), 784 * squared_error(x, y, "mean"))
    torch.manual_seed(0)
    d = Discriminator()
    with torch.no_grad():
        total, adversarial, l2 = reconstructor_loss(d, x, y, 0.4, "sum")
    assert l2.item() == pytest.approx(squared_error(x, y, "sum").mean().item())
    assert total.item() == pytest.approx((adversarial + 0.4 * l2).item())


def test_one_step_changes_both_networks():
    torch.manual_seed(0)
    r, d = Reconstructor(), Discriminator(norm="none")
    before_r = [p.detach().clone() for p in r.parameters()]
    before_d = [p.detach().clone() for p in d.parameters()]
    opt_r = torch.optim.Adam(r.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3)
    losses = alocc_step(r, d, opt_r, opt_d, strokes(8, 12), noise_std=0.15, n_dis=1,
                        l2_lambda=0.4)
    assert set(losses) == {"d_loss", "r_adversarial", "r_l2"}
    assert all(np.isfinite(v) for v in losses.values())
    assert all(not torch.equal(a, b) for a, b in zip(before_r, r.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before_d, d.parameters()))


def test_fit_and_score_give_the_three_scores_and_maps():
    torch.manual_seed(0)
    train = labelled_subset(strokes(64, 12), torch.zeros(64))
    test = labelled_subset(torch.cat([strokes(16, 12), bars(16)]),
                           torch.cat([torch.zeros(16), torch.ones(16)]), anomaly_classes=[1])
    det = small_alocc(epochs=8, lr=2e-3, stop_below=None)
    seen = []
    history = det.fit(train, val=labelled_subset(strokes(16, 12), torch.zeros(16)),
                      after_epoch=lambda epoch: seen.append(epoch) or {"marker": epoch})
    assert seen == list(range(1, 9)) and history["marker"] == seen
    best = int(np.argmin(history["val_loss"]))
    assert history.chosen_epoch == best + 1  # lowest squared error on held-out normal images
    scores = det.score(test)
    assert scores.headline == "D(R(x))" and scores.names == ["D(R(x))", "D(x)", "R error"]
    for name in ("D(x)", "D(R(x))"):
        assert ((0 <= scores[name]) & (scores[name] <= 1)).all()
    assert scores["R error"][scores.labels == 1].min() > scores["R error"][scores.labels == 0].max()
    assert scores.outputs.shape == scores.inputs.shape == (32, 1, 28, 28)
    assert np.allclose(scores.maps, (scores.inputs - scores.outputs).abs().sum(dim=1).numpy())
    assert np.allclose(scores["R error"], scores.maps.reshape(32, -1).sum(axis=1), rtol=1e-5)


def test_training_stops_at_the_first_epoch_under_stop_below():
    torch.manual_seed(0)
    train, val = (labelled_subset(strokes(n, 12), torch.zeros(n)) for n in (32, 8))
    history = small_alocc(epochs=5, stop_below=1.0).fit(train, val=val)  # every error is < 1
    assert history["epoch"] == [1] and history.chosen_epoch == 1
    history = small_alocc(epochs=3, stop_below=1e-9).fit(train, val=val)  # never reached
    assert history["epoch"] == [1, 2, 3]
    assert history.chosen_epoch == int(np.argmin(history["val_loss"])) + 1


def test_r_latent_dim_gives_r_the_chapter_03_bottleneck():
    torch.manual_seed(0)
    det = small_alocc(epochs=1, r_latent_dim=8)
    det.fit(labelled_subset(strokes(16, 12), torch.zeros(16)))
    assert isinstance(det.r, ConvAutoencoder)
    assert det.r.encoder(strokes(2, 12)).shape == (2, 8)
    scores = det.score(labelled_subset(torch.cat([strokes(2, 12), bars(2)]),
                                       torch.tensor([0.0, 0.0, 1.0, 1.0]), anomaly_classes=[1]))
    assert scores.outputs.shape == (4, 1, 28, 28) and 0 <= scores.outputs.min() <= scores.outputs.max() <= 1


def test_save_and_load_score_the_same(tmp_path):
    torch.manual_seed(0)
    det = small_alocc(d_norm="batch", l2_reduction="mean")
    det.fit(labelled_subset(strokes(32, 12), torch.zeros(32)))
    test = labelled_subset(torch.cat([strokes(4, 12), bars(4)]),
                           torch.cat([torch.zeros(4), torch.ones(4)]), anomaly_classes=[1])
    det.save(tmp_path / "alocc.pt")
    again = detectors.load(tmp_path / "alocc.pt", device="cpu", progress=False)
    assert again.settings == det.settings
    for name in ("D(R(x))", "D(x)", "R error"):
        assert np.allclose(det.score(test)[name], again.score(test)[name])
    assert [p.name for p in tmp_path.iterdir()] == ["alocc.pt"]  # no temporary file left


@pytest.mark.parametrize("settings, name", [({"n_dis": 0}, "n_dis=0"),
                                            ({"noise_std": -0.1}, "noise_std=-0.1"),
                                            ({"epochs": 0}, "epochs=0"),
                                            ({"d_norm": "group"}, "d_norm='group'"),
                                            ({"l2_reduction": "max"}, "l2_reduction='max'"),
                                            ({"stop_below": 0}, "stop_below=0"),
                                            ({"r_latent_dim": 0}, "r_latent_dim=0")])
def test_bad_settings_name_the_value(settings, name):
    with pytest.raises(ConfigError, match=name.replace("(", r"\(")):
        small_alocc(**settings)


def test_images_in_minus_one_to_one_are_refused():
    images = strokes(4, 12) * 2 - 1
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        small_alocc().fit(labelled_subset(images, torch.zeros(4), value_range="[-1, 1]"))


def test_d_of_r_separates_real_ones_from_zeros_after_a_short_training(tmp_path):
    """The paper's score on real MNIST (the shipped files): 128 training "1"s, 3 epochs, the
    detector's defaults; D(R(x)) must rank a random 200 test "1"s and "0"s almost perfectly.
    (Measured here: 0.998 to 1.000 over seeds 0-3.)"""
    split = companion.one_class_split("mnist", [1], [0], data_dir=tmp_path, value_range="[0, 1]",
                                      train_size=128, seed=0, verbose=False)
    split.test = split.test.sample(200, 0)
    det = detectors.make("alocc", epochs=3, device="cpu", seed=0, progress=False)
    det.fit(split.train)
    scores = det.score(split.test)
    assert scores.headline == "D(R(x))"
    assert scores.auroc() > 0.95, scores.aurocs()


# -- the fix: a pair D and OGNet's second phase (issue 27) -----------------------------------------
def test_phase_two_batch_has_the_kinds_shapes_and_targets_intended():
    torch.manual_seed(0)
    r_new, r_old = Reconstructor(), Reconstructor()
    x = torch.rand(6, 1, 28, 28)
    batch = phase_two_batch(r_new, r_old, x)
    assert list(batch) == list(PHASE_TWO_KINDS)
    assert PHASE_TWO_KINDS == {"real": 1, "new reconstruction": 1, "old reconstruction": 0,
                               "pseudo anomaly": 0}
    for inputs, outputs in batch.values():
        assert inputs.shape == outputs.shape == x.shape
    with torch.no_grad():
        old = r_old(x)
        mixed = (old + old[[5, 0, 1, 2, 3, 4]]) / 2  # each image with another one, never itself
        assert torch.equal(batch["real"][0], x) and torch.equal(batch["real"][1], x)
        assert torch.allclose(batch["new reconstruction"][1], r_new(x))
        assert torch.allclose(batch["old reconstruction"][1], old)
        assert torch.allclose(batch["pseudo anomaly"][0], mixed)
        assert torch.allclose(batch["pseudo anomaly"][1], r_new(mixed))


@pytest.mark.parametrize("pairs", [False, True])
def test_phase_two_loss_is_the_weighted_cross_entropy_by_hand(pairs):
    torch.manual_seed(0)
    d = Discriminator(2 if pairs else 1, norm="none")
    x = torch.rand(4, 1, 28, 28)
    batch = phase_two_batch(Reconstructor(), Reconstructor(), x)
    expected = 0.0
    for kind, weight in {"real": 0.3, "new reconstruction": 0.7, "old reconstruction": 0.9,
                         "pseudo anomaly": 0.1}.items():
        inputs, outputs = batch[kind]
        logits = d(torch.cat([inputs, outputs], 1) if pairs else outputs)
        p_good = torch.softmax(logits, 1)[:, 1]
        target_p = p_good if PHASE_TWO_KINDS[kind] == 1 else 1 - p_good
        expected = expected + weight * -torch.log(target_p).mean()
    loss = phase_two_loss(d, batch, good_weight=0.3, bad_weight=0.9, pairs=pairs)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_pair_d_sees_the_image_beside_its_reconstruction():
    x, y = torch.zeros(2, 1, 28, 28), torch.ones(2, 1, 28, 28)
    assert torch.equal(pair(x, y)[:, 0], x[:, 0]) and torch.equal(pair(x, y)[:, 1], y[:, 0])
    det = small_alocc(r_latent_dim=8, d_input="pair", epochs=1)
    det.fit(labelled_subset(strokes(32, 12), [1] * 32))
    assert det.d.net[0].in_channels == 2
    scores = det.score(labelled_subset(torch.cat([strokes(8, 12), bars(8)]), [1] * 8 + [0] * 8,
                                       anomaly_classes=[0]))
    assert set(scores.aurocs()) == {"D(R(x))", "D(x)", "R error"}


def test_phase_two_needs_a_fitted_detector():
    with pytest.raises(ConfigError, match="phase two needs the early R"):
        small_alocc().phase_two(labelled_subset(strokes(4, 12), [1] * 4))


def test_a_short_second_phase_improves_the_d_score_on_a_fixed_seed(tmp_path):
    """500 training "3"s, 3 epochs, seed 0: phase two raises D(R(x))'s AUROC (0.823 -> 0.872
    when this test was written; the fix's benchmark rows measure it at full size)."""
    split = companion.one_class_split("mnist", [3], None, data_dir=tmp_path, verbose=False,
                                      value_range="[0, 1]", val_fraction=0.2, seed=0,
                                      train_size=500)
    split.test = split.test.sample(1000, 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the figures above are one thread's
    try:
        det = small_alocc(epochs=3, r_latent_dim=32, d_input="pair")
        det.fit(split.train, val=split.val)
        before = det.score(split.test).auroc()
        log = det.phase_two(split.train, epochs=1)
        after = det.score(split.test).auroc()
    finally:
        torch.set_num_threads(threads)
    assert log["d_phase_two_loss"][0] < 2 * np.log(2)  # better than guessing on the four kinds
    assert after > before + 0.02, (before, after)
