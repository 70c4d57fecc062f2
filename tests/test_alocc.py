"""ALOCC (chapter 06): D's loss by hand, what each score is, and the epoch choice.

The networks' shapes, one training step, settings and save/load are tested in
tests/test_alocc_detector.py and, for every detector, tests/test_detectors.py.
"""

import numpy as np
import pytest
import torch

from companion import detectors
from companion.detectors import ALOCCDetector
from companion.models.alocc import Discriminator, discriminator_loss, not_real_probability
from conftest import bars, labelled_subset


def test_discriminator_loss_and_score_by_hand():
    torch.manual_seed(0)
    d = Discriminator()
    x, fake = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    log_p = torch.log_softmax(d(x), dim=1)
    log_p_fake = torch.log_softmax(d(fake), dim=1)
    expected = -(log_p[:, 1].mean() + log_p_fake[:, 0].mean())  # real -> class 1, R(x̃) -> 0
    assert discriminator_loss(d, x, fake).item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(not_real_probability(d, x), 1 - log_p[:, 1].exp(), atol=1e-6)


@pytest.fixture(scope="module")
def trained():
    """ALOCC fitted on a vertical bar at column 12; test set: 16 such bars (normal) and 16
    horizontal ones at row 12 (anomalies)."""
    column = (12, 13)
    train = labelled_subset(bars(64, True, positions=column), [1] * 64)
    detector = detectors.make("alocc", epochs=8, lr=2e-3, batch_size=16, device="cpu", seed=0,
                              progress=False)
    history = detector.fit(train)
    test = labelled_subset(torch.cat([bars(16, True, positions=column),
                                      bars(16, False, positions=column)]),
                           [1] * 16 + [7] * 16, anomaly_classes=[7])
    return detector, history, test


def test_r_error_is_higher_for_anomalies_after_training(trained):
    detector, history, test = trained
    assert isinstance(detector, ALOCCDetector)
    assert history["epoch"] == list(range(1, 9)) and history.chosen_epoch == 8
    assert {"d_loss", "r_adversarial", "r_l2"} <= set(history.log)
    scores = detector.score(test)
    assert scores.headline == "D(R(x))"
    assert scores.names == ["D(R(x))", "D(x)", "R error"]
    assert scores.labels.tolist() == [0] * 16 + [1] * 16
    assert scores.classes.tolist() == [1] * 16 + [7] * 16
    errors = scores["R error"]
    assert errors[scores.labels == 1].min() > errors[scores.labels == 0].max()
    assert scores.auroc("R error") == 1.0
    for name in ("D(x)", "D(R(x))"):
        assert ((0 <= scores[name]) & (scores[name] <= 1)).all()


def test_scores_are_what_r_and_d_say(trained):
    detector, _, test = trained
    scores = detector.score(test)
    images = test.tensors()[0]
    with torch.no_grad():
        reconstruction = detector.r(images)
        assert np.allclose(scores["D(R(x))"], not_real_probability(detector.d, reconstruction),
                           atol=1e-6)
        assert np.allclose(scores["D(x)"], not_real_probability(detector.d, images), atol=1e-6)
    assert torch.allclose(scores.outputs, reconstruction, atol=1e-6)
    assert torch.equal(scores.inputs, images)
    assert np.allclose(scores.maps, (images - reconstruction).abs().sum(dim=1), atol=1e-6)
    assert np.allclose(scores["R error"], scores.maps.reshape(32, -1).sum(axis=1), rtol=1e-5)
    assert not detector.r.training and not detector.d.training, "scored in eval mode"


def test_validation_keeps_the_epoch_with_lowest_reconstruction_error():
    normal = labelled_subset(bars(32, True), [1] * 32)
    val = labelled_subset(bars(8, True, seed=2), [1] * 8)
    detector = detectors.make("alocc", epochs=4, batch_size=16, device="cpu", progress=False)
    weights = []

    def keep_weights(epoch):
        weights.append({k: v.clone() for k, v in detector.r.state_dict().items()})
        return {"marker": epoch}

    history = detector.fit(normal, val=val, after_epoch=keep_weights)
    assert history["marker"] == [1, 2, 3, 4] and len(history["val_loss"]) == 4
    best = int(np.argmin(history["val_loss"]))
    assert history.chosen_epoch == best + 1
    restored = detector.r.state_dict()
    assert all(torch.equal(restored[k], v) for k, v in weights[best].items()), \
        "R is the chosen epoch's R"
    assert len({history["val_loss"][i] for i in range(4)}) > 1, "the epochs differ"
