"""Part 4 of the series, the conditional VAE and the conditional autoencoder of points (:mod:`~torchae.part4.cvae`),
and their figures (:mod:`~torchae.part4.figures`)."""

from torchae.part4 import cvae, figures  # noqa: F401  (registers the experiments and the figures)
