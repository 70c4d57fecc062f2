"""ALOCC (chapter 05): network shapes, one training step, score direction, checkpoints."""

import pytest
import torch

from companion.errors import ConfigError
from companion.models.alocc import (Discriminator, Reconstructor, _mean_reconstruction_error,
                                    add_noise, alocc_scores, load_alocc, save_alocc, train_alocc,
                                    train_step)
from companion.training import make_loader


@pytest.fixture
def nets():
    torch.manual_seed(0)
    return Reconstructor(), Discriminator()


def strokes(n, column):
    """Images in [0, 1] with one vertical bar (a crude "1") at ``column``."""
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 4:24, column:column + 3] = 1.0
    return images


def test_shapes_and_ranges(nets):
    r, d = nets
    x = torch.rand(5, 1, 28, 28)
    reconstruction = r(x)
    assert reconstruction.shape == x.shape
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1  # sigmoid output
    assert d(x).shape == (5, 2)


def test_add_noise_stays_in_unit_range():
    x = torch.rand(100, 1, 28, 28)
    noisy = add_noise(x, 0.5)
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert not torch.equal(noisy, x)
    assert torch.equal(add_noise(x, 0.0), x)


def test_one_step_changes_both_networks(nets):
    r, d = nets
    before_r = [p.detach().clone() for p in r.parameters()]
    before_d = [p.detach().clone() for p in d.parameters()]
    opt_r = torch.optim.Adam(r.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3)
    losses = train_step(r, d, opt_r, opt_d, strokes(8, 12), noise_std=0.15, n_dis=1, l2_lambda=0.4)
    assert set(losses) == {"d_loss", "r_adversarial", "r_l2"}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert all(not torch.equal(a, b) for a, b in zip(before_r, r.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before_d, d.parameters()))


def loader_of(images, labels):
    classes = labels.clone()
    return make_loader(torch.utils.data.TensorDataset(images, classes, labels), 16)


def test_scores_are_higher_for_anomalies_after_training():
    torch.manual_seed(0)
    r, d = Reconstructor(), Discriminator()
    normal = strokes(64, 12)
    train_loader = make_loader(torch.utils.data.TensorDataset(normal, torch.zeros(64).long(),
                                                              torch.zeros(64).long()), 16,
                               shuffle=True)
    train_alocc(r, d, train_loader, num_epochs=8, lr=2e-3, progress=False)
    anomalies = torch.zeros(16, 1, 28, 28)
    anomalies[:, :, 12:15, 4:24] = 1.0  # horizontal bars
    images = torch.cat([strokes(16, 12), anomalies])
    labels = torch.cat([torch.zeros(16), torch.ones(16)]).long()
    scores = alocc_scores(r, d, loader_of(images, labels))
    assert set(scores) == {"D(x)", "D(R(x))", "R error", "classes", "labels"}
    assert scores["R error"][labels == 1].min() > scores["R error"][labels == 0].max()
    for name in ("D(x)", "D(R(x))"):
        assert ((0 <= scores[name]) & (scores[name] <= 1)).all()


def test_validation_picks_the_epoch_with_lowest_reconstruction_error(nets):
    r, d = nets
    normal = strokes(32, 12)
    data = torch.utils.data.TensorDataset(normal, torch.zeros(32).long(), torch.zeros(32).long())
    seen = []
    history = train_alocc(r, d, make_loader(data, 16), 4, progress=False,
                          val_loader=make_loader(data, 32),
                          after_epoch=lambda epoch, r, d: seen.append(epoch) or {"marker": epoch})
    assert seen == [1, 2, 3, 4]
    assert history["marker"] == [1, 2, 3, 4]
    best = min(range(4), key=lambda i: history["val_l2"][i])
    assert history["chosen_epoch"] == best + 1
    # the restored R reproduces the chosen epoch's validation error
    assert _mean_reconstruction_error(r, make_loader(data, 32), "cpu") == pytest.approx(
        history["val_l2"][best], rel=1e-5)


def test_checkpoint_round_trip(tmp_path, nets):
    r, d = nets
    path = tmp_path / "alocc.pt"
    save_alocc(path, r, d, epoch=3)
    torch.manual_seed(1)
    r2, d2 = Reconstructor(), Discriminator()
    checkpoint = load_alocc(path, r2, d2)
    assert checkpoint["epoch"] == 3
    x = torch.rand(2, 1, 28, 28)
    r.eval(), d.eval(), r2.eval(), d2.eval()
    assert torch.equal(r(x), r2(x)) and torch.equal(d(x), d2(x))
    assert [p.name for p in tmp_path.iterdir()] == ["alocc.pt"]  # no temporary file left


@pytest.mark.parametrize("kwargs, name", [({"n_dis": 0}, "N_DIS=0"), ({"noise_std": -0.1}, "NOISE_STD=-0.1"),
                                          ({"num_epochs": 0}, "EPOCHS=0")])
def test_bad_parameters_name_the_value(nets, kwargs, name):
    r, d = nets
    data = torch.utils.data.TensorDataset(strokes(4, 12), torch.zeros(4).long(), torch.zeros(4).long())
    arguments = {"num_epochs": 1, **kwargs}
    with pytest.raises(ConfigError, match=name):
        train_alocc(r, d, make_loader(data, 4), progress=False, **arguments)
