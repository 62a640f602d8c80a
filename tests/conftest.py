"""Shared test helpers: the committed fixtures and one table of tolerances for every backend."""

from pathlib import Path

import numpy as np
import pytest

from linattn.weights import load_checkpoint

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


def load_attention():
    with np.load(FIXTURES / "attention.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(params=CASES)
def case(request):
    return load_case(request.param)
