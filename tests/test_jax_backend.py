"""The JAX backend against the shared fixtures, the numpy reference and the torch backend.

float64 cases run inside `jax.enable_x64(True)` (the `dtype` fixture), float32 ones outside it,
as JAX runs by default. The tests marked "no-jit" run the code op by op (`jax.disable_jit()`) as
well as compiled. Every compilation costs ~0.5-1 s on 2 cores, so tests jit whole functions rather
than run many small ops eagerly (each of which compiles on its own).
"""

import dataclasses
import importlib

import numpy as np
import pytest

from linattn.backends import BackendUnavailable

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")

import jax.numpy as jnp  # noqa: E402

from conftest import TOLERANCE, load_attention, load_case  # noqa: E402
from linattn import jax_backend as jb  # noqa: E402
from linattn import reference  # noqa: E402
from linattn import torch_backend as tb  # noqa: E402
from linattn.config import MODES, ConfigError, ModelConfig  # noqa: E402
from linattn.weights import init_params, load_checkpoint, save_checkpoint  # noqa: E402

attn = importlib.import_module("linattn.jax_backend.attention")
model = importlib.import_module("linattn.jax_backend.model")
loss = importlib.import_module("linattn.jax_backend.loss")
gen = importlib.import_module("linattn.jax_backend.generate")
train = importlib.import_module("linattn.jax_backend.train")


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    with jax.enable_x64(request.param == "float64"):
        yield request.param


@pytest.fixture
def torch_one_thread():
    """torch on one thread while the test runs: its tiny ops spin-wait on a busy 2-core machine
    (300 steps of a small model: 0.1 s on one thread, seconds on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_model(attention, image_shape, seed=0):
    """A small random model whose mixture samples land inside [-1, 1] (as the fixtures')."""
    config = ModelConfig(attention=attention, n_layers=2, n_heads=4, d_model=32, head="mixture", n_mixtures=5,
                         image_shape=image_shape, dropout=0.0)
    params = init_params(config, seed)
    params["head.bias"][2 * config.n_mixtures :] -= 3.0  # log-scales
    return config, params


# --- the shared fixtures ------------------------------------------------------------------------


def _check_fixture(config, params, expected, dtype, modes):
    tol = TOLERANCE[dtype]
    m = jb.prepare(config, params, dtype=dtype)
    out = jb.forward(m, expected["tokens"])
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, expected["out"], rtol=0, atol=tol["out"])
    checked = 0
    for mode in modes:
        if f"sample_{mode}" in expected:
            sample = jb.generate(m, mode, expected["noise"])
            assert sample.dtype == np.uint8
            np.testing.assert_array_equal(sample, expected[f"sample_{mode}"], err_msg=mode)
            checked += 1
    assert checked or not modes
    return m, out


def test_fixture(case, dtype):
    """Head outputs, log p and bits/dim; the samples of every mode in float32 (the float64
    samples are the same bytes, and compiling the loops again costs seconds)."""
    config, params, expected = case
    tol = TOLERANCE[dtype]
    m, out = _check_fixture(config, params, expected, dtype, MODES if dtype == "float32" else ())
    lp = jb._log_prob(jnp.asarray(out), config, jnp.asarray(expected["data"]))  # bits_per_dim's, compiled once
    np.testing.assert_allclose(np.asarray(lp), expected["log_prob"], rtol=0, atol=tol["log_prob"])
    assert abs(jb.bits_per_dim(m, expected["data"]) - expected["bits_per_dim"]) < tol["bits_per_dim"]


def test_fixture_without_jit():
    """The model and the softmax-cached loop op by op (the attention forms have their own no-jit
    tests below): what jit compiles is what the Python says."""
    config, params, expected = load_case("softmax_mixture_rgb")
    with jax.disable_jit():
        _check_fixture(config, params, expected, "float32", modes=["softmax-cached"])


def _check_attention_fixture(dtype, jit=True):
    a = load_attention()
    tol = TOLERANCE[dtype]["attention"]
    blocks = 3 if jit else 7  # blocks of 3 over T = 7 compiled only: op by op each op compiles

    @jax.jit
    def forms(q, k, v):
        return (attn.softmax_attention(q, k, v), attn.softmax_attention(q, k, v, block_size=blocks),
                attn.linear_attention(q, k, v), attn.linear_attention(q, k, v, chunk_size=blocks))

    with jax.disable_jit(not jit):
        soft, soft_blocked, lin, lin_chunked = forms(*(jnp.asarray(a[n], dtype=dtype) for n in "qkv"))
    for o in (soft, soft_blocked):
        np.testing.assert_allclose(o, a["softmax_attention"], rtol=0, atol=tol)
    for o in (lin, lin_chunked):
        np.testing.assert_allclose(o, a["linear_attention"], rtol=0, atol=tol)


def test_attention_fixture(dtype):
    _check_attention_fixture(dtype)


def test_attention_fixture_without_jit():
    with jax.enable_x64(True):
        _check_attention_fixture("float64", jit=False)


# --- the attention forms agree ------------------------------------------------------------------


def _qkv(T, seed=0, B=2, H=3, D=5):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, T, H, D)) for _ in range(3)]


@pytest.mark.parametrize("T, chunk", [(50, 16), (50, 64), (64, 16), (1, 16)])
def test_chunkwise_linear_attention_equals_quadratic(T, chunk):
    """Chunks of 16 or 64 over T = 50 (the last chunk padded), 64 (exact) and 1, in float64."""
    q, k, v = _qkv(T)
    with jax.enable_x64(True):
        o = jax.jit(attn.linear_attention, static_argnames="chunk_size")(q, k, v, chunk_size=chunk)
    np.testing.assert_allclose(np.asarray(o), reference.linear_attention(q, k, v), rtol=0, atol=1e-12)


def test_blocked_softmax_attention_equals_plain():
    q, k, v = _qkv(50)
    with jax.enable_x64(True):
        o = jax.jit(attn.softmax_attention, static_argnames="block_size")(q, k, v, block_size=16)
    np.testing.assert_allclose(np.asarray(o), reference.softmax_attention(q, k, v), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind, jit", [("softmax", "jit"), ("linear", "jit"), ("linear", "no-jit")])
def test_recurrent_attention_equals_parallel(kind, jit):
    """The recurrent twin stepped over a whole sequence; the softmax cache read in blocks of 8
    (so every branch of its switch runs). Op by op for linear only: `test_fixture_without_jit`
    runs the softmax twin so."""
    T, (q, k, v) = 30, _qkv(30)
    B, _, H, D = q.shape
    with jax.enable_x64(True), jax.disable_jit(jit == "no-jit"):
        if kind == "softmax":
            step = jax.jit(lambda q, k, v, s: attn.softmax_attention_recurrent(q, k, v, s, block_size=8))
            state = (jnp.zeros((B, H, T, D)), jnp.zeros((B, H, T, D)), jnp.zeros((), jnp.int32))
            parallel = attn.softmax_attention
        else:
            step = jax.jit(attn.linear_attention_recurrent)
            state = (jnp.zeros((B, H, D, D)), jnp.zeros((B, H, D)))
            parallel = attn.linear_attention
        outs = []
        for t in range(T):
            o, state = step(q[:, t], k[:, t], v[:, t], state)
            outs.append(np.asarray(o))
        expected = np.asarray(parallel(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)))
    np.testing.assert_allclose(np.stack(outs, axis=1), expected, rtol=0, atol=TOLERANCE["float64"]["attention"])


@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_forward_step_equals_forward(attention):
    config, params = random_model(attention, (5, 4, 2))  # T = 40
    T, B = config.seq_len, 2
    tokens = np.random.default_rng(1).integers(0, 257, size=(B, T))
    with jax.enable_x64(True):
        m = jb.prepare(config, params, dtype="float64")
        step = jax.jit(model.forward_step, static_argnames="config")
        pe = model.position_code(T, config.d_model // 2, np.float64)
        state = model.empty_state(config, B, jnp.float64, max_len=T)
        outs = []
        for t in range(T):
            out, state = step(m.params, config, jnp.asarray(tokens[:, t]), pe[t], state)
            outs.append(np.asarray(out))
        expected = jb.forward(m, tokens)
    np.testing.assert_allclose(np.stack(outs, axis=1), expected, rtol=0, atol=TOLERANCE["float64"]["out"])


@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_causality_by_gradients(attention):
    """d out[:, i] / d x[:, j] is exactly zero for every j > i (x: the embedded inputs), and not
    for every j <= i. T = 70 spans two linear-attention chunks of 64, the second one padded."""
    config, params = random_model(attention, (7, 10, 1))
    m = jb.prepare(config, params)
    x = jax.random.normal(jax.random.key(0), (2, config.seq_len, config.d_model))

    @jax.jit
    def grad_of_position(x, i):
        return jax.grad(lambda x: model.forward_embedded(m.params, config, x)[:, i].sum())(x)

    for i in (0, 31, 63, 64, 69):
        dx = np.asarray(grad_of_position(x, i))
        assert np.all(dx[:, i + 1 :] == 0.0), f"position {i} depends on later inputs"
        assert np.all(np.abs(dx[:, : i + 1]).sum(-1) > 0), f"position {i} ignores an earlier input"


# --- the same bytes as the torch backend --------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
def test_same_bytes_as_torch_short(mode, torch_one_thread):
    config, params = random_model(MODES[mode], (4, 4, 3), seed=3)  # T = 48
    noise = np.random.default_rng(4).random((3, config.seq_len, 2))
    tm, m = tb.prepare(config, params), jb.prepare(config, params)
    np.testing.assert_array_equal(jb.generate(m, mode, noise), tb.generate(tm, mode, noise))
    prefix = np.random.default_rng(5).integers(0, 256, (3, 20))  # completion of a given first part
    completed = jb.generate(m, mode, noise, prefix=prefix)
    np.testing.assert_array_equal(completed[:, :20], prefix)
    np.testing.assert_array_equal(completed, tb.generate(tm, mode, noise, prefix=prefix))


def _teacher_forced(m, data, noise):
    """The byte the model samples at every position given the true bytes before it."""
    out = jb.forward(m, reference.input_tokens(data))
    B, T, n = out.shape
    u = jnp.asarray(noise, out.dtype).reshape(B * T, 2)
    return np.asarray(gen.sample_from_head(jnp.asarray(out).reshape(B * T, n), m.config, u)).reshape(B, T)


@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_long_images_agree_with_torch_teacher_forced(attention, torch_one_thread):
    """T = 300 (two softmax cache blocks, three uncached segments). The JAX model, fed the torch
    sample (of the fast stepwise mode: the modes sample the same distribution), samples the same
    byte at >= 99% of positions; and the sample of every JAX mode agrees as well with the bytes
    the JAX model samples teacher-forced on it."""
    config, params = random_model(attention, (10, 10, 3), seed=5)
    noise = np.random.default_rng(6).random((1, config.seq_len, 2))
    m = jb.prepare(config, params)
    stepwise = {"softmax": "softmax-cached", "linear": "linear-recurrent"}[attention]
    torch_sample = tb.generate(tb.prepare(config, params), stepwise, noise)
    assert np.mean(_teacher_forced(m, torch_sample, noise) == torch_sample) >= 0.99
    assert len(np.unique(torch_sample)) > 20  # not a saturated image that would agree trivially
    for mode in (mode for mode, kind in MODES.items() if kind == attention):
        jax_sample = jb.generate(m, mode, noise)
        assert np.mean(_teacher_forced(m, jax_sample, noise) == jax_sample) >= 0.99, mode


# --- the API ------------------------------------------------------------------------------------


def test_steps_windows_and_no_recompilation():
    config, params, expected = load_case("softmax_mixture_rgb")
    m = jb.prepare(config, params)
    full = expected["sample_softmax-cached"]
    part = jb.generate(m, "softmax-cached", expected["noise"], steps=5)
    np.testing.assert_array_equal(part[:, :5], full[:, :5])
    assert np.all(part[:, 5:] == 0)
    compiled = gen.generate._cache_size()
    jb.generate(m, "softmax-cached", expected["noise"], steps=5)
    jb.generate(m, "softmax-cached", np.random.default_rng(0).random(expected["noise"].shape), steps=5)
    assert gen.generate._cache_size() == compiled
    jb.uncached_step(m, expected["data"][:, :7])
    assert jb.time_window(m, "softmax-cached", 2, start=0, steps=5) > 0
    compiled = jb._run_steps._cache_size()
    assert jb.time_window(m, "softmax-cached", 2, start=20, steps=5, seed=1) > 0
    assert jb._run_steps._cache_size() == compiled
    with pytest.raises(ConfigError, match="window"):
        jb.time_window(m, "softmax-cached", 2, start=25, steps=5)


def test_time_attention():
    for kind in ("softmax", "softmax-chunked", "linear"):
        times = jb.time_attention(kind, batch=1, T=12, n_heads=2, d_head=4, repeats=2)
        assert len(times) == 2 and all(t > 0 for t in times)
    with pytest.raises(BackendUnavailable, match="softmax-fused"):  # PyTorch's kernel: unavailable, not failed
        jb.time_attention("softmax-fused", batch=1, T=12, n_heads=2, d_head=4, repeats=2)


def test_refusals():
    config, params, expected = load_case("linear_mixture_gray")
    with pytest.raises(ConfigError, match="enable_x64"):
        jb.prepare(config, params, dtype="float64")
    m = jb.prepare(config, params)
    with pytest.raises(ConfigError, match="attention='softmax'"):
        jb.generate(m, "softmax-cached", expected["noise"])
    with pytest.raises(ConfigError, match="steps"):
        jb.generate(m, "linear-recurrent", expected["noise"], steps=0)
    info = jb.info()
    assert info["backend"] == "jax" and info["version"] == jax.__version__ and info["threads"] >= 1


def test_weights_round_trip_and_batches(tmp_path):
    config, params, expected = load_case("softmax_categorical_gray")
    m = jb.prepare(config, params)
    bpd = jb.bits_per_dim(m, expected["data"], batch_size=1)  # two batches of one
    assert abs(bpd - expected["bits_per_dim"]) < TOLERANCE["float32"]["bits_per_dim"]
    save_checkpoint(tmp_path / "ckpt", config, jb.params_of(m))
    config2, params2 = load_checkpoint(tmp_path / "ckpt")
    assert config2 == config
    for n in params:
        np.testing.assert_array_equal(params2[n], params[n], err_msg=n)
    np.testing.assert_array_equal(jb.forward(jb.prepare(config2, params2), expected["tokens"]), jb.forward(m, expected["tokens"]))


# --- training -----------------------------------------------------------------------------------


def test_dropout_only_with_a_key():
    config, params, expected = load_case("linear_mixture_gray")
    config = dataclasses.replace(config, dropout=0.1)
    m = jb.prepare(config, params)
    both = jax.jit(lambda p, t, key: (model.forward(p, config, t), model.forward(p, config, t, key)))
    plain, dropped = both(m.params, jnp.asarray(expected["tokens"]), jax.random.key(0))
    np.testing.assert_allclose(plain, expected["out"], rtol=0, atol=TOLERANCE["float32"]["out"])
    assert np.abs(dropped - expected["out"]).max() > 0.01


def test_train_step_mirrors_torch_and_lowers_the_loss(torch_one_thread):
    """RAdam with decoupled weight decay, step for step as torch.optim.RAdam, in float64 (dropout 0
    in this fixture): the rectification starts at step 6, so 8 steps see both branches. One
    compilation for all the steps."""
    config, params, expected = load_case("softmax_mixture_rgb")
    ttrain = importlib.import_module("linattn.torch_backend.train")
    tm = tb.prepare(config, params, dtype="float64")
    optimizer = ttrain.make_optimizer(tm)
    losses = []
    with jax.enable_x64(True):
        state = train.init_state(config, jb.prepare(config, params, dtype="float64").params)
        for step in range(8):
            torch_loss = ttrain.train_step(tm, optimizer, torch.as_tensor(expected["data"]))
            state, jax_loss = train.train_step(state, jnp.asarray(expected["data"]))
            assert abs(float(jax_loss) - torch_loss) < TOLERANCE["float64"]["log_prob"]
            losses.append(float(jax_loss))
            compiled = train.train_step._cache_size() if step == 0 else compiled
        assert train.train_step._cache_size() == compiled
        jax_params = model.to_format(state.params, dtype=np.float64)
    assert losses[-1] < losses[0] and int(state.step) == 8
    for n, w in tm.state_dict().items():
        np.testing.assert_allclose(jax_params[n], w.detach().numpy(), rtol=0, atol=TOLERANCE["float64"]["out"], err_msg=n)
    assert not np.array_equal(jax_params["layers.0.ff1.weight"], params["layers.0.ff1.weight"])
