"""The judge of generated digits: a digit classifier trained on MNIST (its own experiment, ``judge``), and what it
says of a generative model's digits.

A GAN's loss says little about its digits, so the series' generative models (the VAE, the CVAE, the GAN, the CGAN)
are judged by what a good classifier makes of their samples (:func:`judge_model`):

- **label accuracy** (conditional models): the share of digits generated for a label that the judge reads as it;
- **confidence**: the judge's mean top probability (sharp digits score high, blurred ones low);
- **share of each digit** (unconditional models): how the judge spreads the samples over 0-9 (a collapsed
  generator piles them on a few);
- **Fréchet distance**: between the judge's 128 features of the generated digits and of MNIST's test digits, each
  set summed up by its mean and covariance, as FID does with Inception's features (lower is closer).

The classifier is Keras's MNIST convnet example with a second pooling: ``Conv 32 3x3 relu, Conv 64 3x3 relu,
MaxPool 2, MaxPool 2, Dropout 0.25, Flatten, Dense 128 relu, Dropout 0.5, Dense 10``; its config trains it to over
99% on the test images.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from torchae.data import LabelledMNISTDataModule, TensorDataModule, batches_of
from torchae.draws import SeededDropout
from torchae.errors import require, require_rate
from torchae.inputs import CLASSES, check_count, check_images, tracing
from torchae.networks import keras_init_
from torchae.optim import KerasAdam
from torchae.registry import register_experiment
from torchae.series import SeriesModule

__all__ = ["DigitClassifier", "frechet_distance", "judge_features", "judge_model", "judge_samples"]

FEATURES = 128
"""The judge's features: its last hidden layer."""


@register_experiment("judge", epochs=6, batch_size=128, parameters=(313_856, 1_290, 315_146), shipped=True)
class DigitClassifier(SeriesModule):
    """The judge: a convolutional classifier of MNIST digits (Keras's MNIST convnet example).

    Args:
        dropout: the rate of its second dropout (the first is half of it, as in the example: 0.25 and 0.5).
        learning_rate: Adam's learning rate.

    ``features`` gives the 128 features the Fréchet distance compares; ``forward`` the logits of the ten digits.
    ``loss`` is the cross-entropy; ``accuracy`` the share of digits read right.
    """

    loss_names: ClassVar[tuple[str, ...]] = ("loss", "accuracy")
    counted_networks: ClassVar[tuple[str, ...]] = ("body", "head")
    progress_bar_terms: ClassVar[tuple[str, ...]] = ("loss", "accuracy")
    datamodule: ClassVar[type[TensorDataModule]] = LabelledMNISTDataModule

    def __init__(self, dropout: float = 0.5, learning_rate: float = 1e-3) -> None:
        super().__init__()
        require_rate("model.dropout", dropout, "0.5")
        require(learning_rate > 0, "model.learning_rate", learning_rate, "a positive number", "1e-3")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.MaxPool2d(2),  # a second pooling: the dense layer a quarter of the example's (a 1.3 MB file)
            SeededDropout(dropout / 2),
            nn.Flatten(),
            nn.Linear(64 * 6 * 6, FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Sequential(SeededDropout(dropout), nn.Linear(FEATURES, CLASSES))
        keras_init_(self)
        self.draws.bind(self)
        self.example_input_array = torch.zeros(2, 1, 28, 28)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The 128 features of images ``(N, 1, 28, 28)`` in [0, 1]."""
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The logits of the ten digits, ``(N, 10)``, of images checked as a torchae model checks them (their shapes
        only under a tracer, which cannot read values)."""
        return self.head(self.body(check_images(images, check_finite=not tracing(), dtype=self.dtype)))

    def terms(self, batch: Any) -> dict[str, torch.Tensor]:
        images, labels = batch
        logits = self.head(self.body(images))
        accuracy = (logits.argmax(1) == labels).to(logits.dtype).mean()
        return {"loss": F.cross_entropy(logits, labels), "accuracy": accuracy}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        for part in batches_of(batch):
            optimizer.zero_grad()
            terms = self.terms(part)
            self.manual_backward(terms["loss"])
            optimizer.step()
            self.log_terms(terms, "train", batch_size=part[0].shape[0])
        return terms["loss"]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        for part in batches_of(batch):
            self.log_terms(self.terms(part), "val", batch_size=part[0].shape[0])

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """Each image's digit probabilities and the digit read, beside its label."""
        images, labels = batch
        probabilities = self.head(self.body(images)).softmax(1)
        return {"probabilities": probabilities, "digits": probabilities.argmax(1), "labels": labels}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return KerasAdam(self.parameters(), lr=self.hparams.learning_rate)

    def export_parts(self) -> dict[str, nn.Module]:
        """The classifier: images to the logits of the ten digits."""
        return {"classifier": nn.Sequential(self.body, self.head)}

    def export_names(self, part: str) -> tuple[tuple[str, ...], str]:
        return ("images",), "logits"

    def export_example(self, part: str, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        return (torch.rand(batch, 1, 28, 28, generator=generator),)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` ``(N, D)``:
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, in float64 (the trace of the root from the eigenvalues
    of ``S_a S_b``, which are real and non-negative for covariances)."""
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    eigenvalues = torch.linalg.eigvals(cov_a @ cov_b).real.clamp(min=0)
    return float((mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * eigenvalues.sqrt().sum())


@torch.no_grad()
def judge_features(judge: DigitClassifier, images: torch.Tensor) -> torch.Tensor:
    """The judge's features of ``images`` ``(N, 128)``, in eval mode, a thousand at a time."""
    judge.eval()
    return torch.cat([judge.features(part) for part in images.split(1000)])


@torch.no_grad()
def judge_samples(
    judge: DigitClassifier, samples: torch.Tensor, real: torch.Tensor, labels: torch.Tensor | None = None
) -> dict[str, Any]:
    """What ``judge`` says of generated ``samples`` against ``real`` digits (images, or their features from
    :func:`judge_features`, computed once for many verdicts): its confidence, its share of each digit, the Fréchet
    distance of its features, and the label accuracy when the samples were generated for ``labels``."""
    features = judge_features(judge, samples)
    probabilities = judge.head(features).softmax(1)
    digits = probabilities.argmax(1)
    real_features = real if real.dim() == 2 else judge_features(judge, real)
    said: dict[str, Any] = {
        "samples": int(samples.shape[0]),
        "confidence": float(probabilities.max(1).values.mean()),
        "shares": (torch.bincount(digits, minlength=CLASSES).double() / digits.numel()).tolist(),
        "frechet_distance": frechet_distance(features, real_features),
    }
    if labels is not None:
        said["label_accuracy"] = float((digits == labels).double().mean())
    return said


@torch.no_grad()
def judge_model(model: Any, judge: DigitClassifier, real: torch.Tensor, n: int = 10_000, seed: int = 0) -> dict:
    """Judge ``n`` digits that ``model`` generates from its prior (:meth:`~torchae.series.SeriesModule.prior_samples`,
    from a generator seeded with ``seed``) against ``real`` digits or their features: a conditional model makes
    ``n / 10`` of each digit and is judged on their labels too."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    samples, labels = model.eval().prior_samples(check_count(n), generator)
    return judge_samples(judge, samples.float().cpu(), real, None if labels is None else labels.cpu())
