"""Tests of companion.training, companion.files and the dense autoencoder."""

from __future__ import annotations

import json
import os
import pickle
import stat
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import companion
from companion import (ConfigError, DeviceError, load_checkpoint, make_loader, read_results,
                       resolve_device, save_checkpoint, set_seed, train, write_results)
from companion.models import DenseAutoencoder
from companion.training import in_memory


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def smooth_images(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` smooth random 1x28x28 images in [-1, 1] (bilinear upsampling of 4x4 noise)."""
    coarse = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return F.interpolate(coarse, size=(28, 28), mode="bilinear", align_corners=True)


def image_dataset(n: int, seed: int = 0) -> TensorDataset:
    """(images, classes, anomaly labels), as the companion's loaders yield them."""
    classes = torch.arange(n) % 10
    return TensorDataset(smooth_images(n, seed), classes, (classes == 8).long())


def loader_order(loader) -> list[int]:
    """The item order of one pass over a loader of a ``TensorDataset(torch.arange(n))``."""
    return torch.cat([batch for (batch,) in loader]).tolist()


def params_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------------------------
# resolve_device
# --------------------------------------------------------------------------------------------

@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_picks_the_cpu_without_accelerators(no_accelerator):
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch, no_accelerator):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("name", ["cpu", " CPU "])
def test_cpu_is_always_available(name, no_accelerator):
    assert resolve_device(name) == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_missing_cuda_is_a_device_error_naming_it(name, no_accelerator):
    with pytest.raises(DeviceError) as caught:
        resolve_device(name)
    assert f"DEVICE={name!r}" in str(caught.value)
    assert "no CUDA GPU" in str(caught.value)


def test_missing_mps_is_a_device_error_naming_it(no_accelerator):
    with pytest.raises(DeviceError, match=r"DEVICE='mps' but Apple's MPS is not available"):
        resolve_device("mps")


def test_available_cuda_is_returned(monkeypatch, no_accelerator):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_malformed_cuda_name_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match=r"DEVICE='cuda1'"):
        resolve_device("cuda1")


@pytest.mark.parametrize("name", ["tpu", "gpu", "", 0, None])
def test_unknown_device_is_a_config_error(name):
    with pytest.raises(ConfigError) as caught:
        resolve_device(name)
    assert f"DEVICE={name!r}" in str(caught.value)


# --------------------------------------------------------------------------------------------
# set_seed and make_loader
# --------------------------------------------------------------------------------------------

def test_set_seed_makes_initialisation_repeatable():
    set_seed(3)
    first = DenseAutoencoder(4)
    set_seed(3)
    second = DenseAutoencoder(4)
    set_seed(4)
    third = DenseAutoencoder(4)
    assert params_equal(first, second)
    assert not params_equal(first, third)


def test_set_seed_seeds_python_and_numpy_too():
    import random

    import numpy as np

    set_seed(5)
    first = (random.random(), np.random.rand())
    set_seed(5)
    assert (random.random(), np.random.rand()) == first


@pytest.mark.parametrize("seed", ["0", 1.0, True, None])
def test_bad_seed_is_a_config_error(seed):
    with pytest.raises(ConfigError, match="SEED="):
        set_seed(seed)


def test_make_loader_same_seed_same_order_different_seed_different_order():
    data = TensorDataset(torch.arange(100))
    first = loader_order(make_loader(data, 16, shuffle=True, seed=7))
    torch.manual_seed(123)  # the global RNG must not matter: the seed alone decides
    second = loader_order(make_loader(data, 16, shuffle=True, seed=7))
    other = loader_order(make_loader(data, 16, shuffle=True, seed=8))
    assert first == second
    assert other != first
    assert sorted(first) == sorted(other) == list(range(100))
    assert first != list(range(100))


def test_make_loader_reshuffles_each_epoch_repeatably():
    data = TensorDataset(torch.arange(50))
    loader = make_loader(data, 8, shuffle=True, seed=1)
    epochs = [loader_order(loader) for _ in range(3)]
    again = make_loader(data, 8, shuffle=True, seed=1)
    assert epochs[0] != epochs[1]
    assert [loader_order(again) for _ in range(3)] == epochs


def test_make_loader_without_shuffle_keeps_order_and_last_partial_batch():
    loader = make_loader(TensorDataset(torch.arange(20)), 8)
    assert [len(batch) for (batch,) in loader] == [8, 8, 4]
    assert loader_order(loader) == list(range(20))


def test_make_loader_collects_a_map_style_dataset_into_tensors():
    class Items(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return torch.full((1, 2, 2), float(i)), i + 10, i % 2

    data = in_memory(Items())
    assert isinstance(data, TensorDataset)
    assert data.tensors[0].shape == (5, 1, 2, 2)
    images, classes, labels = next(iter(make_loader(Items(), 3)))
    assert images[:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0]
    assert classes.tolist() == [10, 11, 12] and labels.tolist() == [0, 1, 0]


@pytest.mark.parametrize("batch_size", [0, -4, "16", 16.0, True])
def test_bad_batch_size_is_a_config_error(batch_size):
    with pytest.raises(ConfigError) as caught:
        make_loader(TensorDataset(torch.arange(4)), batch_size)
    assert f"BATCH_SIZE={batch_size!r}" in str(caught.value)


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------

def test_training_lowers_the_loss():
    set_seed(0)
    net = DenseAutoencoder(8)
    loader = make_loader(image_dataset(64), 16, shuffle=True, seed=0)
    history = train(net, loader, 6, lr=2e-3, progress=False)
    losses = history["loss"]
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0]
    assert history["seconds"] > 0
    assert not net.training, "train() must leave the network in eval mode"


def test_epoch_loss_is_the_mean_over_images_not_over_batches():
    set_seed(0)
    net = DenseAutoencoder(4)
    data = image_dataset(50)  # batches of 16, 16, 16 and 2 images
    images = data.tensors[0]
    with torch.no_grad():
        expected = F.mse_loss(net(images), images).item()
    history = train(net, make_loader(data, 16), 2, lr=0.0, progress=False)  # lr 0: no change
    assert history["loss"] == pytest.approx([expected, expected], rel=1e-5)


def test_train_runs_the_network_in_training_mode():
    class Recorder(DenseAutoencoder):
        modes = []

        def forward(self, x):
            self.modes.append(self.training)
            return super().forward(x)

    net = Recorder(2).eval()
    train(net, make_loader(image_dataset(8), 4), 1, progress=False)
    assert Recorder.modes == [True, True]
    assert not net.training


@pytest.mark.parametrize("epochs", [0, -1, 2.0, "3", True])
def test_bad_epochs_is_a_config_error(epochs):
    net = DenseAutoencoder(2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ConfigError) as caught:
        train(net, make_loader(image_dataset(8), 4), epochs, progress=False)
    assert f"EPOCHS={epochs!r}" in str(caught.value)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------

_UNPICKLED = []


def _record_unpickling(*args):
    _UNPICKLED.append(args)
    return "payload ran"


class Payload:
    """An arbitrary object: unpickling it calls a function (here a harmless recorder)."""

    def __reduce__(self):
        return (_record_unpickling, ("payload",))


def test_checkpoint_round_trip_restores_weights_and_extras(tmp_path):
    set_seed(0)
    net = DenseAutoencoder(8)
    path = tmp_path / "checkpoints" / "02_dense.pt"  # the folder does not exist yet
    save_checkpoint(path, net, latent_dim=8, epochs=3, loss=[0.5, 0.25], name="dense")
    set_seed(1)
    fresh = DenseAutoencoder(8)
    assert not params_equal(net, fresh)
    checkpoint = load_checkpoint(path, fresh)
    assert params_equal(net, fresh)
    assert checkpoint["latent_dim"] == 8 and checkpoint["epochs"] == 3
    assert checkpoint["loss"] == [0.5, 0.25] and checkpoint["name"] == "dense"
    assert os.listdir(path.parent) == ["02_dense.pt"]


def test_checkpoint_into_a_different_architecture_fails(tmp_path):
    save_checkpoint(tmp_path / "net.pt", DenseAutoencoder(8))
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_checkpoint(tmp_path / "net.pt", DenseAutoencoder(4))


def test_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "net.pt"
    set_seed(0)
    old_net = DenseAutoencoder(2)
    save_checkpoint(path, old_net, epochs=1)
    before = path.read_bytes()

    def save_half_then_fail(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, DenseAutoencoder(2), epochs=2)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["net.pt"], "no temporary file may be left behind"
    reloaded = DenseAutoencoder(2)
    assert load_checkpoint(path, reloaded)["epochs"] == 1
    assert params_equal(reloaded, old_net)


def test_loading_refuses_arbitrary_python_objects(tmp_path):
    path = tmp_path / "evil.pt"
    net = DenseAutoencoder(2)
    torch.save({"model": net.state_dict(), "payload": Payload()}, path)
    _UNPICKLED.clear()
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path, DenseAutoencoder(2))
    assert _UNPICKLED == []
    # the control: a plain full unpickling of the same file does run the payload
    assert torch.load(path, weights_only=False)["payload"] == "payload ran"
    assert _UNPICKLED == [("payload",)]


# --------------------------------------------------------------------------------------------
# results files
# --------------------------------------------------------------------------------------------

def test_results_round_trip(tmp_path):
    results = {"auroc": 0.9876, "sizes": [1, 2, 3], "nested": {"b": None, "a": "text"},
               "flag": True}
    path = write_results(tmp_path / "results", "02_dense", results)
    assert path == tmp_path / "results" / "02_dense.json"
    assert read_results(tmp_path / "results", "02_dense") == results
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text.index('"auroc"') < text.index('"flag"') < text.index('"nested"')  # sorted keys


def test_results_overwrite_replaces_the_old_content(tmp_path):
    write_results(tmp_path, "ch", {"old": 1, "gone": 2})
    write_results(tmp_path, "ch", {"new": 3})
    assert read_results(tmp_path, "ch") == {"new": 3}
    assert os.listdir(tmp_path) == ["ch.json"]


def test_unserialisable_results_keep_the_previous_file(tmp_path):
    path = write_results(tmp_path, "ch", {"auroc": 0.5})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_results(tmp_path, "ch", {"auroc": object()})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ch.json"]


def test_results_write_failing_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    path = write_results(tmp_path, "ch", {"auroc": 0.5})
    before = path.read_bytes()
    real_write_text = Path.write_text

    def write_half_then_fail(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_results(tmp_path, "ch", {"auroc": 0.75, "more": list(range(100))})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert json.loads(before) == {"auroc": 0.5}
    assert os.listdir(tmp_path) == ["ch.json"]


def test_results_file_gets_the_usual_permissions(tmp_path):
    old_umask = os.umask(0o022)
    try:
        plain = tmp_path / "plain.json"
        plain.write_text("{}\n")
        path = write_results(tmp_path, "ch", {})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o644


# --------------------------------------------------------------------------------------------
# DenseAutoencoder
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_output_shape_equals_input_shape(shape):
    net = DenseAutoencoder(4, image_shape=shape)
    x = torch.rand(5, *shape) * 2 - 1
    assert net(x).shape == x.shape


def test_output_range_follows_value_range():
    set_seed(0)
    x = torch.randn(32, 1, 28, 28) * 20  # large inputs push the outputs to both ends
    minus_one_one = DenseAutoencoder(4, value_range="[-1, 1]")(x)
    zero_one = DenseAutoencoder(4, value_range="[0, 1]")(x)
    assert minus_one_one.min() >= -1 and minus_one_one.max() <= 1
    assert minus_one_one.min() < -0.05 < 0.05 < minus_one_one.max()
    assert zero_one.min() >= 0 and zero_one.max() <= 1
    assert 0.1 < zero_one.mean() < 0.9


@pytest.mark.parametrize("latent_dim", [0, -2, 2.5, "8", True])
def test_bad_latent_dim_is_a_config_error(latent_dim):
    with pytest.raises(ConfigError) as caught:
        DenseAutoencoder(latent_dim)
    assert f"LATENT_DIM={latent_dim!r}" in str(caught.value)


def test_bad_value_range_is_a_config_error():
    with pytest.raises(ConfigError, match=r"value_range='\[0,1\]'"):
        DenseAutoencoder(2, value_range="[0,1]")


def test_latent_dim_sets_the_bottleneck():
    net = DenseAutoencoder(5)
    assert net.encoder(torch.zeros(3, 1, 28, 28)).shape == (3, 5)


def test_anomaly_map_sums_absolute_differences_over_channels():
    x = torch.zeros(2, 3, 4, 5)
    reconstruction = torch.stack([torch.full((4, 5), v) for v in (1.0, -2.0, 0.5)])
    reconstruction = reconstruction.expand(2, -1, -1, -1)
    anomaly_map = DenseAutoencoder.anomaly_map(x, reconstruction)
    assert anomaly_map.shape == (2, 4, 5)
    assert torch.all(anomaly_map == 3.5)


def test_loss_is_the_mean_squared_error():
    x = torch.zeros(2, 1, 2, 2)
    reconstruction = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 2.0]).view(2, 1, 2, 2)
    assert DenseAutoencoder.loss(x, reconstruction).item() == pytest.approx(34 / 8)


def test_companion_exports_what_the_chapters_use():
    for name in companion.__all__:
        assert hasattr(companion, name), name
