"""Part 6's CVAE-GAN in Keras 3, as the article builds it, trained as it trains it (TensorFlow's ``GradientTape``
with TensorFlow 1's ``RMSPropOptimizer``), and the checks that torchae's is the same model:

- each network's parameter count (encoder, decoder, discriminator);
- the weights both ways;
- each network's outputs on the same inputs, in inference (1e-5): the codes' mean and log variance, the decoded
  digits, the verdict and the l-th layer's activations;
- one step of each side from the same weights, batch, codes, sample noise and dropout masks: the discriminator's
  (``L_GAN``) and the encoder's and decoder's together (``L_prior + L_dis_llike``, ``gamma L_dis_llike - L_GAN``,
  one forward pass): the losses and the updated weights.

The masks and the sample's noise are given on both sides (:class:`~parity.gan_models.GivenDropout`,
:class:`GivenSampling`; torchae's through :meth:`torchae.draws.StepDraws.giving`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from parity._keras import import_keras
from parity.gan_models import (
    GivenDropout,
    KerasGanLoop,
    given_masks,
    rmsprop,
    step_rows,
    structure_rows,
)
from parity.keras_models import keras_reference
from parity.rows import TOLERANCES, Check
from parity.transfer import to_nhwc
from torchae.registry import EXPERIMENTS

keras = import_keras(backend=None)
layers = keras.layers

__all__ = [
    "CVAEGANModels",
    "GivenSampling",
    "KerasCVAEGANLoop",
    "check_cvae_gan",
    "create_cvae_gan",
]

LOG_EPSILON = 1e-10
NETWORKS = ("encoder", "decoder", "discriminator")


class CVAEGANModels(NamedTuple):
    encoder: Any
    decoder: Any
    discriminator: Any


class GivenSampling(layers.Layer):
    """The article's ``sampling`` Lambda: ``z_mean + exp(clip(z_log_var / 2, -2, 2)) * eps``, with ``eps`` drawn
    from a seeded ``keras.random`` stream, or given (``noise``, set before the call)."""

    def __init__(self, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.noise: np.ndarray | None = None

    def call(self, inputs: list[Any]) -> Any:
        z_mean, z_log_var = inputs
        if self.noise is not None:
            epsilon = keras.ops.convert_to_tensor(self.noise)
        else:
            epsilon = keras.random.normal(keras.ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + keras.ops.exp(keras.ops.clip(z_log_var / 2, -2.0, 2.0)) * epsilon


def create_cvae_gan(
    latent_dim: int = 8,
    dropout_rate: float = 0.3,
    num_classes: int = 10,
    dropout: Callable[[float], Any] = layers.Dropout,
    seed: int = 0,
) -> CVAEGANModels:
    """The article's encoder, decoder and discriminator (its ``apply_bn_relu_and_dropout`` as it calls it:
    LeakyReLU and Dropout, the BatchNorm left off)."""

    def block(x: Any) -> Any:
        return dropout(dropout_rate)(layers.LeakyReLU()(x))

    def add_units(x: Any, lbl: Any, side: int) -> Any:
        units = layers.Reshape((side, side, num_classes))(layers.RepeatVector(side * side)(lbl))
        return layers.concatenate([x, units])

    img, lbl = keras.Input((28, 28, 1), name="image"), keras.Input((num_classes,), name="labels")
    z = keras.Input((latent_dim,), name="z")
    x = layers.Conv2D(32, kernel_size=(3, 3), strides=(2, 2), padding="same")(img)
    x = layers.MaxPooling2D((2, 2), padding="same")(block(x))
    x = block(layers.Conv2D(64, kernel_size=(3, 3), padding="same")(x))
    h = block(layers.Dense(64)(layers.concatenate([layers.Flatten()(x), lbl])))
    z_mean, z_log_var = layers.Dense(latent_dim)(h), layers.Dense(latent_dim)(h)
    sample = GivenSampling(seed, name="sampling")([z_mean, z_log_var])
    encoder = keras.Model([img, lbl], [z_mean, z_log_var, sample], name="encoder")

    x = block(layers.Dense(7 * 7 * 128)(layers.concatenate([z, lbl])))
    x = layers.UpSampling2D(size=(2, 2))(layers.Reshape((7, 7, 128))(x))
    x = block(layers.Conv2D(64, kernel_size=(5, 5), padding="same")(x))
    x = block(layers.UpSampling2D(size=(2, 2))(layers.Conv2D(32, kernel_size=(3, 3), padding="same")(x)))
    decoded = layers.Conv2D(1, kernel_size=(5, 5), activation="sigmoid", padding="same")(x)
    decoder = keras.Model([z, lbl], decoded, name="decoder")

    x = layers.Conv2D(128, kernel_size=(7, 7), strides=(2, 2), padding="same")(img)
    x = add_units(block(layers.MaxPooling2D((2, 2), padding="same")(x)), lbl, 7)
    x = block(layers.MaxPooling2D((2, 2), padding="same")(layers.Conv2D(64, kernel_size=(3, 3), padding="same")(x)))
    features = layers.Conv2D(16, kernel_size=(3, 3), padding="same")(x)
    verdict = layers.Dense(1, activation="sigmoid")(layers.Flatten()(block(x)))
    discriminator = keras.Model([img, lbl], [verdict, features], name="discriminator")
    return CVAEGANModels(encoder, decoder, discriminator)


def cvae_gan_losses(
    models: CVAEGANModels, images: Any, one_hot: Any, codes: Any, gamma: float, training: bool = True
) -> dict[str, Any]:
    """The article's losses (dropout on in ``training``), as TensorFlow tensors."""
    import tensorflow as tf

    z_mean, z_log_var, encoded = models.encoder([images, one_hot], training=training)
    decoded_img = models.decoder([encoded, one_hot], training=training)
    decoded_z = models.decoder([codes, one_hot], training=training)
    discr_img, discr_l_img = models.discriminator([images, one_hot], training=training)
    discr_dec_img, discr_l_dec_img = models.discriminator([decoded_img, one_hot], training=training)
    discr_dec_z, _ = models.discriminator([decoded_z, one_hot], training=training)
    clipped = tf.clip_by_value(z_log_var, -2.0, 2.0)
    l_prior = -0.5 * tf.reduce_sum(1.0 + clipped - tf.square(z_mean) - tf.exp(clipped)) / 28 / 28
    log_dis_img = tf.math.log(discr_img + LOG_EPSILON)
    log_dis_dec_z = tf.math.log(1.0 - discr_dec_z + LOG_EPSILON)
    log_dis_dec_img = tf.math.log(1.0 - discr_dec_img + LOG_EPSILON)
    l_gan = -1 / 4 * tf.reduce_sum(log_dis_img + 2 * log_dis_dec_z + log_dis_dec_img) / 28 / 28
    l_dis_llike = (
        tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.sigmoid(discr_l_img), logits=discr_l_dec_img))
        / 28
        / 28
    )
    return {
        "loss": l_gan,
        "prior_loss": l_prior,
        "llike_loss": l_dis_llike,
        "encoder_loss": l_dis_llike + l_prior,
        "decoder_loss": gamma * l_dis_llike - l_gan,
    }


def cvae_gan_step_keras(
    models: CVAEGANModels, side: str, optimizers: dict[str, Any], images: Any, one_hot: Any, codes: Any, gamma: float
) -> dict[str, float]:
    """The article's ``step_d`` (``side="discriminator"``) or ``step`` (``"autoencoder"``: the encoder's and the
    decoder's steps from one forward pass); returns the losses before the step."""
    import tensorflow as tf

    images, one_hot, codes = (tf.constant(array) for array in (images, one_hot, codes))
    with tf.GradientTape(persistent=True) as tape:
        losses = cvae_gan_losses(models, images, one_hot, codes, gamma)
    trained = {"discriminator": {"discriminator": "loss"}, "autoencoder": {"encoder": "encoder_loss"}}
    trained["autoencoder"]["decoder"] = "decoder_loss"
    for network, loss in trained[side].items():
        variables = getattr(models, network).trainable_variables
        gradients = tape.gradient(losses[loss], variables)
        optimizers[network].apply_gradients(zip(gradients, [v.value for v in variables]))
    del tape
    return {name: float(value) for name, value in losses.items()}


def article_optimizers() -> dict[str, Any]:
    return {"encoder": rmsprop(1e-3), "decoder": rmsprop(3e-4), "discriminator": rmsprop(1e-3)}


class KerasCVAEGANLoop(KerasGanLoop):
    """Part 6's loop over the Keras CVAE-GAN, a batch at a time: 3 steps a side, the first encoder-and-decoder step
    on the discriminator's last batch and codes, TensorFlow 1's RMSProp at the article's rates."""

    latent_dim = 8
    conditional = True

    def __init__(self, seed: int = 0, gamma: float = 1.0) -> None:
        from torchae.part5.gan import AlternatingSchedule

        keras.utils.set_random_seed(seed)
        self.models, self.optimizers, self.gamma = create_cvae_gan(seed=seed), article_optimizers(), gamma
        self.schedule = AlternatingSchedule(inner_steps=3, hands_on_batch=True)
        self.rng = np.random.default_rng(seed + 1)

    def train_on(self, images: np.ndarray, one_hot: np.ndarray) -> list[float]:
        """The steps the loop makes on this batch: the discriminator's, the encoder's and decoder's, or where the
        discriminator's turn ends both; each one's ``L_GAN`` before the step."""
        codes = self.codes(images.shape[0])
        side, losses = self.schedule.next_network(), []
        if side is None:
            return losses
        step = functools.partial(cvae_gan_step_keras, self.models, optimizers=self.optimizers, gamma=self.gamma)
        if side == "discriminator":
            losses.append(step(side="discriminator", images=images, one_hot=one_hot, codes=codes)["loss"])
            self.schedule.record(losses[-1])
            if not self.schedule.hands_on():
                return losses
        losses.append(step(side="autoencoder", images=images, one_hot=one_hot, codes=codes)["loss"])
        self.schedule.record(losses[-1])
        return losses

    @property
    def generator(self) -> Any:
        """The decoder: digits from codes and labels."""
        return self.models.decoder

    def validate(self, images: np.ndarray, one_hot: np.ndarray) -> float:
        """``L_GAN`` on ``images`` in inference (dropout off; the encoder's sample still drawn), as torchae's
        ``val_loss``."""
        codes = self.codes(images.shape[0])
        return float(
            cvae_gan_losses(
                self.models, *map(keras.ops.convert_to_tensor, (images, one_hot, codes)), self.gamma, training=False
            )["loss"]
        )


def check_cvae_gan(name: str, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> list[Any]:
    """Every check of the CVAE-GAN on ``images`` and their ``labels``."""
    keras.utils.set_random_seed(seed)
    models = create_cvae_gan(dropout=GivenDropout, seed=seed)
    torch.manual_seed(seed + 1)
    torch_model = EXPERIMENTS[name].model()
    rows, tol = structure_rows(name, models, torch_model), TOLERANCES

    n = images.shape[0]
    rng = np.random.default_rng(seed)
    codes = rng.standard_normal((n, torch_model.latent_dim)).astype(np.float32)
    one_hot, x = np.eye(10, dtype=np.float32)[labels.numpy()], to_nhwc(images)
    torch_model.eval()
    with torch.no_grad():
        t_distribution = torch_model.encoder.distribution(images, labels)
        t_decoded = torch_model.decoder(torch.from_numpy(codes), labels)
        t_verdict, t_features = torch_model.discriminator(images, labels)
    k_mean, k_log_var, _ = models.encoder.predict([x, one_hot], verbose=0)
    k_decoded = models.decoder.predict([codes, one_hot], verbose=0)
    k_verdict, k_features = models.discriminator.predict([x, one_hot], verbose=0)
    outputs = {
        "encoder outputs (z_mean)": np.abs(k_mean - t_distribution.z_mean.numpy()),
        "encoder outputs (z_log_var)": np.abs(k_log_var - t_distribution.z_log_var.numpy()),
        "decoder outputs": np.abs(k_decoded - to_nhwc(t_decoded)),
        "discriminator outputs (verdict)": np.abs(k_verdict - t_verdict.numpy()),
        "discriminator outputs (l-th layer)": np.abs(k_features - to_nhwc(t_features)),
    }
    rows += [Check(name, check, float(diff.max()), tol["forward"], "abs") for check, diff in outputs.items()]

    # One step of each side from the same weights, batch, codes, sample noise and dropout masks.
    noise = rng.standard_normal((n, torch_model.latent_dim)).astype(np.float32)
    models.encoder.get_layer("sampling").noise = noise
    given = {**given_masks(models, torch_model, n, rng), "latent_noise": torch.from_numpy(noise)}
    start = {network: copy.deepcopy(getattr(torch_model, network).state_dict()) for network in NETWORKS}
    keras_start = {network: [w.copy() for w in getattr(models, network).get_weights()] for network in NETWORKS}
    gamma = torch_model.hparams.gamma
    for side, trained in (("discriminator", ("discriminator",)), ("autoencoder", ("encoder", "decoder"))):
        for network in NETWORKS:  # both sides from the same weights
            getattr(torch_model, network).load_state_dict(start[network])
            getattr(models, network).set_weights(keras_start[network])
        k_losses = cvae_gan_step_keras(models, side, article_optimizers(), x, one_hot, codes, gamma)
        torch_model.train()
        optimizers = dict(zip(NETWORKS, torch_model.configure_optimizers(), strict=True))
        with torch_model.draws.giving(given):
            terms = torch_model.step_terms((images, labels), torch.from_numpy(codes), "train", side == "autoencoder")
        for optimizer in optimizers.values():
            optimizer.zero_grad()
        losses = {"discriminator": "loss", "encoder": "encoder_loss", "decoder": "decoder_loss"}
        for network in trained:
            parameters = list(getattr(torch_model, network).parameters())
            terms[losses[network]].backward(inputs=parameters, retain_graph=True)
        for network in trained:
            optimizers[network].step()
        for term in ("loss", "prior_loss", "llike_loss"):
            difference = abs(float(terms[term].detach()) - k_losses[term]) / max(abs(k_losses[term]), 1e-12)
            rows.append(Check(name, f"{side} step: {term}", difference, tol["loss"], "rel"))
        for network in trained:
            k_model, t_module = getattr(models, network), getattr(torch_model, network)
            rows += step_rows(name, network, k_model, t_module, start[network])
    return rows


keras_reference("cvae_gan", checks=check_cvae_gan)(create_cvae_gan)
