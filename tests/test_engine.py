"""Tests of companion.engine (devices, seeding, loaders, the training loop, checkpoints),
companion.settings, companion.files and the dense autoencoder."""

from __future__ import annotations

import json
import os
import random
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import companion
from companion import (ClassSubset, ConfigError, DeviceError, History, in_memory, kept_epoch,
                       load_checkpoint, make_loader, read_results, resolve_device, save_checkpoint,
                       set_seed, train_epochs, write_results)
from companion.models import DenseAutoencoder
from companion.settings import (Setting, flag, fraction, integer, non_negative_number, one_of,
                                optional_positive_int, positive_int, positive_number, validate)
from companion.errors import CheckpointError


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


def adam_step(net: nn.Module, lr: float = 2e-3):
    """A detector-style ``step``: one Adam update of ``net`` on the MSE of a batch."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)

    def step(images, *_):
        optimizer.zero_grad()
        loss = net.loss(images, net(images))
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}
    return step


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


@pytest.mark.parametrize("name", ["cpu", " CPU ", torch.device("cpu")])
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
# set_seed, in_memory and make_loader
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


class Items(Dataset):
    """Five items (a constant image, its class, its label) and a count of item look-ups."""

    def __init__(self):
        self.targets = torch.arange(5) + 10
        self.lookups = 0

    def __len__(self):
        return 5

    def __getitem__(self, i):
        self.lookups += 1
        return torch.full((1, 2, 2), float(i)), i + 10


def test_make_loader_collects_a_map_style_dataset_into_tensors():
    class Labelled(Items):
        def __getitem__(self, i):
            return (*super().__getitem__(i), i % 2)

    data = in_memory(Labelled())
    assert isinstance(data, TensorDataset)
    assert data.tensors[0].shape == (5, 1, 2, 2)
    images, classes, labels = next(iter(make_loader(Labelled(), 3)))
    assert images[:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0]
    assert classes.tolist() == [10, 11, 12] and labels.tolist() == [0, 1, 0]


def test_in_memory_runs_a_class_subset_s_transform_once():
    items = Items()
    subset = ClassSubset(items, [11, 13], [14], value_range="[0, 1]")
    first = in_memory(subset)
    assert items.lookups == 3
    second = in_memory(subset)
    assert items.lookups == 3, "a ClassSubset keeps its tensors"
    assert all(a is b for a, b in zip(first.tensors, second.tensors))
    images, classes, labels = first.tensors
    assert images[:, 0, 0, 0].tolist() == [1.0, 3.0, 4.0]
    assert classes.tolist() == [11, 13, 14] and labels.tolist() == [0, 0, 1]
    assert in_memory(first) is first


@pytest.mark.parametrize("batch_size", [0, -4, "16", 16.0, True])
def test_bad_batch_size_is_a_config_error(batch_size):
    with pytest.raises(ConfigError) as caught:
        make_loader(TensorDataset(torch.arange(4)), batch_size)
    assert f"BATCH_SIZE={batch_size!r}" in str(caught.value)


# --------------------------------------------------------------------------------------------
# train_epochs: the one training loop
# --------------------------------------------------------------------------------------------

def test_training_lowers_the_loss_and_logs_each_epoch():
    set_seed(0)
    net = DenseAutoencoder(8)
    loader = make_loader(image_dataset(64), 16, shuffle=True, seed=0)
    history = train_epochs(adam_step(net), loader, 6, {"net": net}, "cpu", progress=False)
    assert isinstance(history, History)
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    losses = history["loss"]
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0]
    assert history.seconds > 0
    assert history.chosen_epoch == 6, "without validation the last epoch is kept"
    assert not net.training, "training must leave the network in eval mode"
    assert history.as_dict() == {"log": history.log, "chosen_epoch": 6,
                                 "seconds": history.seconds, "restarts": 0}
    json.dumps(history.as_dict())  # a results file can hold it


def test_epoch_loss_is_the_mean_over_images_not_over_batches():
    set_seed(0)
    net = DenseAutoencoder(4)
    data = image_dataset(50)  # batches of 16, 16, 16 and 2 images
    images = data.tensors[0]
    with torch.no_grad():
        expected = F.mse_loss(net(images), images).item()
    history = train_epochs(adam_step(net, lr=0.0), make_loader(data, 16), 2, {"net": net}, "cpu",
                           progress=False)  # lr 0: the weights never change
    assert history["loss"] == pytest.approx([expected, expected], rel=1e-5)


def test_steps_run_in_training_mode_and_see_every_batch_on_the_device():
    net = DenseAutoencoder(2).eval()
    seen = []

    def step(images, classes, labels):
        seen.append((net.training, len(images), images.device.type, classes.tolist()))
        return {"loss": 1.0, "other": 2.0}

    history = train_epochs(step, make_loader(image_dataset(10), 4), 1, {"net": net}, "cpu",
                           progress=False)
    assert seen == [(True, 4, "cpu", [0, 1, 2, 3]), (True, 4, "cpu", [4, 5, 6, 7]),
                    (True, 2, "cpu", [8, 9])]
    assert not net.training
    assert history["loss"] == [1.0] and history["other"] == [2.0]


def test_validation_keeps_the_best_epoch_and_restores_its_weights():
    net = nn.Linear(1, 1)
    values = iter([3.0, 1.0, 2.0, 5.0])  # the second epoch is best
    weights_by_epoch = []

    def step(*_):
        with torch.no_grad():
            net.weight += 1.0
        return {"loss": 0.0}

    def validate():
        weights_by_epoch.append(net.weight.item())
        return next(values)

    logged = []
    history = train_epochs(step, make_loader(TensorDataset(torch.zeros(2, 1)), 2), 4,
                           {"net": net}, "cpu", validate,
                           after_epoch=lambda epoch: logged.append(epoch) or {"marker": 10 * epoch},
                           progress=False)
    assert history["val_loss"] == [3.0, 1.0, 2.0, 5.0]
    assert history.chosen_epoch == 2
    assert net.weight.item() == weights_by_epoch[1], "the chosen epoch's weights are restored"
    assert logged == [1, 2, 3, 4] and history["marker"] == [10, 20, 30, 40]


def counting_net_and_step():
    net = nn.Linear(1, 1)

    def step(*_):
        with torch.no_grad():
            net.weight += 1.0
        return {"loss": 0.0}
    return net, step


def test_stop_below_ends_at_the_first_epoch_under_the_threshold_and_keeps_it():
    net, step = counting_net_and_step()
    start = net.weight.item()
    values = iter([3.0, 0.5, 0.2, 0.1])  # under 1.0 first at epoch 2; later epochs are lower
    history = train_epochs(step, make_loader(TensorDataset(torch.zeros(2, 1)), 2), 4,
                           {"net": net}, "cpu", lambda: next(values), progress=False,
                           stop_below=1.0)
    assert history["epoch"] == [1, 2] and history["val_loss"] == [3.0, 0.5]
    assert history.chosen_epoch == 2
    assert net.weight.item() == start + 2, "the weights are those of the stopping epoch"


@pytest.mark.parametrize("losses, stop_below", [([3.0, 0.5, 0.2], 1.0), ([3.0, 2.0, 4.0], 1.0),
                                                ([2.0, 1.0, 3.0], None), ([0.1, 0.2], 1.0)])
def test_kept_epoch_reads_a_full_log_as_the_loop_would_have_stopped(losses, stop_below):
    net, step = counting_net_and_step()
    values = iter(losses)
    history = train_epochs(step, make_loader(TensorDataset(torch.zeros(2, 1)), 2), len(losses),
                           {"net": net}, "cpu", lambda: next(values), progress=False,
                           stop_below=stop_below)
    assert kept_epoch(losses, stop_below) == history.chosen_epoch


def test_kept_epoch_without_losses_is_a_config_error():
    with pytest.raises(ConfigError, match="validation images"):
        kept_epoch([], 1.0)


def test_stop_below_never_reached_falls_back_to_the_best_epoch():
    net, step = counting_net_and_step()
    start = net.weight.item()
    values = iter([3.0, 2.0, 4.0])
    history = train_epochs(step, make_loader(TensorDataset(torch.zeros(2, 1)), 2), 3,
                           {"net": net}, "cpu", lambda: next(values), progress=False,
                           stop_below=1.0)
    assert history["epoch"] == [1, 2, 3] and history.chosen_epoch == 2
    assert net.weight.item() == start + 2


@pytest.mark.parametrize("epochs", [0, -1, 2.0, "3", True])
def test_bad_epochs_is_a_config_error(epochs):
    net = DenseAutoencoder(2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ConfigError) as caught:
        train_epochs(adam_step(net), make_loader(image_dataset(8), 4), epochs, {"net": net}, "cpu",
                     progress=False)
    assert f"EPOCHS={epochs!r}" in str(caught.value)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_weights_on_another_device_than_the_batches_are_refused():
    """Issue 15: a module left on one device while the batches go to another fails at once,
    naming the module and both devices, before any step runs."""
    net = DenseAutoencoder(2).to("meta")
    steps = []
    with pytest.raises(DeviceError) as caught:
        train_epochs(lambda *batch: steps.append(batch) or {"loss": 0.0},
                     make_loader(image_dataset(8), 4), 1, {"net": net, "other": nn.Linear(1, 1)},
                     "cpu", progress=False)
    message = str(caught.value)
    assert message.startswith("net has weights on meta, but the batches go to cpu")
    assert ".to(device)" in message and "\n" not in message
    assert steps == []


def test_every_module_is_checked_for_its_device():
    cpu_net, meta_net = nn.Linear(1, 1), nn.Linear(1, 1).to("meta")
    with pytest.raises(DeviceError, match="^d has weights on meta"):
        train_epochs(lambda *_: {}, make_loader(TensorDataset(torch.zeros(2, 1)), 2), 1,
                     {"r": cpu_net, "d": meta_net}, torch.device("cpu"), progress=False)


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


def test_checkpoint_round_trip_restores_weights_and_plain_values(tmp_path):
    set_seed(0)
    net = DenseAutoencoder(8)
    path = tmp_path / "checkpoints" / "02_dense.pt"  # the folder does not exist yet
    save_checkpoint(path, {"net": net.state_dict(), "latent_dim": 8, "loss": [0.5, 0.25],
                           "name": "dense", "shape": (1, 28, 28), "centre": torch.ones(3)})
    set_seed(1)
    fresh = DenseAutoencoder(8)
    assert not params_equal(net, fresh)
    checkpoint = load_checkpoint(path, "cpu")
    fresh.load_state_dict(checkpoint["net"])
    assert params_equal(net, fresh)
    assert checkpoint["latent_dim"] == 8 and checkpoint["loss"] == [0.5, 0.25]
    assert checkpoint["name"] == "dense" and tuple(checkpoint["shape"]) == (1, 28, 28)
    assert torch.equal(checkpoint["centre"], torch.ones(3))
    assert os.listdir(path.parent) == ["02_dense.pt"]


def test_checkpoint_into_a_different_architecture_fails(tmp_path):
    save_checkpoint(tmp_path / "net.pt", {"net": DenseAutoencoder(8).state_dict()})
    with pytest.raises(RuntimeError, match="size mismatch"):
        DenseAutoencoder(4).load_state_dict(load_checkpoint(tmp_path / "net.pt")["net"])


def test_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "net.pt"
    set_seed(0)
    old_net = DenseAutoencoder(2)
    save_checkpoint(path, {"net": old_net.state_dict(), "epochs": 1})
    before = path.read_bytes()

    def save_half_then_fail(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"net": DenseAutoencoder(2).state_dict(), "epochs": 2})
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["net.pt"], "no temporary file may be left behind"
    checkpoint = load_checkpoint(path)
    reloaded = DenseAutoencoder(2)
    reloaded.load_state_dict(checkpoint["net"])
    assert checkpoint["epochs"] == 1
    assert params_equal(reloaded, old_net)


def test_loading_refuses_arbitrary_python_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"net": DenseAutoencoder(2).state_dict(), "payload": Payload()}, path)
    _UNPICKLED.clear()
    with pytest.raises(CheckpointError, match="not a weights-only checkpoint"):
        load_checkpoint(path)
    assert _UNPICKLED == []
    # the control: a plain full unpickling of the same file does run the payload
    assert torch.load(path, weights_only=False)["payload"] == "payload ran"
    assert _UNPICKLED == [("payload",)]


# --------------------------------------------------------------------------------------------
# settings: one line naming the value and an example
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("check, bad, expected", [
    (positive_int, 0, "EPOCHS=0; use a positive integer such as 7"),
    (positive_int, True, "EPOCHS=True; use a positive integer such as 7"),
    (optional_positive_int, 2.0, "EPOCHS=2.0; use a positive integer such as 7"),
    (integer, "1", "EPOCHS='1'; use an integer such as 7"),
    (positive_number, float("inf"), "EPOCHS=inf; use a positive number such as 7"),
    (non_negative_number, -1, "EPOCHS=-1; use a number >= 0 such as 7"),
    (fraction, 1.0, "EPOCHS=1.0; use a number between 0 and 1 such as 7"),
    (flag, 1, "EPOCHS=1; use True or False"),
])
def test_checks_name_the_value_and_an_example(check, bad, expected):
    with pytest.raises(ConfigError) as caught:
        check(bad, "EPOCHS", 7)
    assert str(caught.value) == expected


def test_checks_return_good_values():
    assert positive_int(3, "n") == 3 and optional_positive_int(None, "n") is None
    assert positive_number(2, "x") == 2.0 and type(positive_number(2, "x")) is float
    assert non_negative_number(0, "x") == 0.0 and fraction(0.25, "x") == 0.25
    assert flag(False, "x") is False and one_of(["a", "b"])("b", "x") == "b"
    with pytest.raises(ConfigError, match=r"^x='c'; use one of \['a', 'b'\]$"):
        one_of(["a", "b"])("c", "x")


SPEC = {"epochs": Setting(20, positive_int, 20), "lr": Setting(1e-3, positive_number),
        "latent_dim": Setting(32, optional_positive_int, 32)}


def test_validate_fills_defaults_and_checks_values():
    assert validate({"lr": 0.5}, SPEC, "detector 'x'") == {"epochs": 20, "lr": 0.5,
                                                           "latent_dim": 32}
    with pytest.raises(ConfigError, match=r"^epochs=0; use a positive integer such as 20$"):
        validate({"epochs": 0}, SPEC, "detector 'x'")
    with pytest.raises(ConfigError, match=r"^lr='fast'; use a positive number such as 0.001$"):
        validate({"lr": "fast"}, SPEC, "detector 'x'")  # no example: the default is shown


def test_validate_refuses_unknown_names_suggesting_the_closest():
    with pytest.raises(ConfigError) as caught:
        validate({"latent_dimm": 4}, SPEC, "detector 'x'")
    assert str(caught.value) == ("detector 'x' has no setting 'latent_dimm'; its settings are "
                                 "['epochs', 'latent_dim', 'lr']. Did you mean 'latent_dim'?")
    with pytest.raises(ConfigError) as caught:
        validate({"zzz": 4}, SPEC, "detector 'x'")
    assert "Did you mean" not in str(caught.value)


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
    for gone in ("train", "training"):  # the old API, replaced by the detectors (issue 13)
        assert not hasattr(companion, gone), gone
