"""The faster CPU kernels, each against PyTorch's own op: values, and gradients with gradcheck in float64.

No Keras here: these hold whether or not the [parity] extra is installed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from torchae.engine.kernels import fast_cpu_layer, fused_cpu_layers, use_cpu_kernels
from torchae.layers import (
    ConvReLUPool2x2,
    MatmulConv2d,
    MaxPool2x2,
    Upsample2x,
    UpsampleConv2d,
    phase_kernel_size,
)
from torchae.networks import Conv2d, ConvAutoencoder


def channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


# The conv network's convolutions: one input channel, one output channel, and the 2x2 one that takes the stock path.
CONVOLUTIONS = [(1, 8, 7, 3), (6, 1, 7, 3), (5, 4, 3, 1), (1, 4, 2, 0)]


@pytest.mark.parametrize(("in_channels", "out_channels", "kernel", "padding"), CONVOLUTIONS)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_matmul_conv_computes_conv2d(in_channels, out_channels, kernel, padding, layout):
    torch.manual_seed(0)
    conv = Conv2d(in_channels, out_channels, kernel, padding=padding)
    nn.init.uniform_(conv.bias, -1, 1)
    fast = MatmulConv2d.sharing(conv)
    assert fast.weight is conv.weight and fast.bias is conv.bias
    x = torch.randn(3, in_channels, 10, 10).contiguous(memory_format=layout)
    expected = F.conv2d(x, conv.weight, conv.bias, padding=padding)
    torch.testing.assert_close(fast(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("in_channels", "out_channels", "kernel", "padding"), CONVOLUTIONS)
def test_matmul_conv_gradients_in_float64(in_channels, out_channels, kernel, padding):
    torch.manual_seed(1)
    conv = Conv2d(in_channels, out_channels, kernel, padding=padding).double()
    fast = MatmulConv2d.sharing(conv)
    x = torch.randn(2, in_channels, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: fast(x), (x, conv.weight, conv.bias))
    # and its gradients are the stock convolution's
    for inputs in (x, channels_last(x.detach()).requires_grad_()):
        mine = torch.autograd.grad(fast(inputs).square().sum(), (inputs, conv.weight, conv.bias))
        stock = torch.autograd.grad(
            F.conv2d(inputs, conv.weight, conv.bias, padding=padding).square().sum(), (inputs, conv.weight, conv.bias)
        )
        for a, b in zip(mine, stock):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_upsample_computes_nearest_upsampling(layout):
    x = torch.randn(2, 3, 5, 4).contiguous(memory_format=layout)
    assert torch.equal(Upsample2x()(x), F.interpolate(x, scale_factor=2, mode="nearest"))
    x64 = torch.randn(2, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Upsample2x(), (x64,))
    grad = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    mine = torch.autograd.grad(Upsample2x()(x64), x64, grad)[0]
    stock = torch.autograd.grad(F.interpolate(x64, scale_factor=2, mode="nearest"), x64, grad)[0]
    torch.testing.assert_close(mine, stock)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_max_pool_computes_max_pooling_with_and_without_gradients(layout):
    x = torch.randn(2, 3, 8, 6).contiguous(memory_format=layout)
    expected = F.max_pool2d(x, 2)
    with torch.no_grad():
        assert torch.equal(MaxPool2x2()(x), expected)  # the inference path
    assert torch.equal(MaxPool2x2()(x.requires_grad_()), expected)  # the training path
    x64 = torch.randn(2, 3, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(MaxPool2x2(), (x64,))
    with pytest.raises(ValueError, match="even spatial sizes"):
        MaxPool2x2()(torch.randn(1, 1, 5, 4))


def test_the_swap_covers_the_conv_network_and_is_undone():
    torch.manual_seed(2)
    net = ConvAutoencoder()
    x = torch.rand(4, 1, 28, 28)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        stock = net(x)
    kinds_before = [type(m) for m in net.modules()]
    restore = use_cpu_kernels(net)
    kinds = {type(m) for m in net.modules()}
    assert {MatmulConv2d, ConvReLUPool2x2, UpsampleConv2d, Upsample2x} <= kinds
    assert nn.MaxPool2d not in kinds and nn.Upsample not in kinds and nn.ReLU in kinds
    assert sum(isinstance(m, ConvReLUPool2x2) for m in net.modules()) == 2  # both of the encoder's poolings
    assert net.state_dict().keys() == state.keys()
    with torch.no_grad():
        torch.testing.assert_close(net(x), stock, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net(x), stock, rtol=1e-5, atol=1e-6)  # with gradients: the training paths
    restore()
    assert [type(m) for m in net.modules()] == kinds_before
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def test_layers_without_an_equivalent_kernel_are_kept():
    assert fast_cpu_layer(nn.MaxPool2d(3)) is None
    assert fast_cpu_layer(nn.Upsample(scale_factor=3)) is None
    assert fast_cpu_layer(nn.Upsample(scale_factor=2, mode="bilinear")) is None
    assert fast_cpu_layer(nn.Conv2d(1, 4, 3)) is None  # a stock conv adds its bias inside: not ours to change
    assert isinstance(fast_cpu_layer(nn.MaxPool2d(2)), MaxPool2x2)


def stock_conv_relu_pool(conv: nn.Module) -> nn.Module:
    return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2))


# (in, out, kernel, padding): the encoder's first convolution (the matrix product) and a stock-path one
POOLED_CONVOLUTIONS = [(1, 6, 7, 3), (4, 3, 3, 1)]


@pytest.mark.parametrize(("in_channels", "out_channels", "kernel", "padding"), POOLED_CONVOLUTIONS)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_conv_relu_pool_computes_the_three_layers(in_channels, out_channels, kernel, padding, layout):
    torch.manual_seed(3)
    conv = Conv2d(in_channels, out_channels, kernel, padding=padding)
    nn.init.uniform_(conv.bias, -1, 1)  # both signs: the ReLU zeroes some windows and not others
    fused = ConvReLUPool2x2.sharing(conv)
    assert fused.weight is conv.weight and fused.bias is conv.bias
    x = torch.randn(3, in_channels, 10, 8).contiguous(memory_format=layout)
    expected = stock_conv_relu_pool(conv)(x)
    assert (expected == 0).any() and (expected > 0).any()
    torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # the inference pooling
        torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("in_channels", "out_channels", "kernel", "padding"), POOLED_CONVOLUTIONS)
def test_conv_relu_pool_gradients_in_float64(in_channels, out_channels, kernel, padding):
    torch.manual_seed(4)
    conv = Conv2d(in_channels, out_channels, kernel, padding=padding).double()
    nn.init.uniform_(conv.bias, -1, 1)
    fused = ConvReLUPool2x2.sharing(conv)
    x = torch.randn(2, in_channels, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: fused(x), (x, conv.weight, conv.bias))
    grad = torch.randn(2, out_channels, 3, 3, dtype=torch.float64)
    mine = torch.autograd.grad(fused(x), (x, conv.weight, conv.bias), grad)
    stock = torch.autograd.grad(stock_conv_relu_pool(conv)(x), (x, conv.weight, conv.bias), grad)
    for a, b in zip(mine, stock):
        torch.testing.assert_close(a, b)


def test_phase_kernels_are_smaller_from_a_kernel_of_5():
    assert [phase_kernel_size(k) for k in (1, 3, 5, 7, 9)] == [1, 3, 3, 5, 5]


# (in, out, kernel): the decoder's last convolution (four phase channels: the matrix product), a stock-path one,
# and a 3x3 one (phase kernels as large as the kernel, which the swap leaves alone; the layer still computes it)
UPSAMPLED_CONVOLUTIONS = [(6, 1, 7), (3, 2, 5), (2, 3, 3)]


@pytest.mark.parametrize(("in_channels", "out_channels", "kernel"), UPSAMPLED_CONVOLUTIONS)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_upsample_conv_computes_the_two_layers(in_channels, out_channels, kernel, layout):
    torch.manual_seed(5)
    conv = Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
    nn.init.uniform_(conv.bias, -1, 1)
    fused = UpsampleConv2d.sharing(conv)
    assert fused.weight is conv.weight and fused.bias is conv.bias
    assert fused.state_dict().keys() == conv.state_dict().keys()  # the phase taps are not state
    x = torch.randn(3, in_channels, 7, 5).contiguous(memory_format=layout)
    expected = conv(nn.Upsample(scale_factor=2, mode="nearest")(x))
    torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("in_channels", "out_channels", "kernel"), UPSAMPLED_CONVOLUTIONS)
def test_upsample_conv_gradients_in_float64(in_channels, out_channels, kernel):
    torch.manual_seed(6)
    conv = Conv2d(in_channels, out_channels, kernel, padding=kernel // 2).double()
    fused = UpsampleConv2d.sharing(conv)
    x = torch.randn(2, in_channels, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: fused(x), (x, conv.weight, conv.bias))
    grad = torch.randn(2, out_channels, 8, 6, dtype=torch.float64)
    mine = torch.autograd.grad(fused(x), (x, conv.weight, conv.bias), grad)
    stock = torch.autograd.grad(conv(nn.Upsample(scale_factor=2, mode="nearest")(x)), (x, conv.weight, conv.bias), grad)
    for a, b in zip(mine, stock):
        torch.testing.assert_close(a, b)


def test_upsample_conv_refuses_a_convolution_that_changes_the_size():
    with pytest.raises(ValueError, match="odd square kernel"):
        UpsampleConv2d.sharing(Conv2d(2, 1, 2))
    with pytest.raises(ValueError, match="odd square kernel"):
        UpsampleConv2d.sharing(Conv2d(2, 1, 5, padding=1))


def test_only_the_runs_one_kernel_computes_are_fused():
    def fused_kinds(*layers: nn.Module) -> list[str]:
        sequence = nn.Sequential(*layers)
        return [type(layer).__name__ for _, _, layer in fused_cpu_layers(sequence)]

    conv = Conv2d(2, 3, 3, padding=1)
    assert fused_kinds(conv, nn.ReLU(), nn.MaxPool2d(2)) == ["ConvReLUPool2x2", "Identity", "Identity"]
    padded = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), Conv2d(2, 3, 2))
    assert fused_kinds(padded, nn.ReLU(), nn.MaxPool2d(2)) == ["ConvReLUPool2x2", "Identity", "Identity"]
    assert fused_kinds(conv, nn.ReLU(), nn.MaxPool2d(3)) == []  # another pooling
    assert fused_kinds(conv, nn.Sigmoid(), nn.MaxPool2d(2)) == []  # another activation
    assert fused_kinds(conv, nn.MaxPool2d(2), nn.ReLU()) == []  # only conv, ReLU, pooling in that order
    assert fused_kinds(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.MaxPool2d(2)) == []  # a stock conv: not ours to change
    upsample = nn.Upsample(scale_factor=2, mode="nearest")
    assert fused_kinds(upsample, Conv2d(2, 1, 7, padding=3)) == ["Identity", "UpsampleConv2d"]
    assert fused_kinds(upsample, Conv2d(2, 1, 3, padding=1)) == []  # phase kernels no smaller
    assert fused_kinds(nn.Upsample(scale_factor=2, mode="bilinear"), Conv2d(2, 1, 7, padding=3)) == []
    assert fused_kinds(upsample, nn.ReLU(), Conv2d(2, 1, 7, padding=3)) == []
