"""The restoration autoencoder (chapter 09): the erasure, the loss, the scores over all
erasures, seeding, checkpoints, and detection on a small real split."""

import copy

import numpy as np
import pytest
import torch

import companion
from companion import detectors
from companion.detectors import RestorationAEDetector
from companion.detectors import restoration as restoration_detector
from companion.detectors.restoration import score_with_erasures
from companion.errors import ConfigError
from companion.models.restoration import (ERASURE_SETS, QUARTER_TURNS, Erasure,
                                          RestorationUNet, check_square, erase,
                                          restoration_errors, restoration_loss,
                                          restoration_spread, restorations, rotate)
from conftest import labelled_subset

TINY = dict(latent_dim=8, base_channels=4, epochs=2, batch_size=8, device="cpu", progress=False)


def random_images(n=12, seed=0, shape=(1, 28, 28)):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def test_rotate_is_a_quarter_turn_per_image_and_reversible():
    x = random_images(8, shape=(2, 6, 6))
    turns = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    turned = rotate(x, turns)
    for image, original, k in zip(turned, x, turns.tolist()):
        assert torch.equal(image, torch.rot90(original, k, dims=(-2, -1)))
    assert torch.equal(rotate(turned, 4 - turns), x), "turning back undoes the erasure exactly"
    assert torch.equal(rotate(x, 0), x) and torch.equal(rotate(x, 4), x)
    assert torch.equal(rotate(rotate(x, 1), 1), rotate(x, 2))
    # a permutation of the pixels: nothing is interpolated or lost
    assert torch.equal(turned.flatten(1).sort().values, x.flatten(1).sort().values)
    assert torch.equal(rotate(x, 1)[0, 0, 0], x[0, 0, :, -1]), "counter-clockwise"


def test_non_square_images_are_refused_with_a_config_error():
    with pytest.raises(ConfigError, match="square"):
        check_square((1, 28, 32))
    with pytest.raises(ConfigError, match="square"):
        detectors.make("restoration_ae", **TINY).fit(labelled_subset(torch.rand(4, 1, 28, 32),
                                                                     [0] * 4))


def test_loss_is_the_error_to_the_upright_image_under_seeded_random_turns():
    x = random_images(10)
    identity = torch.nn.Identity()
    loss = restoration_loss(identity, x, torch.Generator().manual_seed(3))
    turns = torch.randint(4, (10,), generator=torch.Generator().manual_seed(3))
    expected = torch.stack([((torch.rot90(image, int(k), dims=(-2, -1)) - image) ** 2).mean()
                            for image, k in zip(x, turns)]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert len(set(turns.tolist())) > 1, "the turns differ from image to image"


def test_restoration_errors_cover_every_erasure():
    x = random_images(5)
    restored = restorations(torch.nn.Identity(), x)
    assert restored.shape == (len(QUARTER_TURNS), *x.shape)
    errors = restoration_errors(x, restored)
    assert errors.shape == (5, 4)
    assert torch.all(errors[:, 0] == 0), "the identity restores the upright image perfectly"
    by_hand = ((torch.rot90(x, 2, dims=(-2, -1)) - x) ** 2).flatten(1).mean(dim=1)
    assert torch.allclose(errors[:, 2], by_hand)


@pytest.fixture(scope="module")
def fitted():
    images = random_images(16)
    det = detectors.make("restoration_ae", seed=0, **TINY)
    det.fit(labelled_subset(images, [0] * 16))
    test = labelled_subset(random_images(10, seed=1), [0] * 5 + [1] * 5, anomaly_classes=[1])
    return det, test, det.score(test)


def test_headline_is_the_mean_restoration_error_over_all_erasures(fitted):
    det, test, scores = fitted
    assert det.headline == scores.headline == "restoration mse" == scores.names[0]
    per_turn = np.stack([scores[name] for name in ("mse", "mse 90°", "mse 180°", "mse 270°")], 1)
    np.testing.assert_allclose(scores["restoration mse"], per_turn.mean(axis=1), rtol=1e-6)
    x = test.tensors()[0]
    with torch.no_grad():
        det.net.eval()
        by_hand = {k: ((det.net(torch.rot90(x, k, dims=(-2, -1))) - x) ** 2).flatten(1).mean(1)
                   for k in QUARTER_TURNS}
        np.testing.assert_allclose(scores["mse"], by_hand[0].numpy(), rtol=1e-5)
        np.testing.assert_allclose(scores["mse 270°"], by_hand[3].numpy(), rtol=1e-5)
        restored = restorations(det.net, x)
    np.testing.assert_allclose(scores.maps, (restored - x).abs().sum(dim=2).mean(dim=0).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert torch.allclose(scores.outputs, restored[0]), "outputs restore the upright image"
    assert scores.maps.shape == (10, 28, 28) and torch.equal(scores.inputs, x)


def test_same_seed_same_scores_other_seed_other_scores(fitted):
    det, test, scores = fitted
    again = detectors.make("restoration_ae", seed=0, **TINY)
    again.fit(labelled_subset(random_images(16), [0] * 16))
    np.testing.assert_array_equal(again.score(test)["restoration mse"], scores["restoration mse"])
    other = detectors.make("restoration_ae", seed=1, **TINY)
    other.fit(labelled_subset(random_images(16), [0] * 16))
    assert not np.array_equal(other.score(test)["restoration mse"], scores["restoration mse"])


def test_any_autoencoder_can_be_scored_over_the_erasures(fitted):
    det, test, scores = fitted
    same = score_with_erasures(det, test)
    for name in scores.names:
        np.testing.assert_array_equal(same[name], scores[name])
    plain = detectors.make("conv_ae", **{k: v for k, v in TINY.items()})
    plain.fit(labelled_subset(random_images(16), [0] * 16))
    turned = score_with_erasures(plain, test)
    assert turned.headline == "restoration mse"
    np.testing.assert_allclose(turned["mse"], plain.score(test)["mse"], rtol=1e-5)
    with pytest.raises(ConfigError, match="not a fitted autoencoder"):
        score_with_erasures(detectors.make("conv_ae", **TINY), test)


def test_save_and_load_scores_the_same(fitted, tmp_path):
    det, test, scores = fitted
    det.save(tmp_path / "restoration.pt")
    loaded = detectors.load(tmp_path / "restoration.pt", device="cpu")
    assert isinstance(loaded, RestorationAEDetector) and loaded.settings == det.settings
    np.testing.assert_array_equal(loaded.score(test)["restoration mse"], scores["restoration mse"])


def test_validation_loss_is_the_headline_score_of_the_held_out_images():
    det = detectors.make("restoration_ae", seed=0, **{**TINY, "epochs": 3})
    val = labelled_subset(random_images(6, seed=2), [0] * 6)
    history = det.fit(labelled_subset(random_images(16), [0] * 16), val=val)
    assert len(history["val_loss"]) == 3
    kept = history["val_loss"][history.chosen_epoch - 1]
    assert kept == min(history["val_loss"])
    assert det.score(val)["restoration mse"].mean() == pytest.approx(kept, rel=1e-5)


@pytest.mark.parametrize("setting, value, expected", [
    ("epochs", 0, "epochs=0"), ("base_channels", 2.5, "base_channels=2.5"),
    ("latent_dim", -1, "latent_dim=-1"), ("rotations", 4, "no setting 'rotations'")])
def test_bad_settings_are_one_line_config_errors(setting, value, expected):
    with pytest.raises(ConfigError, match=expected):
        detectors.make("restoration_ae", **{setting: value})


def test_a_fitted_model_detects_anomalies_on_a_small_real_split(tmp_path):
    """MNIST "7" (which way is up matters for a 7) against "4", from the shipped sample."""
    split = companion.one_class_split("mnist", [7], [4], data_dir=tmp_path, verbose=False,
                                      value_range="[-1, 1]")
    split.test = split.test.sample(400, seed=0)
    det = detectors.make("restoration_ae", latent_dim=16, base_channels=8, epochs=6,
                         batch_size=32, device="cpu", progress=False)
    history = det.fit(split.train)
    assert history["loss"][-1] < history["loss"][0]
    scores = det.score(split.test)
    assert 0.2 < scores.labels.mean() < 0.8
    assert scores.auroc() > 0.75, scores.aurocs()


# -- the record attempt's ingredients (issue 28) ---------------------------------------------

def test_erasures_mirror_turn_and_paint_a_quadrant_grey():
    x = random_images(3, shape=(1, 6, 6))
    assert torch.equal(Erasure(1, mirrored=True)(x), torch.rot90(x.flip(-1), 1, dims=(-2, -1)))
    painted = Erasure(patch=3)(x, fill=0.5)
    assert torch.all(painted[..., 3:, 3:] == 0.5), "bottom right quadrant grey"
    assert torch.equal(painted[..., :3, :], x[..., :3, :]) and torch.equal(painted[..., :, :3],
                                                                           x[..., :, :3])
    assert [e.name for e in ERASURE_SETS["turns"]] == ["as it is", "90°", "180°", "270°"]
    mirror = ERASURE_SETS["turns+mirror"]
    assert len(mirror) == 8 and len({e(x).numpy().tobytes() for e in mirror}) == 8, \
        "the eight symmetries of a square are eight different images"
    assert len(ERASURE_SETS["turns+patches"]) == 8


def test_erase_applies_each_images_own_erasure_and_the_loss_targets_the_original():
    x = random_images(9)
    erasures = ERASURE_SETS["turns+patches"]
    choice = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 4])
    erased = erase(x, erasures, choice, fill=0.0)
    for image, original, j in zip(erased, x, choice.tolist()):
        assert torch.equal(image, erasures[j](original[None], 0.0)[0])
    identity = torch.nn.Identity()
    l1 = restoration_loss(identity, x, torch.Generator().manual_seed(1), erasures, "l1", 0.0)
    draws = torch.randint(8, (9,), generator=torch.Generator().manual_seed(1))
    by_hand = (erase(x, erasures, draws) - x).abs().mean()
    assert l1.item() == pytest.approx(by_hand.item(), rel=1e-6)
    # chapter 09's defaults: the quarter turns and the squared error, the same draws as before
    assert restoration_loss(identity, x, torch.Generator().manual_seed(3)).item() == \
        pytest.approx(((rotate(x, torch.randint(4, (9,), generator=torch.Generator()
                                                 .manual_seed(3))) - x) ** 2).mean().item())


def test_unet_restorer_is_the_conv_ae_plus_a_skip_that_matters():
    net = RestorationUNet(8, (1, 28, 28), 4)
    plain = companion.models.ConvAutoencoder(8, (1, 28, 28), 4)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in plain.parameters())
    net.plain.load_state_dict(plain.state_dict())
    x = random_images(4)
    with torch.no_grad():
        out = net(x)
        assert out.shape == x.shape and not torch.allclose(out, plain(x)), "the skip adds"
        # the 14 x 14 skip: the output responds to the input even with the code cut off
        net.plain.encoder[-1].weight.zero_()
        net.plain.encoder[-1].bias.zero_()
        assert not torch.allclose(net(x), net(random_images(4, seed=5)))
    with pytest.raises(ConfigError, match="latent_dim=None"):
        RestorationUNet(None, (1, 28, 28), 4)


def test_normalised_headline_divides_each_erasure_by_its_held_out_mean():
    det = detectors.make("restoration_ae", seed=0, normalise=True, loss="l1",
                         erasures="turns+mirror", architecture="unet", **TINY)
    assert det.headline == "normalised restoration l1" == RestorationAEDetector.headline_for(
        det.settings)
    train, val = labelled_subset(random_images(16), [0] * 16), labelled_subset(
        random_images(6, seed=2), [0] * 6)
    with pytest.raises(ConfigError, match="normalise=True.*val="):
        det.fit(train)
    det.fit(train, val=val)
    val_scores = det.score(val)
    names = [n for n in val_scores.names if n.startswith("l1")]
    assert len(names) == 8 and "l1 90°, mirrored" in names
    per_erasure = np.stack([val_scores[n] for n in names], 1)
    np.testing.assert_allclose(det.erasure_means.numpy(), per_erasure.mean(0), rtol=1e-5)
    np.testing.assert_allclose(val_scores["normalised restoration l1"],
                               (per_erasure / per_erasure.mean(0)).mean(1), rtol=1e-5)
    assert val_scores["normalised restoration l1"].mean() == pytest.approx(1.0, rel=1e-5)


def test_normalisation_means_survive_save_and_load(tmp_path):
    det = detectors.make("restoration_ae", seed=0, normalise=True, **TINY)
    det.fit(labelled_subset(random_images(16), [0] * 16),
            val=labelled_subset(random_images(6, seed=2), [0] * 6))
    test = labelled_subset(random_images(10, seed=1), [0] * 5 + [1] * 5, anomaly_classes=[1])
    det.save(tmp_path / "normalised.pt")
    loaded = detectors.load(tmp_path / "normalised.pt", device="cpu")
    assert torch.equal(loaded.erasure_means, det.erasure_means)
    np.testing.assert_array_equal(loaded.score(test)["normalised restoration mse"],
                                  det.score(test)["normalised restoration mse"])


def test_spread_is_zero_only_when_every_image_gets_the_same_restoration():
    x = random_images(8)
    one_image = x[:1].expand(8, -1, -1, -1)
    assert restoration_spread(torch.stack([one_image, one_image])) == 0.0
    assert restoration_spread(torch.stack([x, x])) == pytest.approx(float(x.std(dim=0).mean()))


def _fit_recording_lrs(monkeypatch, dead_trainings: int, **settings):
    """Fit a tiny restorer, its first ``dead_trainings`` trainings judged dead; the lrs used."""
    lrs, real_train, real_spread = [], RestorationAEDetector._train, restoration_spread

    def train(self, *args):
        lrs.append(args[-1])
        return real_train(self, *args)

    def spread(restored):
        return 0.0 if len(lrs) <= dead_trainings else real_spread(restored)
    monkeypatch.setattr(RestorationAEDetector, "_train", train)
    monkeypatch.setattr(restoration_detector, "restoration_spread", spread)
    det = detectors.make("restoration_ae", seed=0, **{**TINY, **settings})
    history = det.fit(labelled_subset(random_images(16), [0] * 16))
    return det, history, lrs


def test_a_live_restorer_trains_once_and_the_guard_changes_nothing(monkeypatch, fitted):
    det, history, lrs = _fit_recording_lrs(monkeypatch, dead_trainings=0)
    assert history.restarts == 0 and lrs == [1e-3]
    for mine, theirs in zip(det.net.state_dict().values(), fitted[0].net.state_dict().values()):
        assert torch.equal(mine, theirs), "a live restorer's weights do not depend on the guard"
    # The check itself is one forward pass in evaluation mode: it moves no weight, no buffer
    # and no random state, so a live network ends exactly as it would without the guard.
    before, random_state = copy.deepcopy(det.net.state_dict()), torch.random.get_rng_state()
    restorations(det.net.eval(), random_images(8), ERASURE_SETS["turns+patches"], 0.5)
    assert torch.equal(torch.random.get_rng_state(), random_state)
    assert all(torch.equal(w, before[k]) for k, w in det.net.state_dict().items())


def test_a_dead_restorer_is_trained_again_from_new_weights_with_a_lower_lr(monkeypatch, fitted):
    det, history, lrs = _fit_recording_lrs(monkeypatch, dead_trainings=1)
    assert history.restarts == 1 and lrs == pytest.approx([1e-3, 1e-3 / 3])
    first = fitted[0].net.state_dict()
    assert any(not torch.equal(w, first[k]) for k, w in det.net.state_dict().items())
    assert len(history["loss"]) == TINY["epochs"], "the log is the last training's"


def test_a_restorer_that_dies_every_time_says_so(monkeypatch):
    with pytest.warns(RuntimeWarning, match="died in training 3 times.*lower lr"):
        _, history, lrs = _fit_recording_lrs(monkeypatch, dead_trainings=3, lr=3e-3)
    assert history.restarts == 2 and lrs == pytest.approx([3e-3, 1e-3, 1e-3 / 3])


def test_the_pair_averages_the_restorer_and_a_dense_ae_each_on_its_held_out_scale():
    settings = dict(seed=3, normalise=True, **TINY)
    train = labelled_subset(random_images(16), [0] * 16)
    val = labelled_subset(random_images(6, seed=2), [0] * 6)
    test = labelled_subset(random_images(10, seed=1), [0] * 5 + [1] * 5, anomaly_classes=[1])
    pair = detectors.make("restoration_pair", partner_latent_dim=4, partner_epochs=2, **settings)
    with pytest.raises(ConfigError, match="held-out normal images.*val="):
        pair.fit(train)
    pair.fit(train, val=val)
    restorer = detectors.make("restoration_ae", **settings)
    restorer.fit(train, val=val)
    dense = detectors.make("dense_ae", latent_dim=4, epochs=2, batch_size=16, seed=3,
                           device="cpu", progress=False)
    dense.fit(train, val=val)
    scores = pair.score(test)
    alone, dense_scores = restorer.score(test), dense.score(test)
    # the same seed and images give the same two networks as the detectors trained alone
    assert np.array_equal(scores["normalised restoration mse"], alone["normalised restoration mse"])
    assert np.array_equal(scores["dense mse"], dense_scores["mse"])
    scale = (restorer.score(val)["normalised restoration mse"].mean(),
             dense.score(val)["mse"].mean())
    np.testing.assert_allclose(scores["restoration + dense"],
                               (alone["normalised restoration mse"] / scale[0]
                                + dense_scores["mse"] / scale[1]) / 2, rtol=1e-5)
    assert pair.score(val)["restoration + dense"].mean() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_array_equal(scores.maps, alone.maps)
