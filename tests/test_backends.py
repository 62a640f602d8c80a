"""The backend protocol (linattn.backends.Backend): every Python backend implements every method
with the protocol's parameters, and its table of attention kinds offers what the scaling study
plans for it. (The Julia backend's module is checked without starting Julia in test_julia_static.py.)"""

import importlib
import inspect
import re
from pathlib import Path

import pytest

from linattn.backends import METHODS, TIME_ATTENTION_KINDS, Backend


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_every_method_of_the_protocol_is_implemented(name):
    module = pytest.importorskip(f"linattn.{name}_backend")
    assert isinstance(module, Backend)  # runtime_checkable: every member present
    assert module.NAME == name
    for method in METHODS:
        want = list(inspect.signature(getattr(Backend, method)).parameters)[1:]  # without self
        have = list(inspect.signature(getattr(module, method)).parameters)
        assert have == want, f"{name}.{method}{tuple(have)} != Backend.{method}{tuple(want)}"


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_the_kinds_the_scaling_study_plans_are_in_the_backends_table(name):
    attention = importlib.import_module(f"linattn.{name}_backend.attention")
    assert set(TIME_ATTENTION_KINDS[name]) <= set(attention.KINDS)
    for kind in attention.KINDS.values():
        assert callable(kind.parallel) and callable(kind.recurrent) and callable(kind.empty_state)


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_every_kind_a_config_names_is_in_the_table_and_projected_where_its_weights_say(name):
    """A model looks its kind up by `ModelConfig.attention_kind`; a kind's forms take FAVOR+'s
    projection exactly when the weights format gives the config one per layer."""
    from linattn.config import ModelConfig
    from linattn.weights import param_shapes

    attention = importlib.import_module(f"linattn.{name}_backend.attention")
    for fields in (dict(attention="softmax"), dict(attention="linear"), dict(attention="linear", feature_map="favor")):
        config = ModelConfig(**fields)
        kind = attention.KINDS[config.attention_kind]
        assert kind.projected == ("layers.0.attn.feature_projection" in param_shapes(config)), fields


def test_one_step_signature_with_the_0_based_position():
    """The recurrent form's step takes the token(s), then the position counted from 0, then the
    state, in the reference and every backend; Julia converts to its 1-based column inside. (The
    steps equal the parallel forms from position 0 on: test_reference.py, test_backend_parity.py and
    the Julia testset "forward_step equals forward".)"""
    reference = importlib.import_module("linattn.reference")
    assert list(inspect.signature(reference.forward_step).parameters)[2:] == ["token", "position", "state"]
    torch_model = pytest.importorskip("linattn.torch_backend.model")
    assert list(inspect.signature(torch_model.Transformer.step).parameters)[1:4] == ["token", "position", "state"]
    jax_model = pytest.importorskip("linattn.jax_backend.model")
    assert list(inspect.signature(jax_model.forward_step).parameters)[2:] == ["token", "position", "state"]
    julia = (Path(__file__).resolve().parents[1] / "julia" / "src" / "model.jl").read_text()
    assert re.search(r"function forward_step!\(m::Transformer, token::[^,]+, position::Integer, state::", julia)
    assert "m.pe[:, position+1]" in julia
