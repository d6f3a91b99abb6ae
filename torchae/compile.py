"""Optional ``torch.compile`` of the training step's network and loss, as a callback.

``torch.compile(model)`` on a LightningModule compiles ``forward`` only, which the training step does not call
(it needs the code too, for the sparse penalty, and the decoder's logits, for a stable BCE). This callback compiles
:meth:`~torchae.modules.AutoencoderModule.reconstruction_terms` instead: encoder, decoder, loss and, through
AOTAutograd, their backward. Noise (denoising) and the optimizer step stay eager. From the CLI::

    torchae fit --config configs/dense.yaml --trainer.accelerator gpu --trainer.callbacks+=CompileLoss
"""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch

from torchae.errors import ConfigError

__all__ = ["CompileLoss"]

Mode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


class CompileLoss(pl.Callback):
    """Compiles the model's ``reconstruction_terms`` with ``torch.compile`` when fitting, testing or validating starts.

    Args:
        mode: ``torch.compile``'s mode; ``"reduce-overhead"`` adds CUDA graphs (a GPU's per-kernel launch cost is
            what bounds these small models).
        backend: ``torch.compile``'s backend (``"inductor"`` generates kernels; ``"aot_eager"`` only traces, for
            checking).
        dynamic: ``torch.compile``'s ``dynamic``; the default ``False`` compiles one graph per batch shape (the
            full batch and the epoch's last, smaller one).
    """

    def __init__(self, mode: Mode = "default", backend: str = "inductor", dynamic: bool | None = False) -> None:
        modes = Mode.__args__  # type: ignore[attr-defined]
        if mode not in modes:
            raise ConfigError(f"CompileLoss mode must be one of {', '.join(modes)}, got {mode!r}")
        self.mode = mode
        self.backend = backend
        self.dynamic = dynamic

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if "reconstruction_terms" in vars(pl_module):  # already compiled (or replaced by the user)
            return
        options = {"mode": self.mode} if self.backend == "inductor" else {}
        pl_module.reconstruction_terms = torch.compile(  # type: ignore[method-assign]
            pl_module.reconstruction_terms, backend=self.backend, dynamic=self.dynamic, **options
        )
