"""A trained model outside training: ONNX and ``torch.export`` (``.pt2``), one self-contained file each, with a
dynamic batch.

The models export as they are (``model.to_onnx(path)``, ``torch.export.export(model, (x,), ...)``): their
``forward`` checks shapes, never values, so it traces. :func:`export_model` exports the whole autoencoder or one
half (``torchae export CKPT --format onnx --part encoder``) and checks the file against torch at another batch size
(onnxruntime for ONNX). TorchScript is not offered: PyTorch deprecates it in favour of ``torch.export``, whose
``.pt2`` loads with ``torch.export.load`` in Python and with AOTInductor in C++.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from torchae.errors import ConfigError
from torchae.safety import refuse_existing

__all__ = ["FORMATS", "Exportable", "export_model", "load_exported", "part_of"]

Format = Literal["onnx", "pt2"]
Part = str
"""A part of a model that it exports (its ``export_parts``: an autoencoder's ``autoencoder``, ``encoder``,
``decoder``)."""
FORMATS: tuple[str, ...] = Format.__args__  # type: ignore[attr-defined]


class Exportable(pl.LightningModule):
    """Lightning's ``to_onnx`` with a dynamic batch dimension and one self-contained file by default, its inputs and
    output named as the model's first export part names them (``export_names``)."""

    def to_onnx(self, file_path: str | Path, input_sample: Any | None = None, **kwargs: Any) -> Any:
        """Lightning's ``to_onnx``: inputs and output named by the model (an autoencoder: ``images``, and ``labels``
        for a conditional one, to ``reconstructions``), batch dimension dynamic, the weights inside the file (no
        ``.onnx.data`` beside it)."""
        inputs, output = self.export_names(next(iter(self.export_parts())))
        kwargs.setdefault("input_names", list(inputs))
        kwargs.setdefault("output_names", [output])
        if "dynamic_axes" not in kwargs:
            kwargs.setdefault("dynamic_shapes", tuple({0: batch_dimension()} for _ in inputs))
        kwargs.setdefault("external_data", False)
        kwargs.setdefault("dynamo", True)
        kwargs.setdefault("verbose", False)
        return super().to_onnx(file_path, input_sample, **kwargs)


def batch_dimension() -> Any:
    """The dynamic batch dimension of every export (``torch.export.Dim``)."""
    return torch.export.Dim("batch", min=1, max=1 << 20)


def first_part(model: Any) -> str:
    """The part a model exports by default: the first it names (an autoencoder's whole network, a GAN's generator)."""
    parts = model.export_parts() if hasattr(model, "export_parts") else {}
    return next(iter(parts), "autoencoder")


def part_of(model: Any, part: str) -> nn.Module:
    """The plain ``nn.Module`` of ``part`` of a torchae model (one of its ``export_parts``)."""
    parts = model.export_parts() if hasattr(model, "export_parts") else {}
    if part not in parts:
        names = ", ".join(parts) or "none"
        raise ConfigError(
            f"part must be one of {type(model).__name__}'s parts ({names}), got {part!r}: set --part "
            f"{next(iter(parts), 'autoencoder')}"
        )
    return parts[part]


def _sample(model: Any, part: str, batch: int) -> tuple[torch.Tensor, ...]:
    """Inputs of ``part`` of ``model`` at ``batch``, drawn from a generator seeded by ``batch``."""
    return model.export_example(part, batch, torch.Generator().manual_seed(batch))


def describe_export(model: Any, part: str) -> str:
    """The exported graph's inputs and output, as ONNX and ``torch.export`` name them: ``images float32
    [batch, 1, 28, 28]; labels int64 [batch] -> reconstructions float32 [batch, 1, 28, 28]``."""
    module = part_of(model, part).eval()
    inputs = _sample(model, part, 1)
    with torch.no_grad():
        output = module(*inputs)
    input_names, output_name = model.export_names(part)

    def shape(tensor: torch.Tensor) -> str:
        return "[" + ", ".join(["batch", *map(str, tensor.shape[1:])]) + "]"

    def dtype(tensor: torch.Tensor) -> str:
        return str(tensor.dtype).removeprefix("torch.")

    described = "; ".join(f"{name} {dtype(t)} {shape(t)}" for name, t in zip(input_names, inputs, strict=True))
    return f"{described} -> {output_name} {dtype(output)} {shape(output)}"


def export_model(
    model: Any, output: str | Path, format: str = "onnx", part: str | None = None, overwrite: bool = False
) -> float:
    """Export ``part`` of a torchae model to ``output`` with a dynamic batch dimension, then check the file.

    The graph is traced at batch 4 and run again at batch 7 from the file (onnxruntime for ONNX, torch for the
    others) against the model itself.

    Returns:
        The largest absolute difference between the file's outputs and the model's, at batch 7.

    Args:
        model: a model of the series (it declares its parts and their example inputs).
        output: the file to write, ending in the format's suffix.
        format: ``onnx`` or ``pt2``.
        part: one of the model's ``export_parts`` (an autoencoder's ``autoencoder``, ``encoder`` or ``decoder``, a
            GAN's ``generator``); ``None``: its first.
        overwrite: replace ``output`` if it exists (by default an existing file is refused, never replaced).

    Raises:
        ConfigError: an unknown format or part, or an output that is a folder, is misnamed or exists.
    """
    part = first_part(model) if part is None else part
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}: set --format onnx")
    module = part_of(model, part).eval()
    path = Path(output)
    if path.is_dir():
        example = path / f"model.{format}"
        raise ConfigError(f"the export's output {str(path)!r} is a folder: give a file, such as {example}")
    if path.suffix == ".ckpt":
        raise ConfigError(f"the export's output {str(path)!r} is named as a checkpoint: give a .{format} file")
    if path.suffix != f".{format}":
        raise ConfigError(
            f"the export's output {str(path)!r} does not end in .{format}, the suffix of format {format}: give a name "
            f"such as {path.with_suffix(f'.{format}').name} (an export never replaces a run's other files)"
        )
    if not overwrite:
        refuse_existing([path], "give another --output, or --overwrite true to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside its place and renamed into it: a stop leaves the old file or the new one, never half of one.
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    try:
        _write(module, partial, format, model.export_names(part), _sample(model, part, 4))
        with torch.no_grad():
            check = _sample(model, part, 7)
            expected = module(*check).numpy()
        found = load_exported(partial, format)(*(tensor.numpy() for tensor in check))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return float(np.abs(found - expected).max())


def _write(
    module: nn.Module, path: Path, format: str, names: tuple[tuple[str, ...], str], sample: tuple[torch.Tensor, ...]
) -> None:
    input_names, output_name = names
    batch = batch_dimension()  # one dimension shared by every input (an image and its label come in pairs)
    dynamic = tuple({0: batch} for _ in sample)
    with torch.no_grad(), warnings.catch_warnings():
        # The image and its label share the batch dimension: the exporter says it names the axis once. Harmless.
        warnings.filterwarnings("ignore", message=r"# The axis name: batch will not be used")
        if format == "onnx":
            torch.onnx.export(
                module,
                sample,
                str(path),
                input_names=list(input_names),
                output_names=[output_name],
                dynamic_shapes=dynamic,
                dynamo=True,  # the exporter that takes dynamic_shapes (the default since torch 2.9)
                external_data=False,  # one file: the models are at most a megabyte
                verbose=False,
            )
        else:
            program = torch.export.export(module, sample, dynamic_shapes=dynamic)
            torch.export.save(program, str(path))


def load_exported(path: str | Path, format: str) -> Any:
    """A function from NumPy inputs (a batch; and its labels, for a conditional model) to the exported graph's NumPy
    output (onnxruntime for ONNX)."""
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [given.name for given in session.get_inputs()]
        return lambda *arrays: session.run(None, dict(zip(names, arrays, strict=True)))[0]
    program = torch.export.load(str(path)).module()
    return lambda *arrays: program(*map(torch.from_numpy, arrays)).detach().numpy()
