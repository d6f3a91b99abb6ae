"""Part 3 of the series, the variational autoencoder (:mod:`~torchae.part3.vae`) and its figures and animations
(:mod:`~torchae.part3.figures`)."""

from torchae.part3 import figures, vae  # noqa: F401  (registers the experiment and the figures)
