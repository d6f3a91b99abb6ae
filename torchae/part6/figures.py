"""Part 6's figure of its point: the CVAE-GAN's digits beside part 4's CVAE's, decoded from the same codes. Its other
figures are part 4's (reconstructions, generated digits, each digit's manifold, the style transfer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from torchae.figures import TestSet, register_figure
from torchae.figures.plots import plot_digit_rows
from torchae.weights import pretrained

__all__ = ["draw_beside_cvae"]


@register_figure("beside_cvae")
def draw_beside_cvae(model: Any, test: TestSet, path: Path) -> Path:
    """For each digit, a row of the shipped CVAE's (part 4) and below it a row of this model's, decoded from the same
    codes drawn from ``N(0, I)``: the article's sharper digits."""
    cvae = pretrained("cvae").to(model.device)
    generator = torch.Generator(device=model.device).manual_seed(test.seed)
    rows = []
    for digit in range(10):
        codes = torch.randn(test.n, model.latent_dim, generator=generator, device=model.device, dtype=model.dtype)
        same = cvae.latent_dim == model.latent_dim
        cvae_codes = codes if same else torch.randn(test.n, cvae.latent_dim, generator=generator, device=model.device)
        rows.append((f"{digit}: CVAE", cvae.decode(cvae_codes, digit)))
        rows.append((f"{digit}: {type(model).__name__}", model.decode(codes, digit)))
    title = f"Each digit from the same codes: part 4's CVAE above, {type(model).__name__} below"
    return plot_digit_rows(rows, path, title)
