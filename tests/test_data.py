"""MNIST reading (every source format and every way it can be damaged) and the datamodule's batches."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch

from torchae.data import MNIST_FILES, DataError, MNISTDataModule, TensorBatches, embedded_mnist_dir, load_mnist


def test_embedded_copy_is_mnist(mnist):
    assert mnist.x_train.shape == (60_000, 28, 28) and mnist.x_test.shape == (10_000, 28, 28)
    assert mnist.x_train.dtype == np.uint8
    assert list(mnist.y_train[:5]) == [5, 0, 4, 1, 9] and list(mnist.y_test[:5]) == [7, 2, 1, 0, 4]
    assert np.bincount(mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert abs(mnist.x_train.mean() - 33.3184) < 1e-3


@pytest.fixture
def idx_dir(tmp_path):
    """A copy of the embedded gzipped IDX files."""
    for name in MNIST_FILES:
        shutil.copy(embedded_mnist_dir() / f"{name}.gz", tmp_path / f"{name}.gz")
    return tmp_path


@pytest.fixture
def plain_idx_dir(tmp_path):
    for name in MNIST_FILES:
        (tmp_path / name).write_bytes(gzip.decompress((embedded_mnist_dir() / f"{name}.gz").read_bytes()))
    return tmp_path


def test_gzipped_and_plain_idx_folders_and_npz_give_the_same_arrays(mnist, idx_dir, plain_idx_dir, tmp_path):
    npz = tmp_path / "mnist.npz"
    np.savez_compressed(npz, x_train=mnist.x_train, y_train=mnist.y_train, x_test=mnist.x_test, y_test=mnist.y_test)
    for source in (idx_dir, plain_idx_dir, npz, str(npz)):
        loaded = load_mnist(source)
        assert np.array_equal(loaded.x_train, mnist.x_train) and np.array_equal(loaded.y_test, mnist.y_test)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist: give a folder with the MNIST IDX files"):
        load_mnist(tmp_path / "nowhere")


def test_folder_with_missing_files(idx_dir):
    (idx_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="lacks t10k-labels-idx1-ubyte"):
        load_mnist(idx_dir)


def test_truncated_gzip(idx_dir):
    path = idx_dir / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="not a complete gzip file"):
        load_mnist(idx_dir)


def test_truncated_idx(plain_idx_dir):
    path = plain_idx_dir / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        load_mnist(plain_idx_dir)


def test_checksum_failure_and_its_opt_out(plain_idx_dir):
    path = plain_idx_dir / "t10k-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="does not match MNIST's sha256 checksum"):
        load_mnist(plain_idx_dir)
    assert load_mnist(plain_idx_dir, verify_checksums=False).x_test[-1, -1, -1] == data[-1]


def test_wrong_magic_number(plain_idx_dir):
    images = plain_idx_dir / "t10k-images-idx3-ubyte"
    images.write_bytes((plain_idx_dir / "t10k-labels-idx1-ubyte").read_bytes())
    with pytest.raises(DataError, match="magic number 2049, expected 2051"):
        load_mnist(plain_idx_dir)


def test_npz_without_the_expected_arrays(tmp_path, mnist):
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=mnist.x_train[:10], y_train=mnist.y_train[:10])
    with pytest.raises(DataError, match="lacks the arrays x_test, y_test"):
        load_mnist(npz)


def test_damaged_npz(tmp_path):
    npz = tmp_path / "mnist.npz"
    npz.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_mnist(npz)


def test_images_of_the_wrong_size(tmp_path):
    npz = tmp_path / "big.npz"
    images = np.zeros((4, 32, 32), np.uint8)
    np.savez(npz, x_train=images, y_train=np.zeros(4), x_test=images, y_test=np.zeros(4))
    with pytest.raises(DataError, match=r"shape \(4, 32, 32\), expected \(N, 28, 28\)"):
        load_mnist(npz)


def test_datamodule_reads_nothing_in_init_and_loads_in_setup(tmp_path):
    """``__init__`` only checks that the folder exists (a launch on several devices then fails before rank 1
    starts); the files are read in ``setup``."""
    module = MNISTDataModule(data_dir=str(tmp_path))  # an empty folder: nothing is read yet
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        module.setup("fit")
    with pytest.raises(DataError, match="'/does/not/exist' does not exist"):
        MNISTDataModule(data_dir="/does/not/exist")


@pytest.mark.parametrize(("key", "value"), [("batch_size", 0), ("batch_size", -4), ("train_size", 0)])
def test_datamodule_refuses_non_positive_sizes(key, value):
    with pytest.raises(ValueError, match=f"{key} must be a positive integer"):
        MNISTDataModule(**{key: value})


def test_datamodule_serves_the_article_splits():
    module = MNISTDataModule(batch_size=256, seed=0)
    module.setup("fit")
    train, val = module.train_dataloader(), module.val_dataloader()
    assert module.train_images.shape == (60_000, 1, 28, 28) and module.val_images.shape == (10_000, 1, 28, 28)
    assert float(module.train_images.max()) == 1.0 and module.train_images.dtype == torch.float32
    assert len(train) == 235 and len(val) == 40
    sizes = [batch.shape[0] for batch in train]
    assert sizes[:-1] == [256] * 234 and sizes[-1] == 96  # as Keras: 60,000 = 234 * 256 + 96
    assert torch.equal(torch.cat(list(val)), module.val_images)


def test_shuffling_follows_the_seed_and_the_epoch():
    images = torch.arange(100, dtype=torch.float32).reshape(100, 1, 1, 1)

    def order(seed, epoch):
        batches = TensorBatches(images, 7, shuffle=True, seed=seed)
        batches.set_epoch(epoch)
        return torch.cat(list(batches)).flatten()

    assert torch.equal(order(0, 0), order(0, 0))
    assert not torch.equal(order(0, 0), order(0, 1))
    assert not torch.equal(order(0, 0), order(1, 0))
    assert sorted(order(3, 2).tolist()) == list(range(100))  # a permutation: every sample once


def test_distributed_shards_take_each_sample_at_most_once_and_equal_steps():
    """103 images on 2 ranks: 51 each (a rank that ran one step more would leave DDP waiting for the other), no
    sample twice, and the one left over changes with the epoch's permutation."""
    images = torch.arange(103, dtype=torch.float32).reshape(103, 1, 1, 1)
    for shuffle in (True, False):
        left_over = set()
        for epoch in (5, 6):
            shards = []
            for rank in range(2):
                batches = TensorBatches(images, 8, shuffle=shuffle, seed=4, rank=rank, world_size=2)
                batches.set_epoch(epoch)
                assert len(list(batches)) == len(batches) == 7
                shards.append(torch.cat(list(batches)).flatten().tolist())
            assert len(shards[0]) == len(shards[1]) == 51
            assert not set(shards[0]) & set(shards[1])
            left_over |= set(range(103)) - set(shards[0] + shards[1])
        assert len(left_over) == (2 if shuffle else 1)


def test_datamodule_seed_defaults_to_the_process_seed_and_is_checkpointed():
    torch.manual_seed(1234)
    module = MNISTDataModule(train_size=64, val_size=64)
    module.setup("fit")
    assert module.seed == 1234
    other = MNISTDataModule(train_size=64, val_size=64)
    other.load_state_dict(module.state_dict())
    other.setup("fit")
    a, b = module.train_dataloader(), other.train_dataloader()
    a.set_epoch(3), b.set_epoch(3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
