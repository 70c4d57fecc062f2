"""Every registered detector (companion.detectors.REGISTRY) through the one interface of issue 13:
fit on a tiny real one-class split (the shipped MNIST files, "1" normal, "8" anomalous), score,
same seed same scores, save and load, and one-line errors for bad data and bad settings.

The settings are tiny (an epoch or two, 200 reference images for the f-Nets, two U-Net steps):
these tests check what every detector promises, not how well it detects.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import companion
from companion import ConfigError, DeviceError, detectors
from companion.detectors import REGISTRY
from companion.scores import Scores
from companion.errors import CheckpointError

NAMES = sorted(REGISTRY)

#: Tiny values for whichever of these settings a detector has.
TINY = {"epochs": 2, "fnet_epochs": 1, "batch_size": 32, "fnet_batch_size": 32,
        "reference_images": 200, "steps": 2, "latent_dim": 8, "base_channels": 8,
        "unet_channels": 4}
TRAIN_SIZE, VAL_SIZE, TEST_SIZE = 64, 32, 40


def tiny_settings(name: str, data_dir) -> dict:
    known = REGISTRY[name].SETTINGS
    settings = {key: value for key, value in TINY.items() if key in known}
    if "data_dir" in known:  # where the f-Nets find their reference: Debian's Fashion-MNIST
        settings["data_dir"] = str(data_dir)
    return settings


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("detector-data")


@pytest.fixture(scope="module")
def splits(data_dir):
    """Small random parts of the real split, one per value range, made once."""
    made = {}

    def split_in(value_range: str):
        if value_range not in made:
            split = companion.one_class_split("mnist", [1], [8], data_dir=data_dir,
                                              value_range=value_range, verbose=False,
                                              val_fraction=0.2)
            made[value_range] = (split.train.sample(TRAIN_SIZE, seed=0),
                                 split.val.sample(VAL_SIZE, seed=0),
                                 split.test.sample(TEST_SIZE, seed=0))
        return made[value_range]
    return split_in


def make(name, data_dir, seed=0, **settings):
    return detectors.make(name, device="cpu", seed=seed, progress=False,
                          **{**tiny_settings(name, data_dir), **settings})


@pytest.fixture(scope="module")
def fitted(data_dir, splits):
    """name -> (detector, history, scores), each detector fitted and scored once."""
    done = {}

    def fit(name):
        if name not in done:
            detector = make(name, data_dir)
            train, val, test = splits(detector.value_ranges[0])
            history = detector.fit(train, val=val)
            done[name] = detector, history, detector.score(test)
        return done[name]
    return fit


def assert_same_scores(name, first: Scores, second: Scores):
    assert first.names == second.names
    for score in first.names:
        if name == "ano_unet":  # many U-Nets as one grouped computation: rounding may differ
            np.testing.assert_allclose(first[score], second[score], rtol=1e-5, atol=1e-6,
                                       err_msg=score)
        else:
            assert np.array_equal(first[score], second[score]), score
    if first.maps is not None:
        np.testing.assert_allclose(first.maps, second.maps, rtol=1e-5, atol=1e-6)


def test_the_registry_holds_the_book_s_detectors():
    assert {"dense_ae", "conv_ae", "alocc", "fnet_distance", "fnet_oe", "ano_unet"} <= set(NAMES)
    for name, detector in REGISTRY.items():
        assert detector.name == name
        assert detector.value_ranges and set(detector.value_ranges) <= {"[-1, 1]", "[0, 1]"}
    with pytest.raises(ConfigError, match=r"unknown detector 'conv-ae'; known: \['alocc'"):
        detectors.make("conv-ae")


@pytest.mark.parametrize("name", NAMES)
def test_fit_and_score_on_a_real_split(name, fitted, splits):
    detector, history, scores = fitted(name)
    _, _, test = splits(detector.value_ranges[0])
    images, classes, labels = test.tensors()
    assert isinstance(scores, Scores) and len(scores) == TEST_SIZE
    assert scores.headline == detector.headline == type(detector).headline
    assert scores.names[0] == scores.headline
    for score in scores.names:
        assert scores[score].shape == (TEST_SIZE,), score
        assert np.isfinite(scores[score]).all(), score
    assert scores.labels.tolist() == labels.tolist() and scores.classes.tolist() == classes.tolist()
    assert 0 < scores.labels.sum() < TEST_SIZE, "both normal and anomalous test images"
    assert scores.value_range == detector.value_range == detector.value_ranges[0]
    if scores.maps is not None:
        assert scores.maps.shape == (TEST_SIZE, 28, 28)
    if scores.inputs is not None:
        assert torch.equal(scores.inputs, images)
    if scores.outputs is not None:
        assert scores.outputs.shape == (TEST_SIZE, 1, 28, 28)
    for score, auroc in scores.aurocs().items():
        assert 0.0 <= auroc <= 1.0, score
    assert isinstance(history, companion.History)
    assert 1 <= history.chosen_epoch <= len(history["epoch"])
    assert detector.device == torch.device("cpu") and detector.image_shape == (1, 28, 28)


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_scores(name, fitted, splits, data_dir):
    first, _, first_scores = fitted(name)
    train, val, test = splits(first.value_ranges[0])
    again = make(name, data_dir, seed=0)
    again.fit(train, val=val)
    assert_same_scores(name, first_scores, again.score(test))
    other = make(name, data_dir, seed=1)
    other.fit(train, val=val)
    assert not np.array_equal(other.score(test)[first.headline], first_scores[first.headline])


_UNPICKLED = []


class Payload:
    """Unpickling it would call a function: what weights-only loading must refuse."""

    def __reduce__(self):
        return (_UNPICKLED.append, ("payload ran",))


@pytest.mark.parametrize("name", NAMES)
def test_save_and_load_give_the_same_scores(name, fitted, splits, tmp_path):
    detector, _, scores = fitted(name)
    path = tmp_path / "saved" / f"{name}.pt"
    detector.save(path)
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file left"
    checkpoint = torch.load(path, weights_only=True)  # tensors and plain values only
    assert checkpoint["detector"] == name and checkpoint["value_range"] == detector.value_range
    loaded = detectors.load(path, device="cpu", progress=False)
    assert type(loaded) is type(detector) and loaded.seed == detector.seed
    assert loaded.headline == detector.headline
    assert_same_scores(name, scores, loaded.score(splits(detector.value_ranges[0])[2]))

    checkpoint["payload"] = Payload()
    torch.save(checkpoint, tmp_path / "evil.pt")
    _UNPICKLED.clear()
    with pytest.raises(CheckpointError, match="not a weights-only checkpoint"):
        detectors.load(tmp_path / "evil.pt", device="cpu", progress=False)
    assert _UNPICKLED == []


@pytest.mark.parametrize("name", NAMES)
def test_a_wrong_value_range_is_a_one_line_config_error(name, fitted, splits, data_dir):
    detector, _, _ = fitted(name)
    for value_range in ("[-1, 1]", "[0, 1]"):
        train, _, test = splits(value_range)
        if value_range in detector.value_ranges:
            if value_range == detector.value_range:
                continue
            with pytest.raises(ConfigError) as caught:  # fitted on one range, scoring another
                detector.score(test)
            assert f"fitted on images in {detector.value_range}" in str(caught.value)
        else:
            with pytest.raises(ConfigError) as caught:
                make(name, data_dir).fit(train)
            assert f"value_range={detector.value_ranges[0]!r}" in str(caught.value)
            assert f"the training data is in {value_range}" in str(caught.value)
        assert "\n" not in str(caught.value)
        assert caught.value._render_traceback_() == [f"ConfigError: {caught.value}"]


@pytest.mark.parametrize("name", NAMES)
def test_score_before_fit_and_save_before_fit_are_config_errors(name, splits, data_dir, tmp_path):
    detector = make(name, data_dir)
    with pytest.raises(ConfigError, match="not fitted yet"):
        detector.score(splits(detector.value_ranges[0])[2])
    with pytest.raises(ConfigError, match="nothing to save"):
        detector.save(tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def misspelt(setting: str) -> str:
    middle = len(setting) // 2
    return setting[:middle] + ("x" if setting[middle] != "x" else "y") + setting[middle + 1:]


@pytest.mark.parametrize("name", NAMES)
def test_unknown_setting_names_suggest_the_closest(name):
    longest = max(REGISTRY[name].SETTINGS, key=len)
    typo = misspelt(longest)
    with pytest.raises(ConfigError) as caught:
        detectors.make(name, **{typo: 1})
    message = str(caught.value)
    assert message.startswith(f"detector {name!r} has no setting {typo!r}; its settings are ")
    assert message.endswith(f"Did you mean {longest!r}?") and "\n" not in message


def refused_strings():
    """(detector, setting) for every setting whose check refuses the string 'fast'."""
    pairs = []
    for name in NAMES:
        for setting_name, setting in REGISTRY[name].SETTINGS.items():
            try:
                setting.validate("fast", setting_name)
            except ConfigError:
                pairs.append((name, setting_name))
    return pairs


@pytest.mark.parametrize("name, setting", refused_strings())
def test_a_bad_setting_value_names_the_setting_and_what_would_work(name, setting):
    spec = REGISTRY[name].SETTINGS[setting]
    with pytest.raises(ConfigError) as caught:
        detectors.make(name, **{setting: "fast"})
    message = str(caught.value)
    assert message.startswith(f"{setting}='fast'; use "), message
    assert "\n" not in message
    if isinstance(spec.default, bool):
        assert message.endswith("True or False")
    elif isinstance(spec.example if spec.example is not None else spec.default, (int, float)):
        example = spec.example if spec.example is not None else spec.default
        assert message.endswith(f"such as {example:g}" if isinstance(example, float)
                                else f"such as {example}"), message


def test_every_numeric_setting_is_checked():
    checked = set(refused_strings())
    for name in NAMES:
        for setting_name, setting in REGISTRY[name].SETTINGS.items():
            if isinstance(setting.default, (int, float)) and not isinstance(setting.default, bool):
                assert (name, setting_name) in checked, (name, setting_name)


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_device_fails_when_the_detector_is_made(name, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"^DEVICE='cuda' but this machine has no CUDA GPU"):
        detectors.make(name, device="cuda")


@pytest.mark.parametrize("name", NAMES)
def test_seed_and_progress_are_checked(name):
    with pytest.raises(ConfigError, match=r"^SEED='0'; use an integer"):
        detectors.make(name, seed="0")
    with pytest.raises(ConfigError, match=r"^PROGRESS='no'; use True or False"):
        detectors.make(name, progress="no")


@pytest.mark.parametrize("name", NAMES)
def test_fit_leaves_the_training_data_alone(name, splits, data_dir):
    one_epoch = {"epochs": 1} if "epochs" in REGISTRY[name].SETTINGS else {}
    detector = make(name, data_dir, **one_epoch)
    train, val, _ = splits(detector.value_ranges[0])
    before = copy.deepcopy(train.tensors())
    detector.fit(train, val=val)
    assert all(torch.equal(a, b) for a, b in zip(before, train.tensors()))
