"""Every model of the book as a detector of one shape: ``fit``, ``score``, ``save``; ``make``.

Defined in chapter 02. One module per model family; :data:`REGISTRY` maps each name to its
class, so the benchmark and the tests loop over all of them.
"""

from .alocc import ALOCCDetector, alocc_step
from .ano_unet import AnoUnetDetector
from .autoencoder import (AutoencoderDetector, ConvAEDetector, DenseAEDetector, SSIMAEDetector,
                          fit_autoencoder)
from .base import EVALUATION_BATCH_SIZE, REGISTRY, Detector, in_batches, load, make
from .fnet import FNetDetector, FNetOEDetector
from .restoration import RestorationAEDetector
from .restoration_pair import RestorationPairDetector
from .vae import VAEDetector, vae_scores

__all__ = ["ALOCCDetector", "AnoUnetDetector", "AutoencoderDetector", "ConvAEDetector",
           "DenseAEDetector", "Detector", "EVALUATION_BATCH_SIZE", "FNetDetector",
           "FNetOEDetector", "REGISTRY", "RestorationAEDetector", "RestorationPairDetector",
           "SSIMAEDetector", "VAEDetector",
           "alocc_step", "fit_autoencoder", "in_batches", "load", "make", "vae_scores"]
