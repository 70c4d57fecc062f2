"""The variational autoencoder (chapter 04): its ELBO by hand, the reparameterisation's
gradients, and its four scores on a case whose answer is known."""

import math

import numpy as np
import pytest
import torch

from companion import detectors
from companion.errors import ConfigError
from companion.models.vae import ConvVAE, elbo_terms, kl_to_standard_normal, reparameterise
from conftest import bars, labelled_subset


def test_elbo_terms_match_a_hand_computation():
    x = torch.tensor([[[[1.0, 0.0]]]])                    # one image of two pixels
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])     # p = 1/2 and 3/4 of being white
    mu, log_var = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, math.log(4.0)]])
    nll, kl = elbo_terms(x, logits, mu, log_var)
    # −log p(x|z) = −log(1/2) − log(1 − 3/4);  KL = ½ Σ (μ² + σ² − 1 − log σ²)
    assert nll.item() == pytest.approx(math.log(2) + math.log(4))
    assert kl.item() == pytest.approx(0.5 * (0.25 + 1 - 1 - 0) + 0.5 * (1 + 4 - 1 - math.log(4)))


def test_the_kl_is_zero_at_the_prior_and_positive_elsewhere():
    assert kl_to_standard_normal(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() < 1e-7
    assert (kl_to_standard_normal(torch.randn(3, 4), torch.randn(3, 4)) > 0).all()


def test_the_reparameterised_draw_passes_gradients_to_mean_and_variance():
    mu = torch.zeros(1000, 2, requires_grad=True)
    log_var = torch.full((1000, 2), math.log(4.0), requires_grad=True)
    z = reparameterise(mu, log_var, torch.Generator().manual_seed(0))
    (z * z).sum().backward()                       # d/dμ = 2z, d/dlogσ² = z·σ·ε = z²
    assert torch.allclose(mu.grad, 2 * z.detach())
    assert torch.allclose(log_var.grad, z.detach() ** 2, atol=1e-5)
    assert z.std().item() == pytest.approx(2.0, rel=0.1)  # σ = 2


def test_the_loss_refuses_images_outside_zero_one():
    net = ConvVAE(latent_dim=4, base_channels=4)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        net.loss(x, net(x))


@pytest.fixture(scope="module")
def fitted_on_vertical_bars():
    train = labelled_subset(bars(128, vertical=True), [0] * 128)
    test = labelled_subset(torch.cat([bars(20, True, seed=1), bars(20, False, seed=1)]),
                           [0] * 20 + [1] * 20, anomaly_classes=[1])
    detector = detectors.make("vae", latent_dim=4, base_channels=8, epochs=15, batch_size=16,
                              device="cpu", progress=False)
    history = detector.fit(train)
    return detector, history, test


def test_the_four_scores_are_finite_and_rank_horizontal_bars_above_vertical(fitted_on_vertical_bars):
    detector, history, test = fitted_on_vertical_bars
    assert {"loss", "reconstruction", "KL"} <= set(history.log)
    assert history["loss"][-1] < history["loss"][0]
    scores = detector.score(test)
    assert scores.names == ["reconstruction NLL", "-ELBO", "KL", "mse"]
    assert scores.headline == "reconstruction NLL"
    for name in scores.names:
        assert np.isfinite(scores[name]).all(), name
    np.testing.assert_allclose(scores["-ELBO"], scores["reconstruction NLL"] + scores["KL"],
                               rtol=1e-5)
    assert scores.auroc() > 0.95
    assert scores.maps.shape == (40, 28, 28) and scores.outputs.shape == (40, 1, 28, 28)


def test_samples_and_codes_have_their_shapes(fitted_on_vertical_bars):
    detector, _, test = fitted_on_vertical_bars
    assert detector.sample(6).shape == (6, 1, 28, 28)
    assert detector.encode(test.tensors()[0]).shape == (40, 4)
    with pytest.raises(ConfigError, match="not fitted"):
        detectors.make("vae").sample(2)


def test_the_entropy_floor_is_the_nll_of_a_perfect_reconstruction():
    from companion.models.vae import bernoulli_entropy, bernoulli_nll

    x = torch.tensor([[[[0.5, 0.0, 1.0, 0.2]]]])
    assert bernoulli_entropy(x).item() == pytest.approx(
        math.log(2) - 0.2 * math.log(0.2) - 0.8 * math.log(0.8), abs=1e-4)
    other = torch.logit(torch.tensor([[[[0.3, 0.1, 0.9, 0.5]]]]))
    assert bernoulli_nll(x, other).sum() > bernoulli_entropy(x).sum()
