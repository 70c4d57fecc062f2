"""The variational autoencoder as a detector; chapter 04.

``fit`` maximises the ELBO on normal images with Adam through the book's one training loop,
logging its two terms per epoch; with validation images the epoch of the lowest held-out
−ELBO is kept. ``score`` returns four scores per image, higher meaning more anomalous:

* ``"reconstruction NLL"``, the headline: An & Cho's (2015) reconstruction probability as a
  negative log, −log p(x|z) averaged over ``samples`` draws z ~ q(z|x), summed over pixels;
* ``"-ELBO"``: that plus the KL term, the bound on −log p(x) the model was trained on;
* ``"KL"``: the KL term alone, how far the code of x lies from the prior;
* ``"mse"``: the mean squared error of the mean reconstruction (z = μ), as for the plain
  autoencoders.

The maps are −log p(x|z) per pixel, averaged over the same draws; the outputs are the mean
reconstructions. Draws come from a generator seeded by the detector's seed, so scoring twice
gives the same numbers.
"""

from __future__ import annotations

import torch

from ..engine import History, train_epochs
from ..errors import ConfigError
from ..models.vae import ConvVAE, bernoulli_nll, kl_to_standard_normal, reparameterise
from ..scores import Scores
from ..settings import Setting, non_negative_number, positive_int, positive_number
from .base import Detector, in_batches


def vae_scores(net: ConvVAE, images: torch.Tensor, samples: int, generator=None) -> dict:
    """The four per-image scores, the per-pixel map and the mean reconstruction; chapter 04.

    ``images`` is one batch on the network's device; ``samples`` draws of z per image estimate
    the expectation over q(z|x) (the KL is exact).
    """
    mu, log_var = net.encode(images)
    pixel_nll = torch.zeros_like(images)
    for _ in range(samples):
        pixel_nll += bernoulli_nll(images, net.decode(reparameterise(mu, log_var, generator)))
    pixel_nll /= samples
    nll, kl = pixel_nll.flatten(1).sum(dim=1), kl_to_standard_normal(mu, log_var)
    mean = torch.sigmoid(net.decode(mu))
    return {"reconstruction NLL": nll, "-ELBO": nll + kl, "KL": kl,
            "mse": (images - mean).pow(2).flatten(1).mean(dim=1),
            "maps": pixel_nll.sum(dim=1), "outputs": mean}


class VAEDetector(Detector):
    """A convolutional VAE trained on normal images; score = reconstruction probability."""

    name = "vae"
    headline = "reconstruction NLL"
    value_ranges = ("[0, 1]",)
    SETTINGS = {
        "latent_dim": Setting(16, positive_int, 16),
        "base_channels": Setting(16, positive_int, 16),
        "beta": Setting(1.0, non_negative_number, 1.0),
        "samples": Setting(10, positive_int, 10),
        "epochs": Setting(20, positive_int, 20),
        "batch_size": Setting(16, positive_int, 16),
        "lr": Setting(1e-3, positive_number, 1e-3),
    }

    def _build(self) -> None:
        s = self.settings
        self.net = ConvVAE(s["latent_dim"], self.image_shape, s["base_channels"],
                           s["beta"]).to(self.device)

    def _fitted_net(self) -> ConvVAE:
        if self.image_shape is None:
            raise ConfigError("the vae detector is not fitted yet; call fit(split.train) first")
        return self.net.eval()

    def _generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed)

    def _fit(self, train, val_images, after_epoch=None) -> History:
        net = self.net
        optimizer = torch.optim.Adam(net.parameters(), lr=self.settings["lr"])

        def step(images, *_):
            terms = net.loss(images, net(images))
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()
            return {name: value.item() for name, value in terms.items()}

        validate = None
        if val_images is not None:
            def validate() -> float:  # held-out −ELBO, one draw per image from a fixed seed
                generator = self._generator()
                return float(in_batches(lambda x: vae_scores(net, x, 1, generator)["-ELBO"],
                                        val_images, self.device).mean())
        return train_epochs(step, self._loader(train, shuffle=True), self.settings["epochs"],
                            {"net": net}, self.device, validate, after_epoch, self.progress)

    def _score(self, images, classes, labels) -> Scores:
        self.net.eval()
        generator = self._generator()
        values = in_batches(lambda x: vae_scores(self.net, x, self.settings["samples"], generator),
                            images, self.device)
        maps, outputs = values.pop("maps"), values.pop("outputs")
        return self._scores({name: value.numpy() for name, value in values.items()}, classes,
                            labels, maps=maps.numpy(), inputs=images, outputs=outputs)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """μ(x) of each image, on the CPU: the latent codes of chapter 04's figure."""
        net = self._fitted_net()
        return in_batches(lambda x: net.encode(x)[0], images, self.device)

    def sample(self, count: int) -> torch.Tensor:
        """``count`` images decoded from the prior, z ~ N(0, I) (mean images, on the CPU)."""
        positive_int(count, "count", 16)
        net = self._fitted_net()
        generator = self._generator()
        z = torch.randn(count, self.settings["latent_dim"], generator=generator,
                        device=self.device)
        with torch.no_grad():
            return torch.sigmoid(net.decode(z)).cpu()

    def _state(self) -> dict:
        return {"net": self.net.state_dict()}

    def _load_state(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
