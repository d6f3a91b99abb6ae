"""MNIST read offline from the four IDX files or a Keras ``mnist.npz``, verified by sha256, every size bounded
before anything is allocated."""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from torchae.errors import DataError, special_file_kind

__all__ = ["MAX_ITEMS", "MNIST_FILES", "MNISTSplits", "embedded_mnist_dir", "load_mnist", "to_image_tensor"]


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


def check_data_dir(data_dir: str | Path | None) -> Path:
    """The MNIST source ``data_dir`` names (the embedded copy for ``None``), if it exists and is a folder or a
    regular file: checked where it is given, so that a run (every rank of one) fails before it starts.

    Raises:
        DataError: the path does not exist, or is a FIFO, a device or a socket.
    """
    path = embedded_mnist_dir() if data_dir is None else Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(
            f"data_dir {str(path)!r} does not exist: give a folder with the MNIST IDX files or a Keras mnist.npz, "
            "or leave data_dir unset for the embedded copy"
        )
    kind = special_file_kind(path)
    if kind is not None and kind != "a folder":
        raise DataError(
            f"data_dir {str(path)!r} is {kind}, not a file: give a folder with the MNIST IDX files or a Keras mnist.npz"
        )
    return path


def load_mnist(data_dir: str | Path | None = None, verify_checksums: bool = True) -> MNISTSplits:
    """Read MNIST from the package, a folder of IDX files, or a Keras ``mnist.npz``.

    Args:
        data_dir: ``None`` for the embedded copy; a folder with the four IDX files (gzipped or not); or the path
            of a Keras ``mnist.npz``.
        verify_checksums: check IDX files against MNIST's sha256 sums (turn off for other data in MNIST's format).

    Raises:
        DataError: the source is missing, incomplete, damaged or of the wrong shape; the message says which.
    """
    path = check_data_dir(data_dir)
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


def mnist_images(split: str = "test", data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's images as the models take them, and their digits: the one line a user needs in Python.

    Example::

        images, labels = torchae.mnist_images()  # the 10,000 test images (N, 1, 28, 28) in [0, 1], digits (N,)
        sevens = images[labels == 7]

    Args:
        split: ``"test"`` (10,000 images) or ``"train"`` (60,000).
        data_dir: as :func:`load_mnist`'s; ``None`` for the embedded copy.

    Returns:
        float32 ``(N, 1, 28, 28)`` images in [0, 1] (``uint8 / 255``, as the article) and int64 ``(N,)`` labels,
        both writable tensors of their own.
    """
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}: for example mnist_images('test')")
    splits = load_mnist(data_dir)
    images, labels = (splits.x_test, splits.y_test) if split == "test" else (splits.x_train, splits.y_train)
    return to_image_tensor(images), torch.from_numpy(np.array(labels, dtype=np.int64))
