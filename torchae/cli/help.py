"""``torchae fit --help`` opens with the chosen model's own settings: LightningCLI's full list runs to some 800 lines,
with a model's settings only under ``--model.help CLASS``."""

from __future__ import annotations

import inspect
import re
from typing import Any

from torchae.cli.arguments import option_value
from torchae.registry import model_classes

__all__ = ["chosen_model_class", "model_settings_help"]


def chosen_model_class(words: list[str], configs: list[dict[str, Any]]) -> type | None:
    """The registered model class a command line chooses, by ``--model NAME`` or the ``model`` of its configs (their
    checked content, :func:`~torchae.cli.checks.check_config_file`'s; nothing is imported), or ``None``."""
    named = option_value(words, "--model")
    for config in configs:
        model = config.get("model")
        named = named or (model.get("class_path") if isinstance(model, dict) else model)
    if not isinstance(named, str):
        return None
    classes = model_classes()
    return classes.get(named) or classes.get(named.rpartition(".")[2] if named.startswith("torchae.") else "")


def _described(cls: type) -> dict[str, str]:
    """Each argument's line of the class's ``Args:`` section (Google style)."""
    doc = inspect.getdoc(cls) or ""
    section = doc.split("Args:", 1)[1] if "Args:" in doc else ""
    found = {}
    for match in re.finditer(r"^\s{4}(\w+): (.+?)(?=^\s{4}\w+: |\n\n|\Z)", section, flags=re.MULTILINE | re.DOTALL):
        found[match.group(1)] = " ".join(match.group(2).split())
    return found


def model_settings_help(cls: type) -> str:
    """The settings of model ``cls`` (``--model.NAME``), each with its type, default and description."""
    described = _described(cls)
    lines = [f"{cls.__name__}'s settings (the full list of every setting follows):"]
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        kind = getattr(parameter.annotation, "__name__", str(parameter.annotation))
        default: Any = parameter.default if parameter.default is not inspect.Parameter.empty else "required"
        text = f"  --model.{name} {kind} (default: {default})"
        lines.append(f"{text}: {described[name]}" if name in described else text)
    return "\n".join(lines) + "\n"
