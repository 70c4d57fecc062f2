"""One module per model: the network, its training loss and its anomaly map together."""

from .alocc import Discriminator, Reconstructor
from .conv_ae import ConvAutoencoder
from .dense_ae import DenseAutoencoder

__all__ = ["ConvAutoencoder", "DenseAutoencoder", "Discriminator", "Reconstructor"]
