"""A quiet console for the ``torchae`` command: the known, harmless lines of the libraries torchae drives are
silenced where torchae causes them, each by its exact text, and nothing else (no blanket filter over user code).

- Lightning's "Tip" advertising its cloud logger, printed at every fit;
- the pytree ``LeafSpec`` FutureWarning that Lightning's own loop triggers in this torch release;
- inductor's "No CUDA runtime is found, using CUDA_HOME" line on a machine without CUDA (compiled steps on a CPU);
- Lightning's "Couldn't infer the batch indices" warning for torchae's own loader on ``predict`` (the prediction
  writer keeps MNIST's order and needs no indices);
- LightningCLI's warning that it got both ``args`` and a command line: torchae passes the command line it completed
  (``--pretrained NAME`` adds the model's settings).

``tests/test_cli.py`` runs a short fit and fails on any of :data:`KNOWN_NOISE`.
"""

from __future__ import annotations

import logging
import re
import warnings

__all__ = ["DIRPATH_CHANGED", "KNOWN_NOISE", "quiet_known_noise"]

LIGHTNING_TIP = re.compile(r"Tip: For seamless cloud logging")
LEAFSPEC_DEPRECATED = re.compile(r"`isinstance\(treespec, LeafSpec\)` is deprecated")
NO_CUDA_RUNTIME = re.compile(r"No CUDA runtime is found, using CUDA_HOME")
DIRPATH_CHANGED = re.compile(r"The dirpath has changed from")
BATCH_INDICES = re.compile(r"Couldn't infer the batch indices fetched from your dataloader: `TensorBatches`")
ARGS_AND_COMMAND_LINE = re.compile(r"LightningCLI's args parameter is intended to run from within Python")

KNOWN_NOISE = (
    LIGHTNING_TIP,
    LEAFSPEC_DEPRECATED,
    NO_CUDA_RUNTIME,
    DIRPATH_CHANGED,
    re.compile(r"torch\.jit\..* is deprecated"),
    BATCH_INDICES,
    re.compile(r"callbacks used to create the checkpoint need to be provided"),
    ARGS_AND_COMMAND_LINE,
)
"""Lines that ``torchae`` commands must not print (``tests/test_cli.py`` looks for each)."""

_LOGGED_NOISE = (LIGHTNING_TIP, NO_CUDA_RUNTIME)


class _DropKnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(pattern.search(message) for pattern in _LOGGED_NOISE)


def quiet_known_noise() -> None:
    """Install the filters (idempotent): one ``warnings`` filter by message, and a logging filter on the loggers
    that print the other lines."""
    warnings.filterwarnings("ignore", message=LEAFSPEC_DEPRECATED.pattern, category=FutureWarning)
    warnings.filterwarnings("ignore", message=BATCH_INDICES.pattern)
    warnings.filterwarnings("ignore", message=ARGS_AND_COMMAND_LINE.pattern)
    noise = _DropKnownNoise()
    for name in (
        "pytorch_lightning.utilities.rank_zero",
        "lightning_fabric.utilities.rank_zero",
        "lightning.pytorch.utilities.rank_zero",
        "torch.utils.cpp_extension",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnownNoise) for f in logger.filters):
            logger.addFilter(noise)
