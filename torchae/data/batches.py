"""Whole-tensor batches: the split is one float32 tensor, batches are slices of it (validation) or ``index_select``
with a seeded permutation (training): no per-sample ``__getitem__``, no worker processes, no collation. When the
model sits on a GPU the tensors are moved there once. Step groups (Keras's ``steps_per_execution``) are groups of
such batches."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info

from torchae.errors import ConfigError

__all__ = ["BatchGroup", "TensorBatches", "TensorDataModule", "batches_of", "check_positive_int", "mix_seed"]


class BatchGroup(list):
    """Several image batches delivered as one Lightning step (a step group); the model takes one optimizer step per
    batch.

    Keras's ``steps_per_execution`` in Lightning's terms: the per-step cost of the training loop (hooks, logging,
    progress bar) is paid once per group instead of once per batch, which matters for the article's small models
    (at batch 16 Lightning's own work per step takes longer than the model's).
    """


def batches_of(batch: Any) -> list[Any]:
    """The image batches of what a dataloader gave: each batch of a :class:`BatchGroup`, or the batch itself."""
    return list(batch) if isinstance(batch, BatchGroup) else [batch]


class TensorBatches:
    """An iterable of image batches cut from one resident tensor.

    Training order is a permutation drawn from ``(seed, epoch)`` alone, so any epoch can be replayed exactly
    (a resumed run sees the same batches) and every rank of a distributed run agrees on it; each rank then takes
    its own interleaved shard (``perm[rank::world_size]``, cut to ``N // world_size`` so that every rank runs as
    many steps), so no sample is seen twice in an epoch.

    Args:
        images: ``(N, 1, 28, 28)`` tensor, on the device the batches should be on.
        batch_size: images per batch; the last batch may be smaller (as Keras).
        shuffle: draw a new permutation every epoch.
        seed: base seed of the permutations.
        rank: this process's rank.
        world_size: number of processes sharing the data.
        steps_per_execution: batches per item; above 1 the items are :class:`BatchGroup` lists of batches.
        labels: ``(N,)`` labels of the images; given, each batch is an ``(images, labels)`` pair.
        sanity_batches: called at each iteration; while it gives a number ``n`` (Lightning's sanity check), the
            iteration is the first ``n`` image batches, one per item (as many items as the loader has at most, the
            rest in the last): the sanity check then runs the image batches it was told to, grouped or not.
        drop_last: leave out the last batch of an epoch when it is smaller than ``batch_size``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        steps_per_execution: int = 1,
        labels: torch.Tensor | None = None,
        sanity_batches: Callable[[], int | None] | None = None,
        drop_last: bool = False,
    ) -> None:
        self.images = images
        self.drop_last = drop_last
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.steps_per_execution = steps_per_execution
        self.sanity_batches = sanity_batches
        self.epoch = 0
        # Lightning calls ``dataloader.sampler.set_epoch(epoch)`` before every epoch; this object is its own sampler.
        self.sampler = self
        self.batch_sampler = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> torch.Tensor | None:
        """This rank's sample indices for the current epoch (``None`` means all, in order)."""
        n = self.images.shape[0]
        if not self.shuffle and self.world_size == 1:
            return None
        if self.shuffle:
            generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        shard = order[self.rank :: self.world_size][: self.num_samples()]
        return shard.to(self.images.device, non_blocking=True)

    def num_samples(self) -> int:
        """Samples per rank: ``N // world_size`` (every rank must run as many steps as the others under DDP, so
        the ``N % world_size`` samples left over by this epoch's permutation sit the epoch out)."""
        return self.images.shape[0] // self.world_size

    def num_batches(self) -> int:
        if self.drop_last:
            return self.num_samples() // self.batch_size
        return -(-self.num_samples() // self.batch_size)

    def __len__(self) -> int:
        return -(-self.num_batches() // self.steps_per_execution)

    def batches(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's batches, one by one: images, or ``(images, labels)`` pairs when there are labels."""
        order = self.indices()
        size = self.num_batches() * self.batch_size if self.drop_last else self.num_samples()
        for start in range(0, size, self.batch_size):
            stop = min(start + self.batch_size, size)
            rows = None if order is None else order[start:stop]
            images = self.images[start:stop] if rows is None else self.images.index_select(0, rows)
            if self.labels is None:
                yield images
            else:
                yield images, self.labels[start:stop] if rows is None else self.labels.index_select(0, rows)

    def _sanity_items(self, count: int) -> Iterator[Any]:
        """The first ``count`` image batches as at most ``len(self)`` items: Lightning's sanity check takes
        ``min(num_sanity_val_steps, len(loader))`` items, so the last item carries what does not fit one per item."""
        batches = _first(self.batches(), count)
        items = min(len(batches), len(self))
        yield from batches[: items - 1]
        if items:
            rest = batches[items - 1 :]
            yield rest[0] if len(rest) == 1 else BatchGroup(rest)

    def __iter__(self) -> Iterator[torch.Tensor | BatchGroup]:
        sanity = self.sanity_batches() if self.sanity_batches is not None else None
        if sanity is not None and self.steps_per_execution > 1:
            yield from self._sanity_items(sanity)
            return
        if self.steps_per_execution == 1:
            yield from self.batches()
            return
        group = BatchGroup()
        for batch in self.batches():
            group.append(batch)
            if len(group) == self.steps_per_execution:
                yield group
                group = BatchGroup()
        if group:
            yield group


def _counts_batches(option: str, value: Any) -> bool:
    """Whether a Trainer option is set to count batches or steps: anything but its default (all of them: 1.0 for the
    limits and the validation interval, -1 for max_steps). An integer 1 counts one batch, unlike 1.0."""
    if value is None:
        return False
    if option == "max_steps":
        return value != -1
    return isinstance(value, int) or value != 1.0


def _first(batches: Iterator[Any], count: int) -> list[Any]:
    return [batch for _, batch in zip(range(count), batches)]


def mix_seed(seed: int, *salt: int) -> int:
    """A 63-bit seed from a base seed and integers (epoch, stage...), stable across runs and platforms."""
    digest = hashlib.blake2b(repr((seed, *salt)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class TensorDataModule(pl.LightningDataModule):
    """Inputs held in memory as tensors, served by :class:`TensorBatches` on the trainer's device: the common part
    of :class:`MNISTDataModule` and the 2-D points of part 2 (:class:`torchae.part2.dots.DotsDataModule`). A subclass
    fills ``train_images``, ``val_images`` (the inputs, images or points) and ``val_labels`` in :meth:`load`.

    Args:
        batch_size: training batch size.
        val_batch_size: validation batch size; ``None`` uses ``batch_size`` (as Keras's ``fit``).
        seed: seed of the epoch permutations; ``None`` takes the process seed (``seed_everything``) at setup.
        shuffle: shuffle the training set every epoch.
        steps_per_execution: batches per Lightning step of training and validation (Keras's
            ``steps_per_execution``): above 1 each item is a :class:`BatchGroup`, and the model takes one optimizer
            step per batch of it. The results are those of plain batches; Lightning's per-step work is paid once per
            group. On several devices the loaders serve plain batches (DDP synchronises once per Lightning step).
        drop_last: leave out the last training batch of an epoch when it is smaller than ``batch_size`` (the
            article's GAN loop takes full batches only).
    """

    labelled_batches: ClassVar[bool] = False
    """Whether training and validation batches are ``(inputs, labels)`` pairs (part 4's CVAE) instead of inputs."""

    def __init__(
        self,
        batch_size: int = 256,
        val_batch_size: int | None = None,
        seed: int | None = None,
        shuffle: bool = True,
        steps_per_execution: int = 1,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int("batch_size", batch_size)
        check_positive_int("steps_per_execution", steps_per_execution)
        if val_batch_size is not None:
            check_positive_int("val_batch_size", val_batch_size)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.steps_per_execution = steps_per_execution
        self.drop_last = drop_last
        self._said_plain: set[str] = set()
        self.train_images: torch.Tensor | None = None
        self.train_labels: torch.Tensor | None = None
        self.val_images: torch.Tensor | None = None
        self.val_labels: torch.Tensor | None = None

    def load(self) -> None:
        """Fill ``train_images``, ``val_images``, and ``train_labels`` and ``val_labels`` (``None`` without
        labels)."""
        raise ConfigError(
            f"{type(self).__name__} holds no data of its own: give --data torchae.MNISTDataModule or "
            "torchae.DotsDataModule (or a subclass of yours that loads its data)"
        )

    def setup(self, stage: str | None = None) -> None:
        if self.seed is None:
            self.seed = torch.initial_seed()
        if self.train_images is None:
            self.load()

    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _loader(
        self,
        images: torch.Tensor | None,
        batch_size: int,
        shuffle: bool,
        grouped: str | None,
        labels: torch.Tensor | None = None,
        drop_last: bool = False,
    ) -> TensorBatches:
        if images is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its dataloaders are asked for")
        device = self._device()
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        group = self.steps_per_execution if grouped is not None else 1
        reason = self._why_plain(grouped) if group > 1 else None
        if reason is not None:
            group = 1
            if reason not in self._said_plain:
                self._said_plain.add(reason)
                rank_zero_info(f"torchae: data.steps_per_execution {self.steps_per_execution} is off {reason}")
        labels = labels.to(device) if labels is not None else None
        seed = int(self.seed or 0)
        sanity = self._sanity_batches if grouped == "val" else None
        return TensorBatches(
            images.to(device), batch_size, shuffle, seed, rank, world, group, labels, sanity, drop_last=drop_last
        )

    def _why_plain(self, stage: str) -> str | None:
        """Why this stage's loader serves plain batches instead of step groups (``None``: groups): several devices,
        or a Lightning option that counts batches (so that it counts image batches and optimizer steps)."""
        trainer = self.trainer
        if trainer is None:
            return None
        if trainer.world_size > 1:
            devices = trainer.world_size
            return f"on {devices} devices (DDP synchronises gradients once per Lightning step): plain batches"
        options = {"val": ["limit_val_batches"], "train": ["limit_train_batches", "val_check_interval", "max_steps"]}
        counting = [name for name in options[stage] if _counts_batches(name, getattr(trainer, name, None))]
        if counting:
            return f"for {stage}: trainer.{counting[0]} counts image batches and optimizer steps: plain batches"
        return None

    def _sanity_batches(self) -> int | None:
        trainer = self.trainer
        if trainer is None or not getattr(trainer, "sanity_checking", False) or trainer.num_sanity_val_steps < 0:
            return None
        return int(trainer.num_sanity_val_steps)

    def train_dataloader(self) -> TensorBatches:
        labels = self.train_labels if self.labelled_batches else None
        return self._loader(
            self.train_images, self.batch_size, self.shuffle, grouped="train", labels=labels, drop_last=self.drop_last
        )

    def val_dataloader(self) -> TensorBatches:
        labels = self.val_labels if self.labelled_batches else None
        return self._loader(self.val_images, self.val_batch_size, False, grouped="val", labels=labels)

    def test_dataloader(self) -> TensorBatches:
        labels = self.val_labels if self.labelled_batches else None
        return self._loader(self.val_images, self.val_batch_size, False, grouped=None, labels=labels)

    def predict_dataloader(self) -> TensorBatches:
        """The validation inputs in order, as ``(inputs, labels)`` pairs when there are labels."""
        return self._loader(self.val_images, self.val_batch_size, False, grouped=None, labels=self.val_labels)

    def state_dict(self) -> dict[str, Any]:
        # The seed decides every epoch's order: a resumed run must keep it even if seed_everything picked it.
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seed = state_dict["seed"]


def check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"data.{name} must be a positive integer, got {value!r}: set --data.{name} to 1 or more")
