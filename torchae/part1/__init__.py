"""Part 1 of the series, autoencoders: the dense, deep, convolutional, denoising and sparse models
(:mod:`~torchae.part1.models`) and their figures (:mod:`~torchae.part1.figures`)."""

from torchae.part1 import figures, models  # noqa: F401  (registers the experiments and the figures)
