"""Shared test helpers: the committed fixtures and one table of tolerances for every backend."""

from pathlib import Path

import numpy as np
import pytest

from linattn.config import ModelConfig
from linattn.weights import init_params, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.npz").is_file())

# Absolute tolerances against the float64 reference, by the dtype the backend computes in.
# float32 head outputs of the small fixture models agree to ~5e-7; the bound leaves 20x room.
TOLERANCE = {
    "float64": {"out": 1e-10, "log_prob": 1e-9, "bits_per_dim": 1e-9, "attention": 1e-10},
    "float32": {"out": 1e-5, "log_prob": 1e-4, "bits_per_dim": 1e-5, "attention": 1e-5},
}


def load_case(name):
    """(config, params, expected) of one committed fixture."""
    config, params = load_checkpoint(FIXTURES / name)
    with np.load(FIXTURES / name / "expected.npz") as z:
        expected = {k: z[k] for k in z.files}
    return config, params, expected


def load_attention(name="attention"):
    """attention.npz, or favor_attention.npz (name="favor_attention": FAVOR+ with its projection)."""
    with np.load(FIXTURES / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def random_model(kind, image_shape, seed=0, layer_pattern=""):
    """A small random model of an attention kind ("softmax", "linear" or "linear-favor", with 12
    features per head of 8) whose mixture samples land inside [-1, 1] (as the fixtures'): 2 layers,
    or a PAR `layer_pattern`'s."""
    favor = dict(feature_map="favor", n_features=12) if kind == "linear-favor" else {}
    config = ModelConfig(attention=kind.split("-")[0], n_layers=len(layer_pattern) or 2, n_heads=4, d_model=32,
                         head="mixture", n_mixtures=5, image_shape=image_shape, dropout=0.0, layer_pattern=layer_pattern,
                         **favor)
    params = init_params(config, seed)
    params["head.bias"][2 * config.n_mixtures :] -= 3.0  # log-scales
    return config, params


def random_qkv(T, seed=0, B=2, H=3, D=5):
    """Standard normal float64 q, k, v of shape (B, T, H, D)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, T, H, D)) for _ in range(3)]


@pytest.fixture(params=CASES)
def case(request):
    return load_case(request.param)
