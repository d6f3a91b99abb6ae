"""Config files and seeds checked before Lightning reads them, and the sections of a config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pytorch_lightning.callbacks import ModelCheckpoint

from torchae.checkpoints import MAX_SEED
from torchae.engine import Engine
from torchae.errors import ConfigError, special_file_kind
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
MAX_CONFIG_BYTES = 1 << 20
"""A config's largest size: the experiments' are under 2 KB, and LightningCLI's printed ones under 20 KB."""
MAX_CONFIG_DEPTH = 32
"""A config's deepest nesting (sections, settings, their lists): the experiments' go 4 deep."""


def check_seed(seed: Any, setting: str = "seed_everything") -> None:
    """Refuse a seed that Lightning cannot pass to numpy (an integer from 0 to 2**32 - 1)."""
    ok = isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED
    if not ok:
        raise ConfigError(
            f"{setting} must be an integer from 0 to {MAX_SEED} (numpy's seeds are 32 bits), got {seed!r}: "
            "set --seed_everything 0 or another seed in that range"
        )


def parse_bounded_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load(text)``, refusing first, in one line, what would take minutes or gigabytes to build: aliases
    (a billion laughs), and nesting deeper than :data:`MAX_CONFIG_DEPTH`."""
    depth = 0
    try:
        for token in yaml.scan(text):
            if isinstance(token, yaml.AliasToken):
                raise ConfigError(
                    f"{source} uses a YAML alias (*{token.value}), which torchae's configs never need: write the value "
                    f"out; {CONFIG_SHAPE}"
                )
            if isinstance(
                token,
                (
                    yaml.BlockMappingStartToken,
                    yaml.BlockSequenceStartToken,
                    yaml.FlowMappingStartToken,
                    yaml.FlowSequenceStartToken,
                ),
            ):
                depth += 1
            elif isinstance(token, (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)):
                depth -= 1
            if depth > MAX_CONFIG_DEPTH:
                raise ConfigError(
                    f"{source} nests deeper than {MAX_CONFIG_DEPTH} levels: torchae's configs need 4; {CONFIG_SHAPE}"
                )
        return yaml.safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        problem = " ".join(str(err).split())[:300]
        raise ConfigError(f"{source} is not valid YAML ({problem}): {CONFIG_SHAPE}") from None


def check_config_file(path: str) -> dict[str, Any]:
    """Refuse, with one line that says what a config looks like, a config file that is missing, empty, not YAML, or
    not a mapping; return its content (read as data: nothing it names is imported)."""
    file = Path(path)
    kind = special_file_kind(file)
    if kind is not None:
        raise ConfigError(f"config file {path!r} is {kind}, not a file: {CONFIG_SHAPE}")
    if not file.is_file():
        raise ConfigError(f"config file {path!r} does not exist: {CONFIG_SHAPE}")
    size = file.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path!r} holds {size:,} bytes, more than the {MAX_CONFIG_BYTES:,} a config may hold: "
            f"{CONFIG_SHAPE}"
        )
    content = parse_bounded_yaml(file.read_text(errors="replace"), f"config file {path!r}")
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
    return content
