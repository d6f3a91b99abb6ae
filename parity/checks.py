"""Structural, forward and one-step parity between torchae and the Keras 3 references.

Every check is a :class:`Check` row: what was compared, the worst difference found and the tolerance. Tolerances
are absolute for tensors (codes, reconstructions, gradients, weights) and relative for losses, as the parity issue
states them; they are not loosened to make a check pass.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

import torchae
from parity._keras import import_keras
from parity.keras_models import KERAS_REFERENCES, KerasModels, build_keras
from parity.rows import TOLERANCES, Check, format_table, max_abs, rel
from parity.train import keras_inputs, parity_data
from parity.transfer import (
    keras_arrays,
    keras_to_torch,
    keras_variables,
    kernel_to_torch,
    layer_pairs,
    to_nchw,
    to_nhwc,
    torch_tensors,
    torch_to_keras,
    worst_weight_difference,
)
from parity.vae_checks import check_vae_step
from torchae.cli.configs import config_of
from torchae.data import MNISTDataModule
from torchae.engine.compiled import CompiledSteps
from torchae.inputs import LabelledBatch
from torchae.networks import keras_parameter_count
from torchae.registry import EXPERIMENTS

__all__ = ["Check", "TOLERANCES", "format_table", "run_checks"]  # Check, TOLERANCES, format_table: parity.rows

MODEL_NAMES = tuple(EXPERIMENTS)


def build_pair(name: str, seed: int = 0) -> tuple[KerasModels, torchae.AutoencoderModule]:
    """The Keras reference and a torchae model holding the same weights (copied from Keras)."""
    keras_models = build_keras(name, seed=seed)
    torch.manual_seed(seed + 1)  # a different draw, so that the copy is what makes them equal
    torch_model = EXPERIMENTS[name].model()
    keras_to_torch(keras_models.inner, torch_model)
    return keras_models, torch_model


def check_structure(name: str, keras_models: KerasModels, torch_model: torchae.AutoencoderModule) -> list[Check]:
    enc, dec, total = EXPERIMENTS[name].parameters
    autoencoder = keras_models.autoencoder
    counts = {
        "encoder": (keras_models.encoder.count_params(), keras_parameter_count(torch_model.encoder), enc),
        "decoder": (keras_models.decoder.count_params(), keras_parameter_count(torch_model.decoder), dec),
        "total": (autoencoder.count_params(), keras_parameter_count(torch_model), total),
    }
    rows = [
        Check(name, f"{part} params keras={k} torch={t} spec={s}", float(max(abs(k - s), abs(t - s))), 0.0, "exact")
        for part, (k, t, s) in counts.items()
    ]
    for trainable, kind in ((True, "trainable"), (False, "non-trainable")):
        weights = autoencoder.trainable_weights if trainable else autoencoder.non_trainable_weights
        k = sum(int(np.prod(w.shape)) for w in weights)
        t = keras_parameter_count(torch_model, trainable)
        rows.append(Check(name, f"{kind} params keras={k} torch={t}", float(abs(k - t)), 0.0, "exact"))
    code_nchw = tuple(to_nchw(np.zeros((1, *keras_models.encoder.output_shape[1:]))).shape[1:])
    image_nchw = tuple(to_nchw(np.zeros((1, *keras_models.autoencoder.output_shape[1:]))).shape[1:])
    was_training = torch_model.training
    torch_model.eval()  # a training-mode pass would move BatchNorm's running statistics
    with torch.no_grad():
        x = torch.zeros(2, *torch_model.input_shape)
        args = (x, torch.zeros(2, dtype=torch.long)) if torch_model.conditional else (x,)
        torch_shapes = (tuple(torch_model.encode(*args).shape[1:]), tuple(torch_model(*args).shape[1:]))
    torch_model.train(was_training)
    rows.append(
        Check(
            name,
            f"code shape keras={code_nchw} torch={torch_shapes[0]} (NCHW)",
            float(code_nchw != torch_shapes[0]),
            0.0,
            "exact",
        )
    )
    rows.append(
        Check(
            name,
            f"output shape keras={image_nchw} torch={torch_shapes[1]} (NCHW)",
            float(image_nchw != torch_shapes[1] or image_nchw != torch_model.input_shape),
            0.0,
            "exact",
        )
    )
    return rows


def check_round_trip(name: str, keras_models: KerasModels, torch_model: torchae.AutoencoderModule) -> list[Check]:
    """torch -> a fresh Keras model gives back exactly the weights of the Keras model torch was copied from."""
    fresh = build_keras(name, seed=12345, compile=False)
    torch_to_keras(torch_model, fresh.inner)
    worst = 0.0
    for (k_ref, _, _), (k_new, _, _) in zip(
        layer_pairs(keras_models.inner, torch_model), layer_pairs(fresh.inner, torch_model)
    ):
        for a, b in zip(keras_arrays(k_ref), keras_arrays(k_new), strict=True):
            worst = max(worst, max_abs(a, b))
    return [Check(name, "weights keras -> torch -> keras", worst, 0.0, "exact")]


def _encoder_inputs(model: torchae.AutoencoderModule, images: torch.Tensor) -> torch.Tensor:
    """What ``model``'s encoder sees for ``images`` (its ``corrupt``), drawn once and fed to both frameworks."""
    with torch.no_grad():
        return model.corrupt(images, "test")


def check_forward(
    name: str,
    keras_models: KerasModels,
    torch_model: torchae.AutoencoderModule,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> list[Check]:
    """Codes and reconstructions of what the encoder sees for ``images`` (``corrupt``: for denoising, one noise
    tensor fed to both); a conditional model encodes and decodes them with their ``labels``."""
    if torch_model.conditional:
        return check_conditional_forward(name, keras_models, torch_model, images, labels)
    inputs = _encoder_inputs(torch_model, images)
    nhwc = to_nhwc(inputs)
    # Chunks of 64 keep the conv activations in cache (3x faster than 1000 on this CPU).
    # The autoencoder is decoder(encoder(x)) on both sides (checked in check_structure's shapes and by
    # test_forward_is_decode_of_encode): decoding the codes gives its reconstructions in one pass.
    # A VAE's code is its mean (the article's z_meaner), which Keras and torch compute without drawing.
    extras = keras_models.extras or {}
    keras_codes = extras.get("z_mean", keras_models.encoder).predict(nhwc, batch_size=1000, verbose=0)
    keras_recon = keras_models.decoder.predict(keras_codes, batch_size=1000, verbose=0)
    torch_model.eval()
    with torch.no_grad():
        torch_codes = torch.cat([torch_model.encode(chunk) for chunk in inputs.split(64)])
        torch_recon = torch.cat([torch_model.decode(chunk) for chunk in torch_codes.split(64)])
    kind = "test images" if issubclass(torch_model.datamodule, MNISTDataModule) else "points"
    n = f"{inputs.shape[0]:,} {kind}" + (" (same noise)" if inputs is not images else "")
    tol = TOLERANCES["forward"]
    rows = [
        Check(name, f"codes, {n}", max_abs(to_nchw(keras_codes), torch_codes), tol, "abs"),
        Check(name, f"reconstructions, {n}", max_abs(to_nchw(keras_recon), torch_recon), tol, "abs"),
    ]
    if "z_log_var" in extras:
        keras_log_var = extras["z_log_var"].predict(nhwc, batch_size=1000, verbose=0)
        with torch.no_grad():
            torch_log_var = torch.cat([torch_model.distribution(chunk).z_log_var for chunk in inputs.split(64)])
        rows.append(Check(name, f"z_log_var, {n}, inference mode", max_abs(keras_log_var, torch_log_var), tol, "abs"))
    return rows


def check_conditional_forward(
    name: str, keras_models: KerasModels, torch_model: torchae.AutoencoderModule, inputs: torch.Tensor, labels: Any
) -> list[Check]:
    """A conditional model's codes (the CVAE's ``z_mean`` and ``z_log_var``) of inputs with their labels, the
    reconstructions of the codes, and the codes decoded with another label (the CVAE's ``style_t``), in inference
    mode."""
    extras = keras_models.extras or {}
    x, *label_inputs = keras_inputs(name, inputs, labels)
    other = (labels + 1) % torch_model.classes
    encoder_labels, decoder_labels = label_inputs[0], label_inputs[-1]
    other_labels = keras_inputs(name, inputs, other)[-1]
    keras_codes = extras.get("z_mean", keras_models.encoder).predict([x, encoder_labels], batch_size=1000, verbose=0)
    keras_recon = keras_models.decoder.predict([keras_codes, decoder_labels], batch_size=1000, verbose=0)
    keras_other = keras_models.decoder.predict([keras_codes, other_labels], batch_size=1000, verbose=0)
    torch_model.eval()
    with torch.no_grad():
        torch_codes = torch_model.encode(inputs, labels)
        torch_recon = torch_model.decode(torch_codes, labels)
        torch_other = torch_model.decode(torch_codes, other)
    kind = "test images" if issubclass(torch_model.datamodule, MNISTDataModule) else "points"
    n = f"{inputs.shape[0]:,} {kind} with their labels"
    tol = TOLERANCES["forward"]
    layout = to_nchw if torch_model.input_shape == (1, 28, 28) else np.asarray
    rows = [
        Check(name, f"codes, {n}", max_abs(keras_codes, torch_codes), tol, "abs"),
        Check(name, f"reconstructions, {n}", max_abs(layout(keras_recon), torch_recon), tol, "abs"),
        Check(name, f"codes decoded with the next label, {n}", max_abs(layout(keras_other), torch_other), tol, "abs"),
    ]
    if "z_log_var" in extras:
        keras_log_var = extras["z_log_var"].predict([x, encoder_labels], batch_size=1000, verbose=0)
        with torch.no_grad():
            torch_log_var = torch_model.distribution(inputs, labels).z_log_var
        rows.append(Check(name, f"z_log_var, {n}, inference mode", max_abs(keras_log_var, torch_log_var), tol, "abs"))
    if "style_t" in extras:  # the article's style_t model: the mean code decoded with another label
        keras_style = extras["style_t"].predict([x, encoder_labels, other_labels], batch_size=1000, verbose=0)
        with torch.no_grad():
            torch_style = torch_model.style_transfer(inputs, labels, other)
        rows.append(
            Check(name, f"style transfer (style_t), {n}", max_abs(to_nchw(keras_style), torch_style), tol, "abs")
        )
    return rows


def check_step(
    name: str,
    keras_models: KerasModels,
    torch_model: torchae.AutoencoderModule,
    batch: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> list[Check]:
    """Loss, gradients and weights after one Adam step, from the same weights and the same batch (and its labels,
    for a conditional model)."""
    keras = import_keras()
    import tensorflow as tf

    if isinstance(torch_model, torchae.VAE):
        return check_vae_step(name, batch, labels)
    inputs = _encoder_inputs(torch_model, batch)
    model = keras_models.inner
    learning_rate, loss = KERAS_REFERENCES[name].learning_rate, KERAS_REFERENCES[name].loss
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    pairs = layer_pairs(model, torch_model)
    variables = [v for k_layer, _, _ in pairs for v in keras_variables(k_layer)]
    conditional = torch_model.conditional
    target = tf.constant(to_nhwc(batch))
    if conditional:
        x_in = [tf.constant(part) for part in keras_inputs(name, inputs, labels)]
    else:
        x_in = tf.constant(to_nhwc(inputs))
    with tf.GradientTape() as tape:
        y_pred = model(x_in, training=True)
        k_total = model.compute_loss(x=x_in, y=target, y_pred=y_pred, training=True)
    k_penalty = float(sum(float(v) for v in model.losses)) if model.losses else None
    k_recon = float(keras.losses.BinaryCrossentropy()(target, y_pred))
    k_grads = tape.gradient(k_total, variables)
    model.optimizer.apply_gradients(zip(k_grads, variables))

    torch_model.train()
    compiled = (config_of(name).get("engine") or {}).get("compiled_steps")
    compiled_model = copy.deepcopy(torch_model) if compiled else None
    if conditional:
        inputs, batch = LabelledBatch(inputs, labels), LabelledBatch(batch, labels)
    terms, t_grads = _one_step(torch_model, pairs, inputs, batch)

    tol = TOLERANCES
    terms = {key: value.detach() for key, value in terms.items()}
    rows = [Check(name, "batch loss (total)", rel(terms["loss"], k_total), tol["loss"], "rel")]
    if k_penalty is not None:
        rows.append(
            Check(name, "batch reconstruction loss", rel(terms["reconstruction_loss"], k_recon), tol["loss"], "rel")
        )
        rows.append(Check(name, "batch L1 penalty", rel(terms["l1_penalty"], k_penalty), tol["loss"], "rel"))
    rows.append(Check(name, "gradients", _worst_gradient_difference(k_grads, t_grads), tol["gradient"], "abs"))
    weight_worst = worst_weight_difference(pairs, torch_model)
    rows.append(Check(name, "weights after one Adam step", weight_worst, tol["adam_step"], "abs"))
    if compiled_model is not None:  # the engine's compiled whole step, as the config runs it
        compiled_terms = CompiledSteps(compiled_model).step_on(inputs, batch, compiled_model.configure_optimizers())
        compiled_worst = worst_weight_difference(pairs, compiled_model)
        rows.append(Check(name, "batch loss, compiled step", rel(compiled_terms["loss"], k_total), tol["loss"], "rel"))
        rows.append(Check(name, "weights after one compiled step", compiled_worst, tol["adam_step"], "abs"))
    return rows


def _one_step(
    model: torchae.AutoencoderModule, pairs: list[tuple[Any, str, Any]], inputs: torch.Tensor, batch: torch.Tensor
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """One eager Adam step of ``model`` on ``batch``: its loss terms, and the gradients of the layers of ``pairs``
    (kernel, bias, in the order of ``pairs``) before the update."""
    optimizer = model.configure_optimizers()
    optimizer.zero_grad()
    terms = model.reconstruction_terms(inputs, batch)
    terms["loss"].backward()
    layers = [model.get_submodule(module_name) for _, module_name, _ in pairs]
    grads = [t.grad.clone() for layer in layers for t in torch_tensors(layer) if t.requires_grad]
    optimizer.step()
    return terms, grads


def _worst_gradient_difference(keras_grads: list[Any], torch_grads: list[torch.Tensor]) -> float:
    """The largest absolute difference between Keras's gradients and torch's, in the same order."""
    return max(
        max_abs(kernel_to_torch(k.numpy()) if k.ndim > 1 else k.numpy(), t.numpy())
        for k, t in zip(keras_grads, torch_grads, strict=True)
    )


def run_checks(
    names: tuple[str, ...] = MODEL_NAMES, n_images: int = 10_000, batch_size: int = 256, seed: int = 0
) -> list[Check]:
    """All checks for ``names``: structure, weight round trip, forward on ``n_images`` test images, one step."""
    rows: list[Check] = []
    for name in names:
        own_checks = KERAS_REFERENCES[name].checks
        if own_checks is not None:  # part 5's GANs: two networks and two optimizers, checked their own way
            data = parity_data(name, val_size=n_images)
            rows += own_checks(name, data.train_images[:batch_size], data.train_labels[:batch_size], seed)
            continue
        keras_models, torch_model = build_pair(name, seed)
        mnist = issubclass(torch_model.datamodule, MNISTDataModule)
        data = parity_data(name, val_size=n_images if mnist else None)
        size = min(batch_size, EXPERIMENTS[name].batch_size)
        batch, labels = data.train_images[:size], data.train_labels[:size] if torch_model.conditional else None
        rows += check_structure(name, keras_models, torch_model)
        rows += check_round_trip(name, keras_models, torch_model)
        rows += check_forward(name, keras_models, torch_model, data.val_images, data.val_labels)
        rows += check_step(name, keras_models, torch_model, batch, labels)
    return rows


def main_check(names: tuple[str, ...] = MODEL_NAMES, n_images: int = 10_000) -> int:
    start = time.perf_counter()
    rows = run_checks(names, n_images)
    print(format_table(rows))
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0 if all(r.passed for r in rows) else 1
