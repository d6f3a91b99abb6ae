"""The random numbers of a model's step (dropout masks, latent samples, input noise), drawn from the model's own
seeded streams, eagerly, by name.

Why a model draws from streams of its own rather than from torch's global generator:

- **the same draws however a step runs.** Plain Lightning draws them inside the step, as it runs. The fast lane
  (:mod:`torchae.engine`) compiles a whole step or replays it as a CUDA graph: it first asks which draws a step makes
  (:meth:`StepDraws.recording`), draws them eagerly from the same stream in the same order (:meth:`StepDraws.draw`),
  and hands them to the compiled step by name (:meth:`StepDraws.giving`). The numbers are the same ones;
  only where they are drawn changes.
- **exact resumes.** Each stage's stream is seeded by ``(seed, epoch, stage)`` when the stage's epoch starts, and the
  seed and the training stream's state travel in the checkpoint: a run resumed from any checkpoint draws what the
  uninterrupted run draws. Validation has a stream of its own, so validating (or not) changes no training draw.

A network used outside a model (no streams bound, :meth:`StepDraws.bind`) draws as PyTorch's layers do, from the
global generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import nn

from torchae.data import mix_seed

__all__ = ["STAGES", "DrawPlan", "SeededDropout", "StepDraws"]

STAGES = ("train", "val", "test", "predict")
"""The stages that draw, each from its own stream (the index salts the seed)."""
Kind = Literal["uniform", "normal"]
DrawPlan = list[tuple[str, Kind, torch.Size, torch.dtype]]
"""The draws of one step, in order: name, kind, shape and dtype of each."""
CHECKPOINT_KEY = "torchae_draws"
OLD_SEED_KEY = "torchae_noise_seed"  # the denoising model's checkpoints before the streams were shared


class StepDraws:
    """A model's random streams, one per stage, and what its step draws from them.

    Attributes:
        seed: the streams' seed; ``None`` takes the process seed (``seed_everything``), fixed when a fit starts.
        eval_stage: the stage that draws while the model is in evaluation mode (``val``, ``test`` or ``predict``).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.eval_stage = "val"
        self._streams: dict[str, torch.Generator] = {}
        self._epochs: dict[str, int] = {}
        self._resumed: dict[str, tuple[int, torch.Tensor]] = {}
        self._given: dict[str, torch.Tensor] | None = None
        self._recorded: DrawPlan | None = None

    # ----------------------------------------------------------------- streams
    def resolved_seed(self) -> int:
        """The seed in use: :attr:`seed`, else the process seed."""
        return int(self.seed) if self.seed is not None else torch.initial_seed()

    def start(self, stage: str, epoch: int, device: torch.device | str = "cpu") -> None:
        """Start ``stage``'s stream for ``epoch``: seeded by ``(seed, epoch, stage)``, or where a checkpoint of the
        same epoch left it."""
        generator = torch.Generator(device=device)
        resumed = self._resumed.pop(stage, None)
        if resumed is not None and resumed[0] == epoch and generator.device.type == resumed[1].device.type:
            generator.set_state(resumed[1])
        else:
            generator.manual_seed(mix_seed(self.resolved_seed(), epoch, STAGES.index(stage)))
        self._streams[stage], self._epochs[stage] = generator, epoch

    def stream(self, stage: str, device: torch.device) -> torch.Generator:
        """``stage``'s generator on ``device``, started (for epoch 0, or the epoch it last drew in) if it is not."""
        generator = self._streams.get(stage)
        if generator is None or generator.device != device:
            self.start(stage, self._epochs.get(stage, 0), device)
        return self._streams[stage]

    def stage_of(self, training: bool) -> str:
        """The stage whose stream a layer draws from: ``train`` in training mode, else :attr:`eval_stage`."""
        return "train" if training else self.eval_stage

    # ----------------------------------------------------------------- drawing
    def uniform(self, name: str, like: torch.Tensor, stage: str) -> torch.Tensor:
        """``U[0, 1)`` numbers shaped as ``like``, drawn as ``name`` from ``stage``'s stream."""
        return self._take(name, "uniform", like.shape, like.dtype, like.device, stage)

    def normal(self, name: str, like: torch.Tensor, stage: str) -> torch.Tensor:
        """``N(0, 1)`` numbers shaped as ``like``, drawn as ``name`` from ``stage``'s stream."""
        return self._take(name, "normal", like.shape, like.dtype, like.device, stage)

    def _take(
        self, name: str, kind: Kind, shape: torch.Size, dtype: torch.dtype, device: torch.device, stage: str
    ) -> torch.Tensor:
        if self._given is not None:
            return self._given[name]
        if self._recorded is not None:
            self._recorded.append((name, kind, shape, dtype))
            return torch.zeros(shape, dtype=dtype, device=device)  # the plan needs shapes, not numbers
        return self._draw(kind, shape, dtype, self.stream(stage, device))

    @staticmethod
    def _draw(kind: Kind, shape: torch.Size, dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
        sample = torch.rand if kind == "uniform" else torch.randn
        return sample(shape, generator=generator, dtype=dtype, device=generator.device)

    def draw(self, plan: DrawPlan, stage: str, device: torch.device) -> dict[str, torch.Tensor]:
        """The draws of ``plan``, in its order, from ``stage``'s stream: what the step would draw itself."""
        generator = self.stream(stage, device)
        return {name: self._draw(kind, shape, dtype, generator) for name, kind, shape, dtype in plan}

    @contextmanager
    def recording(self) -> Iterator[DrawPlan]:
        """Within: every draw is recorded (in the plan yielded) and gives zeros; no stream moves."""
        self._recorded = plan = []
        try:
            yield plan
        finally:
            self._recorded = None

    @contextmanager
    def giving(self, draws: dict[str, torch.Tensor]) -> Iterator[None]:
        """Within: each draw is the tensor of its name in ``draws`` (drawn beforehand by :meth:`draw`)."""
        self._given = draws
        try:
            yield
        finally:
            self._given = None

    def give(self, draws: dict[str, torch.Tensor] | None) -> None:
        """:meth:`giving` for code that ``torch.compile`` traces (a plain assignment; ``None`` ends it)."""
        self._given = draws

    # ----------------------------------------------------------------- layers and checkpoints
    def bind(self, module: nn.Module) -> None:
        """Make every :class:`SeededDropout` in ``module`` draw from these streams, named by its place."""
        for name, layer in module.named_modules():
            if isinstance(layer, SeededDropout):
                layer.draws, layer.draw_name = self, f"dropout:{name}"

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: the seed and where the training stream is, in which epoch."""
        streams = {
            stage: {"epoch": self._epochs[stage], "state": generator.get_state()}
            for stage, generator in self._streams.items()
            if stage == "train"
        }
        return {"seed": self.resolved_seed(), "streams": streams}

    def load_state(self, checkpoint: dict[str, Any]) -> None:
        """Take the seed and the training stream's place from a checkpoint written by :meth:`state`."""
        saved = checkpoint.get(CHECKPOINT_KEY)
        if saved is None:
            self.seed = checkpoint.get(OLD_SEED_KEY, self.seed)
            return
        self.seed = int(saved["seed"])
        self._resumed = {stage: (int(s["epoch"]), s["state"]) for stage, s in saved.get("streams", {}).items()}


class SeededDropout(nn.Dropout):
    """``nn.Dropout`` (Keras's semantics too: drop with probability ``p``, scale the rest by ``1 / (1 - p)``) whose
    mask comes from its model's :class:`StepDraws`, once bound to them; unbound, it is ``nn.Dropout``."""

    draws: StepDraws | None = None
    draw_name: str = "dropout"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.draws is None or not self.training or self.p == 0:
            return super().forward(x)
        keep = 1.0 - self.p
        if keep == 0:
            return torch.zeros_like(x)
        uniform = self.draws.uniform(self.draw_name, x, "train")
        return x * (uniform < keep).to(x.dtype) * (1.0 / keep)
