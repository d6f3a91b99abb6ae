"""parity: the article's Keras 3 models, and proof that each torchae model is the same model.

Importing this package loads ``torch._dynamo`` before Keras/TensorFlow, and refuses a process where TensorFlow was
imported first (see ``parity._keras``).
"""

from parity._keras import load_torch_first

load_torch_first()  # before anything below imports TensorFlow

from parity import cvae_gan_models, gan_models  # noqa: E402,F401  (register parts 5's and 6's references)
from parity.keras_models import build_keras, load_keras  # noqa: E402
from parity.transfer import TransferError, keras_to_torch, torch_to_keras  # noqa: E402

__all__ = ["TransferError", "build_keras", "keras_to_torch", "load_keras", "torch_to_keras"]
