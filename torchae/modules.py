"""The five autoencoders as Lightning modules: one base that owns the training step, five small subclasses.

Loss conventions (shared with ``parity``): the reconstruction loss is binary cross-entropy averaged over every pixel
of the batch, computed from the decoder's logits; an activity penalty (sparse) is divided by the batch size as
Keras 3 does and added to it; ``train_loss``/``val_loss`` are epoch means weighted by batch size, which is Keras's
``loss``/``val_loss``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F  # noqa: N812
from pytorch_lightning.plugins.precision import Precision
from pytorch_lightning.strategies import SingleDeviceStrategy
from pytorch_lightning.utilities.model_helpers import is_overridden
from torch import nn

from torchae.architectures import (
    IMAGE_SHAPE,
    Autoencoder,
    ConvAutoencoder,
    DeepDenseAutoencoder,
    DenseAutoencoder,
    build_architecture,
)
from torchae.data import BatchGroup, _mix_seed
from torchae.errors import CheckpointError, ConfigError, InputError
from torchae.optim import KerasAdam

if TYPE_CHECKING:
    from torchae.graphs import StepGraphs

__all__ = [
    "AutoencoderModule",
    "CheckpointError",
    "ConvAE",
    "DeepDenseAE",
    "DenoisingAE",
    "DenseAE",
    "MODELS",
    "SparseAE",
    "load_checkpoint",
]

Stage = Literal["train", "val", "test"]


class AutoencoderModule(pl.LightningModule):
    """Trains an :class:`~torchae.architectures.Autoencoder` to reconstruct its input, with Keras's Adam.

    Subclasses choose the network and may override :meth:`corrupt` (what the encoder sees) and
    :meth:`activity_penalty` (a loss on the code); nothing else about the step differs between models.

    Args:
        net: the encoder/decoder network.
        learning_rate: Adam's learning rate (Keras: 1e-3).
        epsilon: Adam's epsilon, placed as Keras places it (Keras 3: 1e-7).
    """

    cpu_micro_batch_size: int | None = None
    """Run CPU batches in parts of this size (see :meth:`_loss_and_backward`); ``None`` runs them whole."""

    step_graphs: StepGraphs | None = None
    """Set by the :class:`~torchae.graphs.CUDAGraphs` callback: steps then replay captured CUDA graphs."""

    _direct_steps = False
    """Whether a training step calls ``backward`` and the optimizer directly (see :meth:`on_fit_start`)."""

    def __init__(self, net: Autoencoder, learning_rate: float = 1e-3, epsilon: float = 1e-7) -> None:
        super().__init__()
        # One optimizer step per image batch, driven here: a training step may receive a BatchGroup of several
        # batches (MNISTDataModule's steps_per_execution, like Keras's), which amortises Lightning's per-step cost.
        self.automatic_optimization = False
        if not learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {learning_rate!r}")
        if not epsilon > 0:
            raise ConfigError(f"epsilon must be positive, got {epsilon!r}")
        self.save_hyperparameters(ignore=["net"])
        self.learning_rate = learning_rate
        self.epsilon = epsilon
        self.net = net
        self.example_input_array = torch.zeros(2, *IMAGE_SHAPE)

    # ----------------------------------------------------------------- the article's encoder / decoder API
    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    @property
    def decoder(self) -> nn.Module:
        return self.net.decoder

    @property
    def code_shape(self) -> tuple[int, ...]:
        return self.net.code_shape

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes of images ``x`` of shape ``(N, 1, 28, 28)`` (the article's ``encoder.predict``)."""
        return self.net.encode(self.check_images(x))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities ``(N, 1, 28, 28)`` in [0, 1] from codes (the article's ``decoder.predict``)."""
        return self.net.decode(self.check_codes(code))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions of ``x``: ``decode(encode(x))``."""
        return self.net(self.check_images(x))

    # ----------------------------------------------------------------- input checks
    def check_images(self, x: Any, check_finite: bool = True) -> torch.Tensor:
        """Return ``x`` if it is a float batch of shape ``(N, 1, 28, 28)``; else raise ``ValueError`` saying why."""
        expected = "expected a float tensor of shape (N, 1, 28, 28) with pixels in [0, 1]"
        if not isinstance(x, torch.Tensor):
            raise InputError(f"model input is a {type(x).__name__}, {expected}")
        if not x.is_floating_point():
            raise InputError(f"model input has dtype {x.dtype}, {expected}; for uint8 pixels use x.float() / 255")
        if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            nhwc = tuple(x.shape[1:]) == (28, 28, 1)
            hint = "; it looks like Keras's NHWC, use x.permute(0, 3, 1, 2)" if nhwc else ""
            raise InputError(f"model input has shape {tuple(x.shape)} (rank {x.dim()}), {expected}{hint}")
        if check_finite and not bool(torch.isfinite(x).all()):
            raise InputError(f"model input contains NaN or infinite values, {expected}")
        return x

    def check_codes(self, code: Any) -> torch.Tensor:
        """Return ``code`` if it is a float batch of shape ``(N, *code_shape)``; else raise ``ValueError``."""
        expected = f"expected a float tensor of shape (N, {', '.join(map(str, self.code_shape))})"
        if not isinstance(code, torch.Tensor) or not code.is_floating_point():
            raise InputError(f"code is not a float tensor, {expected}")
        if code.dim() != 1 + len(self.code_shape) or tuple(code.shape[1:]) != self.code_shape:
            raise InputError(f"code has shape {tuple(code.shape)}, {expected}")
        if not bool(torch.isfinite(code).all()):
            raise InputError(f"code contains NaN or infinite values, {expected}")
        return code

    # ----------------------------------------------------------------- what variants override
    def corrupt(self, x: torch.Tensor, stage: Stage) -> torch.Tensor:
        """What the encoder sees for clean images ``x`` during ``stage``; the target stays ``x``."""
        return x

    def activity_penalty(self, code: torch.Tensor) -> torch.Tensor | None:
        """A loss on the code, already divided by the batch size; ``None`` for none."""
        return None

    # ----------------------------------------------------------------- the one step
    def loss_terms(self, x: torch.Tensor, stage: Stage = "train") -> dict[str, torch.Tensor]:
        """The loss of clean images ``x`` during ``stage`` (inputs corrupted as the model does, target ``x``)."""
        return self.reconstruction_terms(self.corrupt(x, stage), x)

    def reconstruction_terms(self, inputs: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss of reconstructing ``target`` from ``inputs``: ``{"loss"}``, plus ``"reconstruction_loss"`` and
        ``"l1_penalty"`` when there is an activity penalty."""
        code = self.net.encode(inputs)
        reconstruction = F.binary_cross_entropy_with_logits(self.net.decoder.logits(code), target)
        penalty = self.activity_penalty(code)
        if penalty is None:
            return {"loss": reconstruction}
        return {"loss": reconstruction + penalty, "reconstruction_loss": reconstruction, "l1_penalty": penalty}

    @staticmethod
    def _image_batches(batch: Any) -> list[Any]:
        """The image batches in ``batch``: a :class:`BatchGroup` holds several (one optimizer step each), an
        ``(images, labels)`` pair or a tensor holds one."""
        if isinstance(batch, BatchGroup):
            return list(batch)
        return [batch[0] if isinstance(batch, (tuple, list)) else batch]

    def _run(self, batch: Any, stage: Stage) -> torch.Tensor:
        """Every batch of ``batch`` (one optimizer step each when training); logs the loss terms once, as the mean
        over the group's images, so that Lightning's batch-size-weighted epoch mean is Keras's epoch ``loss``."""
        optimizer = self.optimizers() if stage == "train" else None
        sums: dict[str, torch.Tensor] = {}
        count = 0
        for x in self._image_batches(batch):
            # The finiteness test would synchronise with the device every step; the datamodule checks its data once.
            x = self.check_images(x, check_finite=False)
            if self.step_graphs is not None:
                terms = self.step_graphs.run(self, x, stage, optimizer, self._eager_step)
            else:
                terms = self._eager_step(x, stage, optimizer)
            n = x.shape[0]
            for name, value in terms.items():  # already detached
                sums[name] = value * n if name not in sums else sums[name] + value * n
            count += n
        for name, total in sums.items():
            self.log(
                f"{stage}_{name}",
                total / count,
                on_step=False,
                on_epoch=True,
                prog_bar=name == "loss",
                batch_size=count,
                sync_dist=True,
            )
        return sums["loss"] / count

    def _eager_step(self, x: torch.Tensor, stage: Stage, optimizer: Any) -> dict[str, torch.Tensor]:
        """One step on batch ``x``: the loss terms (detached), and an optimizer step when ``optimizer`` is given."""
        if optimizer is None:
            return self._loss_and_backward(x, stage)
        optimizer.zero_grad()
        terms = self._loss_and_backward(x, stage)
        if self._direct_steps:
            with counted_step(optimizer):
                optimizer.optimizer.step()
        else:
            optimizer.step()
        return terms

    def _backward(self, loss: torch.Tensor) -> None:
        if self._direct_steps:
            loss.backward()
        else:
            self.manual_backward(loss)

    def on_fit_start(self) -> None:
        # Lightning's manual_backward and LightningOptimizer.step exist to run per-step hooks, precision plugins and
        # strategies around the two calls; when none of them is in play, calling backward and step directly gives
        # the same step for ~0.1 ms less Python (14% of a batch-16 epoch on a 2-core CPU).
        self._direct_steps = step_hooks_in_use(self.trainer, self) == [] and plain_single_device(self.trainer)

    def _loss_and_backward(self, x: torch.Tensor, stage: Stage) -> dict[str, torch.Tensor]:
        """The loss terms of batch ``x`` (detached), back-propagated when training.

        On the CPU, a model with ``cpu_micro_batch_size`` runs the batch in parts of that size and adds up their
        gradients, each part's loss weighted by its share of the batch: the same loss and gradients as one pass,
        up to float rounding, with activations small enough to stay in cache (the conv model's first layer makes
        400 KB per image; at 64 images a step is 1.8x faster here than at 256).
        """
        chunk = self.cpu_micro_batch_size
        training = stage == "train" and torch.is_grad_enabled()
        single_process = self._trainer is None or self.trainer.world_size == 1
        if chunk is None or x.device.type != "cpu" or x.shape[0] <= chunk or not single_process:
            terms = self.loss_terms(x, stage)
            if training:
                self._backward(terms["loss"])
            return {name: value.detach() for name, value in terms.items()}
        totals: dict[str, torch.Tensor] = {}
        for part in x.split(chunk):
            share = part.shape[0] / x.shape[0]
            terms = self.loss_terms(part, stage)
            if training:
                self._backward(terms["loss"] * share)
            for name, value in terms.items():
                totals[name] = value.detach() * share + (totals[name] if name in totals else 0.0)
        return totals

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._run(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._run(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._run(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return torch.cat([self(x) for x in self._image_batches(batch)])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return KerasAdam(self.parameters(), lr=self.learning_rate, eps=self.epsilon)

    # ----------------------------------------------------------------- checkpoints
    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Lightning's ``load_from_checkpoint``, after checking (with ``weights_only=True``) that the file is a
        readable checkpoint of this class; raises :class:`CheckpointError` naming the class it holds otherwise."""
        if isinstance(checkpoint_path, (str, Path)) and cls is not AutoencoderModule:
            _require_model_class(read_checkpoint(checkpoint_path), cls)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["torchae_model"] = type(self).__name__

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        _require_model_class(checkpoint, type(self))


PER_STEP_HOOKS = (
    "backward",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
)
"""The hooks Lightning runs around each backward pass and optimizer step of a manual-optimization training step."""


def step_hooks_in_use(trainer: pl.Trainer, module: pl.LightningModule) -> list[str]:
    """``"Owner.hook"`` for each per-step hook that a callback of ``trainer`` or ``module`` overrides."""
    in_use = [
        f"{type(callback).__name__}.{hook}"
        for hook in PER_STEP_HOOKS
        for callback in trainer.callbacks
        if hook != "backward" and is_overridden(hook, callback, pl.Callback)
    ]
    in_use += [
        f"{type(module).__name__}.{hook}" for hook in PER_STEP_HOOKS if is_overridden(hook, module, pl.LightningModule)
    ]
    return in_use


@contextmanager
def counted_step(optimizer: Any) -> Iterator[None]:
    """Around an optimizer step that bypasses ``LightningOptimizer.step`` (``optimizer`` is that wrapper): count it
    in Lightning's step progress (``global_step``), with the calls that ``LightningOptimizer.step`` makes."""
    optimizer._on_before_step()
    yield
    optimizer._on_after_step()


def plain_single_device(trainer: pl.Trainer) -> bool:
    """Whether ``trainer`` runs on one device at 32-bit precision with no precision plugin of its own."""
    return (
        isinstance(trainer.strategy, SingleDeviceStrategy)
        and type(trainer.strategy.precision_plugin) is Precision
        and trainer.precision == "32-true"
    )


def _require_model_class(checkpoint: dict[str, Any], cls: type) -> None:
    """Raise :class:`CheckpointError` if ``checkpoint`` was saved by another torchae model class than ``cls``."""
    saved = checkpoint.get("torchae_model")
    if saved is not None and saved != cls.__name__:
        raise CheckpointError(
            f"this checkpoint holds a {saved}, not a {cls.__name__}: load it with "
            f"{saved}.load_from_checkpoint(...) or torchae.load_checkpoint(...)"
        )


class DenseAE(AutoencoderModule):
    """The article's dense autoencoder: 784 -> 49 (relu) -> 784 (sigmoid); 77,665 parameters.

    Args:
        code_dim: size of the code.
        learning_rate: Adam's learning rate.
        epsilon: Adam's epsilon (Keras placement).
    """

    def __init__(self, code_dim: int = 49, learning_rate: float = 1e-3, epsilon: float = 1e-7) -> None:
        super().__init__(DenseAutoencoder(code_dim), learning_rate=learning_rate, epsilon=epsilon)


class DeepDenseAE(AutoencoderModule):
    """The article's deep dense autoencoder: 784-147-98-49 and back; 270,235 parameters.

    Args:
        code_dim: size of the code; the hidden layers are ``3 * code_dim`` and ``2 * code_dim`` wide.
        learning_rate: Adam's learning rate.
        epsilon: Adam's epsilon (Keras placement).
    """

    def __init__(self, code_dim: int = 49, learning_rate: float = 1e-3, epsilon: float = 1e-7) -> None:
        super().__init__(DeepDenseAutoencoder(code_dim), learning_rate=learning_rate, epsilon=epsilon)


class ConvAE(AutoencoderModule):
    """The article's convolutional autoencoder with a ``(1, 7, 7)`` code; 48,770 parameters.

    Args:
        learning_rate: Adam's learning rate.
        epsilon: Adam's epsilon (Keras placement).
    """

    cpu_micro_batch_size = 64

    def __init__(self, learning_rate: float = 1e-3, epsilon: float = 1e-7) -> None:
        super().__init__(ConvAutoencoder(), learning_rate=learning_rate, epsilon=epsilon)


class SparseAE(AutoencoderModule):
    """The article's sparse autoencoder: the deep layout with a 16-dimensional code and an L1 activity penalty
    ``l1 * sum(|code|) / batch_size`` (Keras 3's ``activity_regularizer`` scaling); 80,320 parameters.

    Args:
        code_dim: size of the code.
        l1: the L1 coefficient (the article's ``lambda_l1``).
        learning_rate: Adam's learning rate.
        epsilon: Adam's epsilon (Keras placement).
    """

    def __init__(
        self, code_dim: int = 16, l1: float = 1e-5, learning_rate: float = 1e-3, epsilon: float = 1e-7
    ) -> None:
        if not l1 >= 0:
            raise ConfigError(f"l1 must be zero or positive, got {l1!r}")
        super().__init__(DeepDenseAutoencoder(code_dim), learning_rate=learning_rate, epsilon=epsilon)
        self.l1 = l1

    def activity_penalty(self, code: torch.Tensor) -> torch.Tensor:
        return self.l1 * code.abs().sum() / code.shape[0]


class DenoisingAE(AutoencoderModule):
    """Another autoencoder trained to undo noise: ``clip(x + N(noise_mean, noise_std), 0, 1)`` goes in, the clean
    ``x`` is the target. Noise is drawn fresh for every batch, in training and validation alike (as the article's
    noise layer, part of the model, does), from a stream seeded by ``(seed, epoch, stage)`` so that a resumed run
    draws the same noise. ``encode``/``decode``/``forward`` add no noise.

    Args:
        architecture: which network to wrap: ``dense`` (the article's choice), ``deep`` or ``conv``.
        code_dim: code size of a dense network; ``None`` keeps the article's.
        noise_mean: mean of the additive Gaussian noise.
        noise_std: standard deviation of the noise.
        init_from: a checkpoint of a trained model with the same network to start from (the article retrains its
            trained dense autoencoder); read when fitting starts.
        seed: seed of the noise; ``None`` takes the process seed (``seed_everything``) when fitting starts.
        learning_rate: Adam's learning rate.
        epsilon: Adam's epsilon (Keras placement).
    """

    def __init__(
        self,
        architecture: Literal["dense", "deep", "conv"] = "dense",
        code_dim: int | None = None,
        noise_mean: float = 0.5,
        noise_std: float = 0.5,
        init_from: str | None = None,
        seed: int | None = None,
        learning_rate: float = 1e-3,
        epsilon: float = 1e-7,
    ) -> None:
        if not noise_std >= 0:
            raise ConfigError(f"noise_std must be zero or positive, got {noise_std!r}")
        super().__init__(build_architecture(architecture, code_dim), learning_rate=learning_rate, epsilon=epsilon)
        self.noise_mean = noise_mean
        self.noise_std = noise_std
        self.init_from = init_from
        self.seed = seed
        self._init_loaded = False
        self._noise: dict[str, torch.Generator] = {}

    def setup(self, stage: str) -> None:
        if self.seed is None:
            self.seed = torch.initial_seed()
        if stage == "fit" and self.init_from is not None and not self._init_loaded:
            self.net.load_state_dict(_network_state(self.init_from, self.net))
            self._init_loaded = True

    def _start_noise_stream(self, stage: Stage) -> None:
        epoch = self.trainer.current_epoch if self._trainer is not None else 0
        generator = torch.Generator(device=self.device)
        generator.manual_seed(_mix_seed(self._noise_seed(), epoch, ("train", "val", "test").index(stage)))
        self._noise[stage] = generator

    def _noise_seed(self) -> int:
        if self.seed is None:
            self.seed = torch.initial_seed()
        return int(self.seed)

    def on_train_epoch_start(self) -> None:
        self._start_noise_stream("train")

    def on_validation_epoch_start(self) -> None:
        self._start_noise_stream("val")

    def on_test_epoch_start(self) -> None:
        self._start_noise_stream("test")

    def add_noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``clip(x + N(noise_mean, noise_std), 0, 1)``, drawn from ``generator`` (default: the global RNG)."""
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + noise.mul_(self.noise_std).add_(self.noise_mean)).clamp_(0.0, 1.0)

    def corrupt(self, x: torch.Tensor, stage: Stage) -> torch.Tensor:
        if stage not in self._noise or self._noise[stage].device != x.device:
            self._start_noise_stream(stage)
        return self.add_noise(x, self._noise[stage])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["torchae_noise_seed"] = self._noise_seed()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.seed = checkpoint.get("torchae_noise_seed", self.seed)
        self._init_loaded = True  # the checkpoint's weights win over init_from


MODELS: dict[str, type[AutoencoderModule]] = {
    "dense": DenseAE,
    "deep": DeepDenseAE,
    "conv": ConvAE,
    "denoising": DenoisingAE,
    "sparse": SparseAE,
}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a Lightning checkpoint with ``weights_only=True`` (no code from the file runs).

    Raises:
        CheckpointError: the file is missing, truncated or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist: check the path (runs keep theirs in <log dir>/checkpoints/)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files; all mean the same to the user
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(err).__name__}): the file is "
            "truncated or not a torch checkpoint; use another one"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{str(path)!r} is not a Lightning checkpoint (no state_dict): use a .ckpt from a run")
    return checkpoint


def _network_state(path: str | Path, net: nn.Module) -> dict[str, torch.Tensor]:
    """The ``net.*`` weights of a torchae checkpoint, checked against ``net``'s shapes."""
    checkpoint = read_checkpoint(path)
    state = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    expected = net.state_dict()
    mismatched = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    if mismatched or len(state) != len(expected):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds another network (first mismatch: {(mismatched or ['extra keys'])[0]}): "
            "init_from must be a checkpoint of the architecture being wrapped"
        )
    return state


def load_checkpoint(path: str | Path, map_location: str | torch.device | None = "cpu") -> AutoencoderModule:
    """Load any torchae checkpoint as the model class that saved it.

    Raises:
        CheckpointError: the file is missing, unreadable, or not from a torchae model.
    """
    checkpoint = read_checkpoint(path)
    name = checkpoint.get("torchae_model")
    cls = next((c for c in MODELS.values() if c.__name__ == name), None)
    if cls is None:
        raise CheckpointError(f"{str(path)!r} was not saved by a torchae model: load it with its own class")
    return cls.load_from_checkpoint(path, map_location=map_location, weights_only=True)
