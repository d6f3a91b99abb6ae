"""parity: the article's Keras 3 models, and proof that each torchae model is the same model.

Importing this package loads ``torch._dynamo`` before Keras/TensorFlow (see ``parity._keras``).
"""

import torch._dynamo  # noqa: F401  (must precede TensorFlow: see parity._keras)

from parity.keras_models import build_keras, load_keras
from parity.transfer import TransferError, keras_to_torch, torch_to_keras

__all__ = ["TransferError", "build_keras", "keras_to_torch", "load_keras", "torch_to_keras"]
