"""The model configuration: one frozen dataclass, every default in one place, validated on creation.

`config.json` in a checkpoint holds exactly these fields (DESIGN section 3). Unknown fields are
refused so that a typo cannot silently fall back to a default. Fields added after the first
checkpoints were written (feature_map, n_features, layer_pattern) have defaults that give the model
those checkpoints hold, so a config.json without them loads unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

ATTENTIONS = ("softmax", "linear")  # the model's attention kinds (each backend's KINDS has more for timing)
FEATURE_MAPS = ("elu", "favor")  # linear attention's phi: elu(x) + 1, or FAVOR+'s positive random features
N_FEATURES = 64  # m: FAVOR+'s random features per head (feature_map = "favor" only)
LAYER_LETTERS = ("a", "f")  # layer_pattern: "a" attention + feed-forward, "f" feed-forward only (PAR)
NORM_EPS = 1e-5  # LayerNorm's epsilon (PyTorch's default)
LINEAR_EPS = 1e-6  # added to linear attention's normaliser phi(q)^T z
LOG_SCALE_MIN = -7.0  # mixture log-scales are clamped below at this value
LINEAR_CHUNK = 64  # chunk length of the chunkwise-parallel linear attention
SOFTMAX_CHUNK = 256  # query/key block of the memory-efficient softmax ("softmax-chunked")
HEADS = ("mixture", "categorical")
START_TOKEN = 256  # the input at position 0; byte values are 0..255
VOCAB = 257  # 256 byte values and the start token

# Generation modes and the attention kind each one needs (DESIGN section 3, "Generation modes").
MODES = {
    "softmax-uncached": "softmax",
    "softmax-cached": "softmax",
    "linear-recurrent": "linear",
}


class ConfigError(ValueError):
    """A configuration or argument that cannot work; the message names the field and the fix."""


@dataclass(frozen=True)
class ModelConfig:
    attention: str = "linear"  # "softmax" or "linear" (phi: feature_map)
    n_layers: int = 8  # L: post-LN transformer layers
    n_heads: int = 8  # H: heads of size d_model / n_heads
    d_model: int = 256  # C: width; the byte embedding and the position code take half each
    head: str = "mixture"  # "mixture" of discretized logistics, or a 256-way "categorical"
    n_mixtures: int = 10  # M: logistic components (mixture head only)
    image_shape: tuple = field(default=(28, 28, 1))  # (height, width, channels)
    dropout: float = 0.1  # training only
    feature_map: str = "elu"  # linear attention's phi: "elu" (elu(x) + 1) or "favor" (FAVOR+, Performer)
    n_features: int = N_FEATURES  # m: FAVOR+'s random features per head; the state S is m x D
    layer_pattern: str = ""  # PAR Transformer: "" every layer attends, else n_layers letters "a" (attention +
    #                          feed-forward) or "f" (feed-forward only: no attention, no state), e.g. "afaf"

    def __post_init__(self):
        if not isinstance(self.image_shape, (list, tuple)):
            raise ConfigError(f"image_shape must be a list [height, width, channels], got {self.image_shape!r}")
        object.__setattr__(self, "image_shape", tuple(self.image_shape))
        _choice("attention", self.attention, ATTENTIONS)
        _choice("head", self.head, HEADS)
        _choice("feature_map", self.feature_map, FEATURE_MAPS)
        if self.feature_map != "elu" and self.attention != "linear":
            raise ConfigError(f"feature_map={self.feature_map!r} needs attention='linear' (softmax attention has no "
                              "feature map); set attention = \"linear\", or feature_map = \"elu\"")
        for name in ("n_layers", "n_heads", "d_model", "n_mixtures", "n_features"):
            _positive_int(name, getattr(self, name))
        if len(self.image_shape) != 3:
            raise ConfigError(
                f"image_shape must be [height, width, channels], got {list(self.image_shape)}"
            )
        for axis, n in zip(("height", "width", "channels"), self.image_shape):
            _positive_int(f"image_shape {axis}", n)
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"n_heads={self.n_heads} must divide d_model={self.d_model}; "
                f"allowed n_heads: {_divisors(self.d_model)}"
            )
        if self.d_model % 4:
            raise ConfigError(
                f"d_model={self.d_model} must be a multiple of 4 (the position code takes "
                "d_model/2 features in sin/cos pairs)"
            )
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ConfigError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        pattern = self.layer_pattern
        if pattern != "" and not (isinstance(pattern, str) and len(pattern) == self.n_layers
                                  and set(pattern) <= set(LAYER_LETTERS)):
            raise ConfigError(f"layer_pattern must be \"\" (every layer attends) or n_layers={self.n_layers} letters, "
                              f"'a' (attention + feed-forward) or 'f' (feed-forward only), e.g. "
                              f"{('af' * self.n_layers)[: self.n_layers]!r}; got {pattern!r}")

    @property
    def seq_len(self) -> int:
        """T: bytes per image, raster order with channels interleaved."""
        h, w, c = self.image_shape
        return h * w * c

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def attention_kind(self) -> str:
        """The name of the model's attention in each backend's table of kinds (KINDS): "softmax",
        "linear" (phi = elu + 1) or "linear-favor"."""
        return "linear-favor" if self.feature_map == "favor" else self.attention

    @property
    def d_feature(self) -> int:
        """F: the size of linear attention's phi(x), so the state S is F x D and z has F entries:
        n_features for FAVOR+, else D (elu + 1 keeps the size; softmax has no such state)."""
        return self.n_features if self.feature_map == "favor" else self.d_head

    def has_attention(self, i: int) -> bool:
        """Whether layer i (0-based) has attention ("a" in layer_pattern, or no pattern), or is
        feed-forward only ("f": no attention weights, no recurrent state)."""
        return self.layer_pattern == "" or self.layer_pattern[i] == "a"

    @property
    def n_attention_layers(self) -> int:
        """How many layers attend (and carry a recurrent state or key/value cache)."""
        return sum(self.has_attention(i) for i in range(self.n_layers))

    @property
    def n_outputs(self) -> int:
        """Width of the head: 3M (logits, means, log-scales) or 256."""
        return 3 * self.n_mixtures if self.head == "mixture" else 256

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a JSON object of fields, got {json.dumps(d)[:40]}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, path) -> "ModelConfig":
        """Read a config.json; every fault is a ConfigError whose message starts with the file."""
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); write it as UTF-8 JSON") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON: {e}") from None
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


def check_mode(mode: str, config: ModelConfig) -> None:
    """Refuse a generation mode that does not exist or does not fit the model's attention."""
    _choice("mode", mode, tuple(MODES))
    if MODES[mode] != config.attention:
        fitting = [m for m, a in MODES.items() if a == config.attention]
        raise ConfigError(
            f"mode '{mode}' needs a model with attention='{MODES[mode]}', but this model has "
            f"attention='{config.attention}'; use one of {fitting}"
        )


def _choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


def _divisors(n):
    return [k for k in range(1, n + 1) if n % k == 0]
