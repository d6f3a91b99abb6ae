"""Part 5's GAN and conditional GAN in Keras 3, as the article builds them, trained as it trains them (TensorFlow's
``GradientTape`` with TensorFlow 1's ``RMSPropOptimizer``), and the checks that torchae's are the same models:

- each network's parameter count;
- the weights both ways (Keras to torchae and back);
- each network's outputs on the same inputs, in inference (1e-5);
- one step of each optimizer (the discriminator's and the generator's) from the same weights, on the same batch,
  codes and dropout masks: the loss and the updated weights (1e-5).

The same masks on both sides: the check builds the Keras models with :class:`GivenDropout` layers (Keras's dropout
arithmetic on given uniform numbers) and hands torchae the same numbers through its model's draws
(:meth:`torchae.draws.StepDraws.giving`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from parity._keras import import_keras
from parity.keras_models import keras_reference
from parity.rows import TOLERANCES, Check
from parity.transfer import keras_to_torch, layer_pairs, to_nchw, to_nhwc, torch_to_keras, worst_weight_difference
from torchae.registry import EXPERIMENTS

keras = import_keras(backend=None)
layers = keras.layers

__all__ = [
    "ArticleBatches",
    "GanModels",
    "GivenDropout",
    "KerasGanLoop",
    "article_batches",
    "check_gan",
    "create_gan",
    "gan_step_keras",
]

LOG_EPSILON = 1e-10


class GanModels(NamedTuple):
    generator: Any
    discriminator: Any


class GivenDropout(layers.Layer):
    """Keras's dropout on given uniform numbers: ``x * (u < 1 - rate) * (1 / (1 - rate))`` in training, where
    ``uniform`` (set before the call, in the layer's input layout) replaces the layer's own draw."""

    def __init__(self, rate: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = rate
        self.uniform: np.ndarray | None = None

    def call(self, x: Any, training: bool = False) -> Any:
        if not training or self.rate == 0:
            return x
        keep = 1.0 - self.rate
        return x * keras.ops.cast(keras.ops.convert_to_tensor(self.uniform) < keep, x.dtype) * (1.0 / keep)


def create_gan(
    latent_dim: int = 2,
    dropout_rate: float = 0.3,
    num_classes: int = 10,
    conditional: bool = True,
    dropout: Callable[[float], Any] = layers.Dropout,
) -> GanModels:
    """The article's generator and discriminator (the CGAN's, or without labels the GAN's)."""
    z = keras.Input((latent_dim,), name="z")
    lbl = keras.Input((num_classes,), name="labels")
    img = keras.Input((28, 28, 1), name="image")
    x = layers.concatenate([z, lbl]) if conditional else z
    x = layers.Dense(7 * 7 * 64, activation="relu")(x)
    x = dropout(dropout_rate)(x)
    x = layers.Reshape((7, 7, 64))(x)
    x = layers.UpSampling2D(size=(2, 2))(x)
    x = layers.Conv2D(64, kernel_size=(5, 5), activation="relu", padding="same")(x)
    x = dropout(dropout_rate)(x)
    x = layers.Conv2D(32, kernel_size=(3, 3), activation="relu", padding="same")(x)
    x = dropout(dropout_rate)(x)
    x = layers.UpSampling2D(size=(2, 2))(x)
    generated = layers.Conv2D(1, kernel_size=(5, 5), activation="sigmoid", padding="same")(x)
    generator = keras.Model([z, lbl] if conditional else z, generated, name="generator")

    x = layers.Conv2D(128, kernel_size=(7, 7), strides=(2, 2), padding="same")(img)
    if conditional:  # the article's add_units_to_conv2d
        units = layers.RepeatVector(14 * 14)(lbl)
        x = layers.concatenate([x, layers.Reshape((14, 14, num_classes))(units)])
    x = layers.LeakyReLU()(x)
    x = dropout(dropout_rate)(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(128, kernel_size=(3, 3), padding="same")(x)
    x = layers.LeakyReLU()(x)
    x = dropout(dropout_rate)(x)
    verdict = layers.Dense(1, activation="sigmoid")(layers.Flatten()(x))
    discriminator = keras.Model([img, lbl] if conditional else img, verdict, name="discriminator")
    return GanModels(generator, discriminator)


def _inputs(main: Any, one_hot: Any, conditional: bool) -> Any:
    return [main, one_hot] if conditional else main


def gan_losses(
    models: GanModels, images: Any, one_hot: Any, codes: Any, conditional: bool, training: bool = True
) -> dict[str, Any]:
    """The article's ``L_dis`` and ``L_gen`` (dropout on in ``training``), as TensorFlow tensors."""
    import tensorflow as tf

    generated = models.generator(_inputs(codes, one_hot, conditional), training=training)
    discr_img = models.discriminator(_inputs(images, one_hot, conditional), training=training)
    discr_gen_z = models.discriminator(_inputs(generated, one_hot, conditional), training=training)
    log_dis_img = tf.reduce_mean(-tf.math.log(discr_img + LOG_EPSILON))
    log_dis_gen_z = tf.reduce_mean(-tf.math.log(1.0 - discr_gen_z + LOG_EPSILON))
    return {"loss": 0.5 * (log_dis_gen_z + log_dis_img), "generator_loss": -log_dis_gen_z}


def rmsprop(learning_rate: float) -> Any:
    """The article's optimizer: TensorFlow 1's ``RMSPropOptimizer`` (decay 0.9, no momentum, epsilon 1e-10)."""
    import tensorflow as tf

    return tf.compat.v1.train.RMSPropOptimizer(learning_rate)


def gan_step_keras(
    models: GanModels, network: str, optimizer: Any, images: Any, one_hot: Any, codes: Any, conditional: bool
) -> float:
    """One step of ``network`` (``"discriminator"`` or ``"generator"``) as the article's ``step_d`` and ``step``:
    the gradient of its loss for its own variables, applied by ``optimizer``; returns ``L_dis`` before the step."""
    import tensorflow as tf

    trained = models.discriminator if network == "discriminator" else models.generator
    variables = trained.trainable_variables
    images, one_hot, codes = (tf.constant(array) for array in (images, one_hot, codes))
    with tf.GradientTape() as tape:
        losses = gan_losses(models, images, one_hot, codes, conditional)
        loss = losses["loss"] if network == "discriminator" else losses["generator_loss"]
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, [v.value for v in variables]))
    return float(losses["loss"])


class ArticleBatches:
    """The article's ``gen_batch`` as indices, with its place: full batches in order, then a new permutation of the
    whole set for every pass (numpy's generator seeded with ``seed``); the last, smaller batch of a pass is left out.
    Its :meth:`state` resumes it where it stopped."""

    def __init__(self, count: int, batch_size: int, seed: int) -> None:
        self.batch_size, self.rng = batch_size, np.random.default_rng(seed)
        self.order, self.position = np.arange(count), 0

    def next_indices(self) -> np.ndarray:
        if self.position + self.batch_size > self.order.size:
            self.order, self.position = self.order[self.rng.permutation(self.order.size)], 0
        self.position += self.batch_size
        return self.order[self.position - self.batch_size : self.position]

    def state(self) -> dict[str, Any]:
        return {"order": self.order.tolist(), "position": self.position, "rng": self.rng.bit_generator.state}

    def load_state(self, state: dict[str, Any]) -> None:
        self.order, self.position = np.asarray(state["order"]), int(state["position"])
        self.rng.bit_generator.state = state["rng"]


def article_batches(images: np.ndarray, one_hot: np.ndarray, batch_size: int, seed: int) -> Any:
    """The article's batches of ``images`` and their ``one_hot`` labels, endlessly (:class:`ArticleBatches`)."""
    batches = ArticleBatches(images.shape[0], batch_size, seed)
    while True:
        chosen = batches.next_indices()
        yield images[chosen], one_hot[chosen]


class KerasGanLoop:
    """The article's loop over experiment ``name``'s Keras models (part 5's ``gan`` or ``cgan``), a batch at a time:
    its schedule (torchae's :class:`~torchae.part5.gan.AlternatingSchedule`, proven equal to the article's loop batch
    for batch), new codes for every batch (numpy's generator seeded with ``seed + 1``), TensorFlow 1's RMSProp at the
    article's rates.

    Attributes:
        models: the generator and the discriminator.
        schedule: the loop's place.
    """

    latent_dim = 2

    def __init__(self, name: str, seed: int = 0) -> None:
        from torchae.part5.gan import AlternatingSchedule

        self.conditional = EXPERIMENTS[name].model.conditional
        keras.utils.set_random_seed(seed)
        self.models = create_gan(conditional=self.conditional)
        self.optimizers = {"generator": rmsprop(3e-4), "discriminator": rmsprop(1e-4)}
        self.schedule = AlternatingSchedule()
        self.rng = np.random.default_rng(seed + 1)

    @staticmethod
    def one_hot(labels: np.ndarray) -> np.ndarray:
        """Integer digits as the article's one-hot labels."""
        return np.eye(10, dtype=np.float32)[labels]

    def codes(self, count: int) -> np.ndarray:
        return self.rng.standard_normal((count, self.latent_dim)).astype(np.float32)

    def train_on(self, images: np.ndarray, one_hot: np.ndarray) -> list[float]:
        """The step the loop makes on this batch (NHWC images and their one-hot labels; none on the batch the
        article leaves unused): its ``L_dis`` before the step."""
        codes = self.codes(images.shape[0])
        network = self.schedule.next_network()
        if network is None:
            return []
        optimizer = self.optimizers[network]
        loss = gan_step_keras(self.models, network, optimizer, images, one_hot, codes, self.conditional)
        self.schedule.record(loss)
        return [loss]

    @property
    def generator(self) -> Any:
        """The network that makes digits from codes (and labels)."""
        return self.models.generator

    def samples(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` digits the generator makes from codes drawn with ``seed`` (``n / 10`` of each digit, rounded up,
        when conditional), as torchae's ``prior_samples`` gives them: NCHW, and the labels (``None`` without)."""
        rng = np.random.default_rng(seed)
        if not self.conditional:
            codes = rng.standard_normal((n, self.latent_dim)).astype(np.float32)
            return to_nchw(self.generator.predict(codes, verbose=0)), None
        labels = np.repeat(np.arange(10), -(-n // 10))
        codes = rng.standard_normal((labels.size, self.latent_dim)).astype(np.float32)
        generated = self.generator.predict([codes, self.one_hot(labels)], verbose=0)
        return to_nchw(generated), torch.from_numpy(labels)

    def validate(self, images: np.ndarray, one_hot: np.ndarray) -> float:
        """``L_dis`` on ``images`` in inference (dropout off), as torchae's ``val_loss``."""
        codes = self.codes(images.shape[0])
        return float(
            gan_losses(
                self.models,
                *map(keras.ops.convert_to_tensor, (images, one_hot, codes)),
                self.conditional,
                training=False,
            )["loss"]
        )


def worst(keras_model: Any, torch_module: torch.nn.Module) -> float:
    """The largest difference between the weights of a Keras model and the torch module that mirrors it."""
    return worst_weight_difference(layer_pairs(keras_model, torch_module), torch_module)


def structure_rows(name: str, models: tuple[Any, ...], torch_model: Any) -> list[Check]:
    """For each network of ``models`` (a named tuple, named as the torchae model's networks): its parameter count,
    and the weights copied Keras to torchae and back, exact."""
    rows = []
    for network, k_model in models._asdict().items():
        t_module = getattr(torch_model, network)
        count = sum(p.numel() for p in t_module.parameters())
        rows.append(Check(name, f"{network} parameters", abs(count - k_model.count_params()), 0, "abs"))
        keras_to_torch(k_model, t_module)
        rows.append(Check(name, f"{network} weights, Keras to torchae", worst(k_model, t_module), 0, "abs"))
        torch_to_keras(t_module, k_model)
        rows.append(Check(name, f"{network} weights, torchae to Keras", worst(k_model, t_module), 0, "abs"))
    return rows


def given_masks(models: tuple[Any, ...], torch_model: Any, n: int, rng: np.random.Generator) -> dict[str, Any]:
    """The same uniform numbers for each Keras :class:`GivenDropout` (set on the layer) and for the torchae dropout
    in its place (returned by its draw's name, for :meth:`torchae.draws.StepDraws.giving`)."""
    masks = {}
    for network, k_model in models._asdict().items():
        given = [layer for layer in k_model.layers if isinstance(layer, GivenDropout)]
        torch_layers = [
            f"dropout:{network}.{path}"
            for path, module in getattr(torch_model, network).named_modules()
            if type(module).__name__ == "SeededDropout"
        ]
        for keras_layer, torch_name in zip(given, torch_layers, strict=True):
            shape = (n, *keras_layer.input.shape[1:])
            keras_layer.uniform = rng.random(shape, dtype=np.float32)
            uniform = keras_layer.uniform
            masks[torch_name] = to_nchw(uniform) if len(shape) == 4 else torch.from_numpy(uniform)
    return masks


def check_gan(name: str, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> list[Any]:
    """Every check of experiment ``name`` (``gan`` or ``cgan``) on ``images`` and their ``labels``."""
    conditional = EXPERIMENTS[name].model.conditional
    keras.utils.set_random_seed(seed)
    models = create_gan(conditional=conditional, dropout=GivenDropout)
    torch.manual_seed(seed + 1)
    torch_model = EXPERIMENTS[name].model()
    rows = structure_rows(name, models, torch_model)

    n = images.shape[0]
    rng = np.random.default_rng(seed)
    codes = rng.standard_normal((n, torch_model.latent_dim)).astype(np.float32)
    one_hot = np.eye(10, dtype=np.float32)[labels.numpy()]
    x = to_nhwc(images)
    t_labels = labels if conditional else None
    torch_model.eval()
    with torch.no_grad():
        t_generated = torch_model.generator(torch.from_numpy(codes), t_labels)
        t_verdict = torch_model.discriminator(images, t_labels)
    k_generated = models.generator.predict(_inputs(codes, one_hot, conditional), verbose=0)
    k_verdict = models.discriminator.predict(_inputs(x, one_hot, conditional), verbose=0)
    tol = TOLERANCES
    rows.append(
        Check(
            name, "generator outputs", float(np.max(np.abs(k_generated - to_nhwc(t_generated)))), tol["forward"], "abs"
        )
    )
    rows.append(
        Check(
            name, "discriminator outputs", float(np.max(np.abs(k_verdict - t_verdict.numpy()))), tol["forward"], "abs"
        )
    )

    # One step of each optimizer from the same weights, batch, codes and dropout masks.
    masks = {**given_masks(models, torch_model, n, rng), "latent_noise": torch.from_numpy(codes)}
    start = {
        network: copy.deepcopy(getattr(torch_model, network).state_dict()) for network in ("generator", "discriminator")
    }
    keras_start = {
        network: [w.copy() for w in getattr(models, network).get_weights()]
        for network in ("generator", "discriminator")
    }
    for network, rate in (
        ("discriminator", torch_model.hparams.discriminator_rate),
        ("generator", torch_model.hparams.generator_rate),
    ):
        for part in ("generator", "discriminator"):  # both steps from the same weights
            getattr(torch_model, part).load_state_dict(start[part])
            getattr(models, part).set_weights(keras_start[part])
        k_loss = gan_step_keras(models, network, rmsprop(rate), x, one_hot, codes, conditional)
        torch_model.train()
        generator_optimizer, discriminator_optimizer = torch_model.configure_optimizers()
        optimizer = generator_optimizer if network == "generator" else discriminator_optimizer
        with torch_model.draws.giving(masks):
            terms = torch_model.adversarial_step_terms(
                torch_model.inputs_of((images, labels) if conditional else images),
                "train",
                grad_generator=network == "generator",
            )
        optimizer.zero_grad()
        (terms["loss"] if network == "discriminator" else terms["generator_loss"]).backward()
        optimizer.step()
        rows.append(
            Check(
                name,
                f"{network} step: discriminator loss",
                abs(float(terms["loss"]) - k_loss) / abs(k_loss),
                tol["loss"],
                "rel",
            )
        )
        rows += step_rows(name, network, getattr(models, network), getattr(torch_model, network), start[network])
    return rows


def step_rows(name: str, network: str, keras_model: Any, torch_module: Any, start: dict[str, Any]) -> list[Check]:
    """After one RMSProp step of ``network`` in both frameworks from the same weights (``start``, torchae's state
    before the step): the weights' worst difference, and that difference over the step's largest update (the step
    moved the weights, and both frameworks moved them alike: a first RMSProp step moves a weight by about its rate,
    and one float32 rounding of the weight is ~1e-3 of that)."""
    difference = worst(keras_model, torch_module)
    moved = max(float((after - start[key]).abs().max()) for key, after in torch_module.state_dict().items())
    relative = difference / moved if moved > 0 else float("inf")
    return [
        Check(name, f"weights after one {network} RMSProp step", difference, TOLERANCES["adam_step"], "abs"),
        Check(name, f"{network} step's update, relative difference", relative, 1e-2, "rel"),
    ]


keras_reference("gan", checks=check_gan)(lambda **settings: create_gan(conditional=False, **settings))
keras_reference("cgan", checks=check_gan)(create_gan)
