"""The series' figures: plumbing (:mod:`~torchae.figures.plots`), the open registry of figures
(:mod:`~torchae.figures.registry`) and animations (:mod:`~torchae.figures.animation`), and the callback that draws
them when a fit ends (:mod:`~torchae.figures.callback`). Each part registers its own figures beside its models
(``torchae/partN/figures.py``); a model's ``figures`` and ``animations`` name the ones it draws.

matplotlib is imported when a figure is drawn, not when the parts register theirs.
"""

from torchae.figures.registry import (
    FIGURE_OPTIONS,
    FIGURES,
    MAX_DIGITS_PER_ROW,
    TestSet,
    check_digits_per_row,
    draw_figures,
    figure_options,
    figure_paths,
    register_figure,
    uses_training_set,
)

# isort: split
from torchae.figures.animation import ANIMATION_EPOCHS, ANIMATIONS, record_frame, register_animation, write_animations
from torchae.figures.callback import ArticleFigures, write_history_csv

__all__ = [
    "ANIMATIONS",
    "ANIMATION_EPOCHS",
    "FIGURES",
    "FIGURE_OPTIONS",
    "MAX_DIGITS_PER_ROW",
    "ArticleFigures",
    "TestSet",
    "check_digits_per_row",
    "draw_figures",
    "figure_options",
    "figure_paths",
    "record_frame",
    "register_animation",
    "register_figure",
    "uses_training_set",
    "write_animations",
    "write_history_csv",
]
