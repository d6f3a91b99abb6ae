"""MNIST's datamodules: the images (and, for a conditional model, their digits) as whole-tensor batches."""

from __future__ import annotations

import numpy as np
import torch

from torchae.data.batches import TensorBatches, TensorDataModule, check_positive_int
from torchae.data.files import check_data_dir, load_mnist, to_image_tensor

__all__ = ["LabelledMNISTDataModule", "MNISTDataModule"]


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
        drop_last: leave out the last training batch of an epoch when it is smaller than ``batch_size`` (the
            article's GAN loop takes full batches only).
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
        drop_last: bool = False,
    ) -> None:
        super().__init__(batch_size, val_batch_size, seed, shuffle, steps_per_execution, drop_last)
        for name, value in (("train_size", train_size), ("val_size", val_size)):
            if value is not None:
                check_positive_int(name, value)
        if data_dir is not None:
            check_data_dir(data_dir)  # before a launch: every rank of a run would fail on it alike
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
