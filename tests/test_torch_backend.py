"""The PyTorch backend against the committed fixtures, and its twin forms against each other."""

import numpy as np
import pytest
import torch

from conftest import TOLERANCE, load_attention
from linattn import torch_backend as tb
from linattn.config import ModelConfig
from linattn.torch_backend import attention as attn
from linattn.torch_backend.generate import sample_from_head
from linattn.torch_backend.model import Transformer, input_tokens
from linattn.torch_backend.train import make_optimizer, train_step
from linattn.weights import init_params, load_checkpoint, save_checkpoint


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward_and_likelihood_match_fixture(case, dtype):
    config, params, exp = case
    tol = TOLERANCE[dtype]
    model = tb.prepare(config, params, dtype=dtype)
    np.testing.assert_allclose(tb.forward(model, exp["tokens"]), exp["out"], atol=tol["out"], rtol=0)
    with torch.inference_mode():
        out = model(torch.as_tensor(exp["tokens"]))
        from linattn.torch_backend.loss import log_prob

        lp = log_prob(out, config, torch.as_tensor(exp["data"])).numpy()
    np.testing.assert_allclose(lp, exp["log_prob"], atol=tol["log_prob"], rtol=0)
    assert abs(tb.bits_per_dim(model, exp["data"], batch_size=1) - exp["bits_per_dim"]) < tol["bits_per_dim"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_generation_from_noise_matches_fixture(case, dtype):
    config, params, exp = case
    model = tb.prepare(config, params, dtype=dtype)
    modes = [k.removeprefix("sample_") for k in exp if k.startswith("sample_")]
    assert modes
    for mode in modes:
        np.testing.assert_array_equal(tb.generate(model, mode, exp["noise"]), exp[f"sample_{mode}"], err_msg=mode)


@pytest.mark.parametrize("fn, expected", [("softmax_attention", "softmax_attention"),
                                          ("softmax_attention_fused", "softmax_attention"),
                                          ("linear_attention", "linear_attention")])
def test_attention_matches_fixture(fn, expected):
    a = load_attention()
    q, k, v = (torch.as_tensor(a[n]) for n in "qkv")
    out = getattr(attn, fn)(q, k, v).numpy()
    np.testing.assert_allclose(out, a[expected], atol=TOLERANCE["float64"]["attention"], rtol=0)


def test_softmax_attention_is_materialised_and_fused_is_its_own_kind():
    """"softmax" is the same algorithm in every backend (the (T, T) scores held); PyTorch's fused
    kernel is timed under its own name, and its gradients equal the materialised form's."""
    import inspect

    assert "scaled_dot_product_attention" not in inspect.getsource(attn.softmax_attention)
    assert "scaled_dot_product_attention" in inspect.getsource(attn.softmax_attention_fused)
    q, k, v = (torch.randn(2, 9, 3, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    grads = [torch.autograd.grad(f(q, k, v).square().sum(), (q, k, v))
             for f in (attn.softmax_attention, attn.softmax_attention_fused)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    for kind in ("softmax", "softmax-fused"):
        seconds = tb.time_attention(kind, 1, 8, 2, 4, repeats=2)
        assert len(seconds) == 2 and all(s > 0 for s in seconds)


@pytest.mark.parametrize("T, chunk", [(1, 4), (7, 4), (64, 16), (100, 64), (130, 32)])
def test_chunkwise_linear_attention_equals_quadratic_form(T, chunk):
    from linattn import reference as ref

    rng = np.random.default_rng(T)
    q, k, v = (rng.standard_normal((2, T, 3, 4)) for _ in range(3))
    out = attn.linear_attention(*(torch.as_tensor(x) for x in (q, k, v)), chunk_size=chunk).numpy()
    np.testing.assert_allclose(out, ref.linear_attention(q, k, v), atol=1e-10, rtol=0)


@pytest.mark.parametrize("T, chunk", [(5, 2), (64, 16), (100, 32)])
def test_chunked_softmax_attention_equals_softmax_attention(T, chunk):
    q, k, v = (torch.randn(2, T, 3, 4, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(attn.softmax_attention_chunked(q, k, v, chunk), attn.softmax_attention(q, k, v))


@pytest.mark.parametrize("kind", ["softmax", "linear"])
def test_recurrent_attention_equals_parallel(kind):
    B, T, H, D = 2, 33, 2, 4
    q, k, v = (torch.randn(B, T, H, D, dtype=torch.float64) for _ in range(3))
    parallel = getattr(attn, f"{kind}_attention")(q, k, v)
    if kind == "softmax":
        state = (torch.zeros(B, H, T, D, dtype=torch.float64), torch.zeros(B, H, T, D, dtype=torch.float64), 0)
    else:
        state = (torch.zeros(B, H, D, D, dtype=torch.float64), torch.zeros(B, H, D, dtype=torch.float64))
    step = getattr(attn, f"{kind}_attention_recurrent")
    for t in range(T):
        o, state = step(q[:, t], k[:, t], v[:, t], state)
        torch.testing.assert_close(o, parallel[:, t], atol=1e-10, rtol=0)


@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_model_step_equals_forward_over_a_whole_sequence(attention):
    config = ModelConfig(attention=attention, n_layers=2, n_heads=2, d_model=16, image_shape=(5, 5, 3), dropout=0.0)
    model = tb.prepare(config, init_params(config, 2), dtype="float64")
    data = torch.randint(0, 256, (3, config.seq_len))
    tokens = input_tokens(data)
    with torch.inference_mode():
        out = model(tokens)
        state, packed, pe = model.empty_state(3), model.packed(), model.position_code(config.seq_len)
        for t in range(config.seq_len):
            torch.testing.assert_close(model.step(tokens[:, t], pe[t], state, packed), out[:, t], atol=1e-10, rtol=0)


@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_causality_through_gradients(attention):
    """d out[i] / d input[j] is exactly zero for every j > i."""
    config = ModelConfig(attention=attention, n_layers=2, n_heads=2, d_model=16, image_shape=(4, 4, 1), dropout=0.0)
    model = tb.prepare(config, init_params(config, 0), dtype="float64")
    T, i = config.seq_len, 6
    x = torch.randn(1, T, config.d_model, dtype=torch.float64, requires_grad=True)
    h = x
    for layer in model.layers:
        h = layer(h)
    (h[0, i] * torch.randn(config.d_model, dtype=torch.float64)).sum().backward()  # LN outputs sum to 0
    grad = x.grad[0].abs().sum(-1)
    assert (grad[i + 1 :] == 0).all()
    assert (grad[: i + 1] > 0).all()


def test_both_softmax_modes_draw_identical_bytes():
    config = ModelConfig(attention="softmax", n_layers=2, n_heads=4, d_model=32, image_shape=(6, 6, 3))
    model = tb.prepare(config, init_params(config, 5))
    noise = np.random.default_rng(1).random((3, config.seq_len, 2))
    a = tb.generate(model, "softmax-cached", noise)
    b = tb.generate(model, "softmax-uncached", noise)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) > 10  # the comparison is not between two constant images


def test_sampling_inverts_the_cdf():
    config = ModelConfig(head="categorical")
    out = torch.full((1, 256), -torch.inf)
    out[0, [3, 200]] = 0.0
    assert sample_from_head(out, config, torch.tensor([[0.2, 0.5]])).item() == 3
    assert sample_from_head(out, config, torch.tensor([[0.7, 0.5]])).item() == 200


def test_weights_round_trip_through_the_format(tmp_path):
    config = ModelConfig(n_layers=2, n_heads=2, d_model=16, image_shape=(3, 3, 1))
    model = Transformer(config)  # torch's own initialisation, not the format's
    save_checkpoint(tmp_path, config, tb.params_of(model))
    config2, params = load_checkpoint(tmp_path)
    model2 = tb.prepare(config2, params)
    for (n, a), (n2, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert n == n2
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_train_step_lowers_the_loss_on_a_repeated_batch():
    torch.manual_seed(0)
    config = ModelConfig(n_layers=1, n_heads=2, d_model=16, image_shape=(4, 4, 1), dropout=0.0)
    model = tb.prepare(config, init_params(config, 0))
    opt = make_optimizer(model, lr=1e-2)
    data = torch.randint(0, 256, (4, config.seq_len))
    losses = [train_step(model, opt, data) for _ in range(30)]
    assert losses[-1] < losses[0] - 0.1


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
