"""Chapter 08's synthetic anomalies and localisation metrics: masks, seeds, PRO by hand."""

import numpy as np
import pytest
import torch

from companion import ConfigError, detectors
from companion.localisation import (KINDS, MIN_CHANGED_PIXELS, NORMAL, MaskedImages,
                                    localisation_metrics, make_anomalies)
from companion.metrics import pixel_auroc, pro_area, pro_curve, regions


def sneaker_like(n, seed=0):
    """Grey-level images in [0, 1] on 1/255 steps: a bright object on a black background."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 10:22, 4:24] = torch.randint(60, 256, (n, 1, 12, 20), generator=generator) / 255
    return images


def every_kind(n):
    return [([NORMAL] + list(KINDS))[i % (len(KINDS) + 1)] for i in range(n)]


def test_mask_is_exactly_the_changed_pixels_and_normal_images_stay_unchanged():
    images, donors = sneaker_like(20), sneaker_like(5, seed=1).flip(-1)
    kinds = every_kind(len(images))
    changed, masks = make_anomalies(images, kinds, torch.Generator().manual_seed(3), donors)
    assert masks.shape == (20, 28, 28) and masks.dtype == torch.bool
    assert torch.equal(masks, (changed != images).any(dim=1))
    assert torch.equal(changed[~masks.unsqueeze(1)], images[~masks.unsqueeze(1)])
    assert changed.min() >= 0 and changed.max() <= 1
    for i, kind in enumerate(kinds):
        if kind == NORMAL:
            assert torch.equal(changed[i], images[i]) and not masks[i].any()
        else:
            assert int(masks[i].sum()) >= MIN_CHANGED_PIXELS, kind
    assert images.sum() == sneaker_like(20).sum()  # the inputs are not changed in place


def test_same_seed_same_anomalies_other_seed_other_anomalies():
    images, donors = sneaker_like(10), sneaker_like(5, seed=1).flip(-1)
    kinds = every_kind(len(images))
    first = make_anomalies(images, kinds, torch.Generator().manual_seed(0), donors)
    again = make_anomalies(images, kinds, torch.Generator().manual_seed(0), donors)
    other = make_anomalies(images, kinds, torch.Generator().manual_seed(1), donors)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    anomalous = torch.tensor([kind != NORMAL for kind in kinds])
    differs = (first[1] != other[1])[anomalous].flatten(1).any(dim=1)
    assert differs.all()  # every anomaly lands elsewhere under another seed


def test_bad_kinds_and_missing_donors_are_one_line_errors():
    images = sneaker_like(2)
    with pytest.raises(ConfigError, match="unknown anomaly kind 'scratch'"):
        make_anomalies(images, ["scratch", NORMAL], torch.Generator())
    with pytest.raises(ConfigError, match="need donors"):
        make_anomalies(images, ["patch", NORMAL], torch.Generator())
    with pytest.raises(ConfigError, match="blank"):
        make_anomalies(torch.zeros(1, 1, 28, 28), ["erase"], torch.Generator())


# The hand-worked case: two images of 1 x 5 pixels.
#   image 0: mask  1   1   0   0   1      map 0.9 0.4 0.1 0.5 0.8
#   image 1: mask  0   0   0   0   0      map 0.2 0.3 0.6 0.0 0.1
# Regions: A = the first two pixels of image 0 (scores 0.9, 0.4), B = its last pixel (0.8).
# Normal pixels: 0.1 0.5 | 0.2 0.3 0.6 0.0 0.1, seven of them.
# Pixel AUROC: pairs (anomalous > normal) = 7 (0.9) + 7 (0.8) + 5 (0.4) = 19 of 3 x 7 = 21.
# Pixels with map >= t called anomalous:
#   t = 0.9: A 1/2, B 0 -> PRO 0.25, FPR 0      t = 0.6: PRO 0.75, FPR 1/7
#   t = 0.8: A 1/2, B 1 -> PRO 0.75, FPR 0      t = 0.5: PRO 0.75, FPR 2/7
#   t = 0.4: A 1,   B 1 -> PRO 1,    FPR 2/7    t = 0.3: PRO 1,    FPR 3/7
# Area from FPR 0 to 0.3: 0.75 * 2/7 + 1 * (0.3 - 2/7) = 0.3 - 0.5/7, over 0.3 = 1 - 5/21 = 16/21.
# Raise A's second pixel to 0.7, above every normal pixel: at t = 0.7 the PRO is 1 at FPR 0,
# so the curve is 1 from FPR 0 to 0.3 and the area is 1.
HAND_MAPS = np.array([[[0.9, 0.4, 0.1, 0.5, 0.8]], [[0.2, 0.3, 0.6, 0.0, 0.1]]])
HAND_MASKS = np.array([[[1, 1, 0, 0, 1]], [[0, 0, 0, 0, 0]]], dtype=bool)


def test_pro_and_pixel_auroc_of_the_hand_worked_case():
    assert pixel_auroc(HAND_MAPS, HAND_MASKS) == pytest.approx(19 / 21)
    labels, count = regions(HAND_MASKS)
    assert count == 2 and labels[0, 0].tolist() == [1, 1, 0, 0, 2] and not labels[1].any()
    fpr, pro, thresholds = pro_curve(HAND_MAPS, HAND_MASKS)
    at = {round(float(t), 6): (f, p) for t, f, p in zip(thresholds, fpr, pro)}
    assert at[0.9] == pytest.approx((0, 0.25))
    assert at[0.8] == pytest.approx((0, 0.75))
    assert at[0.6] == pytest.approx((1 / 7, 0.75))
    assert at[0.5] == pytest.approx((2 / 7, 0.75))
    assert at[0.4] == pytest.approx((2 / 7, 1.0))
    assert at[0.3] == pytest.approx((3 / 7, 1.0))
    assert pro_area(HAND_MAPS, HAND_MASKS) == pytest.approx(16 / 21)
    whole = HAND_MAPS.copy()
    whole[0, 0, 1] = 0.7
    assert pro_area(whole, HAND_MASKS) == pytest.approx(1.0)


def test_regions_touching_at_a_corner_are_one_and_images_never_share_one():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, 0, 0] = masks[0, 1, 1] = True   # diagonal neighbours: one region
    masks[0, 3, 3] = True                    # apart: a second
    masks[1, 0, 0] = True                    # same place, other image: a third
    labels, count = regions(masks)
    assert count == 3 and labels[0, 0, 0] == labels[0, 1, 1] != labels[0, 3, 3]
    assert labels[1, 0, 0] not in (labels[0, 0, 0], labels[0, 3, 3])


def region_overlap_by_definition(maps, masks, threshold):
    """PRO and FPR at one threshold, straight from the definition: a loop over the regions."""
    labels, count = regions(masks)
    called = maps >= threshold
    overlaps = [called[labels == k].mean() for k in range(1, count + 1)]
    return np.mean(overlaps), called[~masks].mean()


def test_pro_curve_is_monotone_in_the_threshold_and_matches_the_definition():
    generator = np.random.default_rng(0)
    masks = np.zeros((6, 12, 12), dtype=bool)
    masks[0, 2:5, 2:5] = masks[1, 7:11, 1:3] = masks[2, 0, 11] = masks[2, 6:9, 6:9] = True
    maps = generator.random(masks.shape) + 0.6 * masks  # anomalies brighter, with overlap
    maps[3] = np.round(maps[3], 1)  # ties, so a threshold may move many pixels at once
    fpr, pro, thresholds = pro_curve(maps, masks)
    assert np.all(np.diff(thresholds) < 0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)
    assert (fpr[-1], pro[-1]) == (1.0, 1.0)
    for t in thresholds[1::25]:  # the first threshold is sklearn's "nothing called anomalous"
        expected_pro, expected_fpr = region_overlap_by_definition(maps, masks, t)
        position = int(np.flatnonzero(thresholds == t)[0])
        assert pro[position] == pytest.approx(expected_pro)
        assert fpr[position] == pytest.approx(expected_fpr)
    # A better map (the anomalies brighter still) never lowers the area.
    assert pro_area(maps + 0.5 * masks, masks) >= pro_area(maps, masks)


def test_a_random_map_has_pro_area_near_half_the_fpr_limit():
    masks = np.zeros((400, 8, 8), dtype=bool)
    masks[:, 3:5, 3:5] = True  # 400 regions, so the mean overlap is close to its expectation
    random_maps = np.random.default_rng(1).random(masks.shape)
    assert pro_area(random_maps, masks) == pytest.approx(0.15, abs=0.02)
    assert pro_area(random_maps, masks, max_fpr=0.1) == pytest.approx(0.05, abs=0.02)


def test_pro_needs_both_kinds_of_pixel():
    with pytest.raises(ConfigError, match="anomalous and normal pixels"):
        pro_area(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), dtype=bool))
    with pytest.raises(ConfigError, match="MAX_FPR"):
        pro_area(HAND_MAPS, HAND_MASKS, max_fpr=1.5)


def test_a_detector_scores_synthetic_anomalies_and_metrics_come_per_kind():
    images, donors = sneaker_like(24), sneaker_like(5, seed=1).flip(-1)
    kinds = np.array(every_kind(len(images)))
    changed, masks = make_anomalies(images, kinds, torch.Generator().manual_seed(0), donors)
    data = MaskedImages(changed, masks, kinds, torch.full((24,), 7))
    assert data.labels.tolist() == [int(kind != NORMAL) for kind in kinds]
    assert list(data.kind_counts()) == [NORMAL, *KINDS]
    assert sorted(kinds[data.positions("blot")]) == ["blot"] * 5 + [NORMAL] * 5
    detector = detectors.make("dense_ae", latent_dim=4, epochs=1, device="cpu", progress=False)
    detector.fit(MaskedImages(images[:8], torch.zeros(8, 28, 28, dtype=torch.bool),
                                    np.array([NORMAL] * 8), torch.full((8,), 7)))
    results = localisation_metrics(detector.score(data), data)
    assert list(results) == [*KINDS, "all"]
    for per_kind in results.values():
        assert set(per_kind) == {"pixel_auroc", "pro", "image_auroc"}
        assert all(0.0 <= value <= 1.0 for value in per_kind.values())
    with pytest.raises(ConfigError, match="not of these images"):
        localisation_metrics(detector.score(data.select(np.arange(10))), data)
