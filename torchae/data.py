"""MNIST, read offline from the four IDX files or a Keras ``mnist.npz``, served as whole-tensor batches.

The whole split is one float32 tensor ``(N, 1, 28, 28)`` in [0, 1] (``uint8 / 255``, as the article). Batches are
slices of it (validation) or ``index_select`` with a seeded permutation (training): no per-sample ``__getitem__``,
no worker processes, no collation. When the model sits on a GPU the tensors are moved there once.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info

from torchae.errors import ConfigError, DataError

__all__ = [
    "BatchGroup",
    "batches_of",
    "LabelledMNISTDataModule",
    "MNISTDataModule",
    "TensorDataModule",
    "MNISTSplits",
    "TensorBatches",
    "load_mnist",
    "embedded_mnist_dir",
    "DataError",
]


# sha256 of the decompressed canonical files (the same bytes torchvision and Keras download).
MNIST_FILES: dict[str, tuple[str, int, str]] = {
    # name: (sha256, IDX magic, split)
    "train-images-idx3-ubyte": ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 2051, "train"),
    "train-labels-idx1-ubyte": ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 2049, "train"),
    "t10k-images-idx3-ubyte": ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 2051, "test"),
    "t10k-labels-idx1-ubyte": ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 2049, "test"),
}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
MNIST_COUNTS = {"train": 60_000, "test": 10_000}
"""Images (and labels) in each canonical split."""
MAX_ITEMS = 1_000_000
"""The most images or labels torchae reads from one file of other data in MNIST's format (``verify_checksums``
off): about 16 times MNIST's training set, 784 MB of pixels. Every size read from a file's header is checked against
it before anything is allocated or decompressed, so a small crafted file cannot claim the machine's memory."""
IMAGE_SIDE = 28


def embedded_mnist_dir() -> Path:
    """The folder of the MNIST files shipped inside the package."""
    return Path(str(resources.files("torchae") / "data" / "mnist"))


@dataclass(frozen=True)
class MNISTSplits:
    """MNIST as uint8 arrays: images ``(N, 28, 28)``, labels ``(N,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _read_idx(name: str, path: Path, verify_checksum: bool) -> np.ndarray:
    """Read one IDX file (gzipped or not), bounded: the header's sizes are checked (against MNIST's counts, or
    :data:`MAX_ITEMS`) before the data is read, and no more than the header's size is ever decompressed."""
    sha256, magic, split = MNIST_FILES[name]
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            header = stream.read(header_size)
            shape = _idx_shape(header, magic, path, split, verify_checksum)
            size = math.prod(shape)  # Python integers: no overflow, whatever the header says
            data = stream.read(size)
            longer = bool(stream.read(1))
    except (OSError, EOFError, zlib.error) as err:
        if path.suffix == ".gz" and not isinstance(err, (PermissionError, IsADirectoryError)):
            raise DataError(
                f"{path} is not a complete gzip file ({err}); copy it again from the MNIST source"
            ) from None
        raise DataError(f"cannot read {path}: {err.strerror or err}; check the path and its permissions") from None
    if len(data) < size:
        raise DataError(f"{path} holds {len(data)} bytes of data for shape {shape}: the file is truncated")
    if longer:
        raise DataError(
            f"{path} holds more than the {size} bytes of data its header gives for shape {shape}: the file is not "
            "a clean IDX file; copy it again from the MNIST source"
        )
    if verify_checksum and hashlib.sha256(header + data).hexdigest() != sha256:
        raise DataError(
            f"{path} does not match MNIST's sha256 checksum: replace it with the canonical file, "
            "or pass verify_checksums=False for other data in the MNIST format"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _idx_shape(header: bytes, magic: int, path: Path, split: str, verify_checksum: bool) -> tuple[int, ...]:
    """The array shape an IDX header gives, refused unless it is MNIST's: 28x28 images, and MNIST's counts (or at
    most :data:`MAX_ITEMS` items for other data)."""
    ndim = magic & 0xFF
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{path} is too short to be an IDX file; copy it again from the MNIST source")
    found_magic = struct.unpack(">I", header[:4])[0]
    if found_magic != magic:
        raise DataError(
            f"{path} has IDX magic number {found_magic}, expected {magic}: it is not the file its name says"
        )
    shape = struct.unpack(f">{ndim}I", header[4:])
    if shape[1:] != (IMAGE_SIDE, IMAGE_SIDE)[: ndim - 1]:
        raise DataError(f"{path} holds images of {'x'.join(map(str, shape[1:]))} pixels: MNIST images are 28x28")
    count, canonical = shape[0], MNIST_COUNTS[split]
    if verify_checksum and count != canonical:
        raise DataError(
            f"{path} holds {count} items, MNIST's {split} file {canonical}: it is not MNIST; replace it with the "
            "canonical file, or pass verify_checksums=False for other data in the MNIST format"
        )
    if count > MAX_ITEMS:
        raise DataError(
            f"{path} claims {count} items, more than the {MAX_ITEMS} torchae reads from one file: the file is "
            "damaged or not MNIST data"
        )
    return shape


def _find_idx(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_idx_folder(folder: Path, verify_checksums: bool) -> MNISTSplits:
    found = {name: _find_idx(folder, name) for name in MNIST_FILES}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise DataError(
            f"{folder} lacks {', '.join(missing)} (plain or .gz): put all four MNIST IDX files there, "
            "or point data_dir at a Keras mnist.npz"
        )
    arrays = {name: _read_idx(name, path, verify_checksums) for name, path in found.items()}
    return MNISTSplits(
        x_train=arrays["train-images-idx3-ubyte"],
        y_train=arrays["train-labels-idx1-ubyte"],
        x_test=arrays["t10k-images-idx3-ubyte"],
        y_test=arrays["t10k-labels-idx1-ubyte"],
    )


def _load_npz(path: Path) -> MNISTSplits:
    try:
        _check_npz_sizes(path)
        # allow_pickle=False: an .npz from elsewhere can never run code here.
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path} lacks the arrays {', '.join(missing)}: a Keras mnist.npz holds {', '.join(NPZ_KEYS)}"
                )
            arrays = {key: archive[key] for key in NPZ_KEYS}
    except DataError:
        raise
    except (OSError, ValueError, zlib.error, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not a readable .npz archive ({err}); copy it again") from None
    return MNISTSplits(**arrays)


def _check_npz_sizes(path: Path) -> None:
    """Refuse an .npz whose arrays, by their headers or their stored sizes, exceed :data:`MAX_ITEMS` images: read
    before any array is, so that a small archive cannot make numpy allocate or decompress without bound."""
    limit = MAX_ITEMS * IMAGE_SIDE * IMAGE_SIDE
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.filename.removesuffix(".npy") not in NPZ_KEYS:
                continue
            with archive.open(member) as stream:
                version = np.lib.format.read_magic(stream)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else None
                shape, _, dtype = (read_header or np.lib.format.read_array_header_2_0)(stream)
            size = math.prod(shape) * dtype.itemsize
            if member.file_size > limit + 4096 or size > limit:
                raise DataError(
                    f"{path}: the array {member.filename} holds {max(size, member.file_size)} bytes, more than the "
                    f"{limit} of {MAX_ITEMS} images torchae reads: the file is damaged or not MNIST data"
                )


def _validate(splits: MNISTSplits, source: Path) -> MNISTSplits:
    for split in ("train", "test"):
        images, labels = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(
                f"{source}: {split} images have shape {tuple(images.shape)}, expected (N, 28, 28): "
                "MNIST images are 28x28"
            )
        if images.dtype != np.uint8:
            raise DataError(f"{source}: {split} images are {images.dtype}, expected uint8 pixels 0..255")
        if images.shape[0] == 0:
            raise DataError(f"{source}: the {split} split holds no images: give data with images in both splits")
        if labels.shape != (images.shape[0],):
            raise DataError(
                f"{source}: {images.shape[0]} {split} images but labels of shape {tuple(labels.shape)}; "
                "images and labels must come in pairs"
            )
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
            found = f"{labels.min()}..{labels.max()}" if np.issubdtype(labels.dtype, np.number) else str(labels.dtype)
            raise DataError(f"{source}: {split} labels are {found}, expected the digits 0..9: give MNIST's labels")
    return splits


def load_mnist(data_dir: str | Path | None = None, verify_checksums: bool = True) -> MNISTSplits:
    """Read MNIST from the package, a folder of IDX files, or a Keras ``mnist.npz``.

    Args:
        data_dir: ``None`` for the embedded copy; a folder with the four IDX files (gzipped or not); or the path
            of a Keras ``mnist.npz``.
        verify_checksums: check IDX files against MNIST's sha256 sums (turn off for other data in MNIST's format).

    Raises:
        DataError: the source is missing, incomplete, damaged or of the wrong shape; the message says which.
    """
    path = embedded_mnist_dir() if data_dir is None else Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(
            f"data_dir {str(path)!r} does not exist: give a folder with the MNIST IDX files or a Keras mnist.npz, "
            "or leave data_dir unset for the embedded copy"
        )
    if path.is_dir():
        splits = _load_idx_folder(path, verify_checksums)
    elif path.suffix == ".npz":
        splits = _load_npz(path)
    else:
        raise DataError(f"data_dir {str(path)!r} is a file but not an .npz: give a folder of IDX files or mnist.npz")
    return _validate(splits, path)


def to_image_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, 28, 28)`` to float32 ``(N, 1, 28, 28)`` in [0, 1], as the article's ``astype('float32') / 255``."""
    return torch.from_numpy(np.array(images, dtype=np.uint8)).unsqueeze(1).float().div_(255.0)


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
    ) -> None:
        self.images = images
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
        return -(-self.num_samples() // self.batch_size)

    def __len__(self) -> int:
        return -(-self.num_batches() // self.steps_per_execution)

    def batches(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's batches, one by one: images, or ``(images, labels)`` pairs when there are labels."""
        order = self.indices()
        size = self.num_samples()
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
    ) -> None:
        super().__init__()
        _check_positive_int("batch_size", batch_size)
        _check_positive_int("steps_per_execution", steps_per_execution)
        if val_batch_size is not None:
            _check_positive_int("val_batch_size", val_batch_size)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.steps_per_execution = steps_per_execution
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
        return TensorBatches(images.to(device), batch_size, shuffle, seed, rank, world, group, labels, sanity)

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
        return self._loader(self.train_images, self.batch_size, self.shuffle, grouped="train", labels=labels)

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


class MNISTDataModule(TensorDataModule):
    """MNIST for autoencoders: images only for training and validation (the targets are the inputs), trained on
    60,000 and validated on the 10,000 test images as the article does; predictions come with the test labels.

    ``__init__`` only stores settings; the files are read in ``setup``.

    Args:
        data_dir: ``None`` for the embedded copy, a folder of IDX files, or a Keras ``mnist.npz``.
        batch_size: training batch size (the article: 256; 16 for denoising).
        val_batch_size: validation batch size; ``None`` uses ``batch_size`` (as Keras's ``fit``).
        seed: seed of the epoch permutations; ``None`` takes the process seed (``seed_everything``) at setup.
        shuffle: shuffle the training set every epoch.
        train_size: use only the first ``train_size`` training images (quick runs); ``None`` for all.
        val_size: use only the first ``val_size`` test images; ``None`` for all.
        verify_checksums: check IDX files against MNIST's sha256 sums.
        steps_per_execution: image batches per Lightning step of training and validation (Keras's
            ``steps_per_execution``): above 1 each item is a :class:`BatchGroup`, and the model takes one optimizer
            step per batch of it. The results are those of plain batches; Lightning's per-step work is paid once per
            group. On several devices the loaders serve plain batches (DDP synchronises once per Lightning step).
    """

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 256,
        val_batch_size: int | None = None,
        seed: int | None = None,
        shuffle: bool = True,
        train_size: int | None = None,
        val_size: int | None = None,
        verify_checksums: bool = True,
        steps_per_execution: int = 1,
    ) -> None:
        super().__init__(batch_size, val_batch_size, seed, shuffle, steps_per_execution)
        for name, value in (("train_size", train_size), ("val_size", val_size)):
            if value is not None:
                _check_positive_int(name, value)
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.train_size = train_size
        self.val_size = val_size
        self.verify_checksums = verify_checksums

    def load(self) -> None:
        splits = load_mnist(self.data_dir, self.verify_checksums)
        self.train_images = to_image_tensor(splits.x_train[: self.train_size])
        self.train_labels = torch.from_numpy(np.array(splits.y_train[: self.train_size], dtype=np.int64))
        self.val_images = to_image_tensor(splits.x_test[: self.val_size])
        self.val_labels = torch.from_numpy(np.array(splits.y_test[: self.val_size], dtype=np.int64))

    def predict_dataloader(self) -> TensorBatches:
        """The test images in MNIST's order, as ``(images, labels)`` pairs."""
        return super().predict_dataloader()


class LabelledMNISTDataModule(MNISTDataModule):
    """MNIST with each image's digit in every batch: training and validation batches are ``(images, labels)`` pairs,
    as a conditional model (part 4's CVAE) needs. The settings are :class:`MNISTDataModule`'s."""

    labelled_batches = True


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"data.{name} must be a positive integer, got {value!r}: set --data.{name} to 1 or more")
