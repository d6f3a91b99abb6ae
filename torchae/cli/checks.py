"""Config files and seeds checked before Lightning reads them, and the sections of a config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pytorch_lightning.callbacks import ModelCheckpoint

from torchae.engine import Engine
from torchae.errors import ConfigError
from torchae.figures import ArticleFigures
from torchae.predictions import NpzPredictionWriter
from torchae.safety import StopOnNonFiniteLoss
from torchae.timing import EpochTimer

CONFIG_SHAPE = (
    "a config is a YAML mapping of sections (seed_everything, model, data, engine, trainer) as in configs/dense.yaml; "
    "torchae fit --print_config prints a complete one"
)


SECTIONS = ("model", "data", "trainer", "engine", "figures", "checkpoint", "nan_guard", "epoch_timer", "predictions")
"""The sections of a config that hold settings (mappings)."""
CALLBACK_SECTIONS = {
    "engine": Engine,
    "figures": ArticleFigures,
    "checkpoint": ModelCheckpoint,
    "nan_guard": StopOnNonFiniteLoss,
    "epoch_timer": EpochTimer,
    "predictions": NpzPredictionWriter,
}
"""The callbacks the CLI adds, by the section of their settings."""
MAX_SEED = 2**32 - 1  # numpy's generators, which Lightning seeds too, take seeds of 32 bits


def check_seed(seed: Any, setting: str = "seed_everything") -> None:
    """Refuse a seed that Lightning cannot pass to numpy (an integer from 0 to 2**32 - 1)."""
    ok = isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED
    if not ok:
        raise ConfigError(
            f"{setting} must be an integer from 0 to {MAX_SEED} (numpy's seeds are 32 bits), got {seed!r}: "
            "set --seed_everything 0 or another seed in that range"
        )


def check_config_file(path: str) -> None:
    """Refuse, with one line that says what a config looks like, a config file that is missing, empty, not YAML, or
    not a mapping."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path!r} does not exist: {CONFIG_SHAPE}")
    try:
        content = yaml.safe_load(file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        problem = " ".join(str(err).split())
        raise ConfigError(f"config file {path!r} is not valid YAML ({problem}): {CONFIG_SHAPE}") from None
    if content is None:
        raise ConfigError(f"config file {path!r} is empty: {CONFIG_SHAPE}")
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path!r} holds a {type(content).__name__}, not a mapping: {CONFIG_SHAPE}")
    for section, value in content.items():
        allowed = (dict, str) if section == "model" else (dict,)
        if section in SECTIONS and value is not None and not isinstance(value, allowed):
            raise ConfigError(
                f"config file {path!r}: section {section!r} holds {value!r}, not a mapping of settings "
                f"({section}: {{name: value, ...}}): {CONFIG_SHAPE}"
            )
    seed = content.get("seed_everything")
    if seed is not None and not isinstance(seed, bool):
        check_seed(seed, f"config file {path!r}: seed_everything")
