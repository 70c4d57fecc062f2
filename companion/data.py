"""Finding datasets offline or online, and cutting one-class splits out of them.

Defined in chapter 01 (dataset subsets). Every later chapter loads its data through
:func:`one_class_split`.
"""

from __future__ import annotations

import copy
import difflib
import gzip
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import datasets, transforms

from .errors import ConfigError, DatasetNotFoundError
from .files import atomic_path
from .settings import positive_int

#: MNIST files shipped inside the package: the official 60,000-image training and 10,000-image
#: test sets, so the offline book and the benchmark follow the published protocol.
SHIPPED_MNIST_DIR = Path(__file__).parent / "offline_data" / "mnist"
#: Where Debian's ``dataset-fashion-mnist`` package puts the four official files.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_IDX_FILES = {  # torchvision's uncompressed raw name -> name of the compressed source file
    "train-images-idx3-ubyte": "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte": "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte": "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte": "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class DatasetInfo:
    """What the companion knows about one torchvision classification dataset."""

    name: str
    torchvision_class: type
    raw_folder: str  # the folder torchvision expects under DATA_DIR
    class_names: tuple[str, ...]
    channels: int
    full_train_size: int
    how_to_get: str  # told to the reader when no source holds the data

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS = {
    "mnist": DatasetInfo(
        "mnist", datasets.MNIST, "MNIST", tuple(str(d) for d in range(10)), 1, 60_000,
        "run online with DOWNLOAD=True, or put torchvision's MNIST/raw files under DATA_DIR",
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", datasets.FashionMNIST, "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"), 1, 60_000,
        "`apt-get install -y dataset-fashion-mnist` (Debian), or run online so torchvision "
        "can download it",
    ),
    "cifar10": DatasetInfo(
        "cifar10", datasets.CIFAR10, "cifar-10-batches-py",
        ("airplane", "automobile", "bird", "cat", "deer",
         "dog", "frog", "horse", "ship", "truck"), 3, 50_000,
        "run online so torchvision can download it, or put cifar-10-batches-py under DATA_DIR",
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """Look up a dataset by name (``mnist``, ``fashion-mnist``, ``cifar10``); chapter 01."""
    if not isinstance(name, str):
        raise ConfigError(f"DATASET={name!r} is not a name; use one of {sorted(DATASETS)}")
    key = name.strip().lower().replace("_", "-")
    if key in DATASETS:
        return DATASETS[key]
    close = difflib.get_close_matches(key, DATASETS, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown DATASET={name!r}; known: {sorted(DATASETS)}.{hint}")


def check_classes(info: DatasetInfo, classes, parameter: str) -> list[int]:
    """Validate a list of class indices for ``info`` and return it as plain ints; chapter 01."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (list, tuple)):
        raise ConfigError(
            f"{parameter}={classes!r} is not a list of classes; write e.g. [1]"
            " (papermill: -y \"" + parameter + ": [1]\", since -p passes [1] as a string)"
        )
    if len(classes) == 0:
        raise ConfigError(f"{parameter} is empty; name at least one class, e.g. [1]")
    checked = []
    for value in classes:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < info.num_classes:
            raise ConfigError(
                f"{parameter} contains {value!r}, but {info.name} has classes "
                f"0..{info.num_classes - 1} ({', '.join(info.class_names)})"
            )
        if value in checked:
            raise ConfigError(f"{parameter} lists class {value} twice: {classes!r}")
        checked.append(value)
    return checked


#: The two value ranges the book's images come in: ``ToTensor``'s [0, 1], or [-1, 1] after
#: ``Normalize((0.5,), (0.5,))`` as in the @IT article.
VALUE_RANGES = ("[-1, 1]", "[0, 1]")


def check_value_range(value_range: str) -> str:
    if value_range not in VALUE_RANGES:
        raise ConfigError(f"VALUE_RANGE={value_range!r}; use one of {list(VALUE_RANGES)}")
    return value_range


def image_transform(channels: int = 1, value_range: str = "[-1, 1]"):
    """ToTensor, then scale to ``value_range`` (``"[-1, 1]"`` or ``"[0, 1]"``); chapter 02."""
    if check_value_range(value_range) == "[0, 1]":
        return transforms.ToTensor()
    return transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,) * channels, (0.5,) * channels)]
    )


def to_unit_range(images: torch.Tensor, value_range: str) -> torch.Tensor:
    """Images of ``value_range`` mapped to [0, 1] (for display and SSIM); chapter 02."""
    return (images + 1) / 2 if check_value_range(value_range) == "[-1, 1]" else images


def _gunzipped_size(source: Path) -> int:
    """The size ``source`` decompresses to, from its gzip trailer (the size modulo 2**32)."""
    try:
        with open(source, "rb") as file:
            file.seek(-4, 2)
            return int.from_bytes(file.read(4), "little")
    except OSError:  # too short to be a gzip file: decompressing it reports the damage
        return -1


def _decompress_into(raw_dir: Path, sources: dict[str, Path]) -> None:
    """Gunzip each source to ``raw_dir/name`` atomically, so an interrupted copy is never read.

    A copy whose size is not the source's (an older companion's 5,000-image training sample, for
    instance) is replaced, so a stale copy is never mistaken for the source.
    """
    for name, source in sources.items():
        target = raw_dir / name
        if target.exists() and target.stat().st_size == _gunzipped_size(source):
            continue
        try:
            with gzip.open(source, "rb") as src, atomic_path(target) as tmp, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError) as error:
            raise DatasetNotFoundError(f"{source} is unreadable ({error}); reinstall or "
                                       "re-download it") from None


def _try_load(info: DatasetInfo, root: Path, train: bool, transform, download: bool = False):
    """The dataset from ``root``; None if its files are not there; an error if they are broken.

    Files that are present but unreadable are never skipped for the next source: a reader who
    points the book at a damaged download must hear about it, not get other data.
    """
    try:
        return info.torchvision_class(root=str(root), train=train, transform=transform,
                                      download=download)
    except RuntimeError as error:
        if str(error).startswith("Dataset not found"):
            return None
        broken = error
    except (ValueError, AssertionError, OSError, EOFError) as error:
        broken = error
    raise DatasetNotFoundError(
        f"the {info.name} files under {root / info.raw_folder / 'raw'} are present but unreadable "
        f"({broken!r}); delete or re-download them") from None


def wants_download(download) -> bool:
    """``DOWNLOAD``: True, False, or ``"auto"`` = download first on Colab only; chapter 01.

    A Colab notebook is online and has none of the offline copies a clone has, so there the
    datasets come from torchvision, as a reader online expects, not from the copies shipped with the
    companion.
    """
    if download == "auto":
        return "google.colab" in sys.modules
    if isinstance(download, bool):
        return download
    raise ConfigError(f"DOWNLOAD={download!r}; use True, False or 'auto' (download on Colab)")


def load_dataset(name: str, train: bool, data_dir="data", transform=None,
                 download_first: bool | str = False, verbose: bool = True):
    """Load one split of a torchvision dataset, offline where possible; chapter 01.

    Sources, in order: ``data_dir`` in torchvision's layout; the MNIST files shipped with the
    companion; Debian's Fashion-MNIST; a torchvision download. ``download_first`` tries the
    download before the offline copies (online readers who want the full MNIST training set);
    ``"auto"`` does so on Colab only (:func:`wants_download`).
    Returns ``(dataset, source)`` where ``source`` says in words where the images came from.
    """
    info = dataset_info(name)
    data_dir = Path(data_dir)
    split = "train" if train else "test"
    offline = []  # (description, root, files to decompress into root/raw_folder/raw)
    if info.name == "mnist":
        offline.append(("the MNIST files shipped with the companion", data_dir / "offline-copies",
                        {raw: SHIPPED_MNIST_DIR / gz for raw, gz in _IDX_FILES.items()}))
    if info.name == "fashion-mnist":
        offline.append((f"Debian's dataset-fashion-mnist ({DEBIAN_FASHION_MNIST_DIR})",
                        data_dir / "debian-copies",
                        {raw: DEBIAN_FASHION_MNIST_DIR / gz for raw, gz in _IDX_FILES.items()}))

    def from_download():
        try:
            return _try_load(info, data_dir, train, transform, download=True)
        except Exception:  # no network: urllib raises many kinds; the error below says what to do
            return None

    attempts = [(f"DATA_DIR={str(data_dir)!r}", lambda: _try_load(info, data_dir, train, transform))]
    for description, root, files in offline:
        def from_copy(root=root, files=files):
            if not all(path.exists() for path in files.values()):
                return None
            _decompress_into(root / info.raw_folder / "raw", files)
            return _try_load(info, root, train, transform)
        attempts.append((description, from_copy))
    download = ("a torchvision download into DATA_DIR", from_download)
    attempts.insert(1, download) if wants_download(download_first) else attempts.append(download)

    for description, attempt in attempts:
        dataset = attempt()
        if dataset is not None:
            if verbose:
                print(f"{info.name} {split} split: {len(dataset):,} images from {description}")
            if train and verbose and len(dataset) < info.full_train_size:
                print(f"NOTE: this is a {len(dataset):,}-image sample of the {info.name} training "
                      f"set, not the full {info.full_train_size:,}; every size and score below "
                      f"is for the sample.")
            return dataset, description
    looked = "; ".join(description for description, _ in attempts)
    raise DatasetNotFoundError(
        f"{info.name} ({split} split) not found. Looked in: {looked}. To get it: {info.how_to_get}."
    )


class ClassSubset(Dataset):
    """The items of ``dataset`` whose class is in ``normal_classes`` or ``anomaly_classes``.

    Defined in chapter 01. Selection is one vectorised boolean mask over ``dataset.targets``.
    Each item is ``(image, original class, anomaly label)``, the label 1 for anomaly classes.
    """

    def __init__(self, dataset, normal_classes, anomaly_classes=(), value_range: str | None = None):
        normal_classes, anomaly_classes = list(normal_classes), list(anomaly_classes)
        # What the dataset's transform produces; detectors read it instead of guessing.
        self.value_range = None if value_range is None else check_value_range(value_range)
        self._tensors = None
        targets = torch.as_tensor(dataset.targets)
        anomalies = torch.as_tensor(anomaly_classes, dtype=targets.dtype)
        wanted = torch.as_tensor(normal_classes + anomaly_classes, dtype=targets.dtype)
        self.dataset = dataset
        self.indices = torch.isin(targets, wanted).nonzero().flatten()
        self.targets = targets[self.indices]
        self.anomaly_labels = torch.isin(self.targets, anomalies).long()

    def partition(self, fraction: float, seed: int = 0):
        """Split into two disjoint subsets, the second holding ``fraction`` of the items at random.

        Used to hold out normal training images for validation (chapter 05).
        """
        if not 0 < fraction < 1:
            raise ConfigError(f"VAL_FRACTION={fraction!r}; use a number between 0 and 1, e.g. 0.2")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        cut = len(self) - round(fraction * len(self))
        return self._select(order[:cut]), self._select(order[cut:])

    def sample(self, size: int, seed: int = 0):
        """``size`` items chosen at random (all of them if there are fewer); chapter 10."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self._select(order[:size])

    def _select(self, positions: torch.Tensor):
        part = copy.copy(self)
        positions = positions.sort().values  # keep the dataset's order
        part._tensors = None if self._tensors is None else tuple(t[positions] for t in self._tensors)
        part.indices = self.indices[positions]
        part.targets = self.targets[positions]
        part.anomaly_labels = self.anomaly_labels[positions]
        return part

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        image, _ = self.dataset[int(self.indices[i])]
        return image, int(self.targets[i]), int(self.anomaly_labels[i])

    @property
    def dataset_name(self) -> str | None:
        """The companion's name of the underlying torchvision dataset (``"mnist"``, ...)."""
        return next((info.name for info in DATASETS.values()
                     if type(self.dataset) is info.torchvision_class), None)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, classes, anomaly labels) of every item, transformed once and kept."""
        if self._tensors is None:
            images = torch.stack([self.dataset[int(i)][0] for i in self.indices]) if len(self) else None
            self._tensors = (images, self.targets.clone(), self.anomaly_labels.clone())
        return self._tensors

    def class_counts(self) -> dict[int, int]:
        """Number of items per original class, in class order."""
        classes, counts = torch.unique(self.targets, return_counts=True)
        return {int(c): int(n) for c, n in zip(classes, counts)}


@dataclass
class OneClassSplit:
    """Training set of normal classes; test set of normal plus anomaly classes. Chapter 01."""

    info: DatasetInfo
    normal_classes: list[int]
    anomaly_classes: list[int]
    train: ClassSubset
    test: ClassSubset
    train_source: str
    test_source: str
    val: ClassSubset | None = None  # normal images held out of training, if asked for
    value_range: str = "[-1, 1]"  # what the images' transform produces

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train[0][0].shape)

    def training_anomalies(self, size: int, seed: int = 0) -> ClassSubset:
        """``size`` *training* images of the anomaly classes, drawn at random. Beside ``val``
        (held-out normal images) they make a selection set, on which settings are chosen
        without the test split (the choice scripts of chapters 06 and 09, ``benchmarks/``)."""
        return ClassSubset(self.train.dataset, [], self.anomaly_classes,
                           value_range=self.value_range).sample(size, seed)

    def describe(self) -> dict:
        """Plain facts for a results file: dataset, classes, sizes, sources."""
        return {
            "dataset": self.info.name,
            "normal_classes": self.normal_classes,
            "anomaly_classes": self.anomaly_classes,
            "train_size": len(self.train),
            "test_size": len(self.test),
            "test_anomalies": int(self.test.anomaly_labels.sum()),
            "train_source": self.train_source,
            "test_source": self.test_source,
            "train_split_size": len(self.train.dataset),
            "val_size": len(self.val) if self.val is not None else 0,
            "value_range": self.value_range,
        }


def one_class_split(dataset: str, normal_classes, anomaly_classes=None, data_dir="data",
                    value_range: str = "[-1, 1]", download_first: bool | str = False,
                    verbose: bool = True, val_fraction: float = 0.0, seed: int = 0,
                    train_size: int | None = None) -> OneClassSplit:
    """Cut a one-class split out of a torchvision dataset; chapter 01.

    ``anomaly_classes=None`` means every class that is not normal. Images come through
    :func:`image_transform` in ``value_range``, which the split and its subsets remember.
    ``train_size`` keeps that many of the normal training images, drawn at random by ``seed``
    (``None``: all of them), so a chapter fits its CPU budget and says how many it uses.
    ``val_fraction`` > 0 then holds that share of them out as ``split.val`` (chapter 05).
    """
    if train_size is not None:
        positive_int(train_size, "TRAIN_SIZE", 500)
    info = dataset_info(dataset)
    normal = check_classes(info, normal_classes, "NORMAL_CLASSES")
    if anomaly_classes is None:
        anomaly = [c for c in range(info.num_classes) if c not in normal]
        if not anomaly:
            raise ConfigError(f"NORMAL_CLASSES={normal} leaves no class to be an anomaly")
    else:
        anomaly = check_classes(info, anomaly_classes, "ANOMALY_CLASSES")
    overlap = sorted(set(normal) & set(anomaly))
    if overlap:
        raise ConfigError(
            f"classes {overlap} are both in NORMAL_CLASSES={normal} and ANOMALY_CLASSES={anomaly};"
            " a class is either normal or an anomaly"
        )
    transform = image_transform(info.channels, value_range)
    train_data, train_source = load_dataset(info.name, True, data_dir, transform, download_first,
                                            verbose)
    test_data, test_source = load_dataset(info.name, False, data_dir, transform, download_first,
                                          verbose)
    train, val = ClassSubset(train_data, normal, value_range=value_range), None
    available = len(train)
    if train_size is not None and train_size < available:
        train = train.sample(train_size, seed)
        if verbose:
            print(f"TRAIN_SIZE={train_size}: {len(train):,} of the {available:,} training images "
                  f"of classes {normal}, drawn at random (seed {seed}), are used")
    if val_fraction:
        train, val = train.partition(val_fraction, seed)
    test = ClassSubset(test_data, normal, anomaly, value_range=value_range)
    return OneClassSplit(info, normal, anomaly, train, test, train_source, test_source, val,
                         value_range)
