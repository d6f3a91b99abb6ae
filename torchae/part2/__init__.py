"""Part 2 of the series, manifold learning and latent variables: part 2's points around a sine curve
(:mod:`~torchae.part2.dots`), the points models and the deep sparse ones (:mod:`~torchae.part2.models`), and their
figures (:mod:`~torchae.part2.figures`)."""

from torchae.part2 import dots, figures, models  # noqa: F401  (registers the experiments and the figures)
