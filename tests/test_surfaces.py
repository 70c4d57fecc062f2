"""Chapter 11's surfaces: the MVTec-AD folder loader, the defect maker, the offline texture set,
the maps, and every map-painting detector on 3x64x64 images. The chapter itself runs once at its
defaults (test_chapters.py); here it runs on two generated folders, one colour, one grey."""

import json

import numpy as np
import papermill
import pytest
import torch
from torchvision.io import write_png
from torchmetrics.functional.image import structural_similarity_index_measure

from companion import detectors, localisation, surfaces
from companion.errors import ConfigError, DataError, DatasetNotFoundError
from companion.models import SSIMAutoencoder
from companion.scores import Scores
from conftest import CELL_TIMEOUT_S, ROOT

CHAPTER = ROOT / "chapters" / "11_inspecting_surfaces.ipynb"


def surface(height, width, channels, generator):
    """A smooth random texture in [0, 1]: noise blurred by averaging, then stretched."""
    noise = torch.rand(channels, height // 4 + 1, width // 4 + 1, generator=generator)
    image = torch.nn.functional.interpolate(noise[None], size=(height, width), mode="bilinear",
                                            align_corners=False)[0]
    return (image - image.min()) / (image.max() - image.min())


def save(image, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png((image * 255).round().to(torch.uint8), str(path))


def mvtec_folder(root, category="widget", channels=3, size=(40, 48), train=12, good=4,
                 per_kind=3, kinds=("crack", "spot"), seed=0):
    """A category in the MVTec-AD layout: PNG images of ``size`` (height, width); each defective
    test image has a bright square whose mask is written beside it."""
    generator = torch.Generator().manual_seed(seed)
    base = root / category
    for i in range(train):
        save(surface(*size, channels, generator), base / "train" / "good" / f"{i:03d}.png")
    for i in range(good):
        save(surface(*size, channels, generator), base / "test" / "good" / f"{i:03d}.png")
    for kind in kinds:
        for i in range(per_kind):
            image, mask = surface(*size, channels, generator), torch.zeros(1, *size)
            image[:, 8:20, 12:28], mask[:, 8:20, 12:28] = 1.0, 1.0
            save(image, base / "test" / kind / f"{i:03d}.png")
            save(mask, base / "ground_truth" / kind / f"{i:03d}_mask.png")
    return base


def snapshot(folder):
    return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*"))


# -- the loader ----------------------------------------------------------------------------------
def test_loader_reads_a_colour_folder_resized_with_labels_kinds_and_aligned_masks(tmp_path):
    base = mvtec_folder(tmp_path)
    before = snapshot(tmp_path)
    split = surfaces.load_folder(tmp_path, "widget", image_size=32, val_fraction=0.25, seed=1,
                                 verbose=False)
    assert snapshot(tmp_path) == before, "the loader wrote into the reader's folder"
    images, classes, labels = split.train.tensors()
    assert images.shape == (9, 3, 32, 32) and len(split.val) == 3
    assert split.channels == 3 and split.original_size == (40, 48)
    test = split.test
    assert test.images.shape == (10, 3, 32, 32) and test.masks.shape == (10, 32, 32)
    assert test.kind_counts() == {"normal": 4, "crack": 3, "spot": 3}
    assert test.labels.tolist() == [0] * 4 + [1] * 6
    assert not test.masks[:4].any(), "good images get all-zero masks"
    # The defect is the one white square: resized, its mask covers what is white in the image.
    for image, mask in zip(test.images[4:], test.masks[4:]):
        assert image.mean(dim=0)[mask].mean() > 0.9 and image.mean(dim=0)[~mask].mean() < 0.7
    rows, cols = test.masks[4].nonzero().T
    assert rows.min() == 6 and rows.max() == 15  # 8..19 of 40 rows -> 6.4..16 of 32
    assert cols.min() == 8 and cols.max() == 18  # 12..27 of 48 columns -> 8..18.7 of 32
    assert split.describe()["test_kinds"] == test.kind_counts()


def test_loader_keeps_grey_as_grey_and_converts_on_request(tmp_path):
    mvtec_folder(tmp_path, channels=1, size=(36, 36))
    grey = surfaces.load_folder(tmp_path, "widget", 16, verbose=False)
    assert grey.channels == 1 and grey.test.images.shape[1:] == (1, 16, 16)
    colour = surfaces.load_folder(tmp_path, "widget", 16, channels=3, verbose=False)
    assert colour.test.images.shape[1] == 3
    assert torch.allclose(colour.test.images[:, 0], colour.test.images[:, 2])
    with pytest.raises(ConfigError, match="CHANNELS=2"):
        surfaces.load_folder(tmp_path, "widget", 16, channels=2)


def test_loader_prints_what_it_read(tmp_path, capsys):
    mvtec_folder(tmp_path)
    surfaces.load_folder(tmp_path, "widget", 32)
    printed = capsys.readouterr().out
    assert "12 training images (12 used for training)" in printed
    assert "3 channel(s), 40x48 pixels, resized to 32x32" in printed


@pytest.mark.parametrize("damage, error, message", [
    (lambda base: __import__("shutil").rmtree(base / "train" / "good"),
     DatasetNotFoundError, "train/good is missing"),
    (lambda base: [p.unlink() for p in (base / "test" / "spot").iterdir()],
     DataError, "test/spot holds no images"),
    (lambda base: (base / "ground_truth" / "crack" / "001_mask.png").unlink(),
     DataError, "test/crack/001.png has no mask: expected"),
    (lambda base: save(torch.zeros(1, 20, 20), base / "ground_truth" / "spot" / "002_mask.png"),
     DataError, "002_mask.png is (20, 20) pixels, but its image"),
    (lambda base: (base / "test" / "good" / "001.png").write_bytes(b"not a png"),
     DataError, "test/good/001.png is unreadable as an image"),
    (lambda base: (base / "train" / "good" / "extra.bmp").write_bytes(b"BM"),
     DataError, "extra.bmp: .bmp files are not read; convert"),
])
def test_a_bad_folder_is_an_error_that_names_the_path(tmp_path, damage, error, message):
    base = mvtec_folder(tmp_path)
    damage(base)
    with pytest.raises(error) as failure:
        surfaces.load_folder(tmp_path, "widget", 32, verbose=False)
    assert message in str(failure.value)
    assert str(base) in str(failure.value)


def test_unknown_category_and_missing_folder_say_what_is_there(tmp_path):
    mvtec_folder(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"no category 'gadget' .* \['widget'\]"):
        surfaces.load_folder(tmp_path, "gadget", 32)
    with pytest.raises(DatasetNotFoundError, match="FOLDER=.*is not a folder"):
        surfaces.load_folder(tmp_path / "nowhere", "widget", 32)


def test_reference_categories_label_every_category_or_give_none(tmp_path):
    mvtec_folder(tmp_path, "widget")
    assert surfaces.reference_categories(tmp_path, "widget", 16, 3, 5) is None
    mvtec_folder(tmp_path, "gadget", seed=1)
    reference = surfaces.reference_categories(tmp_path, "widget", 16, 3, 5)
    images, classes, _ = reference.tensors()
    assert images.shape == (10, 3, 16, 16) and reference.class_counts() == {0: 5, 1: 5}


# -- defects -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", surfaces.DEFECT_KINDS)
@pytest.mark.parametrize("channels", [1, 3])
def test_a_defect_mask_is_exactly_the_changed_pixels_and_reproducible(kind, channels):
    generator = torch.Generator().manual_seed(3)
    image, donor = surface(64, 64, channels, generator), surface(64, 64, channels, generator)
    changed, mask = surfaces.make_defect(image, kind, torch.Generator().manual_seed(7), donor)
    original = surfaces.quantise(image)
    assert torch.equal(mask, (changed != original).any(dim=0))
    assert mask.sum() >= surfaces.MIN_DEFECT_SHARE * 64 * 64
    assert torch.equal(changed, surfaces.quantise(changed)), "8-bit values, as a PNG stores"
    again, again_mask = surfaces.make_defect(image, kind, torch.Generator().manual_seed(7), donor)
    assert torch.equal(again, changed) and torch.equal(again_mask, mask)
    other, _ = surfaces.make_defect(image, kind, torch.Generator().manual_seed(8), donor)
    assert not torch.equal(other, changed)


def test_defect_errors_name_the_problem():
    image = torch.rand(1, 32, 32)
    with pytest.raises(ConfigError, match="unknown defect kind 'dent'"):
        surfaces.make_defect(image, "dent", torch.Generator())
    with pytest.raises(ConfigError, match="'foreign' defects need a donor"):
        surfaces.make_defect(image, "foreign", torch.Generator())


def test_defect_images_make_half_defective_every_kind_and_leave_foreign_without_donors():
    images = torch.stack([surface(32, 32, 1, torch.Generator().manual_seed(i)) for i in range(20)])
    tuning = surfaces.defect_images(images, seed=0)
    assert tuning.kind_counts() == {"normal": 10, "scratch": 3, "stain": 3, "hole": 2, "blur": 2}
    assert not tuning.masks[tuning.kinds == "normal"].any()
    assert all(tuning.masks[i].any() for i in np.flatnonzero(tuning.kinds != "normal"))
    donors = torch.rand(4, 1, 32, 32)
    assert "foreign" in surfaces.defect_images(images, 0, donors).kind_counts()
    with pytest.raises(ConfigError, match="use at least 8"):
        surfaces.defect_images(images[:6], 0)


def test_the_texture_set_is_written_in_the_layout_reproducibly_and_reused(tmp_path):
    settings = dict(categories=("brick", "grass"), tile_size=32, train_tiles=6, test_good=3,
                    test_per_kind=2, seed=4, verbose=False)
    first = surfaces.make_texture_set(tmp_path / "a", **settings)
    second = surfaces.make_texture_set(tmp_path / "b", **settings)
    files = sorted(p.relative_to(first) for p in first.rglob("*.png"))
    assert len(files) == 2 * (6 + 3 + 2 * len(surfaces.DEFECT_KINDS) * 2)
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    before = snapshot(first)
    assert surfaces.make_texture_set(tmp_path / "a", **settings) == first
    assert snapshot(first) == before, "a finished set is reused, not rewritten"
    split = surfaces.load_folder(first, "brick", 32, verbose=False)
    assert split.test.kind_counts() == {"normal": 3, **{k: 2 for k in sorted(surfaces.DEFECT_KINDS)}}
    for kind in surfaces.DEFECT_KINDS:  # at the written size, each mask is its changed pixels
        assert split.test.masks[split.test.kinds == kind].flatten(1).sum(1).min() > 0
    with pytest.raises(ConfigError, match="CATEGORY='marble'"):
        surfaces.make_texture_set(tmp_path, categories=("marble",))
    with pytest.raises(ConfigError, match="TILE_SIZE=256"):
        surfaces.make_texture_set(tmp_path, tile_size=256)


# -- maps ----------------------------------------------------------------------------------------
def scores_of(inputs, outputs, labels=None):
    n = len(inputs)
    labels = np.zeros(n, dtype=int) if labels is None else labels
    return Scores({"s": np.zeros(n)}, "s", labels, np.zeros(n), "[0, 1]", inputs=inputs,
                  outputs=outputs)


def test_maps_from_inputs_and_outputs():
    x, y = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    scores = scores_of(x, y)
    assert np.allclose(scores.with_map("l2").maps, ((x - y) ** 2).sum(1).numpy(), atol=1e-6)
    assert np.allclose(scores.with_map("l1").maps, (x - y).abs().sum(1).numpy(), atol=1e-6)
    assert np.allclose(scores_of(x, x).with_map("ssim").maps, 0, atol=1e-5)
    ssim = scores.with_map("ssim").maps
    whole = structural_similarity_index_measure(y, x, data_range=1.0, reduction="none")
    assert np.allclose(1 - ssim.mean(axis=(1, 2)), whole.numpy(), atol=1e-5)
    smooth = scores.with_map("l2", sigma=2.0).maps
    assert smooth.shape == (3, 16, 16) and smooth.std() < scores.with_map("l2").maps.std()
    with pytest.raises(ConfigError, match="map='l3'"):
        scores.with_map("l3")


def test_choose_map_keeps_the_largest_pro_and_scale_to_normal():
    generator = torch.Generator().manual_seed(0)
    images = torch.stack([surface(32, 32, 1, generator) for _ in range(12)])
    tuning = surfaces.defect_images(images, 0)
    # "outputs" that are the normal images: the l2 map is exactly the defects' change.
    (map_name, sigma), grid = localisation.choose_map(scores_of(tuning.images, images, tuning.labels.numpy()), tuning,
                                                      sigmas=(0.0, 3.0))
    assert (map_name, sigma) == max(grid, key=lambda k: grid[k]["pro"])
    assert grid[("l2", 0.0)]["pixel_auroc"] == pytest.approx(1.0)
    scaled = localisation.scale_to_normal(np.array([[0.5, 2.0]]), np.linspace(0, 1, 101))
    assert np.allclose(scaled, [[0.5 / 0.99, 2.0 / 0.99]])


def test_the_ssim_autoencoder_trains_on_one_minus_ssim():
    net = SSIMAutoencoder(8, (3, 32, 32), 4, "[0, 1]")
    x = torch.rand(4, 3, 32, 32)
    reconstruction = net(x)
    expected = 1 - structural_similarity_index_measure(reconstruction, x, data_range=1.0)
    assert net.loss(x, reconstruction).item() == pytest.approx(expected.item(), abs=1e-5)
    net.loss(x, reconstruction).backward()
    assert net.encoder[0].weight.grad.abs().sum() > 0


# -- every map-painting detector on 3x64x64 images -----------------------------------------------
MAP_DETECTORS = {"dense_ae": {}, "conv_ae": {}, "ssim_ae": {}, "restoration_ae": {},
                 "alocc": {}, "ano_unet": {"steps": 2, "fnet_epochs": 1}, "vae": {}}


@pytest.mark.parametrize("name", sorted(MAP_DETECTORS))
def test_every_map_detector_fits_and_scores_colour_64_pixel_images(name, tmp_path):
    mvtec_folder(tmp_path, "widget", size=(64, 64), train=16)
    mvtec_folder(tmp_path, "gadget", size=(64, 64), train=16, seed=1)
    split = surfaces.load_folder(tmp_path, "widget", 64, val_fraction=0.25, verbose=False)
    settings = dict(MAP_DETECTORS[name])
    if name == "ano_unet":
        settings["reference"] = surfaces.reference_categories(tmp_path, "widget", 64, 3, 8)
    else:
        settings["epochs"] = 1
    settings["fnet_batch_size" if name == "ano_unet" else "batch_size"] = 8
    detector = detectors.make(name, device="cpu", progress=False, **settings)
    detector.fit(split.train, val=split.val)
    scores = detector.score(split.test)
    assert scores.maps.shape == (10, 64, 64) and np.isfinite(scores.maps).all()
    assert scores.outputs.shape == (10, 3, 64, 64)
    for map_name in ("l2", "ssim"):
        assert np.isfinite(scores.with_map(map_name, 2.0).maps).all()
    metrics = localisation.localisation_metrics(scores, split.test)
    assert list(metrics) == ["crack", "spot", "all"]


# -- the chapter on generated folders ------------------------------------------------------------
def run_chapter(tmp_path, folder, **parameters):
    out = tmp_path / "results"
    papermill.execute_notebook(
        str(CHAPTER), str(tmp_path / "out.ipynb"), cwd=str(CHAPTER.parent), progress_bar=False,
        kernel_name="python3", execution_timeout=CELL_TIMEOUT_S,
        parameters={"DATASET": "folder", "FOLDER": str(folder), "CATEGORY": "widget",
                    "IMAGE_SIZE": 32, "EPOCHS": 1, "ALOCC_EPOCHS": 1, "FNET_EPOCHS": 1,
                    "STEPS": 2, "DEVICE": "cpu", "PROGRESS": False, "RESULTS_DIR": str(out),
                    "DATA_DIR": str(tmp_path / "data"), **parameters})
    return json.loads((out / "11_inspecting_surfaces.json").read_text())


@pytest.mark.slow
def test_chapter_runs_on_a_generated_colour_folder_of_another_size(tmp_path):
    folder = tmp_path / "photos"
    mvtec_folder(folder, "widget", channels=3, size=(40, 48), train=50, good=6)
    mvtec_folder(folder, "gadget", channels=3, size=(40, 48), train=20, seed=1)
    before = snapshot(folder)
    results = run_chapter(tmp_path, folder)
    assert snapshot(folder) == before
    assert results["dataset"] == "folder" and results["channels"] == 3
    assert results["original_size"] == [40, 48] and results["image_size"] == 32
    assert set(results["localisation"]) == {"dense AE", "conv AE", "SSIM AE", "restoration AE",
                                           "ALOCC's R", "Ano-Unet"}
    for per_kind in results["localisation"].values():
        assert set(per_kind) == {"crack", "spot", "all"}
        assert all(0 <= value <= 1 for metrics in per_kind.values() for value in metrics.values())


@pytest.mark.slow
def test_chapter_runs_on_a_grey_folder_with_one_category(tmp_path):
    folder = tmp_path / "grey"
    mvtec_folder(folder, "widget", channels=1, size=(36, 36), train=50, good=6)
    results = run_chapter(tmp_path, folder)
    assert results["channels"] == 1 and results["train_size"] + results["val_size"] == 50
    assert "Ano-Unet" not in results["localisation"]  # no other category for its f-Net
    assert "foreign" not in results["tuning_images"]
    assert 0 <= results["auroc"] <= 1


def test_surface_folder_names_a_bad_dataset_or_a_missing_folder(tmp_path):
    assert surfaces.surface_folder("folder", tmp_path) == tmp_path
    with pytest.raises(ConfigError, match="DATASET='mvtec'; use 'textures' or 'folder'"):
        surfaces.surface_folder("mvtec")
    with pytest.raises(ConfigError, match="DATASET='folder' needs FOLDER"):
        surfaces.surface_folder("folder")
