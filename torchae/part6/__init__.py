"""Part 6 of the series, the CVAE-GAN (:mod:`~torchae.part6.cvae_gan`) on the article's encoder, decoder and
discriminator (:mod:`~torchae.part6.networks`), and the figure of its point (:mod:`~torchae.part6.figures`); its
other figures are part 4's."""

from torchae.part6 import cvae_gan, figures  # noqa: F401  (registers the experiment and its figure)
