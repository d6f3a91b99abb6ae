"""The article's five models in Keras 3, with the functional API, exactly as its code builds them.

Each builder returns ``KerasModels(encoder, decoder, autoencoder, inner)``: ``autoencoder`` is what the article
trains (for denoising, the noise layer followed by the wrapped autoencoder) and ``inner`` the autoencoder without
noise (the same model as ``autoencoder`` for the other four).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from parity._keras import import_keras

keras = import_keras(backend=None)  # the models are backend-agnostic (the benchmark runs all three)
layers = keras.layers
Model = keras.Model

__all__ = ["AddClippedNoise", "KERAS_BUILDERS", "KerasModels", "build_keras", "load_keras"]


class KerasModels(NamedTuple):
    encoder: Any
    decoder: Any
    autoencoder: Any
    inner: Any


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


def _assemble(input_img: Any, encoded: Any, input_encoded: Any, decoded: Any) -> KerasModels:
    encoder = Model(input_img, encoded, name="encoder")
    decoder = Model(input_encoded, decoded, name="decoder")
    autoencoder = Model(input_img, decoder(encoder(input_img)), name="autoencoder")
    return KerasModels(encoder, decoder, autoencoder, autoencoder)


def create_dense_ae(encoding_dim: int = 49) -> KerasModels:
    input_img = keras.Input(shape=(28, 28, 1))
    encoded = layers.Dense(encoding_dim, activation="relu")(layers.Flatten()(input_img))
    input_encoded = keras.Input(shape=(encoding_dim,))
    decoded = layers.Reshape((28, 28, 1))(layers.Dense(28 * 28, activation="sigmoid")(input_encoded))
    return _assemble(input_img, encoded, input_encoded, decoded)


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


def create_sparse_ae(encoding_dim: int = 16, lambda_l1: float = 1e-5) -> KerasModels:
    return create_deep_dense_ae(encoding_dim, activity_regularizer=keras.regularizers.L1L2(l1=lambda_l1))


def create_denoising_model(
    wrapped: KerasModels, mean: float = 0.5, stddev: float = 0.5, seed: int | None = None
) -> KerasModels:
    input_img = keras.Input(shape=(28, 28, 1))
    noiser = Model(input_img, AddClippedNoise(mean, stddev, seed)(input_img), name="noiser")
    denoiser = Model(input_img, wrapped.autoencoder(noiser(input_img)), name="denoiser")
    return KerasModels(wrapped.encoder, wrapped.decoder, denoiser, wrapped.autoencoder)


def create_denoising_ae(mean: float = 0.5, stddev: float = 0.5) -> KerasModels:
    """The article's denoising model: its noise layer in front of the dense autoencoder."""
    return create_denoising_model(create_dense_ae(), mean, stddev)


KERAS_BUILDERS = {
    "dense": create_dense_ae,
    "deep": create_deep_dense_ae,
    "conv": create_deep_conv_ae,
    "denoising": create_denoising_ae,
    "sparse": create_sparse_ae,
}
"""The article's Keras builder of each experiment of :data:`torchae.registry.EXPERIMENTS`, by the same name."""


def build_keras(name: str, seed: int | None = None, compile: bool = True) -> KerasModels:
    """Build (and by default compile with Adam and binary cross-entropy, as the article) one of the five models.

    Args:
        name: ``dense``, ``deep``, ``conv``, ``denoising`` or ``sparse``.
        seed: seeds Keras's initialisers and noise (``keras.utils.set_random_seed``); ``None`` leaves them.
        compile: compile the trained model as the article does.
    """
    if name not in KERAS_BUILDERS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(KERAS_BUILDERS)}")
    if seed is not None:
        keras.utils.set_random_seed(seed)  # the initialisers, and the noise layer's seed generator
    models = KERAS_BUILDERS[name]()
    if compile:
        models.autoencoder.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy")
    return models


def load_keras(path: str) -> Any:
    """Load a ``.keras`` or ``.h5`` model with ``safe_mode=True`` (no Python code from the file runs)."""
    return keras.saving.load_model(path, compile=False, safe_mode=True)
