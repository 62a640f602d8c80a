"""The backend protocol (linattn.backends.Backend): every Python backend implements every method
with the protocol's parameters, and its table of attention kinds offers what the scaling study
plans for it. (The Julia backend's module is checked without starting Julia in test_julia_static.py.)"""

import importlib
import inspect

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
