"""One module per model: the network, its training loss and its anomaly map together."""

from .alocc import Discriminator, Reconstructor
from .ano_unet import UNet
from .conv_ae import ConvAutoencoder
from .dense_ae import DenseAutoencoder
from .fnet import FeatureNet
from .ssim_ae import SSIMAutoencoder
from .vae import ConvVAE

__all__ = ["ConvAutoencoder", "ConvVAE", "DenseAutoencoder", "Discriminator", "FeatureNet", "Reconstructor",
           "SSIMAutoencoder", "UNet"]
