"""The float64 numpy reference of the model (DESIGN section 3): written for clarity, never speed.

Every backend (PyTorch, JAX, Julia) is tested against fixtures made from these functions.

Shapes: B batch, T time, H heads, D head size (d_model / H), C width (d_model), M mixtures.
Parameters are a dict of arrays named as in the weights format (`linattn.weights`).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .config import LINEAR_EPS, LOG_SCALE_MIN, NORM_EPS, START_TOKEN, ModelConfig, check_mode

BIN = 1.0 / 255.0  # half-width of one byte's bin in [-1, 1]


# --- inputs -------------------------------------------------------------------------------------


def input_tokens(data):
    """(B, T) bytes -> (B, T) inputs: the start token, then bytes 0..T-2 (targets are all T)."""
    data = np.asarray(data)
    start = np.full(data.shape[:-1] + (1,), START_TOKEN, dtype=np.int64)
    return np.concatenate([start, data[..., :-1].astype(np.int64)], axis=-1)


def position_code(T, dp):
    """pe[p, 2i] = sin(p / 10000^(2i/dp)), pe[p, 2i+1] = cos(p / 10000^(2i/dp)), p = 0..T-1."""
    p = np.arange(T, dtype=np.float64)[:, None]
    two_i = np.arange(0, dp, 2, dtype=np.float64)[None, :]
    angle = p / 10000.0 ** (two_i / dp)
    pe = np.zeros((T, dp))
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle)
    return pe


def embed(params, tokens, positions):
    """x = [embed.weight[token], pe[position]]: (B, T) tokens at (T,) positions -> (B, T, C)."""
    e = params["embed.weight"][tokens]
    pe = position_code(int(np.max(positions)) + 1, e.shape[-1])[positions]
    return np.concatenate([e, np.broadcast_to(pe, e.shape)], axis=-1)


# --- building blocks ----------------------------------------------------------------------------


def linear(x, params, name):
    """y = x W^T + b with W of shape (out, in), as PyTorch."""
    return x @ params[f"{name}.weight"].T + params[f"{name}.bias"]


def layer_norm(x, params, name):
    """(x - mean) / sqrt(var + 1e-5) * weight + bias over the last axis (biased variance)."""
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + NORM_EPS) * params[f"{name}.weight"] + params[f"{name}.bias"]


def elu_feature_map(x):
    """phi(x) = elu(x) + 1, positive everywhere."""
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def favor_feature_map(x, projection):
    """FAVOR+ (Choromanski et al. 2020, positive random features of the softmax kernel):
    phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m), x' = x / D^(1/4), W = `projection` (m, D), so that
    E[phi(q) . phi(k)] = exp(q . k / sqrt(D)) over Gaussian rows of W. (..., D) -> (..., m).
    No max subtracted before exp (Performer's stabiliser): its shift would differ between the
    parallel form (a max over all positions) and the recurrent one (a max so far)."""
    D, m = x.shape[-1], projection.shape[0]
    x = x / D**0.25
    return np.exp(x @ projection.T - 0.5 * (x**2).sum(-1, keepdims=True)) / np.sqrt(m)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softplus(x):
    return np.logaddexp(0.0, x)


def log_softmax(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


# --- attention: parallel and recurrent twins ----------------------------------------------------


def softmax_attention(q, k, v):
    """o_i = sum_{j<=i} softmax_j(q_i . k_j / sqrt(D)) v_j.  q, k, v: (B, T, H, D) -> (B, T, H, D)."""
    T, D = q.shape[1], q.shape[-1]
    scores = np.einsum("bihd,bjhd->bhij", q, k) / np.sqrt(D)
    scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
    return np.einsum("bhij,bjhd->bihd", softmax(scores, axis=-1), v)


def softmax_attention_recurrent(q, k, v, state):
    """One step of softmax attention with a key/value cache.

    q, k, v: (B, H, D) at the new position; state = (K, V), each (B, t, H, D) for the t past
    positions. Returns o: (B, H, D) and the state with this step's key and value appended.
    """
    K = np.concatenate([state[0], k[:, None]], axis=1)
    V = np.concatenate([state[1], v[:, None]], axis=1)
    scores = np.einsum("bhd,bjhd->bhj", q, K) / np.sqrt(q.shape[-1])
    return np.einsum("bhj,bjhd->bhd", softmax(scores, axis=-1), V), (K, V)


def linear_attention(q, k, v, *feature_args, feature_map=elu_feature_map):
    """o_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps), S_i = sum_{j<=i} phi(k_j) v_j^T,
    z_i = sum_{j<=i} phi(k_j), phi(x) = feature_map(x, *feature_args) (FAVOR+ takes the layer's
    projection).  Computed in the quadratic masked form, the plainest way to see it.
    q, k, v: (B, T, H, D) -> (B, T, H, D)."""
    T = q.shape[1]
    fq, fk = feature_map(q, *feature_args), feature_map(k, *feature_args)
    A = np.einsum("bihd,bjhd->bhij", fq, fk) * np.tril(np.ones((T, T)))
    return np.einsum("bhij,bjhd->bihd", A, v) / (A.sum(-1).transpose(0, 2, 1)[..., None] + LINEAR_EPS)


def linear_attention_recurrent(q, k, v, state, *feature_args, feature_map=elu_feature_map):
    """One step of linear attention as an RNN: S += phi(k) v^T, z += phi(k),
    o = phi(q)^T S / (phi(q)^T z + eps), phi as in `linear_attention`.
    q, k, v: (B, H, D); state = (S (B, H, F, D), z (B, H, F)), F the size of phi(x)."""
    fq, fk = feature_map(q, *feature_args), feature_map(k, *feature_args)
    S = state[0] + np.einsum("bhd,bhe->bhde", fk, v)
    z = state[1] + fk
    num = np.einsum("bhd,bhde->bhe", fq, S)
    den = np.einsum("bhd,bhd->bh", fq, z)[..., None] + LINEAR_EPS
    return num / den, (S, z)


# The attention kinds by name (`ModelConfig.attention_kind`): parallel form and recurrent twin.
KINDS = {
    "softmax": (softmax_attention, softmax_attention_recurrent),
    "linear": (linear_attention, linear_attention_recurrent),
    "linear-favor": (partial(linear_attention, feature_map=favor_feature_map),
                     partial(linear_attention_recurrent, feature_map=favor_feature_map)),
}


def empty_state(config: ModelConfig, batch):
    """The recurrent state of every layer before the first step: an empty key/value cache, or
    S (B, H, F, D) and z (B, H, F) at zero, F = config.d_feature; None for a feed-forward-only layer."""
    B, H, D, F = batch, config.n_heads, config.d_head, config.d_feature
    if config.attention == "softmax":
        empty = lambda: (np.zeros((B, 0, H, D)), np.zeros((B, 0, H, D)))  # noqa: E731
    else:
        empty = lambda: (np.zeros((B, H, F, D)), np.zeros((B, H, F)))  # noqa: E731
    return [empty() if config.has_attention(i) else None for i in range(config.n_layers)]


# --- the model ----------------------------------------------------------------------------------


def _split_heads(x, config):
    return x.reshape(x.shape[:-1] + (config.n_heads, config.d_head))


def feature_args(params, config: ModelConfig, i):
    """The fixed arrays layer i's attention passes to its feature map: FAVOR+'s projection, or none."""
    return (params[f"layers.{i}.attn.feature_projection"],) if config.feature_map == "favor" else ()


def _layer(params, config, i, x, attend):
    """Post-LN layer: x = LN(x + Attn(x)); x = LN(x + FFN(x)). `attend(q, k, v, *feature_args)`
    mixes heads. A feed-forward-only layer (PAR) is the second half alone: x = LN(x + FFN(x))."""
    p = f"layers.{i}"
    if config.has_attention(i):
        q, k, v = (_split_heads(linear(x, params, f"{p}.attn.{n}"), config) for n in "qkv")
        o = attend(q, k, v, *feature_args(params, config, i))
        a = linear(o.reshape(x.shape), params, f"{p}.attn.o")
        x = layer_norm(x + a, params, f"{p}.norm1")
    f = linear(np.maximum(linear(x, params, f"{p}.ff1"), 0.0), params, f"{p}.ff2")
    return layer_norm(x + f, params, f"{p}.norm2")


def forward(params, config: ModelConfig, tokens):
    """Parallel (training) form: (B, T) input tokens -> (B, T, n_outputs) head outputs."""
    params = _float64(params)
    attend = KINDS[config.attention_kind][0]
    x = embed(params, tokens, np.arange(tokens.shape[1]))
    for i in range(config.n_layers):
        x = _layer(params, config, i, x, attend)
    return linear(layer_norm(x, params, "norm"), params, "head")


def forward_step(params, config: ModelConfig, token, position, state):
    """Recurrent form: one (B,) token at `position` (0-based, as in every backend) -> (B, n_outputs),
    and the updated state."""
    params = _float64(params)
    step = KINDS[config.attention_kind][1]
    x = embed(params, token[:, None], np.array([position]))[:, 0]
    new_state = []
    for i in range(config.n_layers):

        def attend(q, k, v, *feature_args, i=i):
            o, s = step(q, k, v, state[i], *feature_args)
            new_state.append(s)
            return o

        if not config.has_attention(i):
            new_state.append(None)  # a feed-forward-only layer carries nothing
        x = _layer(params, config, i, x, attend)
    return linear(layer_norm(x, params, "norm"), params, "head"), new_state


def _float64(params):
    return {n: np.asarray(w, dtype=np.float64) for n, w in params.items()}


# --- the output distribution --------------------------------------------------------------------


def split_mixture(out, config: ModelConfig):
    """Mixture head outputs (..., 3M) -> logits, means, log-scales (clamped below at -7)."""
    M = config.n_mixtures
    return out[..., :M], out[..., M : 2 * M], np.maximum(out[..., 2 * M :], LOG_SCALE_MIN)


def bytes_to_values(data):
    """Byte b -> x = 2b/255 - 1 in [-1, 1]."""
    return 2.0 * np.asarray(data, dtype=np.float64) / 255.0 - 1.0


def log_prob(out, config: ModelConfig, data):
    """log p(byte) under the head: (B, T, n_outputs), (B, T) bytes -> (B, T) in nats.

    Mixture: p(b) = sum_k w_k [sigmoid((x + 1/255 - mu_k)/s_k) - sigmoid((x - 1/255 - mu_k)/s_k)],
    the outer bins reaching -inf and +inf. In logs, with a = (x - mu + 1/255)/s, c = (x - mu - 1/255)/s:
    log(sigmoid(a) - sigmoid(c)) = -softplus(-a) - softplus(c) + log(-expm1(c - a)),
    exact and stable for every s; at b = 0 it is -softplus(-a), at b = 255 it is -softplus(c).
    """
    data = np.asarray(data)
    if config.head == "categorical":
        return np.take_along_axis(log_softmax(out), data[..., None].astype(np.int64), -1)[..., 0]
    logits, mu, log_s = split_mixture(out, config)
    x = bytes_to_values(data)[..., None]
    inv_s = np.exp(-log_s)
    a = (x - mu + BIN) * inv_s
    c = (x - mu - BIN) * inv_s
    middle = -softplus(-a) - softplus(c) + np.log(-np.expm1(c - a))
    lp = np.where(x <= -1.0, -softplus(-a), np.where(x >= 1.0, -softplus(c), middle))
    lw = log_softmax(logits)
    m = (lw + lp).max(-1, keepdims=True)
    return (m + np.log(np.exp(lw + lp - m).sum(-1, keepdims=True)))[..., 0]


def bits_per_dim(params, config: ModelConfig, data):
    """Mean negative log-likelihood of (B, T) bytes in bits per byte (nats / ln 2)."""
    out = forward(params, config, input_tokens(data))
    return float(-log_prob(out, config, data).mean() / np.log(2.0))


# --- sampling -----------------------------------------------------------------------------------


def sample_from_head(out, config: ModelConfig, u):
    """Draw one byte per row from head outputs (B, n_outputs) with uniforms u (B, 2).

    The component (or byte, for a categorical head) is the first k whose cumulative weight
    exceeds u1 (the last if none does); a mixture value is mu_k + s_k (log u2 - log(1 - u2)),
    clipped to [-1, 1], and the byte is round((x + 1)/2 * 255) clipped to 0..255.
    """
    if config.head == "categorical":
        return _first_above(softmax(out), u[:, 0])
    logits, mu, log_s = split_mixture(out, config)
    k = _first_above(softmax(logits), u[:, 0])
    rows = np.arange(out.shape[0])
    with np.errstate(divide="ignore"):
        logistic = np.log(u[:, 1]) - np.log(1.0 - u[:, 1])
    x = np.clip(mu[rows, k] + np.exp(log_s[rows, k]) * logistic, -1.0, 1.0)
    return np.clip(np.round((x + 1.0) / 2.0 * 255.0), 0, 255).astype(np.int64)


def _first_above(weights, u1):
    """Index of the first cumulative weight > u1, clamped to the last index."""
    cum = np.cumsum(weights, axis=-1)
    return np.minimum((cum <= u1[:, None]).sum(-1), weights.shape[-1] - 1)


def generate(params, config: ModelConfig, mode, noise):
    """Generate (B, T) bytes from uniform noise (B, T, 2) in one of the three modes.

    softmax-uncached re-runs `forward` on the whole prefix at every step; softmax-cached and
    linear-recurrent run `forward_step`, carrying the key/value cache or the (S, z) state.
    """
    check_mode(mode, config)
    noise = np.asarray(noise, dtype=np.float64)
    B, T = noise.shape[:2]
    data = np.zeros((B, T), dtype=np.int64)
    state = empty_state(config, B)
    token = np.full(B, START_TOKEN, dtype=np.int64)
    for t in range(T):
        if mode == "softmax-uncached":
            out = forward(params, config, input_tokens(data[:, : t + 1]))[:, -1]
        else:
            out, state = forward_step(params, config, token, t, state)
        data[:, t] = token = sample_from_head(out, config, noise[:, t])
    return data
