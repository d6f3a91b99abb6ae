"""``torchae figures`` and ``torchae export``: commands of torchae's own beside Lightning's."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

from torchae.cli.loading import model_of
from torchae.errors import ConfigError
from torchae.export import Format, Part, describe_export, first_part
from torchae.figures import check_digits_per_row, figure_options, figure_paths, uses_training_set
from torchae.runs import is_run_folder
from torchae.safety import refuse_existing


def figures_command(
    checkpoint: str | None = None,
    pretrained: str | None = None,
    out_dir: str | None = None,
    data_dir: str | None = None,
    n: int = 10,
    seed: int = 0,
    model: str | None = None,
    options: dict[str, int] | None = None,
    overwrite: bool = False,
) -> None:
    """Draw a model's figures (reconstructions, the code space, its own, and the loss curves) from a checkpoint or
    a shipped model.

    Args:
        checkpoint: a ``.ckpt`` written by ``torchae fit``.
        pretrained: a model shipped with torchae instead (``torchae.weights.available()`` lists them).
        out_dir: where to write the PNG files; default: a ``figures`` folder beside the checkpoint's folder, or
            ``figures/NAME`` for a shipped model.
        data_dir: MNIST source (default: the embedded copy), for a model trained on MNIST.
        n: digits per row.
        seed: seed of the noise in the denoising figure and of the generated digits' codes.
        model: the class of a model defined outside torchae (``mypkg.MyAE``); torchae's own are found by name.
        options: options of the model's own figures, ``--options.NAME VALUE``: the CVAE's style transfer takes
            ``style_digit``, the digit whose first training images give it its style (the article's 7).
        overwrite: replace figures that exist in the folder already (by default they are refused, never replaced).
    """
    check_digits_per_row(n, "n")
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
    chosen = figure_options(loaded, options)  # refused here, before any data is read
    if not overwrite:
        refuse_existing(
            figure_paths(loaded, target, history),
            "give another --out_dir, or --overwrite true to replace the figures there",
        )
    for path in draw_model_figures(loaded, history, target, data_dir, n, seed, chosen):
        print(path)
    animations = getattr(loaded, "animations", ())
    if animations:
        gifs = ", ".join(f"{name}.gif" for name in animations)
        print(
            f"torchae: {type(loaded).__name__}'s animations ({gifs}) are drawn by torchae fit from frames it saves "
            "while training, which a checkpoint or a shipped model does not hold: a run's own are in its folder",
            file=sys.stderr,
        )


def draw_model_figures(
    model: Any,
    history: Any,
    target: Path,
    data_dir: str | None = None,
    n: int = 10,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> list[Path]:
    """Draw ``model``'s figures from its own datamodule's test data (with its defaults: MNIST's test set, part 2's
    1000 points at seed 0), and its training data where a figure takes its examples from there."""
    from torchae.figures import draw_figures

    data_class = getattr(model, "datamodule", None)
    if data_class is None:
        raise ConfigError(
            f"{type(model).__name__} names no datamodule to draw its figures from: give the class a datamodule "
            "attribute (torchae's models have one)"
        )
    takes_folder = "data_dir" in inspect.signature(data_class).parameters
    if data_dir is not None and not takes_folder:
        raise ConfigError(
            f"--data_dir is MNIST's; {type(model).__name__} draws its figures from {data_class.__name__}'s "
            "data: leave --data_dir out"
        )
    data = data_class(seed=0, **({"data_dir": data_dir} if data_dir is not None else {}))
    training_set = uses_training_set(model)
    data.setup("fit" if training_set else "test")
    train = {"train_images": data.train_images, "train_labels": data.train_labels} if training_set else {}
    labels = getattr(data, "val_labels", None)
    return draw_figures(
        model, data.val_images, target, history, n=n, seed=seed, labels=labels, options=options, **train
    )


def export_command(
    checkpoint: str | None = None,
    pretrained: str | None = None,
    output: str | None = None,
    format: Format = "onnx",
    part: Part | None = None,
    model: str | None = None,
    overwrite: bool = False,
) -> None:
    """Export a checkpoint's or a shipped model, or one half of it, as one self-contained file with a dynamic batch
    dimension; then check the file against torch at another batch size (onnxruntime for ONNX).

    Args:
        checkpoint: a ``.ckpt`` written by ``torchae fit``.
        pretrained: a model shipped with torchae instead (``torchae.weights.available()`` lists them).
        output: the file to write; default: beside the checkpoint (in the current folder for a shipped model),
            named after it, the part and the format.
        format: ``onnx``, or ``pt2`` (``torch.export``; TorchScript, which PyTorch deprecates, is not offered).
        part: one of the model's parts: an autoencoder's ``autoencoder`` (images to reconstructions), ``encoder``
            (images to codes) or ``decoder``, a GAN's ``generator`` (codes to images); default: its first.
        model: the class of a model defined outside torchae (``mypkg.MyAE``); torchae's own are found by name.
        overwrite: replace ``output`` if it exists (by default it is refused, never replaced).
    """
    from torchae.export import export_model

    loaded, _ = model_of(checkpoint, pretrained, model)
    part = first_part(loaded) if part is None else part
    suffix = {"onnx": ".onnx", "pt2": ".pt2"}.get(format, "")
    source = Path(checkpoint) if checkpoint is not None else Path(str(pretrained))
    target = Path(output) if output else source.with_name(f"{source.stem}-{part}{suffix}")
    if checkpoint is not None and target.resolve() == Path(checkpoint).resolve():
        raise ConfigError(f"--output {str(target)!r} is the checkpoint being exported: give another file name")
    difference = export_model(loaded, target, format, part, overwrite)
    print(f"{target}: the {part} of a {type(loaded).__name__} as {format}, batch dimension dynamic; at batch 7 the")
    print(f"file gives the model's outputs to {difference:.1e} (largest absolute difference)")
    print(f"graph: {describe_export(loaded, part)}")


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
