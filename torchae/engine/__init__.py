"""The fast lane: stock PyTorch and Lightning speed techniques behind options, in one Lightning callback,
:class:`Engine`. Only the CLI installs it; no module of the core imports it.

The engine changes how a step runs, never what it computes, random draws included:

- **direct steps**: ``backward`` and the optimizer called directly when no hook listens (bitwise Lightning's steps);
- **CPU micro-batches**: a batch run in parts whose gradients add up (the same loss and gradients, up to rounding);
- **channels-last convolutions on a CPU** (:mod:`~torchae.engine.layouts`), where they measure faster;
- **compiled whole steps**: network, loss, gradients and Keras's Adam as one ``torch.compile``\\ d function;
- **CUDA graphs**: each step captured once and replayed;
- **CPU threads that follow the load** (:mod:`~torchae.engine.threads`): as many as other processes leave cores.

Step groups (Keras's ``steps_per_execution``) are data that the datamodule serves (``data.steps_per_execution``);
the engine runs them as the model's own steps do, one optimizer step per image batch.

The engine never replaces a step that a user wrote. It runs the base's own step
(:class:`~torchae.autoencoder.AutoencoderModule`'s ``training_step``, ``validation_step`` and ``shared_step``, one
optimizer, manual optimization) in its own way; any other model, or one that writes any of those steps, runs as written
(:func:`own_code` says why), and one line names the options that did not apply.

The randomness contract. A compiled step or a CUDA graph must draw what the plain step draws. Every draw of a torchae
model comes from the model's own seeded streams (:mod:`torchae.draws`): input noise in ``corrupt``, dropout masks and
latent samples by name inside the step. The engine finds a step's draws once per batch shape
(:func:`~torchae.engine.probes.step_plan`), draws them eagerly, from the same stream in the same order, and hands them
to the compiled step or the captured graph as inputs: the step is pure, and its numbers are the plain step's. A model
that draws from torch's global generator inside its step (``nn.Dropout``: :func:`draws_random_numbers` finds out
before training) cannot be compiled or replayed with the plain step's draws, so the engine turns those techniques
off for it and says so in one line; likewise micro-batches for a model that draws in its step or whose loss is not a
mean over independent images. A model the engine cannot run exactly runs as written, never silently differently.

The contract between engine and model (an :class:`~torchae.autoencoder.AutoencoderModule`): ``loss_terms(x, stage)``
gives the loss terms of clean images ``x`` (``"loss"`` among them), ``corrupt`` and ``reconstruction_terms`` split it
into the part drawn eagerly (noise) and the part compiled or captured, ``log_terms`` logs them, and
``configure_optimizers`` returns :class:`~torchae.optim.KerasAdam` (whole steps update its flat buffers).

Modules: :mod:`~torchae.engine.steps` (the runner: direct steps, micro-batches), :mod:`~torchae.engine.compiled`,
:mod:`~torchae.engine.graphs`, :mod:`~torchae.engine.lightning_compat` (the one use of Lightning's private API).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from torchae.autoencoder import AutoencoderModule
from torchae.engine.compiled import CompiledSteps
from torchae.engine.graphs import StepGraphs
from torchae.engine.layouts import channels_last_reason, in_layout, time_layouts
from torchae.engine.probes import draws_from_streams, draws_random_numbers
from torchae.engine.steps import StepRunner, plain_single_device, step_hooks_in_use
from torchae.engine.threads import CpuThreads
from torchae.errors import ConfigError
from torchae.optim import KerasAdam

__all__ = [
    "CompileMode",
    "CompiledSteps",
    "Engine",
    "StepGraphs",
    "StepRunner",
    "draws_from_streams",
    "draws_random_numbers",
    "own_code",
]

CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _positive(name: str, value: object, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"engine.{name} must be a positive integer, got {value!r}: set --engine.{name} 1 or more")


ENGINE_STEPS = ("training_step", "validation_step", "shared_step")
"""The base's step methods that the engine runs in its own way; a model that writes any of them runs as written."""


def own_code(trainer: pl.Trainer, module: pl.LightningModule) -> str | None:
    """Why the engine must leave ``module``'s steps as they are, in words, or ``None`` where it runs the base's own
    step of :class:`~torchae.autoencoder.AutoencoderModule`: a model that is not one, that writes its own steps, that
    configures other than one optimizer, or that uses Lightning's automatic optimization."""
    name = type(module).__name__
    if not isinstance(module, AutoencoderModule):
        return f"{name} is not a torchae AutoencoderModule: its steps are its own"
    written = [step for step in ENGINE_STEPS if getattr(type(module), step) is not getattr(AutoencoderModule, step)]
    if written:
        return f"{name} writes its own {' and '.join(written)}"
    if len(trainer.optimizers) != 1:
        return f"{name} configures {len(trainer.optimizers)} optimizers, and the base's step takes one"
    if module.automatic_optimization:
        return f"{name} turns on Lightning's automatic optimization, and the base's step optimizes manually"
    return None


class Engine(pl.Callback):
    """Runs a torchae model's training steps fast while fitting; the results are those of the model's own steps.

    From the CLI the options are ``--engine.NAME`` (the configs set the article's); in Python::

        pl.Trainer(callbacks=[Engine(compiled_steps=True)]).fit(torchae.DenseAE(), datamodule=data)

    A technique that cannot run a model exactly (see the module's randomness contract), or that this run's devices,
    precision or hooks rule out, is turned off for the run with one info line that says which and why.

    Args:
        direct_steps: call ``backward`` and the optimizer directly when no callback or the model overrides a
            per-step hook, on one device at 32-bit precision (Lightning's wrappers otherwise).
        cpu_micro_batch_size: on one CPU process, run each batch in parts of this size (same loss and gradients,
            activations that stay in cache); ``None`` runs batches whole.
        cpu_channels_last: on one CPU process, store a model's convolution weights channels-last while fitting
            (the same convolutions, up to rounding); ``"auto"`` times a pass of the model both ways at start-up and
            keeps the faster, saying so in one line (it helps on some CPUs and not on others).
        compiled_steps: run each training step as one compiled function: the network, the loss, the gradients and
            Keras's Adam update (:mod:`~torchae.engine.compiled`), with ``compile_mode`` and ``compile_backend``.
            One device, 32-bit precision. Compiling takes seconds to a minute per batch shape, so it pays on long
            runs of small steps.
        compiled_steps_per_call: with ``compiled_steps``, unroll this many consecutive optimizer steps of a step
            group into one compiled call, as Keras's ``steps_per_execution`` does in one XLA call.
        compile_mode: ``torch.compile``'s mode for ``compiled_steps``.
        compile_backend: ``torch.compile``'s backend (``"aot_eager"`` only traces, for checking without a compiler).
        cuda_graphs: replay each (stage, batch shape) step as one captured CUDA graph after ``graph_warmup_steps``
            eager ones; one CUDA device, 32-bit precision.
        graph_warmup_steps: eager steps per batch shape before it is captured.
        cpu_threads: on one CPU process, torch's intra-op threads while fitting: ``"auto"`` follows the load,
            epoch by epoch, with as many threads as other processes leave cores free (:mod:`~torchae.engine.threads`:
            a busy core then costs its share of a step, not several times the step); a number fixes them; ``None``
            leaves torch's setting. The thread count may change float rounding, not what a step computes.

    Raises:
        ConfigError: a setting out of range, or two that exclude each other.
    """

    def __init__(
        self,
        direct_steps: bool = True,
        cpu_micro_batch_size: int | None = None,
        cpu_channels_last: bool | Literal["auto"] = False,
        compiled_steps: bool = False,
        compiled_steps_per_call: int = 1,
        compile_mode: CompileMode = "default",
        compile_backend: str = "inductor",
        cuda_graphs: bool = False,
        graph_warmup_steps: int = 3,
        cpu_threads: int | Literal["auto"] | None = None,
    ) -> None:
        _positive("cpu_micro_batch_size", cpu_micro_batch_size, optional=True)
        _positive("graph_warmup_steps", graph_warmup_steps)
        _positive("compiled_steps_per_call", compiled_steps_per_call)
        if cpu_threads != "auto":
            _positive("cpu_threads", cpu_threads, optional=True)
            most = 4 * (os.cpu_count() or 1)
            if cpu_threads is not None and cpu_threads > most:  # OpenMP aborts the process on far too many
                raise ConfigError(
                    f"engine.cpu_threads is {cpu_threads}, more than 4 per core of this machine's "
                    f"{os.cpu_count()} cores: set --engine.cpu_threads {os.cpu_count()} (one per core), or auto"
                )
        if cpu_channels_last not in (True, False, "auto"):
            raise ConfigError(
                f"engine.cpu_channels_last must be true, false or auto, got {cpu_channels_last!r}: "
                "set --engine.cpu_channels_last auto"
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
        if compiled_steps and (cuda_graphs or cpu_micro_batch_size is not None or cpu_channels_last is not False):
            raise ConfigError(
                "engine.compiled_steps compiles the whole step, so it runs without engine.cuda_graphs, "
                "engine.cpu_micro_batch_size and engine.cpu_channels_last: turn those off, or set "
                "--engine.compiled_steps false"
            )
        self.direct_steps = direct_steps
        self.cpu_micro_batch_size = cpu_micro_batch_size
        self.cpu_channels_last = cpu_channels_last
        self.channels_last = False
        """Whether the latest fit stored the model's convolution weights channels-last."""
        self.compiled_steps = compiled_steps
        self.compiled_steps_per_call = compiled_steps_per_call
        self.compile_mode = compile_mode
        self.compile_backend = compile_backend
        self.cuda_graphs = cuda_graphs
        self.graph_warmup_steps = graph_warmup_steps
        self.cpu_threads = cpu_threads
        self.threads: CpuThreads | None = None
        """What sets the CPU threads in the latest fit (``None``: torch's setting)."""
        self._said_threads = False
        self.runner: StepRunner | None = None
        """The runner of the latest fit (``None`` while Lightning runs the model's own steps)."""
        self.turned_off: dict[str, str] = {}
        """The techniques asked for but off in the latest fit, each with the reason."""
        self._undo: list[Callable[[], None]] = []

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> Engine:
        """The engine of a torchae config file's ``engine:`` section (``overrides`` win)."""
        settings = (yaml.safe_load(Path(path).read_text()) or {}).get("engine") or {}
        return cls(**{**settings, **overrides})

    # ----------------------------------------------------------------- Lightning hooks
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.runner, self.turned_off = None, {}
        self._set_threads(trainer)  # the thread count changes no step: it applies to any model
        written = own_code(trainer, pl_module)
        if written is not None:
            asked = self.asked_techniques()
            if asked:
                rank_zero_info(
                    f"torchae: {written}, so it runs as written, without {', '.join(f'engine.{a}' for a in asked)} "
                    "(the engine speeds up only the base's own step)"
                )
            return
        plan = self._plan(trainer, pl_module)
        for option, reason in self.turned_off.items():
            rank_zero_info(f"torchae: engine.{option} is off for this run: {reason}")
        graphs = StepGraphs(self.graph_warmup_steps) if plan["cuda_graphs"] else None
        micro = self.cpu_micro_batch_size if plan["cpu_micro_batch_size"] else None
        self.channels_last = plan["cpu_channels_last"] and self._choose_channels_last(trainer, pl_module, micro)
        self.runner = StepRunner(pl_module, micro, graphs)
        self.runner.direct = (
            self.direct_steps and not step_hooks_in_use(trainer, pl_module) and plain_single_device(trainer)
        )
        if plan["compiled_steps"]:
            self.runner.compiled = CompiledSteps(pl_module, self.compiled_steps_per_call, **self._compile_options())
            # The compiler runs at the first step (and a first group of each batch shape): the bar waits meanwhile.
            rank_zero_info(
                "torchae: engine.compiled_steps compiles the training step in the first batches (about 10-30 s on a "
                "CPU, once per batch shape); --engine.compiled_steps false trains without it"
            )
        self._install(pl_module, self.runner)

    def asked_techniques(self) -> list[str]:
        """The options of this engine that change how a step runs and are on (the thread count is not one)."""
        asked = {
            "direct_steps": self.direct_steps,
            "cpu_micro_batch_size": self.cpu_micro_batch_size is not None,
            "cpu_channels_last": self.cpu_channels_last is not False,
            "compiled_steps": self.compiled_steps,
            "cuda_graphs": self.cuda_graphs,
        }
        return [name for name, on in asked.items() if on]

    def _choose_channels_last(self, trainer: pl.Trainer, module: AutoencoderModule, micro: int | None) -> bool:
        """Store ``module``'s convolutions channels-last for this fit when asked, or with ``"auto"`` when a pass of
        the run's batch (or micro-batch) measures faster so; put them back after it."""
        chosen = self.cpu_channels_last is True
        if self.cpu_channels_last == "auto":
            batch = micro or getattr(trainer.datamodule, "batch_size", None) or module.example_input_array.shape[0]
            seconds = time_layouts(module, batch)
            chosen = seconds[True] < seconds[False]
            rank_zero_info(
                f"torchae: engine.cpu_channels_last auto: a pass of {batch} images took {seconds[True] * 1e3:.0f} ms "
                f"channels-last and {seconds[False] * 1e3:.0f} ms contiguous on this CPU, so the convolutions run "
                f"{'channels-last' if chosen else 'contiguous'}"
            )
        if chosen:
            in_layout(module, True)
            self._undo.append(lambda: in_layout(module, False))
        return chosen

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.threads is not None and self.cpu_threads == "auto":
            self._say_threads(self.threads.update())

    def _set_threads(self, trainer: pl.Trainer) -> None:
        self.threads, self._said_threads = None, False
        one_cpu = trainer.strategy.root_device.type == "cpu" and trainer.world_size == 1
        if self.cpu_threads is None or not one_cpu:
            return
        threads = self.threads = CpuThreads()
        self._undo.append(threads.restore)
        if self.cpu_threads == "auto":
            self._say_threads(threads.start())
        else:
            threads.most = self.cpu_threads
            torch.set_num_threads(self.cpu_threads)
            threads.threads = self.cpu_threads

    def _say_threads(self, threads: int) -> None:
        if threads < self.threads.started_with and not self._said_threads:
            self._said_threads = True
            rank_zero_info(
                f"torchae: other processes keep cores of this machine busy: steps run on {threads} of "
                f"{self.threads.started_with} threads, following the load each epoch (engine.cpu_threads auto)"
            )

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        while self._undo:
            self._undo.pop()()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "fit")  # a failed run leaves the model as it was, too

    # ----------------------------------------------------------------- which techniques this run can take
    def _plan(self, trainer: pl.Trainer, module: AutoencoderModule) -> dict[str, bool]:
        """Which of the asked-for techniques run; each one that cannot goes into :attr:`turned_off` with why."""
        one_cpu = trainer.strategy.root_device.type == "cpu" and trainer.world_size == 1
        asked = {
            "compiled_steps": self.compiled_steps,
            "cuda_graphs": self.cuda_graphs,
            "cpu_micro_batch_size": self.cpu_micro_batch_size is not None and one_cpu,  # a CPU option, as documented
            "cpu_channels_last": self.cpu_channels_last is not False and one_cpu,
        }
        if not any(asked.values()):
            return asked
        name = type(module).__name__
        random = draws_random_numbers(module)
        reasons = {
            "compiled_steps": self._whole_step_reason(trainer, module, random, "a compiled step"),
            "cuda_graphs": self._whole_step_reason(trainer, module, random, "a CUDA graph")
            or self._graphs_device_reason(trainer),
            "cpu_micro_batch_size": self._micro_batch_reason(module, name, random),
            "cpu_channels_last": channels_last_reason(module, timed=self.cpu_channels_last == "auto"),
        }
        for option, wanted in asked.items():
            if wanted and reasons[option]:
                self.turned_off[option] = reasons[option]
        return {option: wanted and not reasons[option] for option, wanted in asked.items()}

    @staticmethod
    def _whole_step_reason(trainer: pl.Trainer, module: AutoencoderModule, random: bool, what: str) -> str | None:
        """Why ``what`` (a technique that runs a whole step as one unit) cannot run this model exactly, if it
        cannot."""
        name = type(module).__name__
        if random:
            return (
                f"{name} draws from torch's global generator inside its step (nn.Dropout, torch.randn), which {what} "
                "would not draw as the plain step does; its steps run as written (torchae.draws.SeededDropout and "
                "the model's draws fix that)"
            )
        if type(module).loss_terms is not AutoencoderModule.loss_terms:
            return f"{name} overrides loss_terms, which {what} would skip; its steps run as written"
        hooks = step_hooks_in_use(trainer, module)
        if hooks:
            return f"{', '.join(hooks)} cannot run inside {what}; steps run as written"
        if not plain_single_device(trainer):
            return (
                f"{what} needs one device at precision 32-true, this run uses "
                f"{type(trainer.strategy).__name__} at {trainer.precision!r}"
            )
        optimizer = trainer.optimizers[0] if len(trainer.optimizers) == 1 else None
        if not isinstance(optimizer, KerasAdam):
            return f"{what} updates torchae's KerasAdam, and {name} configures another optimizer"
        return None

    @staticmethod
    def _graphs_device_reason(trainer: pl.Trainer) -> str | None:
        device = trainer.strategy.root_device
        if device.type != "cuda":
            return f"CUDA graphs need a CUDA device, this run is on {device} (--trainer.accelerator gpu)"
        return None

    @staticmethod
    def _micro_batch_reason(module: AutoencoderModule, name: str, random: bool) -> str | None:
        if random or type(module).corrupt is not AutoencoderModule.corrupt or draws_from_streams(module):
            return f"{name} draws random numbers in its step, which parts of a batch would draw differently"
        if any(isinstance(layer, BATCH_NORMS) for layer in module.modules()):
            return f"{name} normalises over the batch (BatchNorm), which parts of a batch would change"
        if type(module).loss_terms is not AutoencoderModule.loss_terms:
            return f"{name} overrides loss_terms, whose parts may not add up to the batch's loss"
        return None

    def _compile_options(self) -> dict[str, object]:
        """``torch.compile``'s arguments for ``compiled_steps`` (a mode only where inductor runs)."""
        mode = {"mode": self.compile_mode} if self.compile_backend == "inductor" else {}
        return {"backend": self.compile_backend, "dynamic": False, **mode}

    def _install(self, module: AutoencoderModule, runner: StepRunner) -> None:
        module.training_step = runner.training_step  # type: ignore[method-assign]
        module.validation_step = runner.validation_step  # type: ignore[method-assign]

        def uninstall() -> None:
            del module.training_step, module.validation_step

        self._undo.append(uninstall)
