"""Training animations: frames saved at the article's epochs while fitting (each a registered animation's
picture of the model), and the GIFs drawn from them when the fit ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchae.figures.plots import encode_all, latent_points, new_figure, scatter_by_digit
from torchae.safety import atomic_write

__all__ = [
    "ANIMATIONS",
    "ANIMATION_EPOCHS",
    "ANIMATION_FOLDER",
    "MAX_ANIMATION_BYTES",
    "Animation",
    "codes_frame",
    "pixel_bytes",
    "record_frame",
    "register_animation",
    "write_animations",
]


@dataclass(frozen=True)
class Animation:
    """One training animation.

    Attributes:
        key: the array of a frame's file that it draws (``manifold``: an image; ``codes``: the test codes).
        frame: what a frame keeps under ``key``, from the model and the test set's images and labels (a manifold as
            bytes, :func:`pixel_bytes`; codes as float32, :func:`codes_frame`).
        draw: draws the GIF from the loaded frames, their epochs, the labels, the path and a title.
    """

    key: str
    frame: Callable[[Any, torch.Tensor, torch.Tensor | None], torch.Tensor]
    draw: Callable[[list[dict[str, np.ndarray]], list[int], torch.Tensor | None, Path, str], Path]


ANIMATIONS: dict[str, Animation] = {}
"""Every registered animation by name, each written to ``NAME.gif`` (a model's ``animations`` says which)."""


def register_animation(name: str, animation: Animation) -> None:
    """Register ``animation`` as ``name``."""
    ANIMATIONS[name] = animation


def pixel_bytes(image: torch.Tensor) -> torch.Tensor:
    """An image of pixels in [0, 1] as bytes: how a ``manifold`` frame is kept."""
    return (image.float() * 255).round().to(torch.uint8)


def codes_frame(model: Any, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """A ``codes`` frame: the float32 codes of the test images (with their labels, for a model that takes them)."""
    return encode_all(model, images, labels).float()


ANIMATION_EPOCHS = frozenset(int(e) for e in (np.arange(0, 59) ** 1.701).astype(int)) | frozenset(range(10))
"""The article's ``save_epochs``: every epoch up to 9, then ever sparser up to 999 (0-based, as Keras counts)."""

ANIMATION_FOLDER = "animation"


def record_frame(
    model: Any, images: torch.Tensor, folder: Path, epoch: int, labels: torch.Tensor | None = None
) -> Path:
    """Save the animation frame of ``epoch``: what each of the model's ``animations`` draws, in inference mode
    (which draws no random numbers), to ``folder/epoch_NNNN.npz``."""
    was_training = model.training
    model.eval()
    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for name in model.animations:
            animation = ANIMATIONS[name]
            if animation.key not in arrays:
                arrays[animation.key] = animation.frame(model, images, labels).cpu().numpy()
    model.train(was_training)
    path = folder / f"epoch_{epoch:04d}.npz"
    with atomic_write(path) as partial:
        np.savez_compressed(partial, **arrays)
    return path


def write_animations(
    folder: Path, out: Path, labels: torch.Tensor | None, title: str, names: Sequence[str], unit: str = "epoch"
) -> list[Path]:
    """The training animations ``names`` from the frames in ``folder``, one frame per saved epoch (or outer iteration:
    ``unit``, as the model declares its ``frame_unit``), each written to ``out/NAME.gif`` (matplotlib's Pillow
    writer, Pillow being a dependency of matplotlib); each frame's caption names its epoch (``"epoch 3"``)."""
    frames = sorted(folder.glob("epoch_*.npz"))
    if not frames:
        return []
    epochs = [f"{unit} {int(path.stem.split('_')[1])}" for path in frames]
    loaded = [dict(np.load(path, allow_pickle=False)) for path in frames]
    written = []
    for name in names:
        animation = ANIMATIONS[name]
        if all(animation.key in frame for frame in loaded):
            written.append(animation.draw(loaded, epochs, labels, out / f"{name}.gif", title))
    return written


MAX_ANIMATION_BYTES = 2_000_000
"""The largest GIF an animation writes: past it, every other frame is dropped (the last one always kept)."""
GRAY_LEVELS = 16
"""Gray levels of a manifold's GIF: digits read as well as with 256, and the file is a third of the size."""


def thinned(indices: list[int]) -> list[int]:
    """Every other one of ``indices``, the last always kept."""
    kept = indices[::2]
    return kept if kept[-1] == indices[-1] else [*kept, indices[-1]]


def write_under_limit(write: Callable[[list[int], Path], None], count: int, path: Path) -> Path:
    """``write(indices, partial)`` writes a GIF of the frames at ``indices``; it runs with every frame, then with
    every other one (the last kept) until the file is at most :data:`MAX_ANIMATION_BYTES`, and lands at ``path``."""
    indices = list(range(count))
    while True:
        with atomic_write(path) as partial:
            write(indices, partial)
        if path.stat().st_size <= MAX_ANIMATION_BYTES or len(indices) <= 2:
            return path
        indices = thinned(indices)


def animate_manifold(
    loaded: list[dict[str, np.ndarray]], epochs: list[str], labels: torch.Tensor | None, path: Path, title: str
) -> Path:
    """The manifold frames as a grayscale GIF at their own pixels (28 per digit), each with a caption line, in
    :data:`GRAY_LEVELS` levels, under :data:`MAX_ANIMATION_BYTES`."""
    from PIL import Image, ImageDraw

    step = 256 // GRAY_LEVELS
    frames = []
    for frame, epoch in zip(loaded, epochs):
        pixels = (frame["manifold"] // step) * (255 // (GRAY_LEVELS - 1))
        image = Image.new("L", (pixels.shape[1], pixels.shape[0] + 16), 0)
        image.paste(Image.fromarray(pixels.astype(np.uint8), "L"), (0, 16))
        ImageDraw.Draw(image).text((4, 2), f"{title}: {epoch}", fill=255)
        frames.append(image)

    def write(indices: list[int], partial: Path) -> None:
        chosen = [frames[i] for i in indices]
        chosen[0].save(partial, format="GIF", save_all=True, append_images=chosen[1:], duration=250, loop=0)

    return write_under_limit(write, len(frames), path)


def animate_codes(
    loaded: list[dict[str, np.ndarray]], epochs: list[str], labels: torch.Tensor | None, path: Path, title: str
) -> Path:

    figure = new_figure(figsize=(6.5, 6), dpi=80)
    ax = figure.subplots()
    points = [latent_points(torch.from_numpy(frame["codes"]))[0] for frame in loaded]
    every = torch.cat(points)
    low, high = torch.quantile(every, 0.001, dim=0), torch.quantile(every, 0.999, dim=0)

    def show_codes(index: int) -> list[Any]:
        ax.clear()
        drawn = scatter_by_digit(ax, points[index], labels)
        ax.set_xlim(float(low[0]), float(high[0]))
        ax.set_ylim(float(low[1]), float(high[1]))
        ax.set_title(f"{title}: test codes, {epochs[index]}")
        return drawn

    return save_animation(figure, show_codes, len(loaded), path)


def save_animation(figure: Any, draw: Callable[[int], Any], count: int, path: Path) -> Path:
    """The GIF of ``draw``'s ``count`` frames (matplotlib's animation, 4 frames a second), under
    :data:`MAX_ANIMATION_BYTES`: past it, every other frame is dropped (the last one always kept)."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    def write(indices: list[int], partial: Path) -> None:
        FuncAnimation(figure, draw, frames=indices).save(partial, writer=PillowWriter(fps=4))

    return write_under_limit(write, count, path)
