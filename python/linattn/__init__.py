"""linattn: softmax and linear (RNN-form) autoregressive transformers for byte-level images.

The numpy reference (`linattn.reference`), the shared config and weights format, and the
PyTorch (`linattn.torch_backend`), JAX (`linattn.jax_backend`) and Julia (`linattn.julia_backend`)
implementations. Nothing heavy is imported here: each backend is imported on demand.
"""

from .config import MODES, ConfigError, ModelConfig

__all__ = ["MODES", "ConfigError", "ModelConfig"]
__version__ = "0.1.0"
