"""``torchae figures`` and ``torchae export``: commands of torchae's own beside Lightning's."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from torchae.autoencoder import AutoencoderModule
from torchae.cli.loading import model_of
from torchae.data import MNISTDataModule
from torchae.errors import ConfigError
from torchae.export import Format, Part
from torchae.figures import check_digits_per_row
from torchae.inputs import check_label
from torchae.runs import is_run_folder


def figures_command(
    checkpoint: str | None = None,
    pretrained: str | None = None,
    out_dir: str | None = None,
    data_dir: str | None = None,
    n: int = 10,
    seed: int = 0,
    model: str | None = None,
    style_digit: int | None = None,
) -> None:
    """Draw a model's figures (reconstructions, the code space, its own, and the loss curves) from a checkpoint or
    a shipped model.

    Args:
        checkpoint: a ``.ckpt`` written by ``torchae fit``.
        pretrained: a model shipped with torchae instead (``torchae.weights.available()`` lists them).
        out_dir: where to write the PNG files; default: a ``figures`` folder beside the checkpoint's folder, or
            ``figures/NAME`` for a shipped model.
        data_dir: MNIST source (default: the embedded copy).
        n: digits per row.
        seed: seed of the noise in the denoising figure.
        model: the class of a model defined outside torchae (``mypkg.MyAE``); torchae's own are found by name.
        style_digit: the digit whose first training images give the CVAE's style transfer its style; ``None``:
            the article's 7.
    """
    check_digits_per_row(n, "n")
    if style_digit is not None:
        check_label(style_digit, "--style_digit")
    if out_dir is not None:
        target = Path(out_dir)
        if target.exists() and not target.is_dir():
            raise ConfigError(f"--out_dir {out_dir!r} is a file, not a folder: give a folder for the figures")
        if is_run_folder(target):
            raise ConfigError(
                f"--out_dir {out_dir!r} is a run's folder, whose figures are the run's own: give another folder "
                "(by default they go to the run's figures/ folder)"
            )
    elif checkpoint is not None:
        target = Path(checkpoint).resolve().parent.parent / "figures"
    else:
        target = Path("figures") / str(pretrained)
    loaded, history = model_of(checkpoint, pretrained, model)
    if style_digit is not None and "style_transfer" not in loaded.figures:
        raise ConfigError(
            f"--style_digit chooses the style of the CVAE's style transfer; {type(loaded).__name__} draws none: "
            "leave --style_digit out"
        )
    _draw(loaded, history, target, data_dir, n, seed, 7 if style_digit is None else style_digit)


def _draw(
    model: AutoencoderModule, history: Any, target: Path, data_dir: str | None, n: int, seed: int, style_digit: int
) -> None:
    import torch

    from torchae.data import load_mnist, to_image_tensor
    from torchae.figures import draw_figures

    mnist = issubclass(model.datamodule, MNISTDataModule)
    if data_dir is not None and not mnist:
        raise ConfigError(
            f"--data_dir is MNIST's; {type(model).__name__} draws its figures from {model.datamodule.__name__}'s "
            "data: leave --data_dir out"
        )
    train: dict[str, Any] = {}
    if mnist:
        splits = load_mnist(data_dir)
        images, labels = to_image_tensor(splits.x_test), torch.from_numpy(splits.y_test.astype("int64"))
        if model.conditional:  # the style transfer's sevens come from the training set, as the article's
            train["train_images"] = to_image_tensor(splits.x_train)
            train["train_labels"] = torch.from_numpy(splits.y_train.astype("int64"))
    else:  # the model's own data, with its defaults (part 2's points: the article's 1000, seed 0)
        data = model.datamodule(seed=0)
        data.setup("test")
        images, labels = data.val_images, data.val_labels
    train["style_digit"] = style_digit
    for path in draw_figures(model, images, target, history, n=n, seed=seed, labels=labels, **train):
        print(path)


def export_command(
    checkpoint: str | None = None,
    pretrained: str | None = None,
    output: str | None = None,
    format: Format = "onnx",
    part: Part = "autoencoder",
    model: str | None = None,
) -> None:
    """Export a checkpoint's or a shipped model, or one half of it, as one self-contained file with a dynamic batch
    dimension; then check the file against torch at another batch size (onnxruntime for ONNX).

    Args:
        checkpoint: a ``.ckpt`` written by ``torchae fit``.
        pretrained: a model shipped with torchae instead (``torchae.weights.available()`` lists them).
        output: the file to write; default: beside the checkpoint (in the current folder for a shipped model),
            named after it, the part and the format.
        format: ``onnx``, or ``pt2`` (``torch.export``; TorchScript, which PyTorch deprecates, is not offered).
        part: ``autoencoder`` (images to reconstructions), ``encoder`` (images to codes) or ``decoder``.
        model: the class of a model defined outside torchae (``mypkg.MyAE``); torchae's own are found by name.
        style_digit: the digit whose first training images give the CVAE's style transfer its style; ``None``:
            the article's 7.
    """
    from torchae.export import export_model

    loaded, _ = model_of(checkpoint, pretrained, model)
    suffix = {"onnx": ".onnx", "pt2": ".pt2"}.get(format, "")
    source = Path(checkpoint) if checkpoint is not None else Path(str(pretrained))
    target = Path(output) if output else source.with_name(f"{source.stem}-{part}{suffix}")
    if checkpoint is not None and target.resolve() == Path(checkpoint).resolve():
        raise ConfigError(f"--output {str(target)!r} is the checkpoint being exported: give another file name")
    difference = export_model(loaded, target, format, part)
    print(f"{target}: the {part} of a {type(loaded).__name__} as {format}, batch dimension dynamic; at batch 7 the")
    print(f"file gives the model's outputs to {difference:.1e} (largest absolute difference)")


OWN_COMMANDS = {"figures": figures_command, "export": export_command}


def own_command_parser(name: str) -> Any:
    """The parser of ``torchae figures`` or ``torchae export``: the checkpoint as an optional positional argument,
    the function's other arguments as options; errors are raised, not printed (:func:`main` prints one line)."""
    from jsonargparse import ArgumentParser

    function = OWN_COMMANDS[name]
    summary = " ".join((function.__doc__ or "").split("Args:")[0].split())
    parser = ArgumentParser(prog=f"torchae {name}", description=summary, exit_on_error=False)
    parser.add_argument("checkpoint", nargs="?", default=None, help="a .ckpt written by torchae fit")
    parser.add_function_arguments(function, as_group=False, skip={"checkpoint"})
    return parser


def parameters_of(name: str) -> set[str]:
    return set(inspect.signature(OWN_COMMANDS[name]).parameters)
