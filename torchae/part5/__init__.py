"""Part 5 of the series, the GAN and the conditional GAN (:mod:`~torchae.part5.gan`) on the article's generator and
discriminator (:mod:`~torchae.part5.networks`). Their figures are parts 3's and 4's manifolds and generated digits."""

from torchae.part5 import gan  # noqa: F401  (registers the experiments)
