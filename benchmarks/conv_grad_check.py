"""Where the conv model's CUDA gradients differ from the CPU's, per parameter, under cuDNN's settings.

    python benchmarks/conv_grad_check.py

One batch of 256 images, the same weights on both devices, TF32 off. Prints, per parameter, the largest
gradient difference relative to that parameter's largest gradient, for cuDNN's default algorithm choice and with
``torch.backends.cudnn.deterministic = True``.
"""

from __future__ import annotations

import torch

import torchae
from torchae.data import load_mnist, to_image_tensor


def gradients(device: torch.device) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torchae.ConvAE().to(device)
    x = to_image_tensor(load_mnist().x_train[:256]).to(device)
    model.reconstruction_terms(x, x)["loss"].backward()
    return {name: p.grad.detach().cpu() for name, p in model.named_parameters()}


def main() -> None:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    cpu = gradients(torch.device("cpu"))
    for deterministic in (False, True):
        torch.backends.cudnn.deterministic = deterministic
        gpu = gradients(torch.device("cuda"))
        worst = {name: float((gpu[name] - g).abs().max() / g.abs().max()) for name, g in cpu.items()}
        print(f"cudnn.deterministic={deterministic}: " + ", ".join(f"{n} {e:.1e}" for n, e in worst.items()))


if __name__ == "__main__":
    main()
