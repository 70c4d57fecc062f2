"""Tests of companion.data: class subsets, one-class splits, parameter errors, data sources.

Everything runs offline: torchvision downloads are replaced by a stub that fails the way a
machine without internet does, and Debian's Fashion-MNIST folder is pointed at an empty
folder unless a test puts its own tiny files there.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchvision import datasets

import companion
import companion.data
from companion import (ClassSubset, CompanionError, ConfigError, DatasetNotFoundError,
                       load_dataset, one_class_split)
from companion.data import check_classes, dataset_info, image_transform

MNIST_TEST_COUNTS = {1: 1135, 8: 974, 9: 1009}  # the official MNIST test set


# --------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------

def idx_bytes(array) -> bytes:
    """An array in the IDX format of MNIST: magic 2051 for images (N, 28, 28), 2049 for labels."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = {3: 2051, 1: 2049}[array.ndim]
    header = struct.pack(">i", magic) + b"".join(struct.pack(">i", d) for d in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array, compressed: bool) -> bytes:
    """Write ``array`` as an IDX file (gzip'd if ``compressed``); returns the raw IDX bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = idx_bytes(array)
    if compressed:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return raw


def tiny_idx_set(num_train: int, num_test: int, seed: int = 0) -> dict:
    """Images and labels of a tiny MNIST-like data set, keyed by torchvision's raw file names."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", num_train), ("t10k", num_test)):
        arrays[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = (np.arange(n) % 10).astype(np.uint8)
    return arrays


def write_tiny_idx_set(folder: Path, arrays: dict, compressed: bool) -> dict:
    """Write ``arrays`` into ``folder`` (``.gz`` names when compressed); returns raw bytes."""
    suffix = ".gz" if compressed else ""
    return {name: write_idx(folder / (name + suffix), array, compressed)
            for name, array in arrays.items()}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test downloads anything or reads the machine's own Debian Fashion-MNIST.

    Returns the list of torchvision download attempts (one class name per call).
    """
    calls = []

    def no_network(self):
        calls.append(type(self).__name__)
        raise urllib.error.URLError("tests run without network")

    monkeypatch.setattr(datasets.MNIST, "download", no_network)  # FashionMNIST inherits it
    monkeypatch.setattr(datasets.CIFAR10, "download", no_network)
    monkeypatch.setattr(companion.data, "DEBIAN_FASHION_MNIST_DIR",
                        tmp_path / "no-debian-fashion-mnist-here")
    return calls


@pytest.fixture(scope="module")
def mnist_test(tmp_path_factory):
    """The real MNIST test set shipped with the companion (10,000 images, no transform)."""
    data_dir = tmp_path_factory.mktemp("mnist-data")
    dataset, _ = load_dataset("mnist", train=False, data_dir=data_dir, verbose=False)
    return dataset


@pytest.fixture(scope="module")
def mnist_data_dir(tmp_path_factory):
    """A DATA_DIR into which the shipped MNIST copies have been decompressed once."""
    data_dir = tmp_path_factory.mktemp("mnist-split")
    load_dataset("mnist", train=False, data_dir=data_dir, verbose=False)
    return data_dir


# --------------------------------------------------------------------------------------------
# ClassSubset on the real MNIST test set
# --------------------------------------------------------------------------------------------

def test_shipped_mnist_test_set_is_the_official_one(mnist_test):
    targets = torch.as_tensor(mnist_test.targets)
    assert len(mnist_test) == 10_000
    assert {c: int((targets == c).sum()) for c in MNIST_TEST_COUNTS} == MNIST_TEST_COUNTS


def test_class_subset_counts_match_torchvision_targets(mnist_test):
    targets = torch.as_tensor(mnist_test.targets)
    subset = ClassSubset(mnist_test, [1], [8])
    expected = {c: int((targets == c).sum()) for c in (1, 8)}
    assert subset.class_counts() == expected == {1: 1135, 8: 974}
    assert len(subset) == 1135 + 974


def test_class_subset_keeps_exactly_the_wanted_indices_in_order(mnist_test):
    targets = np.asarray(mnist_test.targets)
    subset = ClassSubset(mnist_test, [1], [8])
    expected = np.flatnonzero((targets == 1) | (targets == 8))
    np.testing.assert_array_equal(subset.indices.numpy(), expected)


def test_every_subset_item_has_the_class_of_its_source_index(mnist_test):
    targets = torch.as_tensor(mnist_test.targets)
    subset = ClassSubset(mnist_test, [1], [8])
    for i in range(len(subset)):
        _, original_class, label = subset[i]
        assert original_class == int(targets[subset.indices[i]])
        assert label == int(original_class == 8)


def test_subset_item_is_the_image_at_the_source_index(mnist_test):
    subset = ClassSubset(mnist_test, [3])
    for i in (0, 17, len(subset) - 1):
        image, original_class, label = subset[i]
        source_image, source_class = mnist_test[int(subset.indices[i])]
        assert np.array_equal(np.asarray(image), np.asarray(source_image))
        assert (original_class, label) == (source_class, 0) == (3, 0)


def test_class_subset_with_several_normal_and_anomaly_classes(mnist_test):
    targets = torch.as_tensor(mnist_test.targets)
    subset = ClassSubset(mnist_test, [0, 1], (8, 9))
    assert subset.class_counts() == {c: int((targets == c).sum()) for c in (0, 1, 8, 9)}
    assert int(subset.anomaly_labels.sum()) == 974 + 1009
    assert torch.equal(subset.anomaly_labels.bool(), (subset.targets >= 8))


def test_class_subset_without_anomaly_classes_labels_everything_normal(mnist_test):
    subset = ClassSubset(mnist_test, [7])
    assert subset.class_counts() == {7: 1028}
    assert int(subset.anomaly_labels.sum()) == 0


def test_class_subset_accepts_one_shot_iterables(mnist_test):
    subset = ClassSubset(mnist_test, iter([1]), iter([8]))
    assert subset.class_counts() == {1: 1135, 8: 974}


# --------------------------------------------------------------------------------------------
# the one-class split on the real shipped MNIST files
# --------------------------------------------------------------------------------------------

def test_one_class_split_train_holds_only_normal_classes(mnist_data_dir):
    split = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, verbose=False)
    assert split.train.class_counts() == {1: 6742}  # the full official training split
    assert torch.all(split.train.anomaly_labels == 0)
    for i in range(len(split.train)):
        image, original_class, label = split.train[i]
        assert (original_class, label) == (1, 0)
    assert image.shape == (1, 28, 28)


def test_one_class_split_test_labels_are_one_exactly_for_anomaly_classes(mnist_data_dir):
    split = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, verbose=False)
    assert split.test.class_counts() == {1: 1135, 8: 974}
    assert torch.equal(split.test.anomaly_labels, (split.test.targets == 8).long())
    labels = [split.test[i][2] for i in range(0, len(split.test), 7)]
    classes = [split.test[i][1] for i in range(0, len(split.test), 7)]
    assert labels == [int(c == 8) for c in classes]
    assert set(classes) == {1, 8}


def test_one_class_split_images_are_scaled_to_minus_one_one(mnist_data_dir):
    split = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, verbose=False)
    images = torch.stack([split.test[i][0] for i in range(50)])
    assert images.dtype == torch.float32
    assert images.min() == -1.0 and images.max() == 1.0  # MNIST uses the full 0..255 range


def test_value_range_zero_one_is_to_tensor_and_every_subset_remembers_it(mnist_data_dir):
    unit = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, verbose=False,
                           value_range="[0, 1]", val_fraction=0.2)
    default = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, verbose=False)
    assert unit.value_range == "[0, 1]" and default.value_range == "[-1, 1]"
    assert unit.train.value_range == unit.val.value_range == unit.test.value_range == "[0, 1]"
    assert unit.test.sample(3).value_range == "[0, 1]"
    unit_images, default_images = unit.test.tensors()[0][:50], default.test.tensors()[0][:50]
    assert unit_images.min() == 0.0 and unit_images.max() == 1.0
    assert torch.allclose(unit_images * 2 - 1, default_images, atol=1e-6)
    assert unit.describe()["value_range"] == "[0, 1]"


def test_val_fraction_holds_normal_training_images_out_at_random(mnist_data_dir):
    split = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, verbose=False,
                            val_fraction=0.2, seed=3)
    assert (len(split.train), len(split.val)) == (5394, 1348)
    assert not set(split.train.indices.tolist()) & set(split.val.indices.tolist())
    assert split.val.class_counts() == {1: 1348} and int(split.val.anomaly_labels.sum()) == 0
    assert split.describe()["val_size"] == 1348 and split.describe()["train_size"] == 5394
    again = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, verbose=False,
                            val_fraction=0.2, seed=3)
    other = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, verbose=False,
                            val_fraction=0.2, seed=4)
    assert torch.equal(again.val.indices, split.val.indices)
    assert not torch.equal(other.val.indices, split.val.indices)
    assert torch.equal(split.val.indices, split.val.indices.sort().values), "dataset order kept"
    with pytest.raises(ConfigError, match=r"VAL_FRACTION=1.5; use a number between 0 and 1"):
        split.train.partition(1.5)


def test_sample_and_tensors_keep_images_classes_and_labels_together(mnist_data_dir):
    split = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, verbose=False)
    images, classes, labels = split.test.tensors()
    assert split.test.tensors()[0] is images, "transformed once, then kept"
    assert images.shape == (1135 + 974, 1, 28, 28)
    assert torch.equal(labels, (classes == 8).long())
    part = split.test.sample(40, seed=1)
    assert len(part) == 40 and torch.equal(part.indices, part.indices.sort().values)
    assert torch.equal(part.indices, split.test.sample(40, seed=1).indices)
    part_images, part_classes, part_labels = part.tensors()
    positions = torch.searchsorted(split.test.indices, part.indices)
    assert torch.equal(part_images, images[positions])  # cut from the kept tensors
    assert torch.equal(part_classes, classes[positions])
    assert torch.equal(part_labels, labels[positions])
    fresh = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, verbose=False)
    fresh = fresh.test.sample(40, seed=1)
    assert torch.equal(fresh.tensors()[0], part_images)  # the same without kept tensors
    assert len(split.test.sample(10**6)) == len(split.test), "never more than there are"
    assert part.dataset_name == "mnist"


def test_anomaly_classes_none_means_every_other_class(mnist_data_dir):
    split = one_class_split("mnist", [1], None, data_dir=mnist_data_dir, verbose=False)
    assert split.anomaly_classes == [0, 2, 3, 4, 5, 6, 7, 8, 9]
    assert len(split.test) == 10_000
    assert int(split.test.anomaly_labels.sum()) == 10_000 - 1135


def test_training_anomalies_are_training_images_of_the_anomaly_classes(mnist_data_dir):
    split = one_class_split("mnist", [1], [3, 8], data_dir=mnist_data_dir, verbose=False,
                            val_fraction=0.2, seed=0)
    pool = split.training_anomalies(300, seed=0)
    assert len(pool) == 300 and pool.dataset is split.train.dataset, "from the training split"
    assert set(pool.class_counts()) == {3, 8} and int(pool.anomaly_labels.sum()) == 300
    assert pool.value_range == split.value_range
    assert torch.equal(pool.indices, split.training_anomalies(300, seed=0).indices)
    assert not torch.equal(pool.indices, split.training_anomalies(300, seed=1).indices)
    # what the choice scripts built by hand before the method existed (their records used it)
    by_hand = ClassSubset(split.train.dataset, [], [3, 8]).sample(300, 0)
    assert torch.equal(pool.indices, by_hand.indices)


def test_describe_reports_sizes_and_sources(mnist_data_dir):
    split = one_class_split("mnist", [1], [8, 9], data_dir=mnist_data_dir, verbose=False)
    facts = split.describe()
    assert facts["dataset"] == "mnist"
    assert facts["normal_classes"] == [1] and facts["anomaly_classes"] == [8, 9]
    assert facts["train_size"] == 6742
    assert facts["test_size"] == 1135 + 974 + 1009
    assert facts["test_anomalies"] == 974 + 1009
    assert facts["train_split_size"] == 60_000
    assert "shipped" in facts["train_source"] and "shipped" in facts["test_source"]


def test_the_shipped_training_split_is_the_full_one_and_says_so(tmp_path, capsys):
    dataset, _ = load_dataset("mnist", train=True, data_dir=tmp_path)
    out = capsys.readouterr().out
    assert len(dataset) == 60_000
    assert torch.bincount(torch.as_tensor(dataset.targets)).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert "mnist train split: 60,000 images from the MNIST files shipped" in out
    assert "NOTE" not in out


def test_a_smaller_training_split_prints_a_note_about_the_sample(tmp_path, capsys):
    write_tiny_idx_set(tmp_path / "MNIST" / "raw", tiny_idx_set(12, 7), compressed=False)
    dataset, _ = load_dataset("mnist", train=True, data_dir=tmp_path)
    out = capsys.readouterr().out
    assert len(dataset) == 12
    assert "NOTE: this is a 12-image sample" in out and "not the full 60,000" in out


def test_train_size_draws_that_many_normal_images_and_says_so(mnist_data_dir, capsys):
    split = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, train_size=500,
                            val_fraction=0.2, seed=3)
    out = capsys.readouterr().out
    assert "TRAIN_SIZE=500: 500 of the 6,742 training images of classes [1]" in out
    assert (len(split.train), len(split.val)) == (400, 100)
    indices = torch.cat([split.train.indices, split.val.indices])
    assert len(set(indices.tolist())) == 500 and set(split.train.targets.tolist()) == {1}
    again = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, train_size=500,
                            val_fraction=0.2, seed=3, verbose=False)
    assert torch.equal(again.train.indices, split.train.indices)
    other = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, train_size=500,
                            seed=4, verbose=False)
    assert not torch.equal(other.train.indices[:400], split.train.indices)
    everything = one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, train_size=10_000,
                                 verbose=False)
    assert len(everything.train) == 6742  # more than there are: all of them


@pytest.mark.parametrize("bad", [0, -5, 2.5, "500", True])
def test_bad_train_size_is_a_clear_error(mnist_data_dir, bad):
    with pytest.raises(ConfigError, match=rf"TRAIN_SIZE={bad!r}; use a positive integer"):
        one_class_split("mnist", [1], [8], data_dir=mnist_data_dir, train_size=bad)


def test_a_stale_smaller_copy_of_the_shipped_files_is_replaced(tmp_path, offline):
    raw = tmp_path / "offline-copies" / "MNIST" / "raw"
    write_tiny_idx_set(raw, tiny_idx_set(12, 7), compressed=False)  # say, an older 5,000-image sample
    train, source = load_dataset("mnist", train=True, data_dir=tmp_path, verbose=False)
    assert len(train) == 60_000 and "shipped" in source


def test_test_split_prints_no_note_and_verbose_false_prints_nothing(tmp_path, capsys):
    load_dataset("mnist", train=False, data_dir=tmp_path)
    out = capsys.readouterr().out
    assert "10,000 images" in out and "NOTE" not in out
    load_dataset("mnist", train=True, data_dir=tmp_path, verbose=False)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# bad parameters: one companion error that names the bad value
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("normal, anomaly, parameter, shown", [
    ([10], [8], "NORMAL_CLASSES", "10"),
    ([-1], [8], "NORMAL_CLASSES", "-1"),
    ([1], [10], "ANOMALY_CLASSES", "10"),
    ([True], [8], "NORMAL_CLASSES", "True"),
    ([1.0], [8], "NORMAL_CLASSES", "1.0"),
])
def test_out_of_range_or_non_int_class_is_a_config_error(tmp_path, normal, anomaly, parameter,
                                                         shown):
    with pytest.raises(ConfigError) as caught:
        one_class_split("mnist", normal, anomaly, data_dir=tmp_path)
    message = str(caught.value)
    assert f"{parameter} contains {shown}," in message
    assert "0..9" in message
    assert not any(tmp_path.iterdir()), "parameters must be checked before any data is touched"


def test_empty_class_list_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"NORMAL_CLASSES is empty"):
        one_class_split("mnist", [], [8], data_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"ANOMALY_CLASSES is empty"):
        one_class_split("mnist", [1], (), data_dir=tmp_path)


def test_duplicate_class_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"NORMAL_CLASSES lists class 1 twice: \[1, 1\]"):
        one_class_split("mnist", [1, 1], [8], data_dir=tmp_path)


def test_overlapping_normal_and_anomaly_classes_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        one_class_split("mnist", [1, 2], [2, 8], data_dir=tmp_path)
    assert ("classes [2] are both in NORMAL_CLASSES=[1, 2] and ANOMALY_CLASSES=[2, 8]"
            in str(caught.value))


def test_all_classes_normal_leaves_no_anomaly(tmp_path):
    with pytest.raises(ConfigError, match="leaves no class to be an anomaly"):
        one_class_split("mnist", list(range(10)), None, data_dir=tmp_path)


@pytest.mark.parametrize("parameter", ["NORMAL_CLASSES", "ANOMALY_CLASSES"])
def test_string_instead_of_list_explains_papermill_y(tmp_path, parameter):
    args = {"NORMAL_CLASSES": ("[1]", [8]), "ANOMALY_CLASSES": ([1], "[8]")}[parameter]
    with pytest.raises(ConfigError) as caught:
        one_class_split("mnist", *args, data_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{parameter}='[")
    assert "is not a list of classes" in message
    assert f'-y "{parameter}: [1]"' in message


def test_single_int_instead_of_list_is_a_config_error():
    with pytest.raises(ConfigError, match=r"NORMAL_CLASSES=1 is not a list"):
        check_classes(dataset_info("mnist"), 1, "NORMAL_CLASSES")


def test_check_classes_returns_plain_int_list():
    assert check_classes(dataset_info("cifar10"), (3, 0), "NORMAL_CLASSES") == [3, 0]


def test_unknown_dataset_suggests_the_close_name(tmp_path):
    with pytest.raises(ConfigError) as caught:
        one_class_split("mnsit", [1], [8], data_dir=tmp_path)
    message = str(caught.value)
    assert "unknown DATASET='mnsit'" in message
    assert "Did you mean 'mnist'?" in message


def test_unknown_dataset_with_nothing_close_gives_no_suggestion():
    with pytest.raises(ConfigError) as caught:
        dataset_info("imagenet")
    assert "Did you mean" not in str(caught.value)
    assert "['cifar10', 'fashion-mnist', 'mnist']" in str(caught.value)


@pytest.mark.parametrize("name", [3, None, ["mnist"]])
def test_non_string_dataset_is_a_config_error(name):
    with pytest.raises(ConfigError) as caught:
        dataset_info(name)
    assert str(caught.value).startswith(f"DATASET={name!r} is not a name")


def test_dataset_names_are_normalised():
    assert dataset_info(" Fashion_MNIST ").name == "fashion-mnist"
    assert dataset_info("CIFAR10").channels == 3


@pytest.mark.parametrize("make", [lambda: image_transform(1, "[0,1]"),
                                  lambda: one_class_split("mnist", [1], [8], value_range="[0,1]"),
                                  lambda: ClassSubset(torch.utils.data.TensorDataset(), [1],
                                                      value_range="[0,1]")])
def test_bad_value_range_is_a_config_error(make):
    with pytest.raises(ConfigError) as caught:
        make()
    assert str(caught.value) == "VALUE_RANGE='[0,1]'; use one of ['[-1, 1]', '[0, 1]']"


def test_companion_errors_share_a_base_class_and_builtin_meaning():
    assert issubclass(ConfigError, CompanionError) and issubclass(ConfigError, ValueError)
    assert issubclass(DatasetNotFoundError, CompanionError)
    assert issubclass(DatasetNotFoundError, FileNotFoundError)
    assert issubclass(companion.DeviceError, CompanionError)


def test_error_renders_as_one_line_in_ipython(tmp_path):
    with pytest.raises(ConfigError) as caught:
        one_class_split("mnist", [10], [8], data_dir=tmp_path)
    rendered = caught.value._render_traceback_()
    assert rendered == [f"ConfigError: {caught.value}"]
    assert "\n" not in rendered[0]


def test_missing_cifar10_offline_says_where_it_looked(tmp_path, offline):
    data_dir = tmp_path / "empty"
    data_dir.mkdir()
    with pytest.raises(DatasetNotFoundError) as caught:
        one_class_split("cifar10", [7], [4], data_dir=data_dir)
    message = str(caught.value)
    assert message.startswith("cifar10 (train split) not found.")
    assert f"DATA_DIR={str(data_dir)!r}" in message
    assert "a torchvision download into DATA_DIR" in message
    assert "put cifar-10-batches-py under DATA_DIR" in message
    assert offline == ["CIFAR10"]  # the download was tried, and failed
    assert caught.value._render_traceback_()[0].startswith("DatasetNotFoundError: cifar10")


def test_missing_fashion_mnist_offline_mentions_debian_and_apt_get(tmp_path, monkeypatch):
    debian = tmp_path / "debian-empty"
    debian.mkdir()
    monkeypatch.setattr(companion.data, "DEBIAN_FASHION_MNIST_DIR", debian)
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("fashion-mnist", train=False, data_dir=tmp_path / "data")
    message = str(caught.value)
    assert "fashion-mnist (test split) not found" in message
    assert f"Debian's dataset-fashion-mnist ({debian})" in message
    assert "apt-get install -y dataset-fashion-mnist" in message
    assert isinstance(caught.value, FileNotFoundError)


# --------------------------------------------------------------------------------------------
# where the data comes from, in order, on tiny files in the real IDX format
# --------------------------------------------------------------------------------------------

def test_idx_helper_writes_what_torchvision_reads(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    arrays = tiny_idx_set(5, 3)
    write_tiny_idx_set(tmp_path, arrays, compressed=False)
    images = read_image_file(str(tmp_path / "train-images-idx3-ubyte"))
    labels = read_label_file(str(tmp_path / "train-labels-idx1-ubyte"))
    assert np.array_equal(images.numpy(), arrays["train-images-idx3-ubyte"])
    assert labels.tolist() == [0, 1, 2, 3, 4]


def test_data_dir_in_torchvision_layout_wins_over_shipped_files(tmp_path, offline):
    arrays = tiny_idx_set(12, 7)
    write_tiny_idx_set(tmp_path / "MNIST" / "raw", arrays, compressed=False)
    train, train_source = load_dataset("mnist", train=True, data_dir=tmp_path, verbose=False)
    test, test_source = load_dataset("mnist", train=False, data_dir=tmp_path, verbose=False)
    assert (len(train), len(test)) == (12, 7)
    assert train_source.startswith("DATA_DIR") and test_source.startswith("DATA_DIR")
    assert np.array_equal(train.data.numpy(), arrays["train-images-idx3-ubyte"])
    assert train.targets.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert not (tmp_path / "offline-copies").exists(), "the shipped copy must not even be tried"
    assert offline == []


def test_without_data_dir_files_the_shipped_mnist_is_used(tmp_path, offline):
    train, source = load_dataset("mnist", train=True, data_dir=tmp_path, verbose=False)
    assert len(train) == 60_000
    assert "shipped" in source
    raw = tmp_path / "offline-copies" / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(companion.data._IDX_FILES)
    assert offline == []


def test_fashion_mnist_comes_from_debian_and_is_decompressed_under_data_dir(tmp_path, monkeypatch,
                                                                           offline):
    debian = tmp_path / "debian"
    arrays = tiny_idx_set(20, 10, seed=1)
    raw_bytes = write_tiny_idx_set(debian, arrays, compressed=True)
    monkeypatch.setattr(companion.data, "DEBIAN_FASHION_MNIST_DIR", debian)
    data_dir = tmp_path / "data"

    train, source = load_dataset("fashion-mnist", train=True, data_dir=data_dir, verbose=False)

    assert len(train) == 20
    assert source.startswith("Debian") and str(debian) in source
    assert isinstance(train, datasets.FashionMNIST)
    assert np.array_equal(train.data.numpy(), arrays["train-images-idx3-ubyte"])
    raw = data_dir / "debian-copies" / "FashionMNIST" / "raw"
    for name, content in raw_bytes.items():
        assert (raw / name).read_bytes() == content
    assert sorted(p.name for p in raw.iterdir()) == sorted(raw_bytes), "no temporary files left"
    assert offline == []


def test_one_class_split_on_tiny_debian_fashion_mnist(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    write_tiny_idx_set(debian, tiny_idx_set(30, 20, seed=2), compressed=True)
    monkeypatch.setattr(companion.data, "DEBIAN_FASHION_MNIST_DIR", debian)
    split = one_class_split("fashion-mnist", [7], None, data_dir=tmp_path / "data", verbose=False)
    assert split.train.class_counts() == {7: 3}  # labels are i % 10
    assert split.test.class_counts() == {c: 2 for c in range(10)}
    assert int(split.test.anomaly_labels.sum()) == 18
    assert split.describe()["train_split_size"] == 30


def test_fashion_mnist_data_dir_wins_over_debian(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    write_tiny_idx_set(debian, tiny_idx_set(20, 10), compressed=True)
    monkeypatch.setattr(companion.data, "DEBIAN_FASHION_MNIST_DIR", debian)
    data_dir = tmp_path / "data"
    write_tiny_idx_set(data_dir / "FashionMNIST" / "raw", tiny_idx_set(4, 3), compressed=False)
    train, source = load_dataset("fashion-mnist", train=True, data_dir=data_dir, verbose=False)
    assert len(train) == 4 and source.startswith("DATA_DIR")


@pytest.fixture
def recorded_attempts(monkeypatch):
    """Records (root, download) of every torchvision load the companion tries, in order."""
    attempts = []
    real_try_load = companion.data._try_load

    def recording(info, root, train, transform, download=False):
        attempts.append((Path(root), download))
        return real_try_load(info, root, train, transform, download)

    monkeypatch.setattr(companion.data, "_try_load", recording)
    return attempts


def test_download_is_the_last_resort_by_default(tmp_path, offline, recorded_attempts):
    _, source = load_dataset("mnist", train=False, data_dir=tmp_path, verbose=False)
    assert recorded_attempts == [(tmp_path, False), (tmp_path / "offline-copies", False)]
    assert offline == [] and "shipped" in source


def test_download_first_tries_the_download_before_offline_copies(tmp_path, offline,
                                                                 recorded_attempts):
    dataset, source = load_dataset("mnist", train=False, data_dir=tmp_path, download_first=True,
                                   verbose=False)
    assert recorded_attempts == [(tmp_path, False), (tmp_path, True),
                                 (tmp_path / "offline-copies", False)]
    assert offline == ["MNIST"]  # the download was tried, failed, ...
    assert len(dataset) == 10_000 and "shipped" in source  # ... and the offline copy was used


def test_download_first_uses_a_successful_download(tmp_path, monkeypatch):
    arrays = tiny_idx_set(9, 6)

    def fake_download(self):
        write_tiny_idx_set(Path(self.raw_folder), arrays, compressed=False)

    monkeypatch.setattr(datasets.MNIST, "download", fake_download)
    train, source = load_dataset("mnist", train=True, data_dir=tmp_path, download_first=True,
                                 verbose=False)
    assert len(train) == 9
    assert source == "a torchvision download into DATA_DIR"
    assert not (tmp_path / "offline-copies").exists()


def test_nothing_found_tries_download_last_then_raises(tmp_path, offline, recorded_attempts):
    with pytest.raises(DatasetNotFoundError):
        load_dataset("cifar10", train=False, data_dir=tmp_path, verbose=False)
    assert recorded_attempts == [(tmp_path, False), (tmp_path, True)]
    assert offline == ["CIFAR10"]


def test_truncated_debian_file_leaves_no_temporary_file(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    write_tiny_idx_set(debian, tiny_idx_set(20, 10), compressed=True)
    images = debian / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[: len(images.read_bytes()) // 2])
    monkeypatch.setattr(companion.data, "DEBIAN_FASHION_MNIST_DIR", debian)
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte.gz is unreadable"):
        load_dataset("fashion-mnist", train=True, data_dir=data_dir, verbose=False)
    raw = data_dir / "debian-copies" / "FashionMNIST" / "raw"
    assert [p.name for p in raw.iterdir() if p.name not in companion.data._IDX_FILES] == []


# --------------------------------------------------------------------------------------------
# CIFAR-10 on tiny files in the real pickled-batch format
# --------------------------------------------------------------------------------------------

CIFAR_TRAIN_LABELS = [[7, 4, 0, 7], [1, 7, 2, 3], [7, 5, 6, 8], [9, 4, 7, 0], [1, 2, 3, 7]]
CIFAR_TEST_LABELS = [c for c in range(10)] * 2


def cifar_images(labels, rng) -> np.ndarray:
    """Rows of 3072 bytes (1024 red, 1024 green, 1024 blue); each channel of an image constant."""
    colours = rng.integers(0, 256, (len(labels), 3), dtype=np.uint8)
    colours[:, 0], colours[:, 1] = 0, 255  # red all 0, green all 255: the channel order shows
    return np.repeat(colours, 1024, axis=1)


def write_cifar10(data_dir: Path) -> dict:
    """Write a tiny cifar-10-batches-py folder; returns the pixel rows and labels per batch file."""
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, labels in zip(names, CIFAR_TRAIN_LABELS + [CIFAR_TEST_LABELS]):
        # torchvision unpickles with encoding="latin1", which turns the Python 2 str keys of the
        # real files into str: Python 3 str keys are what it reads
        batch = {"batch_label": name, "labels": list(labels), "data": cifar_images(labels, rng),
                 "filenames": [f"{name}_{i}.png" for i in range(len(labels))]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = batch
    meta = {"label_names": list(companion.data.DATASETS["cifar10"].class_names),
            "num_cases_per_batch": 4, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch):
    """A DATA_DIR holding tiny CIFAR-10 files; md5 checks only ask whether the file exists."""
    # the md5 of tiny files cannot match: _check_integrity covers the batches, and
    # CIFAR10._load_meta calls the module's check_integrity directly for batches.meta
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                        lambda fpath, md5=None: os.path.isfile(fpath))
    def batches_exist(self):
        folder = os.path.join(self.root, self.base_folder)
        return all(os.path.isfile(os.path.join(folder, f))
                   for f, _ in self.train_list + self.test_list)

    monkeypatch.setattr(datasets.CIFAR10, "_check_integrity", batches_exist)
    data_dir = tmp_path / "data"
    return data_dir, write_cifar10(data_dir)


def test_one_class_split_on_tiny_cifar10(tiny_cifar10, offline):
    data_dir, written = tiny_cifar10
    split = one_class_split("cifar10", [7], [4], data_dir=data_dir, verbose=False)
    train_labels = [c for batch in CIFAR_TRAIN_LABELS for c in batch]
    assert split.train.class_counts() == {7: train_labels.count(7)} == {7: 6}
    assert split.test.class_counts() == {4: 2, 7: 2}
    assert split.test.anomaly_labels.tolist() == [1, 0, 1, 0]  # test order: 4, 7, 4, 7
    assert split.train_source.startswith("DATA_DIR") and split.test_source.startswith("DATA_DIR")
    assert split.describe()["train_split_size"] == 20
    assert offline == []


def test_tiny_cifar10_images_are_3x32x32_in_minus_one_one(tiny_cifar10):
    data_dir, written = tiny_cifar10
    split = one_class_split("cifar10", [7], [4], data_dir=data_dir, verbose=False)
    for i in range(len(split.test)):
        image, original_class, _ = split.test[i]
        assert image.shape == (3, 32, 32)
        assert image.min() >= -1.0 and image.max() <= 1.0
        assert torch.all(image[0] == -1.0) and torch.all(image[1] == 1.0)  # red 0, green 255
        blue = written["test_batch"]["data"][int(split.test.indices[i]), 2048]
        assert torch.allclose(image[2], torch.full((32, 32), blue / 127.5 - 1.0))
        assert original_class == CIFAR_TEST_LABELS[int(split.test.indices[i])]


def test_cifar10_missing_a_batch_is_not_found(tiny_cifar10):
    data_dir, _ = tiny_cifar10
    (data_dir / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"cifar10 \(train split\) not found"):
        load_dataset("cifar10", train=True, data_dir=data_dir, verbose=False)
