"""The engine room: every speed technique, behind one Lightning callback, :class:`Engine`.

The models (:mod:`torchae.models`) say how to compute a loss; the engine decides how steps run. It never changes
what a step computes: grouped steps are bitwise the steps Lightning runs one by one (tested), CUDA graphs replay the
same kernels, the CPU kernels compute the stock layers' function with the same parameters, and the packed matrix
product (``cpu_matmul``) sums the same products in another order.

The contract between engine and model (an :class:`~torchae.models.AutoencoderModule`):

- ``loss_terms(x, stage)`` gives the loss terms of clean images ``x`` (``"loss"`` among them), and
  ``log_terms(terms, stage, batch_size)`` logs them; ``corrupt`` and ``reconstruction_terms`` split ``loss_terms``
  into the part drawn outside a CUDA graph (noise) and the part captured in it;
- ``configure_optimizers`` returns :class:`~torchae.optim.KerasAdam` (CUDA graphs read its flat buffers);
- ``model.net`` is the network whose stock layers may be swapped for CPU kernels while fitting.

During ``fit`` (and ``validate``) the engine sets the model's ``training_step``/``validation_step`` to a
:class:`~torchae.engine.steps.StepRunner`'s (both use Lightning's manual optimization, one optimizer step per image
batch), then puts everything back at ``teardown``. With every option off it does nothing, and Lightning runs the
model's own steps.

Modules: :mod:`~torchae.engine.steps` (grouped, direct and micro-batched steps), :mod:`~torchae.engine.compiled`
(whole steps compiled), :mod:`~torchae.engine.graphs` (CUDA graphs), :mod:`~torchae.engine.kernels` (CPU kernels
swapped in; :mod:`torchae.matmul` for the matrix product), :mod:`~torchae.engine.lightning_compat` (the one
use of Lightning's private API).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import SingleDeviceStrategy
from pytorch_lightning.utilities import rank_zero_info

from torchae.data import MNISTDataModule
from torchae.engine.compiled import CompiledSteps
from torchae.engine.graphs import StepGraphs
from torchae.engine.kernels import use_cpu_kernels
from torchae.engine.steps import StepRunner, plain_single_device, step_hooks_in_use
from torchae.errors import ConfigError
from torchae.matmul import packed_matmul_helps, route_matmul_to_packed
from torchae.models import AutoencoderModule

__all__ = ["CompileMode", "CompiledSteps", "CpuMatmul", "Engine", "StepGraphs", "StepRunner"]

CpuMatmul = Literal["auto", "packed", "torch"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


def _positive(name: str, value: object, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"engine.{name} must be a positive integer, got {value!r}: set --engine.{name} 1 or more")


def _refuse_what_a_whole_step_skips(
    trainer: pl.Trainer, module: AutoencoderModule, option: str, verb: str, inside: str
) -> None:
    """A technique that runs a whole step as one unit (a CUDA graph, a compiled function) runs the model's
    ``reconstruction_terms`` and no per-step hook: refuse a model that overrides ``loss_terms``, and a listening
    hook, naming engine option ``option``."""
    if type(module).loss_terms is not AutoencoderModule.loss_terms:
        raise ConfigError(f"{type(module).__name__} overrides loss_terms, which engine.{option} does not {verb}")
    in_use = step_hooks_in_use(trainer, module)
    if in_use:
        raise ConfigError(
            f"{', '.join(in_use)} cannot run inside {inside}: set --engine.{option} false or remove that hook"
        )


class Engine(pl.Callback):
    """Runs a torchae model's steps fast; the results are those of the model's own steps.

    From the CLI the options are ``--engine.NAME`` (the configs set the article's); in Python::

        pl.Trainer(callbacks=[Engine(steps_per_execution=32)]).fit(torchae.DenseAE(), datamodule=data)

    Args:
        steps_per_execution: image batches per Lightning step, each with its own optimizer step (Keras's
            ``steps_per_execution``): Lightning's per-step work (hooks, logging, progress bar) is paid once per
            group. Needs :class:`~torchae.data.MNISTDataModule` and one device.
        cpu_micro_batch_size: on one CPU process, run each batch in parts of this size (same loss and gradients,
            activations that stay in cache: the conv model's configs use 32); ``None`` runs batches whole.
        cpu_kernels: on a CPU, swap :mod:`torchae.layers`' faster kernels in for the stock layers while fitting.
        cpu_matmul: on a CPU, whose kernel runs float32 matrix products while fitting: ``"packed"``, torchae's
            packed product compiled for this CPU (:mod:`torchae.matmul`; built once per CPU, needs a C++
            compiler); ``"torch"``, torch's own (MKL on x86); ``"auto"``, packed where
            :func:`~torchae.matmul.packed_matmul_helps` (AMD CPUs with full-width AVX-512, on which MKL runs its
            AVX2 code), else torch's.
        direct_steps: call ``backward`` and the optimizer directly when no callback or the model overrides a
            per-step hook, on one device at 32-bit precision (Lightning's wrappers otherwise).
        cuda_graphs: replay each (stage, batch shape) step as one captured CUDA graph after ``graph_warmup_steps``
            eager ones; one CUDA device, 32-bit precision, no per-step hook.
        graph_warmup_steps: eager steps per batch shape before it is captured.
        compiled_steps: run each training step as one compiled function: the network, the loss, the gradients
            and Keras's Adam update (:mod:`~torchae.engine.compiled`), with ``compile_mode`` and
            ``compile_backend``; the input noise is still drawn eagerly. One device, 32-bit precision, no per-step
            hook, no micro-batches. Compiling takes seconds to a minute per batch shape, so it pays on long runs
            of small steps (the denoising config turns it on).
        compiled_steps_per_call: with ``compiled_steps``, unroll this many consecutive optimizer steps of a
            step group (``steps_per_execution``) into one compiled call, as Keras's ``steps_per_execution`` does
            in one XLA call: the cost of a call besides its kernels is paid once for all of them (the batch-16
            denoising config uses 8). Compiling takes about that many times longer. A group with fewer batches left
            than this (its end, or ``steps_per_execution`` below it) runs them as single compiled steps. Without
            ``compiled_steps`` it has no effect, as ``graph_warmup_steps`` without ``cuda_graphs``.
        compile: ``torch.compile`` the model's ``reconstruction_terms`` (network, loss and, through AOTAutograd,
            their backward) with ``compile_mode`` and ``compile_backend``; measured slower than eager for these
            small models, kept for experiments.
        compile_mode: ``torch.compile``'s mode.
        compile_backend: ``torch.compile``'s backend (``"aot_eager"`` only traces, for checking).

    Raises:
        ConfigError: a setting out of range, or one this run cannot honour (named, with the fix).
    """

    def __init__(
        self,
        steps_per_execution: int = 1,
        cpu_micro_batch_size: int | None = None,
        cpu_kernels: bool = True,
        cpu_matmul: CpuMatmul = "auto",
        direct_steps: bool = True,
        cuda_graphs: bool = False,
        graph_warmup_steps: int = 3,
        compiled_steps: bool = False,
        compiled_steps_per_call: int = 1,
        compile: bool = False,
        compile_mode: CompileMode = "default",
        compile_backend: str = "inductor",
    ) -> None:
        _positive("steps_per_execution", steps_per_execution)
        _positive("cpu_micro_batch_size", cpu_micro_batch_size, optional=True)
        _positive("graph_warmup_steps", graph_warmup_steps)
        _positive("compiled_steps_per_call", compiled_steps_per_call)
        if cpu_matmul not in CpuMatmul.__args__:  # type: ignore[attr-defined]
            raise ConfigError(
                f"engine.cpu_matmul must be auto, packed or torch, got {cpu_matmul!r}: set --engine.cpu_matmul auto"
            )
        modes = CompileMode.__args__  # type: ignore[attr-defined]
        if compile_mode not in modes:
            raise ConfigError(
                f"engine.compile_mode must be one of {', '.join(modes)}, got {compile_mode!r}: "
                "set --engine.compile_mode default"
            )
        # Listing the backends imports torch._dynamo and inductor (seconds): only for a backend other than the default.
        backends = () if compile_backend == "inductor" else torch.compiler.list_backends(exclude_tags=())
        if compile_backend != "inductor" and compile_backend not in backends:
            raise ConfigError(
                f"engine.compile_backend must be one of {', '.join(backends)}, got {compile_backend!r}: "
                "set --engine.compile_backend inductor"
            )
        self.steps_per_execution = steps_per_execution
        self.cpu_micro_batch_size = cpu_micro_batch_size
        self.cpu_kernels = cpu_kernels
        self.cpu_matmul = cpu_matmul
        self.direct_steps = direct_steps
        self.cuda_graphs = cuda_graphs
        self.graph_warmup_steps = graph_warmup_steps
        self.compiled_steps = compiled_steps
        self.compiled_steps_per_call = compiled_steps_per_call
        self.compile = compile
        self.compile_mode = compile_mode
        self.compile_backend = compile_backend
        self.runner: StepRunner | None = None
        """The runner of the latest run (``None`` while Lightning runs the model's own steps)."""
        self._undo: list[Callable[[], None]] = []

    @property
    def runs_steps(self) -> bool:
        """Whether the engine runs the model's training and validation steps (else Lightning runs the model's)."""
        return (
            self.steps_per_execution > 1
            or self.cpu_micro_batch_size is not None
            or self.direct_steps
            or self.cuda_graphs
            or self.compiled_steps
        )

    @property
    def packed_matmul(self) -> bool:
        """Whether a CPU run routes its float32 matrix products to :mod:`torchae.matmul`'s packed kernel."""
        return self.cpu_matmul == "packed" or (self.cpu_matmul == "auto" and packed_matmul_helps())

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not isinstance(pl_module, AutoencoderModule):
            raise ConfigError(f"torchae's Engine runs torchae models, not {type(pl_module).__name__}")
        graphs = StepGraphs(self.graph_warmup_steps) if self._check_graphs(trainer, pl_module) else None
        self._check_compiled_steps(trainer, pl_module)
        if self.steps_per_execution > 1:
            self._group_batches(trainer)  # checks before it changes anything, as _check_graphs
        on_cpu = trainer.strategy.root_device.type == "cpu"
        if self.cpu_kernels and on_cpu:
            self._undo.append(use_cpu_kernels(pl_module.net))
        if on_cpu and self.packed_matmul:
            self._undo.append(route_matmul_to_packed())
            rank_zero_info(
                f"torchae: float32 matrix products on torchae's packed kernel for this CPU "
                f"(engine.cpu_matmul {self.cpu_matmul}; --engine.cpu_matmul torch for torch's own)"
            )
        if self.compile:
            self._compile(pl_module)
        self.runner = None
        if self.runs_steps:
            micro = self.cpu_micro_batch_size if trainer.world_size == 1 else None
            self.runner = StepRunner(pl_module, micro, graphs)
            if self.compiled_steps:
                self.runner.compiled = CompiledSteps(pl_module, self.compiled_steps_per_call, **self._compile_options())
            self._install(pl_module, self.runner)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.runner is not None:
            self.runner.direct = (
                self.direct_steps and not step_hooks_in_use(trainer, pl_module) and plain_single_device(trainer)
            )

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        while self._undo:
            self._undo.pop()()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "fit")  # a failed run leaves the model as it was, too

    # ----------------------------------------------------------------- setup, one technique at a time
    def _group_batches(self, trainer: pl.Trainer) -> None:
        data = trainer.datamodule
        if trainer.world_size > 1:
            raise ConfigError(
                f"engine.steps_per_execution={self.steps_per_execution} runs several optimizer steps per Lightning "
                "step, which DDP's gradient synchronisation does not allow: set --engine.steps_per_execution 1 on "
                "several devices"
            )
        if not isinstance(data, MNISTDataModule):
            raise ConfigError(
                f"engine.steps_per_execution={self.steps_per_execution} needs torchae's MNISTDataModule, not "
                f"{type(data).__name__}: set --engine.steps_per_execution 1"
            )
        previous = data.steps_per_execution
        data.steps_per_execution = self.steps_per_execution

        def restore() -> None:
            data.steps_per_execution = previous

        self._undo.append(restore)

    def _compile_options(self) -> dict[str, object]:
        """``torch.compile``'s arguments for ``compile`` and ``compiled_steps`` (a mode only where inductor runs)."""
        mode = {"mode": self.compile_mode} if self.compile_backend == "inductor" else {}
        return {"backend": self.compile_backend, "dynamic": False, **mode}

    def _compile(self, module: AutoencoderModule) -> None:
        module.reconstruction_terms = torch.compile(  # type: ignore[method-assign]
            module.reconstruction_terms, **self._compile_options()
        )
        self._undo.append(lambda: delattr(module, "reconstruction_terms"))

    def _check_graphs(self, trainer: pl.Trainer, module: AutoencoderModule) -> bool:
        if not self.cuda_graphs:
            return False
        _refuse_what_a_whole_step_skips(trainer, module, "cuda_graphs", "capture", "a CUDA graph replay")
        device = trainer.strategy.root_device
        if device.type != "cuda" or not isinstance(trainer.strategy, SingleDeviceStrategy):
            raise ConfigError(
                f"engine.cuda_graphs needs one CUDA device (--trainer.accelerator gpu --trainer.devices 1), this run "
                f"uses {type(trainer.strategy).__name__} on {device}: set --engine.cuda_graphs false"
            )
        if not plain_single_device(trainer):
            raise ConfigError(f"engine.cuda_graphs supports precision 32-true only, got {trainer.precision!r}")
        return True

    def _check_compiled_steps(self, trainer: pl.Trainer, module: AutoencoderModule) -> None:
        if not self.compiled_steps:
            return
        _refuse_what_a_whole_step_skips(trainer, module, "compiled_steps", "run", "a compiled step")
        off = "set --engine.compiled_steps false"
        if self.cuda_graphs or self.compile or self.cpu_micro_batch_size is not None:
            raise ConfigError(
                "engine.compiled_steps compiles the whole step, so it runs without engine.cuda_graphs, engine.compile "
                f"and engine.cpu_micro_batch_size: turn those off, or {off}"
            )
        if not plain_single_device(trainer):
            raise ConfigError(
                f"engine.compiled_steps needs one device at precision 32-true, this run uses "
                f"{type(trainer.strategy).__name__} at {trainer.precision!r}: {off}"
            )

    def _install(self, module: AutoencoderModule, runner: StepRunner) -> None:
        module.training_step = runner.training_step  # type: ignore[method-assign]
        module.validation_step = runner.validation_step  # type: ignore[method-assign]

        def uninstall() -> None:
            del module.training_step, module.validation_step

        self._undo.append(uninstall)
