"""An AUROC floor per detector on one small fixed run ("1" normal, "8" anomalous, shipped MNIST
files, seed 0), so that a change that breaks how well a model detects fails CI.

Each floor sits a few points below what the run measured when it was set (the comment beside
it), not at chance: the runs are seeded and deterministic on the CPU, so only a real change in a
model, its training or its score moves them.
"""

from __future__ import annotations

import pytest

import companion
from companion import detectors
from companion.detectors import REGISTRY

#: Small settings for whichever a detector has: enough for every model to learn "1".
SMALL = {"epochs": 5, "fnet_epochs": 2, "batch_size": 32, "fnet_batch_size": 32,
         "reference_images": 500, "steps": 20, "latent_dim": 16}
TRAIN_SIZE, VAL_SIZE, TEST_SIZE = 400, 100, 200
#: A U-Net per test image is the costly part of Ano-Unet: fewer test images.
TEST_SIZES = {"ano_unet": 60}

#: Headline-score AUROC floors (measured value when set, in the comment).
FLOORS = {
    "alocc": 0.95,            # D(R(x)) 0.992
    "ano_unet": 0.60,         # pixel difference 0.714
    "conv_ae": 0.93,          # mse 0.974
    "dense_ae": 0.95,         # mse 0.988
    "fnet_distance": 0.93,    # centre distance 0.972
    "fnet_oe": 0.94,          # centre distance 0.984
    "restoration_ae": 0.90,   # restoration mse 0.946
    "restoration_pair": 0.95, # restoration + dense 1.000
    "ssim_ae": 0.93,          # 1-ssim 0.978
    "vae": 0.95,              # reconstruction NLL 0.987
}


def test_every_registered_detector_has_a_floor():
    assert set(FLOORS) == set(REGISTRY)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("floor-data")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_headline_auroc_stays_above_its_floor(name, data_dir):
    known = REGISTRY[name].SETTINGS
    settings = {key: value for key, value in SMALL.items() if key in known}
    if "data_dir" in known:
        settings["data_dir"] = str(data_dir)
    detector = detectors.make(name, device="cpu", seed=0, progress=False, **settings)
    split = companion.one_class_split("mnist", [1], [8], data_dir=data_dir,
                                      value_range=detector.value_ranges[0], verbose=False,
                                      val_fraction=0.2)
    detector.fit(split.train.sample(TRAIN_SIZE, seed=0), val=split.val.sample(VAL_SIZE, seed=0))
    scores = detector.score(split.test.sample(TEST_SIZES.get(name, TEST_SIZE), seed=0))
    assert scores.auroc() >= FLOORS[name], (
        f"{name}: {scores.headline} AUROC {scores.auroc():.3f} fell below its floor "
        f"{FLOORS[name]}")
