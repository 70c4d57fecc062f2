"""The f-Net of Ano-Unet: a feature extractor trained by metric learning; chapter 07.

Ano-Unet (the Ano-Unet article) needs a frozen network f that maps an image to a feature vector in which
normal images lie close together. The Ano-Unet article fine-tunes an ImageNet MobileNetV2 with the
L2-softmax loss (Ranjan et al., 2017). The book runs offline, where no pretrained weights can be
downloaded, and its images are 28x28, so :class:`FeatureNet` is a small CNN trained from scratch
with the same loss on labelled reference images (the normal class and other classes, never the
anomaly classes under test).

Images are in [0, 1], as for ALOCC in chapter 06: use ``image_transform(1, "[0, 1]")``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..settings import positive_int, positive_number

def check_centre(net: FeatureNet, centre) -> None:
    """Raise a one-line error unless ``centre`` is a C of ``net``'s features.

    Defined in chapter 07: a C computed with another f-Net, of another size, fails here and
    not deep inside a subtraction.
    """
    if not torch.is_tensor(centre) or tuple(centre.shape) != (net.feature_dim,):
        raise ConfigError(f"centre of shape {tuple(getattr(centre, 'shape', ()))}, but the f-Net "
                          f"has feature_dim={net.feature_dim}; compute C with the same f-Net")


class FeatureNet(nn.Module):
    """f: three convolution stages, global average pooling, a linear layer; chapter 07.

    :meth:`features` is f itself: the backbone's vector L2-normalised and scaled to length
    ``alpha``. :meth:`forward`, used only in training, puts a linear classifier on top: the
    L2-constrained softmax of Ranjan et al. (2017). With every feature the same length, the
    classifier can separate classes by direction alone, so cross-entropy pulls each class into a
    tight cone: the metric learning that Ano-Unet relies on. There is no BatchNorm, so an image's
    feature never depends on the other images of its batch.
    """

    def __init__(self, channels: int = 1, num_classes: int = 9, feature_dim: int = 32,
                 alpha: float = 16.0, base_channels: int = 16):
        super().__init__()
        positive_int(channels, "channels", 1)
        positive_int(feature_dim, "feature_dim", 32)
        positive_int(base_channels, "base_channels", 16)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ConfigError(f"num_classes={num_classes!r}; metric learning needs at least 2 "
                              "reference classes to tell apart")
        positive_number(alpha, "alpha", 16)
        c = base_channels
        self.channels = channels
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.alpha = float(alpha)
        self.backbone = nn.Sequential(
            nn.Conv2d(channels, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),       # 28 -> 14
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),          # 14 -> 7
            nn.Conv2d(2 * c, 4 * c, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * c, feature_dim),
        )
        self.classifier = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """f(x): each image's feature, of L2 norm ``alpha``, shape (N, feature_dim)."""
        return self.alpha * F.normalize(self.backbone(x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of f(x) (the L2-softmax), shape (N, num_classes)."""
        return self.classifier(self.features(x))


def class_targets(labels, classes) -> torch.Tensor:
    """Map class ids to logit indices: ``classes[k]`` becomes ``k``.

    Defined in chapter 07. The reference images keep their dataset's class ids (say MNIST
    digits 0-7 and 9 when 8 is the anomaly); the logits are numbered 0..K-1 in the order of
    ``classes``. A label missing from ``classes`` is an error, not a silent class 0.
    """
    classes = [int(c) for c in classes]
    labels = torch.as_tensor(labels).long()
    matches = labels[:, None] == torch.tensor(classes)[None, :]  # (N, K), one True per known label
    known = matches.any(dim=1)
    if not known.all():
        raise ConfigError(f"the loader yields class {int(labels[~known][0])}, which is not in "
                          f"classes={classes}; list every reference class the loader holds")
    return matches.long().argmax(dim=1)


def feature_distance(net: FeatureNet, images: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Σ|f(x) − C| per image: the L1 distance of each feature to the centre.

    Defined in chapter 07; it is Ano-Unet's L_C when ``images`` are the U-Net's outputs.
    """
    return (net.features(images) - centre).abs().sum(dim=1)
