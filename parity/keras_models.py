"""The article's models (part 1's five, part 2's autoencoders of points and its deep sparse
autoencoder, part 3's VAE, part 4's conditional VAE) in Keras 3, with the functional API, as its code builds
them.

Each builder returns ``KerasModels(encoder, decoder, autoencoder, inner)``: ``autoencoder`` is what the article
trains (for denoising, the noise layer followed by the wrapped autoencoder) and ``inner`` the autoencoder without
noise (the same model as ``autoencoder`` for the other four).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np

from parity._keras import import_keras

keras = import_keras(backend=None)  # the models are backend-agnostic (the benchmark runs all three)
layers = keras.layers
Model = keras.Model

__all__ = [
    "AddClippedNoise",
    "KERAS_REFERENCES",
    "KerasReference",
    "KerasModels",
    "Sampling",
    "build_keras",
    "keras_reference",
    "create_cvae",
    "create_vae",
    "deep_cond_ae",
    "load_keras",
    "vae_reconstruction_loss",
]


class KerasModels(NamedTuple):
    encoder: Any
    decoder: Any
    autoencoder: Any
    inner: Any
    extras: dict[str, Any] | None = None
    """Further models of an article's ``models`` dict (the VAE's ``z_mean`` and ``z_log_var`` encoders)."""


@keras.saving.register_keras_serializable(package="torchae")
class AddClippedNoise(layers.Layer):
    """``clip(x + N(mean, stddev), 0, 1)`` in training and inference alike: the article's ``Lambda(add_noise)``
    written as a serialisable layer with its own seed (Keras's ``GaussianNoise`` is off outside training)."""

    def __init__(self, mean: float = 0.5, stddev: float = 0.5, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean, self.stddev, self.seed = mean, stddev, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x: Any) -> Any:
        noise = keras.random.normal(keras.ops.shape(x), mean=self.mean, stddev=self.stddev, seed=self.seed_generator)
        return keras.ops.clip(x + noise, 0.0, 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev, "seed": self.seed}


Builder = TypeVar("Builder", bound=Callable[..., Any])


@dataclass(frozen=True)
class KerasReference:
    """The article's Keras model of one experiment, as its code builds and compiles it.

    Attributes:
        builder: builds the models (encoder, decoder, the trained model, the autoencoder).
        learning_rate: Adam's learning rate as the article compiles it.
        loss: the loss as the article compiles it.
        labels: how the model of a conditional experiment takes the labels, after the inputs (``None``: it takes
            none).
        checks: the experiment's own parity checks, ``checks(name, images, labels, seed)`` (part 5's GANs: two
            networks, two optimizers); ``None``: the autoencoder checks of :mod:`parity.checks`.
    """

    builder: Callable[..., Any]
    learning_rate: float = 1e-3
    loss: Any = "binary_crossentropy"
    labels: Callable[[np.ndarray], list[np.ndarray]] | None = None
    checks: Callable[..., list[Any]] | None = None


KERAS_REFERENCES: dict[str, KerasReference] = {}
"""The Keras reference of each experiment that has one (its registration says ``keras=True``), by the experiment's
name; each registers beside its builder (:func:`keras_reference`)."""


def keras_reference(
    *names: str,
    learning_rate: float = 1e-3,
    loss: Any = "binary_crossentropy",
    labels: Callable[[np.ndarray], list[np.ndarray]] | None = None,
    checks: Callable[..., list[Any]] | None = None,
) -> Callable[[Builder], Builder]:
    """Register the decorated builder as the Keras reference of experiments ``names``, compiled as the article does
    (``checks``: the experiment's own parity checks, see :class:`KerasReference`)."""

    def register(builder: Builder) -> Builder:
        for name in names:
            KERAS_REFERENCES[name] = KerasReference(builder, learning_rate, loss, labels, checks)
        return builder

    return register


def _assemble(input_img: Any, encoded: Any, input_encoded: Any, decoded: Any) -> KerasModels:
    encoder = Model(input_img, encoded, name="encoder")
    decoder = Model(input_encoded, decoded, name="decoder")
    autoencoder = Model(input_img, decoder(encoder(input_img)), name="autoencoder")
    return KerasModels(encoder, decoder, autoencoder, autoencoder)


@keras_reference("dense")
def create_dense_ae(encoding_dim: int = 49) -> KerasModels:
    input_img = keras.Input(shape=(28, 28, 1))
    encoded = layers.Dense(encoding_dim, activation="relu")(layers.Flatten()(input_img))
    input_encoded = keras.Input(shape=(encoding_dim,))
    decoded = layers.Reshape((28, 28, 1))(layers.Dense(28 * 28, activation="sigmoid")(input_encoded))
    return _assemble(input_img, encoded, input_encoded, decoded)


@keras_reference("deep")
def create_deep_dense_ae(encoding_dim: int = 49, activity_regularizer: Any = None) -> KerasModels:
    input_img = keras.Input(shape=(28, 28, 1))
    x = layers.Dense(encoding_dim * 3, activation="relu")(layers.Flatten()(input_img))
    x = layers.Dense(encoding_dim * 2, activation="relu")(x)
    encoded = layers.Dense(encoding_dim, activation="linear", activity_regularizer=activity_regularizer)(x)
    input_encoded = keras.Input(shape=(encoding_dim,))
    x = layers.Dense(encoding_dim * 2, activation="relu")(input_encoded)
    x = layers.Dense(encoding_dim * 3, activation="relu")(x)
    decoded = layers.Reshape((28, 28, 1))(layers.Dense(28 * 28, activation="sigmoid")(x))
    return _assemble(input_img, encoded, input_encoded, decoded)


@keras_reference("conv")
def create_deep_conv_ae() -> KerasModels:
    input_img = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(128, (7, 7), activation="relu", padding="same")(input_img)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(32, (2, 2), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    encoded = layers.Conv2D(1, (7, 7), activation="relu", padding="same")(x)
    input_encoded = keras.Input(shape=(7, 7, 1))
    x = layers.Conv2D(32, (7, 7), activation="relu", padding="same")(input_encoded)
    x = layers.UpSampling2D((2, 2))(x)
    x = layers.Conv2D(128, (2, 2), activation="relu", padding="same")(x)
    x = layers.UpSampling2D((2, 2))(x)
    decoded = layers.Conv2D(1, (7, 7), activation="sigmoid", padding="same")(x)
    return _assemble(input_img, encoded, input_encoded, decoded)


@keras_reference("sparse")
def create_sparse_ae(encoding_dim: int = 16, lambda_l1: float = 1e-5) -> KerasModels:
    return create_deep_dense_ae(encoding_dim, activity_regularizer=keras.regularizers.L1L2(l1=lambda_l1))


def _points_models(hidden: tuple[int, ...], activation: str | None) -> KerasModels:
    input_dots = keras.Input((2,))
    x = input_dots
    for width in hidden:
        x = layers.Dense(width, activation=activation)(x)
    code = layers.Dense(1, activation="linear")(x)
    input_code = keras.Input((1,))
    x = input_code
    for width in hidden[::-1]:
        x = layers.Dense(width, activation=activation)(x)
    out = layers.Dense(2, activation="linear")(x)
    encoder = Model(input_dots, code, name="encoder")
    decoder = Model(input_code, out, name="decoder")
    autoencoder = Model(input_dots, decoder(encoder(input_dots)), name="autoencoder")
    return KerasModels(encoder, decoder, autoencoder, autoencoder)


@keras_reference("dots_linear", learning_rate=0.01, loss="mse")
def linear_ae() -> KerasModels:
    """Part 2's ``linear_ae()``: ``Dense(1)``, ``Dense(2)``, both linear (split at the code into an encoder and a
    decoder, which the article's single ``Model`` does not name)."""
    return _points_models((), None)


@keras_reference("dots_overfit", learning_rate=3e-4, loss="mse")
@keras_reference("dots_deep", learning_rate=0.003, loss="mse")
def deep_ae() -> KerasModels:
    """Part 2's ``deep_ae()``: 2-64-64-1-64-64-2, ELU, a linear code and output."""
    return _points_models((64, 64), "elu")


@keras_reference("deep_sparse", learning_rate=3e-4)
def create_deep_sparse_ae(lambda_l1: float = 0.0, encoding_dim: int = 16) -> KerasModels:
    """Part 2's ``create_deep_sparse_ae(lambda_l1)``: 784-64-48-32-16 (a linear code with an L1 activity
    regulariser) and the mirror."""
    input_img = keras.Input(shape=(28, 28, 1))
    x = layers.Dense(encoding_dim * 4, activation="relu")(layers.Flatten()(input_img))
    x = layers.Dense(encoding_dim * 3, activation="relu")(x)
    x = layers.Dense(encoding_dim * 2, activation="relu")(x)
    regulariser = keras.regularizers.L1L2(l1=lambda_l1, l2=0.0)
    encoded = layers.Dense(encoding_dim, activation="linear", activity_regularizer=regulariser)(x)
    input_encoded = keras.Input(shape=(encoding_dim,))
    x = layers.Dense(encoding_dim * 2, activation="relu")(input_encoded)
    x = layers.Dense(encoding_dim * 3, activation="relu")(x)
    x = layers.Dense(encoding_dim * 4, activation="relu")(x)
    decoded = layers.Reshape((28, 28, 1))(layers.Dense(28 * 28, activation="sigmoid")(x))
    return _assemble(input_img, encoded, input_encoded, decoded)


@keras_reference("deep_sparse_l1", learning_rate=3e-4)
def create_deep_sparse_l1_ae(lambda_l1: float = 1e-5, encoding_dim: int = 16) -> KerasModels:
    """Part 2's second run: ``create_deep_sparse_ae(0.00001)``."""
    return create_deep_sparse_ae(lambda_l1, encoding_dim)


def create_denoising_model(
    wrapped: KerasModels, mean: float = 0.5, stddev: float = 0.5, seed: int | None = None
) -> KerasModels:
    input_img = keras.Input(shape=(28, 28, 1))
    noiser = Model(input_img, AddClippedNoise(mean, stddev, seed)(input_img), name="noiser")
    denoiser = Model(input_img, wrapped.autoencoder(noiser(input_img)), name="denoiser")
    return KerasModels(wrapped.encoder, wrapped.decoder, denoiser, wrapped.autoencoder)


@keras_reference("denoising")
def create_denoising_ae(mean: float = 0.5, stddev: float = 0.5) -> KerasModels:
    """The article's denoising model: its noise layer in front of the dense autoencoder."""
    return create_denoising_model(create_dense_ae(), mean, stddev)


@keras.saving.register_keras_serializable(package="torchae")
class Sampling(layers.Layer):
    """The article's ``Lambda(sampling)``: ``z_mean + exp(z_log_var / 2) * eps``, ``eps ~ N(0, I)`` drawn from the
    layer's own seed generator, in training and inference alike. It also adds the KL divergence of ``q(z|x)`` from
    the prior, ``-0.5 * sum(1 + z_log_var - z_mean**2 - exp(z_log_var))`` per image, as a loss of the model, scaled
    as the article's ``vae_loss`` scales it (``/ 2 / 784``, averaged over the batch).

    ``noise`` (an array ``(N, latent_dim)``), when set, replaces the draw: the parity check feeds both frameworks
    the same ``eps``.
    """

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.noise: Any = None

    def call(self, inputs: Any) -> Any:
        z_mean, z_log_var = inputs
        kl = -0.5 * keras.ops.sum(1 + z_log_var - keras.ops.square(z_mean) - keras.ops.exp(z_log_var), axis=-1)
        self.add_loss(keras.ops.mean(kl) / 2 / 784)
        if self.noise is None:
            epsilon = keras.random.normal(keras.ops.shape(z_mean), seed=self.seed_generator)
        else:
            epsilon = keras.ops.convert_to_tensor(self.noise)
        return z_mean + keras.ops.exp(z_log_var / 2) * epsilon

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="torchae")
def vae_reconstruction_loss(x: Any, decoded: Any) -> Any:
    """The article's ``vae_loss`` without its KL term (which :class:`Sampling` adds): ``784 * binary_crossentropy
    / 2 / 784`` per image."""
    flat = (-1, 28 * 28)
    return keras.losses.binary_crossentropy(keras.ops.reshape(x, flat), keras.ops.reshape(decoded, flat)) / 2


@keras_reference("vae", learning_rate=1e-4, loss=vae_reconstruction_loss)
def create_vae(latent_dim: int = 2, dropout_rate: float = 0.3) -> KerasModels:
    """The article's ``create_vae()`` in Keras 3 (``ops`` for ``K``, a :class:`Sampling` layer with a
    ``SeedGenerator`` for the ``Lambda``, the KL term a loss of the model). ``encoder`` is its ``encoder`` (a
    sampled code); ``extras`` holds its ``z_meaner`` (``z_mean``, what torchae's ``encode`` gives) and ``z_lvarer``
    (``z_log_var``)."""

    def apply_bn_and_dropout(x: Any) -> Any:
        return layers.Dropout(dropout_rate)(layers.BatchNormalization()(x))

    input_img = keras.Input(shape=(28, 28, 1))
    x = layers.Flatten()(input_img)
    x = apply_bn_and_dropout(layers.Dense(256, activation="relu")(x))
    x = apply_bn_and_dropout(layers.Dense(128, activation="relu")(x))
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    sampled = Sampling(name="sampling")([z_mean, z_log_var])
    encoder = Model(input_img, sampled, name="encoder")

    z = keras.Input(shape=(latent_dim,))
    x = apply_bn_and_dropout(layers.LeakyReLU()(layers.Dense(128)(z)))
    x = apply_bn_and_dropout(layers.LeakyReLU()(layers.Dense(256)(x)))
    decoded = layers.Reshape((28, 28, 1))(layers.Dense(28 * 28, activation="sigmoid")(x))
    decoder = Model(z, decoded, name="decoder")

    vae = Model(input_img, decoder(encoder(input_img)), name="vae")
    extras = {
        "z_mean": Model(input_img, z_mean, name="z_meaner"),
        "z_log_var": Model(input_img, z_log_var, name="z_lvarer"),
    }
    return KerasModels(encoder, decoder, vae, vae, extras)


@keras_reference(
    "dots_conditional", learning_rate=1e-3, loss="mse", labels=lambda labels: [labels.astype("float32")[:, None]]
)
def deep_cond_ae() -> KerasModels:
    """The article's ``deep_cond_ae()`` (part 4): ``concatenate([dots, label])``, Dense 64 ELU, Dense 64 ELU, a linear
    1-D code; ``concatenate([code, label])``, Dense 64 ELU, Dense 64 ELU, ``Dense(2)``; the label is ``Input((1,))``.
    ``encoder`` takes ``[dots, label]``, ``decoder`` ``[code, label]``."""
    input_dots = keras.Input((2,))
    input_lbls = keras.Input((1,))
    x = layers.concatenate([input_dots, input_lbls])
    x = layers.Dense(64, activation="elu")(x)
    x = layers.Dense(64, activation="elu")(x)
    code = layers.Dense(1, activation="linear")(x)
    encoder = Model([input_dots, input_lbls], code, name="encoder")
    input_code = keras.Input((1,))
    input_lbls_d = keras.Input((1,))
    x = layers.concatenate([input_code, input_lbls_d])
    x = layers.Dense(64, activation="elu")(x)
    x = layers.Dense(64, activation="elu")(x)
    out = layers.Dense(2, activation="linear")(x)
    decoder = Model([input_code, input_lbls_d], out, name="decoder")
    cdae = Model([input_dots, input_lbls], decoder([encoder([input_dots, input_lbls]), input_lbls]), name="cdae")
    return KerasModels(encoder, decoder, cdae, cdae)


@keras_reference(
    "cvae",
    learning_rate=1e-3,
    loss=vae_reconstruction_loss,
    labels=lambda labels: [keras.utils.to_categorical(labels, 10)] * 2,
)
def create_cvae(latent_dim: int = 8, dropout_rate: float = 0.3, num_classes: int = 10) -> KerasModels:
    """The article's ``create_cvae()`` in Keras 3 (part 4): part 3's port (:func:`create_vae`) with a one-hot label
    concatenated to the flattened image and to the code. ``encoder`` takes ``[image, label]``, ``decoder``
    ``[z, label]``; ``autoencoder`` is the article's ``cvae`` (``[image, label, label]``); ``extras`` holds
    ``z_meaner``, ``z_lvarer`` and ``style_t`` (the mean code decoded with another label)."""

    def apply_bn_and_dropout(x: Any) -> Any:
        return layers.Dropout(dropout_rate)(layers.BatchNormalization()(x))

    input_img = keras.Input(shape=(28, 28, 1))
    input_lbl = keras.Input(shape=(num_classes,), dtype="float32")
    x = layers.concatenate([layers.Flatten()(input_img), input_lbl])
    x = apply_bn_and_dropout(layers.Dense(256, activation="relu")(x))
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    sampled = Sampling(name="sampling")([z_mean, z_log_var])
    encoder = Model([input_img, input_lbl], sampled, name="encoder")
    z_meaner = Model([input_img, input_lbl], z_mean, name="z_meaner")

    z = keras.Input(shape=(latent_dim,))
    input_lbl_d = keras.Input(shape=(num_classes,), dtype="float32")
    x = layers.concatenate([z, input_lbl_d])
    x = apply_bn_and_dropout(layers.LeakyReLU()(layers.Dense(256)(x)))
    decoded = layers.Reshape((28, 28, 1))(layers.Dense(28 * 28, activation="sigmoid")(x))
    decoder = Model([z, input_lbl_d], decoded, name="decoder")

    inputs = [input_img, input_lbl, input_lbl_d]
    cvae = Model(inputs, decoder([encoder([input_img, input_lbl]), input_lbl_d]), name="cvae")
    extras = {
        "z_mean": z_meaner,
        "z_log_var": Model([input_img, input_lbl], z_log_var, name="z_lvarer"),
        "style_t": Model(inputs, decoder([z_meaner([input_img, input_lbl]), input_lbl_d]), name="style_transfer"),
    }
    return KerasModels(encoder, decoder, cvae, cvae, extras)


def build_keras(name: str, seed: int | None = None, compile: bool = True, **settings: Any) -> KerasModels:
    """Build (and by default compile with Adam and the article's loss) one of the article's models.

    Args:
        name: an experiment of :data:`KERAS_REFERENCES` (``dense``, ..., ``vae``, ``cvae``).
        seed: seeds Keras's initialisers and noise (``keras.utils.set_random_seed``); ``None`` leaves them.
        compile: compile the trained model as the article does.
        settings: arguments of the builder (``dropout_rate=0.0`` for the VAE's step check).
    """
    if name not in KERAS_REFERENCES:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(KERAS_REFERENCES)}")
    if seed is not None:
        keras.utils.set_random_seed(seed)  # the initialisers, and the noise layer's seed generator
    reference = KERAS_REFERENCES[name]
    models = reference.builder(**settings)
    if compile:
        models.autoencoder.compile(optimizer=keras.optimizers.Adam(reference.learning_rate), loss=reference.loss)
    return models


def load_keras(path: str) -> Any:
    """Load a ``.keras`` or ``.h5`` model with ``safe_mode=True`` (no Python code from the file runs)."""
    return keras.saving.load_model(path, compile=False, safe_mode=True)
