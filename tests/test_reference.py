"""The float64 reference against itself: its twin forms agree and its distribution is normalised."""

import dataclasses

import numpy as np
import pytest

from linattn import reference as ref
from linattn.config import ModelConfig
from linattn.weights import favor_projection, init_params


def random_qkv(seed=0, B=2, T=9, H=2, D=3):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, T, H, D)) for _ in range(3)]


@pytest.mark.parametrize("kind", ["softmax", "linear", "linear-favor"])
def test_recurrent_attention_equals_parallel(kind):
    q, k, v = random_qkv()
    parallel, step = ref.KINDS[kind]
    B, T, H, D = q.shape
    args = [favor_projection(5, D, np.random.default_rng(1))] if kind == "linear-favor" else []  # m = 5 features
    F = 5 if args else D
    state = (np.zeros((B, 0, H, D)), np.zeros((B, 0, H, D))) if kind == "softmax" else (np.zeros((B, H, F, D)), np.zeros((B, H, F)))
    expected = parallel(q, k, v, *args)
    for t in range(T):
        o, state = step(q[:, t], k[:, t], v[:, t], state, *args)
        np.testing.assert_allclose(o, expected[:, t], atol=1e-12)


def test_favor_features_estimate_the_softmax_kernel():
    """E[phi(x) . phi(y)] = exp(x . y / sqrt(D)): with 4096 features the estimate of each of 25
    kernel values is within 3% on average; elu + 1 estimates nothing of the kind."""
    rng = np.random.default_rng(0)
    D = 8
    x, y = rng.standard_normal((5, D)) * 0.5, rng.standard_normal((5, D)) * 0.5
    exact = np.exp(x @ y.T / np.sqrt(D))
    W = favor_projection(4096, D, rng)
    estimate = ref.favor_feature_map(x, W) @ ref.favor_feature_map(y, W).T
    assert ref.favor_feature_map(x, W).min() > 0  # positive features: the normaliser cannot vanish
    assert np.abs(estimate / exact - 1).mean() < 0.03
    assert np.abs(ref.elu_feature_map(x) @ ref.elu_feature_map(y).T / exact - 1).mean() > 0.3


def test_favor_projection_is_orthogonal_in_blocks_with_gaussian_row_lengths():
    """Rows orthogonal within each block of D (not across blocks); the last block cut; row lengths
    those of Gaussian D-vectors (mean of |g|^2 is D); the same seed, the same matrix."""
    D, m = 6, 15  # two whole blocks and half of a third
    W = favor_projection(m, D, np.random.default_rng(3))
    assert W.shape == (m, D)
    for block in (W[:6], W[6:12], W[12:]):
        gram = block @ block.T
        np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-12)
    assert np.abs(W[:6] @ W[6:12].T).max() > 1e-3
    np.testing.assert_array_equal(W, favor_projection(m, D, np.random.default_rng(3)))
    lengths = (favor_projection(600, D, np.random.default_rng(4)) ** 2).sum(1)
    assert abs(lengths.mean() - D) < 0.1 * D


def test_a_feed_forward_only_layer_carries_no_state_and_ignores_other_positions():
    """PAR: an "f" layer's state is None, and a model of "f" layers alone is position-wise: each
    output depends on its own token and position only."""
    config = ModelConfig(attention="linear", n_layers=2, n_heads=2, d_model=8, image_shape=(3, 2, 1), dropout=0.0,
                         layer_pattern="ff")
    assert ref.empty_state(config, 1) == [None, None]
    params = init_params(config, 2)
    tokens = np.array([[256, 3, 4, 5, 6, 7], [256, 9, 9, 9, 6, 7]])
    out = ref.forward(params, config, tokens)
    np.testing.assert_array_equal(out[0, 4:], out[1, 4:])
    assert np.abs(out[0, 1:4] - out[1, 1:4]).max() > 1e-3
    mixed = dataclasses.replace(config, layer_pattern="fa")
    mixed = ref.forward(init_params(mixed, 2), mixed, tokens)
    assert np.abs(mixed[0, 4:] - mixed[1, 4:]).max() > 1e-6  # with an attention layer the past matters


def test_favor_model_shares_every_other_weight_with_the_elu_model():
    elu = ModelConfig(n_layers=2, n_heads=2, d_model=8, image_shape=(3, 2, 1))
    favor = ModelConfig(n_layers=2, n_heads=2, d_model=8, image_shape=(3, 2, 1), feature_map="favor", n_features=6)
    a, b = init_params(elu, 7), init_params(favor, 7)
    assert set(b) - set(a) == {"layers.0.attn.feature_projection", "layers.1.attn.feature_projection"}
    for n in a:
        np.testing.assert_array_equal(a[n], b[n], err_msg=n)
    assert b["layers.0.attn.feature_projection"].shape == (6, 4)
    assert not np.array_equal(b["layers.0.attn.feature_projection"], b["layers.1.attn.feature_projection"])


@pytest.mark.parametrize("attention, feature_map, pattern", [("softmax", "elu", ""), ("linear", "elu", ""),
                                                             ("linear", "favor", ""), ("softmax", "elu", "fa"),
                                                             ("linear", "elu", "af")])
def test_forward_step_equals_forward(attention, feature_map, pattern):
    config = ModelConfig(attention=attention, n_layers=2, n_heads=2, d_model=8, image_shape=(3, 2, 1), dropout=0.0,
                         feature_map=feature_map, n_features=6, layer_pattern=pattern)
    params = init_params(config, 1)
    data = np.random.default_rng(0).integers(0, 256, (2, config.seq_len))
    tokens = ref.input_tokens(data)
    out = ref.forward(params, config, tokens)
    state = ref.empty_state(config, 2)
    for t in range(config.seq_len):
        o, state = ref.forward_step(params, config, tokens[:, t], t, state)
        np.testing.assert_allclose(o, out[:, t], atol=1e-10)


@pytest.mark.parametrize("head", ["mixture", "categorical"])
def test_probabilities_of_all_bytes_sum_to_one(head):
    config = ModelConfig(head=head, n_mixtures=4)
    rng = np.random.default_rng(0)
    out = rng.standard_normal((3, 1, config.n_outputs)) * 2.0
    all_bytes = np.arange(256)[None, :].repeat(3, 0)
    lp = ref.log_prob(np.repeat(out, 256, axis=1), config, all_bytes)
    np.testing.assert_allclose(np.exp(lp).sum(1), 1.0, atol=1e-10)


def test_mixture_log_prob_is_finite_for_extreme_scales():
    config = ModelConfig(n_mixtures=1)
    for log_s in (-7.0, 0.0, 20.0):
        out = np.array([[[0.0, 0.3, log_s]]])
        lp = ref.log_prob(np.repeat(out, 256, 1), config, np.arange(256)[None])
        assert np.isfinite(lp).all()
        np.testing.assert_allclose(np.exp(lp).sum(), 1.0, atol=1e-9)


def test_position_code_convention():
    pe = ref.position_code(5, 8)
    assert pe.shape == (5, 8)
    np.testing.assert_allclose(pe[3, 2], np.sin(3 / 10000 ** (2 / 8)))
    np.testing.assert_allclose(pe[3, 3], np.cos(3 / 10000 ** (2 / 8)))
    np.testing.assert_allclose(pe[0, 1::2], 1.0)


def test_sampling_picks_first_component_above_u1():
    config = ModelConfig(head="categorical")
    out = np.full((1, 256), -np.inf)
    out[0, [10, 20]] = 0.0  # half the mass on byte 10, half on byte 20
    assert ref.sample_from_head(out, config, np.array([[0.49, 0.5]]))[0] == 10
    assert ref.sample_from_head(out, config, np.array([[0.51, 0.5]]))[0] == 20
    assert ref.sample_from_head(out, config, np.array([[1.0, 0.5]]))[0] == 255  # none above: the last index


def test_input_tokens_start_with_the_start_token():
    data = np.array([[5, 6, 7]])
    np.testing.assert_array_equal(ref.input_tokens(data), [[256, 5, 6]])
