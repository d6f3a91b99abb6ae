"""The VAE's and the CVAE's one-step parity (parts 3 and 4): loss terms, gradients, weights and BatchNorm statistics
after one Adam step with dropout off and the same latent noise in both frameworks, and the config's compiled step."""

from __future__ import annotations

import copy

import numpy as np
import torch

from parity.rows import TOLERANCES, Check, max_abs, rel
from parity.train import keras_inputs
from parity.transfer import (
    keras_arrays,
    keras_to_torch,
    keras_variables,
    kernel_to_torch,
    layer_pairs,
    to_nhwc,
    torch_tensors,
    worst_weight_difference,
)
from torchae.cli.configs import config_of
from torchae.engine.compiled import CompiledSteps
from torchae.inputs import LabelledBatch
from torchae.registry import EXPERIMENTS

__all__ = ["check_vae_step"]


def check_vae_step(name: str, batch: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> list[Check]:
    """The VAE's (or the CVAE's, with the batch's ``labels``) loss terms, gradients, weights and BatchNorm statistics
    after one Adam step, with dropout off and the same latent noise ``eps`` in both frameworks (Keras's
    :class:`~parity.keras_models.Sampling` is given it, torch's ``latent_noise`` returns it).

    BatchNorm's running variance: Keras adds the batch's biased variance, PyTorch its unbiased one (times
    ``n / (n - 1)``); torch's new running variance is converted to Keras's convention before the comparison, so
    the check holds the rest of the arithmetic to the tolerance.
    """
    import tensorflow as tf

    from parity.keras_models import build_keras, vae_reconstruction_loss

    keras_models = build_keras(name, seed=seed, dropout_rate=0.0)
    torch.manual_seed(seed + 1)
    torch_model = EXPERIMENTS[name].model(dropout=0.0)
    keras_to_torch(keras_models.autoencoder, torch_model)
    model = keras_models.autoencoder
    noise = np.random.default_rng(seed).standard_normal((batch.shape[0], torch_model.latent_dim)).astype(np.float32)
    model.get_layer("encoder").get_layer("sampling").noise = noise
    torch_model.latent_noise = lambda z_mean: torch.from_numpy(noise)

    pairs = layer_pairs(model, torch_model)
    before = {t_name: [t.detach().clone() for t in torch_tensors(module)] for _, t_name, module in pairs}
    variables = [v for k_layer, _, _ in pairs for v in keras_variables(k_layer) if v.trainable]
    target = tf.constant(to_nhwc(batch))
    x = [tf.constant(part) for part in keras_inputs(name, batch, labels)] if torch_model.conditional else target
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        k_total = model.compute_loss(x=x, y=target, y_pred=y_pred, training=True)
    k_kl = float(sum(float(v) for v in model.losses))
    k_recon = float(tf.reduce_mean(vae_reconstruction_loss(target, y_pred)))
    k_grads = tape.gradient(k_total, variables)
    model.optimizer.apply_gradients(zip(k_grads, variables))

    torch_model.train()
    compiled = (config_of(name).get("engine") or {}).get("compiled_steps")
    compiled_model = copy.deepcopy(torch_model) if compiled else None  # the same weights
    if compiled_model is not None:  # the same noise, handed to the compiled step as the engine hands its draws
        del compiled_model.latent_noise
        compiled_model.draws.draw = lambda plan, stage, device: {"latent_noise": torch.from_numpy(noise)}
    optimizer = torch_model.configure_optimizers()
    optimizer.zero_grad()
    inputs = LabelledBatch(batch, labels) if torch_model.conditional else batch
    terms = torch_model.reconstruction_terms(inputs, inputs)
    terms["loss"].backward()
    t_grads = [p.grad.clone() for _, _, module in pairs for p in torch_tensors(module) if p.requires_grad]
    optimizer.step()

    tol = TOLERANCES
    rows = [
        Check(name, "batch loss (total)", rel(terms["loss"].detach(), k_total), tol["loss"], "rel"),
        Check(
            name, "batch reconstruction loss", rel(terms["reconstruction_loss"].detach(), k_recon), tol["loss"], "rel"
        ),
        Check(name, "batch KL term", rel(terms["kl_loss"].detach(), k_kl), tol["loss"], "rel"),
    ]
    gradient_worst = max(
        max_abs(kernel_to_torch(k.numpy()) if k.ndim > 1 else k.numpy(), t.numpy()) for k, t in zip(k_grads, t_grads)
    )
    rows.append(Check(name, "gradients", gradient_worst, tol["gradient"], "abs"))
    n = batch.shape[0]
    weight_worst, statistics_worst = 0.0, 0.0
    for k_layer, t_name, module in pairs:
        tensors = [t.detach() for t in torch_tensors(module)]
        arrays = keras_arrays(k_layer)
        if isinstance(module, torch.nn.BatchNorm1d):
            momentum, old = module.momentum, before[t_name][3]
            keras_convention = old * (1 - momentum) + (tensors[3] - old * (1 - momentum)) * (n - 1) / n
            statistics_worst = max(
                statistics_worst, max_abs(arrays[2], tensors[2]), max_abs(arrays[3], keras_convention)
            )
            tensors, arrays = tensors[:2], arrays[:2]
        for array, tensor in zip(arrays, tensors, strict=True):
            weight_worst = max(weight_worst, max_abs(array, tensor))
    rows.append(Check(name, "weights after one Adam step", weight_worst, tol["adam_step"], "abs"))
    rows.append(Check(name, "BatchNorm statistics after the step", statistics_worst, tol["adam_step"], "abs"))
    if compiled_model is not None:  # the engine's compiled whole step, as the config runs it
        compiled_terms = CompiledSteps(compiled_model).step_on(inputs, inputs, compiled_model.configure_optimizers())
        compiled_worst = worst_weight_difference(pairs, compiled_model, statistics=False)  # as the eager row
        rows.append(Check(name, "batch loss, compiled step", rel(compiled_terms["loss"], k_total), tol["loss"], "rel"))
        rows.append(Check(name, "weights after one compiled step", compiled_worst, tol["adam_step"], "abs"))
    return rows
