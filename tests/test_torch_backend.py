"""What only the PyTorch backend has: its fused softmax kernel, both softmax modes drawing the same
bytes, weights of its own initialisation through the format, T = 2^16, and the generation step
compiled by inductor (compiled.py), with its fallback to the eager step. The properties it shares
with JAX are in test_backend_parity.py."""

import inspect

import numpy as np
import pytest
import torch

from conftest import random_model
from linattn import reference
from linattn import torch_backend as tb
from linattn.config import MODES, ModelConfig
from linattn.torch_backend import attention as attn
from linattn.torch_backend import compiled
from linattn.torch_backend.model import Transformer
from linattn.weights import init_params, load_checkpoint, save_checkpoint


def test_softmax_attention_is_materialised_and_fused_is_its_own_kind():
    """"softmax" is the same algorithm in every backend (the (T, T) scores held); PyTorch's fused
    kernel is its own kind, "softmax-fused", and its gradients equal the materialised form's."""
    assert "scaled_dot_product_attention" not in inspect.getsource(attn.softmax_attention)
    assert "scaled_dot_product_attention" in inspect.getsource(attn.softmax_attention_fused)
    assert attn.KINDS["softmax"].parallel is attn.softmax_attention
    assert attn.KINDS["softmax-fused"].parallel is attn.softmax_attention_fused
    q, k, v = (torch.randn(2, 9, 3, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    grads = [torch.autograd.grad(f(q, k, v).square().sum(), (q, k, v))
             for f in (attn.softmax_attention, attn.softmax_attention_fused)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_chunked_softmax_keeps_only_q_k_v_for_the_backward():
    """The memory-efficient softmax saves its inputs and nothing else (the backward recomputes each
    query chunk), where the plain form saves (T, T) probabilities; without gradients it runs
    without autograd, and a second differentiation is refused, not silently wrong."""
    q, k, v = (torch.randn(2, 100, 3, 4, requires_grad=True) for _ in range(3))
    saved = {"softmax": [], "softmax-chunked": []}
    for kind, kept in saved.items():
        with torch.autograd.graph.saved_tensors_hooks(lambda t, kept=kept: kept.append(t) or t, lambda t: t):
            attn.KINDS[kind].parallel(q, k, v)
    assert any(t.shape[-2:] == (100, 100) for t in saved["softmax"])
    assert sorted(t.data_ptr() for t in saved["softmax-chunked"]) == sorted(x.data_ptr() for x in (q, k, v))
    assert not attn.softmax_attention_chunked(q.detach(), k.detach(), v.detach()).requires_grad
    (dq,) = torch.autograd.grad(attn.softmax_attention_chunked(q, k, v, 16).square().sum(), q, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        dq.sum().backward()


def test_both_softmax_modes_draw_identical_bytes():
    config = ModelConfig(attention="softmax", n_layers=2, n_heads=4, d_model=32, image_shape=(6, 6, 3))
    model = tb.prepare(config, init_params(config, 5))
    noise = np.random.default_rng(1).random((3, config.seq_len, 2))
    a = tb.generate(model, "softmax-cached", noise)
    b = tb.generate(model, "softmax-uncached", noise)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) > 10  # the comparison is not between two constant images


@pytest.mark.parametrize("feature_map", ["elu", "favor"])
def test_weights_of_torchs_own_initialisation_round_trip_through_the_format(tmp_path, feature_map):
    config = ModelConfig(n_layers=2, n_heads=2, d_model=16, image_shape=(3, 3, 1), feature_map=feature_map, n_features=12)
    model = Transformer(config)  # torch's own initialisation, not the format's
    save_checkpoint(tmp_path, config, tb.params_of(model))
    config2, params = load_checkpoint(tmp_path)
    model2 = tb.prepare(config2, params)
    for (n, a), (n2, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert n == n2
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_favor_projection_is_a_saved_buffer_not_a_parameter():
    """FAVOR+'s projection is in the state_dict (so in every checkpoint) and is moved and cast with
    the model, but it is no parameter: the optimiser never sees it. torch's own initialisation
    draws a real one (orthogonal rows within a block), not zeros."""
    config = ModelConfig(n_layers=2, n_heads=2, d_model=16, image_shape=(3, 3, 1), feature_map="favor", n_features=12)
    model = tb.prepare(config, init_params(config, 0), dtype="float64")
    assert not any("feature_projection" in n for n, _ in model.named_parameters())
    assert {f"layers.{i}.attn.feature_projection" for i in range(2)} <= set(model.state_dict())
    assert model.layers[1].attn.feature_projection.dtype == torch.float64
    w = Transformer(config).layers[0].attn.feature_projection  # (12, 8): a block of 8 rows and 4 of another
    gram = w[:8] @ w[:8].T
    torch.testing.assert_close(gram, torch.diag(gram.diagonal()), atol=1e-5, rtol=0)
    assert (gram.diagonal() > 0).all()


def test_a_feed_forward_only_layer_has_no_attention_module():
    """PAR: an "f" layer holds no attention and no norm1 (so no such state_dict entries), and its
    recurrent state is None; the step equals the parallel form."""
    config = ModelConfig(attention="softmax", n_layers=3, n_heads=2, d_model=16, image_shape=(3, 3, 1), dropout=0.0,
                         layer_pattern="afa")
    model = tb.prepare(config, init_params(config, 0))
    assert model.layers[1].attn is None and model.layers[1].norm1 is None and model.layers[0].attn is not None
    assert not any(n.startswith("layers.1.attn") or n.startswith("layers.1.norm1") for n in model.state_dict())
    state = model.empty_state(2, config.seq_len)
    assert state[1] is None and state[0] is not None and state[2] is not None


@pytest.mark.slow
def test_linear_attention_fits_65536_positions():
    """The chunkwise form never holds a T x D x D tensor: forward and backward at T = 2^16."""
    T, H, D = 65536, 2, 32
    q, k, v = (torch.randn(1, T, H, D, requires_grad=True) for _ in range(3))
    out = attn.linear_attention(q, k, v)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(q.grad).all()
    with torch.no_grad():  # causality lets the first 64 positions be checked on their own
        head = attn.linear_attention(q[:, :64], k[:, :64], v[:, :64])
        torch.testing.assert_close(out[:, :64], head, atol=1e-5, rtol=1e-5)


# --- the compiled step --------------------------------------------------------------------------


def _compiled_draws_the_reference_bytes(mode, batch, kind=None, layer_pattern=""):
    """compile_generation compiles the step; generate and time_window then run it with no further
    compilation (fail_on_recompile), and generate draws the reference's bytes. A second model of the
    same sizes runs the same program with its own weights, and draws its own reference's bytes."""
    config, params = random_model(kind or MODES[mode], (4, 4, 3), seed=5, layer_pattern=layer_pattern)
    noise = np.random.default_rng(6).random((batch, config.seq_len, 2))
    for seed in (5, 8):
        params = init_params(config, seed) if seed != 5 else params
        model = tb.prepare(config, params)
        info = tb.compile_generation(model, mode, batch)
        assert info["step"] == "compiled" and info["reason"] is None, info
        assert batch in model.compiled_steps
        with torch.compiler.set_stance("fail_on_recompile"):
            got = tb.generate(model, mode, noise)
            assert tb.time_window(model, mode, batch, config.seq_len - 5, 5) > 0
        expected = reference.generate(params, config, mode, noise)
        np.testing.assert_array_equal(got, expected, err_msg=f"{mode}, weights of seed {seed}")
        assert len(np.unique(expected)) > 10  # not a constant image


@pytest.mark.parametrize("mode", ["linear-recurrent", "softmax-cached"])
def test_the_compiled_step_draws_the_reference_bytes_at_batch_1(mode):
    """At batch 1 every Linear is a multiply-and-sum (compiled.rowsum_linear)."""
    _compiled_draws_the_reference_bytes(mode, 1)


@pytest.mark.parametrize("mode, kind, layer_pattern", [("linear-recurrent", "linear-favor", ""),
                                                       ("linear-recurrent", "linear", "faf"),
                                                       ("softmax-cached", "softmax", "afa")])
def test_the_compiled_step_draws_the_reference_bytes_for_favor_and_par(mode, kind, layer_pattern):
    """Each FAVOR+ layer's projection packed with its weights; PAR's feed-forward-only layers
    without attention weights or state."""
    _compiled_draws_the_reference_bytes(mode, 1, kind, layer_pattern)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["linear-recurrent", "softmax-cached"])
def test_the_compiled_step_draws_the_reference_bytes_at_batch_3(mode):
    """Above batch 1 every Linear is a matrix product (compiled.matmul_linear)."""
    _compiled_draws_the_reference_bytes(mode, 3)


def test_rowsum_and_matmul_linears_equal_the_linear_layer():
    x, w, b = torch.randn(1, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    expected = torch.nn.functional.linear(x, w, b)
    torch.testing.assert_close(compiled.rowsum_linear(x, w, b), expected)
    torch.testing.assert_close(compiled.matmul_linear(x, w.t().contiguous(), b), expected)


def test_without_a_cpp_compiler_generation_stays_eager_and_says_why(monkeypatch):
    """Inductor needs a C++ compiler: without one compile_generation keeps the eager step, gives
    the reason, and generation still draws the reference's bytes."""
    import torch._inductor.config as inductor_config
    from torch._inductor import cpp_builder

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("no-such-c++-compiler",))
    monkeypatch.setattr(inductor_config, "force_disable_caches", True)  # no program compiled earlier
    torch._dynamo.reset()
    try:
        config, params = random_model("linear", (4, 4, 3), seed=5)
        model = tb.prepare(config, params)
        info = tb.compile_generation(model, "linear-recurrent", 1)
        assert info["step"] == "eager" and "compiling failed" in info["reason"], info
        assert "No working C++ compiler" in info["reason"], info
        assert 1 not in model.compiled_steps
        noise = np.random.default_rng(6).random((1, config.seq_len, 2))
        np.testing.assert_array_equal(tb.generate(model, "linear-recurrent", noise),
                                      reference.generate(params, config, "linear-recurrent", noise))
    finally:
        torch._dynamo.reset()
        cpp_builder.cpp_compiler_search.cache_clear()


def test_softmax_uncached_is_not_compiled():
    config, params = random_model("softmax", (2, 2, 1))
    info = tb.compile_generation(tb.prepare(config, params), "softmax-uncached", 1)
    assert info["step"] == "eager" and "not compiled" in info["reason"]
