"""The f-Net alone as a detector: distance of an image's features to the normal centre C.

Defined in chapter 07. f (:class:`~companion.models.FeatureNet`) learns features by metric
learning on labelled *reference* images, never on the anomalies under test; C is the mean
feature of the normal training images, and Σ|f(x) − C| is the score (the DOC-style detector of
the Ano-Unet article). With ``outlier_exposure`` the normal training images join the reference images as
one more class, so f also learns to tell them from everything else; ``"1 - P(normal)"`` is
then a second score.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from ..data import ClassSubset, dataset_info, image_transform, load_dataset
from ..engine import History, in_memory, make_loader, train_epochs
from ..errors import ConfigError
from ..models.fnet import FeatureNet, class_targets, feature_distance
from ..scores import Scores
from ..settings import Setting, flag, optional_positive_int, positive_int, positive_number
from .base import Detector, in_batches

#: Reference (b) of chapter 07: the f-Net learns on another dataset, never on the one under test.
REFERENCE_DATASET = {"mnist": "fashion-mnist", "fashion-mnist": "mnist"}

#: ``reference`` value for the dataset paired with the training data's (MNIST <-> Fashion-MNIST).
OTHER_DATASET = "other-dataset"


def other_dataset_reference(dataset: str, size: int, seed: int = 0, data_dir="data",
                            download_first: bool = False) -> ClassSubset:
    """``size`` random training images, all classes, of the dataset paired with ``dataset``.

    Defined in chapter 07: reference (b), which keeps the f-Net strictly one-class (MNIST for
    Fashion-MNIST and the reverse, see :data:`REFERENCE_DATASET`). Images in [0, 1].
    """
    name = dataset_info(dataset).name
    if name not in REFERENCE_DATASET:
        raise ConfigError(f"no reference dataset is paired with {dataset!r}; the f-Net's "
                          f"reference (b) exists for {sorted(REFERENCE_DATASET)}")
    other = REFERENCE_DATASET[name]
    images, _ = load_dataset(other, True, data_dir, image_transform(1, "[0, 1]"),
                             download_first, verbose=False)
    return ClassSubset(images, range(dataset_info(other).num_classes),
                       value_range="[0, 1]").sample(size, seed)


def check_reference(value, name: str, example=None):
    """``"other-dataset"``, or labelled reference images (a ClassSubset in [0, 1])."""
    if value == OTHER_DATASET or hasattr(value, "tensors"):
        return value
    raise ConfigError(f"{name}={value!r}; use {OTHER_DATASET!r} or a ClassSubset of labelled "
                      "reference images (never the anomaly classes under test)")


def reference_sets(split, size: int, seed: int = 0, data_dir="data",
                   download_first: bool = False) -> dict[str, ClassSubset]:
    """Chapter 07's two reference sets for an f-Net, ``size`` labelled images each, by name.

    (a) the split's own training split, every class but the anomaly classes (the normal class
    included, as in the Ano-Unet article); (b) the training split of the paired dataset, all its classes
    (:func:`other_dataset_reference`), so that f sees nothing of the
    anomaly nor of its neighbours. Both in [0, 1], which the f-Net takes.
    """
    own_classes = [c for c in range(split.info.num_classes) if c not in split.anomaly_classes]
    other = other_dataset_reference(split.info.name, size, seed, data_dir, download_first)
    return {f"(a) {split.info.name} without {split.anomaly_classes}":
            ClassSubset(split.train.dataset, own_classes, value_range=split.value_range)
            .sample(size, seed),
            f"(b) {other.dataset_name}": other}


FNET_SETTINGS = {
    "reference": Setting(OTHER_DATASET, check_reference),
    "reference_images": Setting(3000, positive_int, 3000),
    "epochs": Setting(5, positive_int, 5),
    "batch_size": Setting(64, positive_int, 64),
    "lr": Setting(1e-3, positive_number, 1e-3),
    "feature_dim": Setting(32, positive_int, 32),
    "alpha": Setting(16.0, positive_number, 16.0),
    "centre_images": Setting(None, optional_positive_int, 1000),  # None: every training image
    "outlier_exposure": Setting(False, flag),
    "data_dir": Setting("data", lambda v, n, e=None: str(v)),     # where the other dataset is
}


class FNetDetector(Detector):
    """Centre distance of f-Net features; chapter 07. Headline: ``"centre distance"``."""

    name = "fnet_distance"
    headline = "centre distance"
    value_ranges = ("[0, 1]",)
    SETTINGS = FNET_SETTINGS

    def _reference(self, train) -> tuple[torch.Tensor, torch.Tensor]:
        """Labelled reference images and their class ids, the normal images added under OE."""
        s = self.settings
        reference = s["reference"]
        if reference == OTHER_DATASET:
            if train.dataset_name is None:
                raise ConfigError("reference='other-dataset' needs training data from a dataset "
                                  "the companion knows (mnist, fashion-mnist)")
            reference = other_dataset_reference(train.dataset_name, s["reference_images"],
                                                self.seed, s["data_dir"])
        images, classes, _ = in_memory(reference).tensors
        if s["outlier_exposure"]:
            # As many normal images as a reference class has, labelled as one more class.
            normal_class = int(classes.max()) + 1  # a class id no reference image has
            per_class = len(images) // len(torch.unique(classes))
            normal = in_memory(train.sample(per_class, self.seed)).tensors[0]
            images = torch.cat([images, normal])
            classes = torch.cat([classes, torch.full((len(normal),), normal_class)])
        return images, classes

    def _build(self) -> None:
        pass  # the number of classes is known only once the reference images are

    def _make_net(self, num_classes: int) -> None:
        s = self.settings
        self.net = FeatureNet(self.image_shape[0], num_classes, s["feature_dim"], s["alpha"])
        self.net.to(self.device)

    def _fit(self, train, val_images, after_epoch=None) -> History:
        images, classes = self._reference(train)
        self.classes = torch.unique(classes).tolist()
        self._make_net(len(self.classes))
        net = self.net
        optimizer = torch.optim.Adam(net.parameters(), lr=self.settings["lr"])

        def step(x, labels):
            logits = net(x)
            targets = class_targets(labels.cpu(), self.classes).to(x.device)
            loss = F.cross_entropy(logits, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return {"loss": loss.item(), "accuracy": (logits.argmax(1) == targets).float().mean().item()}

        loader = make_loader(TensorDataset(images, classes), self.settings["batch_size"],
                             shuffle=True, seed=self.seed)
        history = train_epochs(step, loader, self.settings["epochs"], {"f": net}, self.device,
                               None, after_epoch, self.progress, desc="f-Net epochs")
        centre_data = train if self.settings["centre_images"] is None else \
            train.sample(self.settings["centre_images"], self.seed)
        self.centre = self.features(in_memory(centre_data).tensors[0]).mean(dim=0)
        return history

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """f(x) of every image, on the CPU."""
        self.net.eval()
        return in_batches(self.net.features, images, self.device)

    def centre_distance(self, images: torch.Tensor) -> torch.Tensor:
        """Σ|f(x) − C| of every image, on the CPU."""
        self.net.eval()
        centre = self.centre.to(self.device)
        return in_batches(lambda chunk: feature_distance(self.net, chunk, centre), images,
                          self.device)

    def _score(self, images, classes, labels) -> Scores:
        values = {"centre distance": self.centre_distance(images).numpy()}
        if self.settings["outlier_exposure"]:
            normal_logit = len(self.classes) - 1
            probability = in_batches(lambda chunk: self.net(chunk).softmax(1)[:, normal_logit],
                                     images, self.device)
            values["1 - P(normal)"] = (1 - probability).numpy()
        return self._scores(values, classes, labels, inputs=images)

    def _plain_settings(self) -> dict:
        # Reference images given as data are not saved: a fitted f-Net no longer needs them.
        return {name: value for name, value in self.settings.items()
                if name != "reference" or value == OTHER_DATASET}

    def _state(self) -> dict:
        return {"net": self.net.state_dict(), "centre": self.centre, "classes": self.classes}

    def _load_state(self, state: dict) -> None:
        self.classes = list(state["classes"])
        self._make_net(len(self.classes))
        self.net.load_state_dict(state["net"])
        self.centre = state["centre"]


class FNetOEDetector(FNetDetector):
    """:class:`FNetDetector` with outlier exposure on by default; chapter 10's ``fnet_oe``."""

    name = "fnet_oe"
    SETTINGS = {**FNET_SETTINGS, "outlier_exposure": Setting(True, flag)}
