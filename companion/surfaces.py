"""Surfaces: image folders in the MVTec-AD layout, and an offline texture set written in it.

Defined in chapter 11. Every inspection dataset, and anomalib, lays a category out as::

    <root>/<category>/train/good/*.png                 normal images to train on
    <root>/<category>/test/good/*.png                  normal test images
    <root>/<category>/test/<defect kind>/*.png         defective test images
    <root>/<category>/ground_truth/<defect kind>/<name>_mask.png

:func:`load_folder` reads such a folder, a reader's own photographs included, with
torchvision's image decoder, and :func:`make_texture_set` writes one from the CC0 texture
photographs that scikit-image ships (``brick``, ``grass``, ``gravel``), with synthetic defects
whose masks are exactly the pixels they changed. Nothing is ever written into a reader's folder.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image, write_png
from torchvision.transforms.functional import gaussian_blur

from .data import ClassSubset
from .errors import ConfigError, DataError, DatasetNotFoundError
from .localisation import NORMAL, MaskedImages
from .settings import integer, positive_int

#: The defects :func:`make_defect` draws, in the order they are handed out.
DEFECT_KINDS = ("scratch", "stain", "hole", "foreign", "blur")
#: scikit-image's CC0 texture photographs (512 x 512 grey) that the offline set is cut from.
TEXTURES = ("brick", "grass", "gravel")
#: Files the loader decodes (torchvision's decoder); other image formats are refused by name.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_UNSUPPORTED_SUFFIXES = (".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
#: The smallest defect, as a share of the tile's pixels; a smaller draw is drawn again.
MIN_DEFECT_SHARE = 0.004
_TRIES = 100


# -- defects -----------------------------------------------------------------------------------
def _uniform(generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _ellipse(height: int, width: int, generator, low: float, high: float) -> torch.Tensor:
    """A soft ellipse (values 0..1, 1 inside, a one-pixel ramp at the rim), anywhere in the tile;
    its semi-axes are ``low``..``high`` times the tile's side."""
    side = min(height, width)
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                torch.arange(width, dtype=torch.float32), indexing="ij")
    a, b = (_uniform(generator, low, high) * side for _ in range(2))
    centre_row = _uniform(generator, a, height - 1 - a) if height - 1 > 2 * a else height / 2
    centre_col = _uniform(generator, b, width - 1 - b) if width - 1 > 2 * b else width / 2
    angle = _uniform(generator, 0, math.pi)
    u = (rows - centre_row) * math.cos(angle) + (cols - centre_col) * math.sin(angle)
    v = -(rows - centre_row) * math.sin(angle) + (cols - centre_col) * math.cos(angle)
    radius = torch.sqrt((u / a) ** 2 + (v / b) ** 2)  # 1 on the rim
    return ((1 - radius) * min(a, b) + 0.5).clamp(0, 1)


def _scratch(image, generator, donor=None):
    """A thin bright or dark line across the surface, slightly bent."""
    channels, height, width = image.shape
    side = min(height, width)
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                torch.arange(width, dtype=torch.float32), indexing="ij")
    start = torch.tensor([_uniform(generator, 0, height - 1), _uniform(generator, 0, width - 1)])
    angle = _uniform(generator, 0, 2 * math.pi)
    length = _uniform(generator, 0.35, 0.7) * side
    end = start + length * torch.tensor([math.sin(angle), math.cos(angle)])
    direction = end - start
    along = (((rows - start[0]) * direction[0] + (cols - start[1]) * direction[1])
             / direction.pow(2).sum()).clamp(0, 1)
    bend = _uniform(generator, -0.08, 0.08) * side * 4 * along * (1 - along)  # a gentle arc
    normal = torch.tensor([-direction[1], direction[0]]) / direction.norm()
    distance = torch.hypot(rows - start[0] - along * direction[0] - bend * normal[0],
                           cols - start[1] - along * direction[1] - bend * normal[1])
    half_width = max(0.7, side / 110)
    weight = (half_width + 0.5 - distance).clamp(0, 1)
    value = 1.0 if float(torch.rand((), generator=generator)) < 0.5 else 0.0
    return image * (1 - weight) + value * weight


def _stain(image, generator, donor=None):
    """A soft-edged blotch of another tone (grey) or colour, blended into the surface."""
    region = _ellipse(*image.shape[1:], generator, 0.08, 0.18)
    tone = torch.rand(image.shape[0], 1, 1, generator=generator)
    if image.shape[0] == 1:  # grey: clearly darker or brighter than the surface around it
        mean = float(image.mean())
        tone = torch.full((1, 1, 1), max(0.0, mean - 0.35) if mean > 0.5 else min(1.0, mean + 0.35))
    weight = 0.65 * region
    return image * (1 - weight) + tone * weight


def _hole(image, generator, donor=None):
    """Missing material: a region of near-black."""
    region = _ellipse(*image.shape[1:], generator, 0.06, 0.14)
    depth = _uniform(generator, 0.0, 0.08)
    return image * (1 - region) + depth * region


def _foreign(image, generator, donor):
    """Foreign matter: a region of another surface (``donor``, the same size) pasted in."""
    region = _ellipse(*image.shape[1:], generator, 0.10, 0.20)
    return image * (1 - region) + donor * region


def _blur(image, generator, donor=None):
    """Texture loss: a region smoothed out, the surface's mean kept and its grain gone."""
    side = min(image.shape[1:])
    region = _ellipse(*image.shape[1:], generator, 0.12, 0.22)
    sigma = side / 24
    kernel = 2 * math.ceil(3 * sigma) + 1
    smooth = gaussian_blur(image[None], [kernel, kernel], [sigma, sigma])[0]
    return image * (1 - region) + smooth * region


_MAKERS = {"scratch": _scratch, "stain": _stain, "hole": _hole, "foreign": _foreign,
           "blur": _blur}


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] rounded to the 256 levels a PNG stores."""
    return (images.clamp(0, 1) * 255).round() / 255


def make_defect(image: torch.Tensor, kind: str, generator: torch.Generator,
                donor: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One defect of ``kind`` drawn on ``image`` (C, H, W in [0, 1]); chapter 11.

    Returns ``(changed, mask)``: the image with the defect, rounded to 8 bits as a PNG stores
    it, and the (H, W) bool mask of *exactly* the pixels that differ from the (rounded) image
    in any channel. ``"foreign"`` pastes from ``donor``, an image of another surface of the same
    shape. Every random draw comes from ``generator``, so one seed makes the same defects; a
    draw that would change fewer than :data:`MIN_DEFECT_SHARE` of the pixels is drawn again.
    """
    if kind not in _MAKERS:
        raise ConfigError(f"unknown defect kind {kind!r}; use one of {list(DEFECT_KINDS)}")
    if not torch.is_tensor(image) or image.dim() != 3 or not image.is_floating_point():
        raise ConfigError(f"an image of shape {tuple(getattr(image, 'shape', ()))}; pass a float "
                          "(channels, height, width) tensor in [0, 1]")
    if kind == "foreign" and (donor is None or donor.shape != image.shape):
        raise ConfigError("'foreign' defects need a donor: an image of another surface of shape "
                          f"{tuple(image.shape)}")
    original = quantise(image)
    least = max(1, round(MIN_DEFECT_SHARE * image.shape[1] * image.shape[2]))
    for _ in range(_TRIES):
        changed = quantise(_MAKERS[kind](original, generator, donor))
        mask = (changed != original).any(dim=0)
        if int(mask.sum()) >= least:
            return changed, mask
    raise ConfigError(f"no {kind!r} defect changed {least} pixels in {_TRIES} tries; is the "
                      "image blank?")


def defect_images(images: torch.Tensor, seed: int, donors: torch.Tensor | None = None,
                  kinds=None) -> MaskedImages:
    """Normal ``images`` made into a labelled set with masks: half left as they are, half given
    one defect each, the ``kinds`` in turn, in an order shuffled by ``seed``; chapter 11.

    The tuning images of chapter 11: held-out *training* images, so the choice of an anomaly
    map is made without any test image. ``donors`` (images of other surfaces) lend the
    ``"foreign"`` patches; ``kinds=None`` is every kind, less ``"foreign"`` without donors.
    """
    if kinds is None:
        kinds = tuple(k for k in DEFECT_KINDS if k != "foreign" or donors is not None)
    kinds = tuple(kinds)
    if not kinds or not set(kinds) <= set(DEFECT_KINDS):
        raise ConfigError(f"kinds={list(kinds)!r}; use some of {list(DEFECT_KINDS)}")
    integer(seed, "SEED")
    size = len(images)
    if size // 2 < len(kinds):
        raise ConfigError(f"{size} images give fewer than one defect of each of the {len(kinds)} "
                          f"kinds; use at least {2 * len(kinds)} (a larger VAL_FRACTION)")
    generator = torch.Generator().manual_seed(seed)
    anomalous = size // 2
    kind_list = np.array([NORMAL] * (size - anomalous) +
                         [kinds[i % len(kinds)] for i in range(anomalous)])
    kind_list = kind_list[torch.randperm(size, generator=generator).numpy()]
    changed, masks = quantise(images.clone()), torch.zeros(size, *images.shape[2:], dtype=torch.bool)
    for i, kind in enumerate(kind_list):
        if kind != NORMAL:
            donor = None if donors is None else donors[int(torch.randint(len(donors), (),
                                                                         generator=generator))]
            changed[i], masks[i] = make_defect(images[i], kind, generator, donor)
    classes = torch.tensor([0 if k == NORMAL else 1 + kinds.index(k) for k in kind_list])
    return MaskedImages(changed, masks, kind_list, classes, "[0, 1]", kinds)


# -- the offline texture set ---------------------------------------------------------------------
def texture_photograph(name: str) -> torch.Tensor:
    """One of scikit-image's CC0 texture photographs as a (1, 512, 512) tensor in [0, 1]."""
    if name not in TEXTURES:
        raise ConfigError(f"CATEGORY={name!r} is not one of the offline textures {list(TEXTURES)}; "
                          "for your own images use DATASET='folder' and FOLDER=...")
    try:
        import skimage.data
    except ImportError:
        raise ConfigError("the offline texture set needs scikit-image: pip install scikit-image") \
            from None
    return torch.from_numpy(getattr(skimage.data, name)()).float()[None] / 255


def _crops(photo: torch.Tensor, rows: tuple[int, int], count: int, tile: int, generator):
    """``count`` tiles of side ``tile`` cut at random from the band ``rows`` of ``photo``."""
    top = torch.randint(rows[0], rows[1] - tile + 1, (count,), generator=generator)
    left = torch.randint(0, photo.shape[2] - tile + 1, (count,), generator=generator)
    return torch.stack([photo[:, t:t + tile, l:l + tile] for t, l in zip(top.tolist(), left.tolist())])


def _save_png(image: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png((image.clamp(0, 1) * 255).round().to(torch.uint8), str(path))


def make_texture_set(data_dir="data", categories=TEXTURES, tile_size: int = 128,
                     train_tiles: int = 200, test_good: int = 40, test_per_kind: int = 8,
                     seed: int = 0, verbose: bool = True) -> Path:
    """Write the offline surface set in the MVTec-AD layout and return its root; chapter 11.

    Each photograph's top three quarters give the training tiles and its bottom band the test
    tiles, so no test tile shares a pixel with a training tile. ``test_per_kind`` test tiles of
    each :data:`DEFECT_KINDS` get one defect (foreign matter is pasted from another texture's
    test band) and their masks. The folder's name holds every setting, the set is built in a
    temporary folder and renamed into place, and a finished set is reused: the same settings
    always give the same files.
    """
    for value, name in [(tile_size, "TILE_SIZE"), (train_tiles, "TRAIN_TILES"),
                        (test_good, "TEST_GOOD"), (test_per_kind, "TEST_PER_KIND")]:
        positive_int(value, name, 8)
    integer(seed, "SEED")
    categories = tuple(categories)
    unknown = [name for name in categories if name not in TEXTURES]
    if unknown:
        raise ConfigError(f"CATEGORY={unknown[0]!r} is not one of the offline textures "
                          f"{list(TEXTURES)}; for your own images use DATASET='folder'")
    if tile_size > 128:
        raise ConfigError(f"TILE_SIZE={tile_size}; the 512-pixel photographs give test tiles of "
                          "at most 128 pixels (their bottom quarter)")
    root = Path(data_dir) / "textures" / (f"tile{tile_size}-train{train_tiles}-good{test_good}-"
                                          f"defects{test_per_kind}-seed{seed}")
    if all((root / name / "train" / "good").is_dir() for name in categories):
        if verbose:
            print(f"texture set: {root} (already built)")
        return root
    photos = {name: texture_photograph(name) for name in TEXTURES}
    band = photos[TEXTURES[0]].shape[1] * 3 // 4
    staging = root.with_name(root.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    for name in categories:
        generator = torch.Generator().manual_seed(seed * 1000 + TEXTURES.index(name))
        photo = photos[name]
        height = photo.shape[1]
        for i, tile in enumerate(_crops(photo, (0, band), train_tiles, tile_size, generator)):
            _save_png(tile, staging / name / "train" / "good" / f"{i:03d}.png")
        for i, tile in enumerate(_crops(photo, (band, height), test_good, tile_size, generator)):
            _save_png(tile, staging / name / "test" / "good" / f"{i:03d}.png")
        others = [photos[other] for other in TEXTURES if other != name]
        donors = torch.cat([_crops(other, (band, height), test_per_kind, tile_size, generator)
                            for other in others])
        for kind in DEFECT_KINDS:
            tiles = _crops(photo, (band, height), test_per_kind, tile_size, generator)
            for i, tile in enumerate(tiles):
                donor = donors[int(torch.randint(len(donors), (), generator=generator))]
                changed, mask = make_defect(tile, kind, generator, donor)
                _save_png(changed, staging / name / "test" / kind / f"{i:03d}.png")
                _save_png(mask[None].float(), staging / name / "ground_truth" / kind /
                          f"{i:03d}_mask.png")
    shutil.rmtree(root, ignore_errors=True)  # a half-built set from an older companion
    staging.rename(root)
    if verbose:
        print(f"texture set: {root} (built from scikit-image's {', '.join(categories)})")
    return root


def surface_folder(dataset: str, folder=None, data_dir="data", **texture_settings) -> Path:
    """The folder chapter 11 reads: ``"textures"`` builds (or reuses) the offline set in
    ``data_dir`` with :func:`make_texture_set`'s ``texture_settings``; ``"folder"`` is the
    reader's own ``folder``, only read."""
    if dataset == "textures":
        return make_texture_set(data_dir, **texture_settings)
    if dataset == "folder":
        if folder is None:
            raise ConfigError("DATASET='folder' needs FOLDER: the folder that holds "
                              "<CATEGORY>/train/good/")
        return Path(folder)
    raise ConfigError(f"DATASET={dataset!r}; use 'textures' or 'folder'")


# -- reading a folder ----------------------------------------------------------------------------
class TensorImages(Dataset):
    """Stored images with a class each (``targets``), as torchvision's datasets have them."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor):
        self.images, self.targets = images, torch.as_tensor(targets)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.targets[i])


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder} is not a folder; the MVTec-AD layout needs "
                                   f"{folder.name}/ with the images in it")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    unsupported = sorted(p for p in folder.iterdir() if p.suffix.lower() in _UNSUPPORTED_SUFFIXES)
    if unsupported:
        raise DataError(f"{unsupported[0]}: {unsupported[0].suffix} files are not read; convert "
                        f"the images to PNG (or {', '.join(IMAGE_SUFFIXES[1:])})")
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image(path: Path, channels: int | None) -> torch.Tensor:
    """One image file as (C, H, W) uint8: grey or RGB as ``channels`` says (None: as stored)."""
    mode = {None: ImageReadMode.UNCHANGED, 1: ImageReadMode.GRAY, 3: ImageReadMode.RGB}[channels]
    try:
        image = decode_image(str(path), mode=mode)
    except (RuntimeError, ValueError, OSError) as error:
        raise DataError(f"{path} is unreadable as an image ({str(error).splitlines()[0]}); "
                        "replace or delete the file") from None
    if channels is None and image.shape[0] in (2, 4):  # an alpha channel carries no surface
        image = image[:-1]
    return image


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


def _load_images(files, channels: int, size: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    raw = [read_image(path, channels) for path in files]
    sizes = [tuple(image.shape[1:]) for image in raw]
    return torch.cat([_resize(image[None].float() / 255, size) for image in raw]), sizes


@dataclass
class SurfaceSplit:
    """One category of a folder in the MVTec-AD layout, as detectors take it; chapter 11.

    ``train`` holds the normal training images (a :class:`~companion.data.ClassSubset`, class
    0), ``val`` those held out of training where asked for, ``test`` the test images with their
    masks and defect kinds (:class:`~companion.localisation.MaskedImages`, ``"normal"`` for
    ``test/good``). Images are in [0, 1], resized to ``image_size`` square.
    """

    root: Path
    category: str
    image_size: int
    channels: int
    train: ClassSubset
    test: MaskedImages
    val: ClassSubset | None = None
    original_size: tuple[int, int] | None = None
    value_range: str = "[0, 1]"

    def describe(self) -> dict:
        return {"folder": str(self.root), "category": self.category,
                "image_size": self.image_size, "channels": self.channels,
                "original_size": list(self.original_size or ()),
                "train_size": len(self.train), "val_size": len(self.val) if self.val else 0,
                "test_size": len(self.test), "test_anomalies": int(self.test.labels.sum()),
                "test_kinds": self.test.kind_counts(), "value_range": self.value_range}


def categories(root) -> list[str]:
    """The categories of a folder in the MVTec-AD layout: sub-folders holding ``train/good``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"FOLDER={str(root)!r} is not a folder; point it at the folder "
                                   "that holds <category>/train/good/")
    return sorted(p.name for p in root.iterdir() if (p / "train" / "good").is_dir())


def load_folder(root, category: str, image_size: int = 64, channels: int | None = None,
                val_fraction: float = 0.0, seed: int = 0, verbose: bool = True) -> SurfaceSplit:
    """Read ``root/category`` in the MVTec-AD layout; chapter 11.

    Any image size and 1 or 3 channels (``channels=None``: those of the first training image;
    1 or 3 convert every image). Images and masks are resized to ``image_size`` square, a mask
    pixel staying anomalous where at least half of what it covers was. A missing ``train/good``,
    an empty folder, an unreadable file, a test image without its mask or a mask whose size is
    not its image's is an error that names the path. Files are only read.
    """
    positive_int(image_size, "IMAGE_SIZE", 64)
    if channels not in (None, 1, 3):
        raise ConfigError(f"CHANNELS={channels!r}; use 1 (grey), 3 (colour) or None (as stored)")
    base = Path(root) / str(category)
    if not base.is_dir():
        known = categories(root)
        raise DatasetNotFoundError(f"no category {category!r} in {root}; it holds "
                                   f"{known or 'no <category>/train/good/ folders'}")
    train_dir, test_dir = base / "train" / "good", base / "test"
    if not train_dir.is_dir():
        raise DatasetNotFoundError(f"{train_dir} is missing: the normal training images go "
                                   "there (<category>/train/good/*.png)")
    train_files = _image_files(train_dir)
    if channels is None:
        channels = 3 if read_image(train_files[0], None).shape[0] >= 3 else 1
    train_images, train_sizes = _load_images(train_files, channels, image_size)
    if not test_dir.is_dir():
        raise DatasetNotFoundError(f"{test_dir} is missing: test images go in test/good/ and "
                                   "test/<defect kind>/")
    kinds = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and p.name != "good")
    images, masks, kind_list = [], [], []
    for kind in ["good", *kinds]:
        files = _image_files(test_dir / kind)
        loaded, sizes = _load_images(files, channels, image_size)
        images.append(loaded)
        kind_list += [NORMAL if kind == "good" else kind] * len(files)
        if kind == "good":
            masks.append(torch.zeros(len(files), image_size, image_size, dtype=torch.bool))
            continue
        for path, size in zip(files, sizes):
            mask_path = base / "ground_truth" / kind / f"{path.stem}_mask.png"
            if not mask_path.exists():
                raise DataError(f"{path} has no mask: expected {mask_path} (white where the "
                                "defect is)")
            mask = read_image(mask_path, 1)
            if tuple(mask.shape[1:]) != size:
                raise DataError(f"{mask_path} is {tuple(mask.shape[1:])} pixels, but its image "
                                f"{path} is {size}; a mask must have its image's size")
            masks.append(_resize(mask[None].float() / 255, image_size)[:, 0] >= 0.5)
    kind_array = np.array(kind_list)
    classes = torch.tensor([0 if k == NORMAL else 1 + kinds.index(k) for k in kind_list])
    test = MaskedImages(torch.cat(images), torch.cat(masks), kind_array, classes, "[0, 1]",
                        tuple(kinds))
    train = ClassSubset(TensorImages(train_images, torch.zeros(len(train_images), dtype=torch.long)),
                        [0], value_range="[0, 1]")
    val = None
    if val_fraction:
        train, val = train.partition(val_fraction, seed)
    sizes = sorted(set(train_sizes))
    if verbose:
        print(f"{base}: {len(train_files)} training images ({len(train)} used for training"
              f"{f', {len(val)} held out' if val else ''}), {len(test)} test images "
              f"{test.kind_counts()}; {channels} channel(s), "
              f"{'x'.join(map(str, sizes[0]))} pixels{' and others' if len(sizes) > 1 else ''}, "
              f"resized to {image_size}x{image_size}")
    return SurfaceSplit(Path(root), str(category), image_size, channels, train, test, val,
                        sizes[0])


def reference_categories(root, category: str, image_size: int, channels: int,
                         per_category: int, seed: int = 0) -> ClassSubset | None:
    """Labelled images for an f-Net (Ano-Unet, chapter 07): the training images of every
    category of ``root``, ``category`` included, one class each, ``per_category`` of each at
    random; None when ``root`` holds no other category to tell it from (chapter 11)."""
    names = categories(root)
    if len(names) < 2:
        return None
    parts = []
    for number, name in enumerate(names):
        files = _image_files(Path(root) / name / "train" / "good")
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))
        images, _ = _load_images([files[i] for i in order[:per_category]], channels, image_size)
        parts.append((images, torch.full((len(images),), number)))
    images, targets = (torch.cat(column) for column in zip(*parts))
    return ClassSubset(TensorImages(images, targets), list(range(len(names))), value_range="[0, 1]")
