"""Command lines rewritten before Lightning parses them: ``--pretrained NAME`` as its model and settings, and a
registered experiment's recipe as the defaults of ``--model NAME``."""

from __future__ import annotations

import sys

from pytorch_lightning.cli import ArgsType

from torchae.cli.loading import import_model_class
from torchae.data import MNISTDataModule
from torchae.errors import ConfigError
from torchae.registry import experiment_of_class, model_classes


def shipped_names() -> str:
    """The shipped models' names, for help texts."""
    from torchae.weights import available

    return ", ".join(available())


def with_pretrained_model(args: ArgsType) -> ArgsType:
    """``args`` with ``--model`` and the model's settings of the shipped model that ``--pretrained NAME`` names,
    placed after the rest so that they win over a config's, and, unless a config or ``--data`` names one, the model's
    own datamodule before them (part 2's points, the CVAE's labelled MNIST); unchanged without ``--pretrained``."""
    words = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else None
    if words is None:
        return args
    name = option_value(words, "--pretrained")
    if name is None:
        return args
    from torchae.weights import get_weights

    meta = get_weights(name).meta  # an unknown name ends here, in one line naming the shipped ones
    extra = ["--model", f"torchae.{meta['model']}"]
    for key, value in meta["model_arguments"].items():
        if value is not None:
            extra += [f"--model.{key}", str(value)]
    data = model_classes()[meta["model"]].datamodule
    chosen = config_files(words) or option_value(words, "--data") is not None
    lead = [] if chosen or data is MNISTDataModule else ["--data", f"torchae.{data.__name__}"]
    at = next((i + 1 for i, word in enumerate(words) if word in ("validate", "test", "predict")), 0)
    return [*words[:at], *lead, *words[at:], *extra]  # the datamodule's settings, if given, follow it


def config_files(words: list[str]) -> list[str]:
    paths = [word.split("=", 1)[1] for word in words if word.startswith("--config=")]
    return paths + [after for word, after in zip(words, words[1:]) if word == "--config"]


def option_value(words: list[str], option: str) -> str | None:
    """The value given to ``option`` in ``words`` (``--option VALUE`` or ``--option=VALUE``, the last one), or
    ``None``."""
    found = None
    for index, word in enumerate(words):
        if word == option and index + 1 < len(words):
            found = words[index + 1]
        elif word.startswith(f"{option}="):
            found = word.split("=", 1)[1]
    return found


def with_experiment_recipe(args: ArgsType) -> ArgsType:
    """``fit --model CLASS`` without a config, for a class that an experiment registered (torchae's or a plugin's):
    the experiment's recipe as defaults, placed before the given words so that those win. Its epochs, runs under
    ``runs/NAME``, and, unless ``--data`` names a datamodule, the model's own datamodule at the experiment's batch
    size. Unchanged otherwise (a config owns its settings)."""
    words = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else None
    if not words or words[0] != "fit" or config_files(words):
        return args
    model = option_value(words, "--model")
    if model is None:
        return args
    try:
        model_class = import_model_class(model)
    except ConfigError:
        return args  # refused after parsing, in one line
    experiment = experiment_of_class(model_class)
    if experiment is None:
        return args
    recipe = ["--trainer.max_epochs", str(experiment.epochs), "--trainer.default_root_dir", f"runs/{experiment.name}"]
    data = getattr(model_class, "datamodule", None)
    if option_value(words, "--data") is None and data is not None:
        recipe += ["--data", f"{data.__module__}.{data.__qualname__}", "--data.batch_size", str(experiment.batch_size)]
    return [words[0], *recipe, *words[1:]]
