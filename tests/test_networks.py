"""The networks: parameter counts, shapes, initialisation and padding, as SPEC.md states them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from helpers import AUTOENCODERS, condition_for
from torch import nn

import torchae
from torchae import networks
from torchae.networks import same_conv
from torchae.part1.networks import ConvAutoencoder, DenseAutoencoder, build_architecture
from torchae.registry import EXPERIMENTS

# SPEC.md, "The models": the code shapes (NCHW; denoising wraps the dense model).
CODE_SHAPES = {"dense": (49,), "deep": (49,), "conv": (1, 7, 7), "denoising": (49,), "sparse": (16,), "vae": (2,)}
CODE_SHAPES["cvae"] = (8,)  # part 4: the conditional VAE's 8-D latent space
# Part 2: 1-D codes of the points, 16-d codes of the deep sparse autoencoder.
CODE_SHAPES |= {
    "dots_linear": (1,),
    "dots_deep": (1,),
    "dots_overfit": (1,),
    "deep_sparse": (16,),
    "deep_sparse_l1": (16,),
    "dots_conditional": (1,),  # part 4's points
}
INPUT_SHAPES = {name: (2,) if name.startswith("dots_") else (1, 28, 28) for name in CODE_SHAPES}


def count(module: nn.Module) -> int:
    """Parameters as Keras counts them: BatchNorm's running statistics are its non-trainable weights."""
    statistics = [b for name, b in module.named_buffers() if name.endswith(("running_mean", "running_var"))]
    return sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in statistics)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_parameter_counts_match_the_registry(name):
    """The registry's counts are those of the networks the model names (an autoencoder's encoder and decoder, a
    GAN's generator and discriminator, the CVAE-GAN's three) and of the whole model."""
    model = EXPERIMENTS[name].model()
    *parts, total = EXPERIMENTS[name].parameters
    names = model.counted_networks
    assert len(names) == len(parts)
    for network, expected in zip(names, parts, strict=True):
        assert count(getattr(model, network)) == expected, network
    assert count(model) == total == sum(parts)


@pytest.mark.parametrize("architecture", ["dense", "deep", "conv"])
def test_denoising_has_exactly_the_parameters_of_what_it_wraps(architecture):
    wrapped = torchae.DenoisingAE(architecture=architecture)
    plain = build_architecture(architecture)
    assert count(wrapped) == count(plain)
    assert [p.shape for p in wrapped.parameters()] == [p.shape for p in plain.parameters()]


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_shapes_and_forward_is_decode_of_encode(name):
    torch.manual_seed(0)
    model = EXPERIMENTS[name].model().eval()
    assert model.input_shape == INPUT_SHAPES[name]
    x = torch.rand(5, *INPUT_SHAPES[name])
    condition = condition_for(type(model), 5)  # a conditional model's labels
    code = model.encode(x, *condition)
    assert tuple(code.shape) == (5, *CODE_SHAPES[name])
    assert model.code_shape == CODE_SHAPES[name]
    decoded = model.decode(code, *condition)
    assert decoded.shape == (5, *INPUT_SHAPES[name])
    if INPUT_SHAPES[name] == (1, 28, 28):  # pixel probabilities; the points models' outputs are linear
        assert float(decoded.min()) >= 0.0 and float(decoded.max()) <= 1.0
    torch.testing.assert_close(model(x, *condition), decoded, rtol=0, atol=0)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_initialisation_is_glorot_uniform_with_zero_biases(name):
    torch.manual_seed(1)
    model = EXPERIMENTS[name].model()
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers
    for layer in layers:
        weight = layer.weight
        receptive = weight[0][0].numel() if weight.dim() > 2 else 1
        fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert float(weight.abs().max()) <= bound
        # uniform on [-bound, bound]: the largest of many draws comes close to the bound (PyTorch's default is far
        # inside); a layer of a few weights (the linear points model's) may draw none near it
        assert weight.numel() < 100 or float(weight.abs().max()) > 0.9 * bound
        assert torch.count_nonzero(layer.bias) == 0


def test_pytorch_default_init_would_fail_the_glorot_check():
    """The check above can fail: PyTorch's own default init draws from a much narrower interval."""
    layer = nn.Linear(784, 49)
    bound = math.sqrt(6.0 / (784 + 49))
    assert float(layer.weight.abs().max()) < 0.5 * bound
    assert torch.count_nonzero(layer.bias) > 0


@pytest.mark.parametrize("kernel", [2, 7])
def test_same_padding_matches_keras(kernel):
    """Keras 'same' pads (k-1)//2 before and the rest after, in each spatial axis."""
    torch.manual_seed(2)
    conv = same_conv(3, 4, kernel)
    x = torch.randn(2, 3, 14, 14)
    core = conv[1] if isinstance(conv, nn.Sequential) else conv
    before, after = (kernel - 1) // 2, kernel // 2
    expected = F.conv2d(F.pad(x, (before, after, before, after)), core.weight, core.bias)
    torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape == x.shape[:1] + (4, 14, 14)
    if kernel == 2:  # and it is what PyTorch's own padding='same' does
        reference = nn.Conv2d(3, 4, 2, padding="same")
        reference.load_state_dict(core.state_dict())
        with pytest.warns(UserWarning):
            torch.testing.assert_close(reference(x), expected)


def test_conv_code_is_seven_by_seven():
    model = ConvAutoencoder()
    assert model.encode(torch.rand(2, 1, 28, 28)).shape == (2, 1, 7, 7)


def test_flatten_order_of_nchw_equals_nhwc_for_one_channel():
    """Relied on by the Dense kernel transfer: NCHW flatten == NHWC flatten when C == 1."""
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(x.flatten(1), x.permute(0, 2, 3, 1).flatten(1))


def test_code_dim_is_configurable_and_validated():
    assert DenseAutoencoder(32).encode(torch.rand(1, 1, 28, 28)).shape == (1, 32)
    assert torchae.DeepDenseAE(code_dim=10).code_shape == (10,)
    for bad in (0, 10**20, True):  # 10**20 units would ask for more memory than any machine has
        with pytest.raises(ValueError, match="code_dim must be an integer from 1 to 65,536"):
            DenseAutoencoder(bad)
    with pytest.raises(ValueError, match="fixed"):
        build_architecture("conv", code_dim=49)
    with pytest.raises(ValueError, match="model.architecture must be one of dense, deep, conv, got 'mlp'"):
        build_architecture("mlp")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_networks_are_built_from_stock_layers(name):
    """Every layer is PyTorch's own, except the bias-accurate Conv2d (a correctness fix, itself an nn.Conv2d), the
    BatchNorm that takes a batch of one as Keras does (itself an nn.BatchNorm1d) and the dropout that draws from its
    model's streams (itself an nn.Dropout); the containers are torchae's (the VAE's encoder holds stock layers and
    two heads), and so are parts 5's and 6's layout layers (a permutation each, and the label units' concatenation)."""
    model = EXPERIMENTS[name].model()
    own = {networks.Autoencoder, networks.SigmoidDecoder, networks.Conv2d, torchae.part3.vae.GaussianEncoder}
    own |= {torchae.part3.vae.KerasBatchNorm1d, torchae.draws.SeededDropout}
    own |= {torchae.part4.cvae.ConditionalVariationalAutoencoder, torchae.part4.cvae.ConditionalGaussianEncoder}
    own |= {torchae.part4.cvae.ConditionalDecoder, torchae.part4.cvae.ConditionalDotsAutoencoder}
    part5 = torchae.part5.networks
    own |= {part5.Generator, part5.Discriminator, part5.ChannelsFirst, part5.ChannelsLast, part5.LabelUnits}
    part6 = torchae.part6.networks
    own |= {part6.CVAEGANEncoder, part6.CVAEGANDecoder, part6.CVAEGANDiscriminator}
    for module in model.modules():
        kind = type(module)
        if module is model:
            continue
        assert kind.__module__.startswith("torch.nn") or kind in own or isinstance(module, networks.Autoencoder), kind


def test_accurate_conv_bias_is_the_stock_convolution():
    """networks.Conv2d computes nn.Conv2d's function with the same parameters; only the bias is added after."""
    torch.manual_seed(3)
    conv = networks.Conv2d(3, 5, 3, padding=1)
    stock = nn.Conv2d(3, 5, 3, padding=1)
    stock.load_state_dict(conv.state_dict())
    x = torch.randn(4, 3, 9, 9)
    torch.testing.assert_close(conv(x), stock(x), rtol=1e-6, atol=1e-6)
