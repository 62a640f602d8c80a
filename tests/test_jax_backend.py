"""What only the JAX backend has: jit vs op by op, no recompilation, its refusals and dropout keys,
and its agreement with the PyTorch backend (the same bytes, the same training steps). The
properties it shares with PyTorch are in test_backend_parity.py.

The tests marked "no-jit" run the code op by op (`jax.disable_jit()`) as well as compiled. Every
compilation costs ~0.5-1 s on 2 cores, so tests jit whole functions rather than run many small ops
eagerly (each of which compiles on its own).
"""

import dataclasses
import importlib
from functools import partial

import numpy as np
import pytest

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")

import jax.numpy as jnp  # noqa: E402

from conftest import TOLERANCE, load_attention, load_case, random_model, random_qkv  # noqa: E402
from linattn import jax_backend as jb  # noqa: E402
from linattn import reference  # noqa: E402
from linattn import torch_backend as tb  # noqa: E402
from linattn.config import MODES, ConfigError  # noqa: E402

attn = importlib.import_module("linattn.jax_backend.attention")
model = importlib.import_module("linattn.jax_backend.model")
gen = importlib.import_module("linattn.jax_backend.generate")
train = importlib.import_module("linattn.jax_backend.train")


@pytest.fixture
def torch_one_thread():
    """torch on one thread while the test runs: its tiny ops spin-wait on a busy 2-core machine
    (300 steps of a small model: 0.1 s on one thread, seconds on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- compiled and op by op ----------------------------------------------------------------------


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


@pytest.mark.slow
def test_fixture_without_jit():
    """The model and the softmax-cached loop op by op (the attention forms have their own no-jit
    tests below): what jit compiles is what the Python says."""
    config, params, expected = load_case("softmax_mixture_rgb")
    with jax.disable_jit():
        _check_fixture(config, params, expected, "float32", modes=["softmax-cached"])


def test_attention_fixture_without_jit():
    """The parallel forms op by op against the fixture (compiled: test_backend_parity.py)."""
    a = load_attention()
    tol = TOLERANCE["float64"]["attention"]
    with jax.enable_x64(True), jax.disable_jit():
        q, k, v = (jnp.asarray(a[n], dtype="float64") for n in "qkv")
        # chunks of 7 over T = 7: op by op each op compiles, so one chunk only
        soft, soft_blocked = attn.softmax_attention(q, k, v), attn.softmax_attention_chunked(q, k, v, chunk_size=7)
        lin, lin_chunked = attn.linear_attention(q, k, v), attn.linear_attention(q, k, v, chunk_size=7)
    for o in (soft, soft_blocked):
        np.testing.assert_allclose(o, a["softmax_attention"], rtol=0, atol=tol)
    for o in (lin, lin_chunked):
        np.testing.assert_allclose(o, a["linear_attention"], rtol=0, atol=tol)


def test_chunked_softmax_scratch_grows_linearly():
    """Forward and backward of the chunked softmax, compiled, in chunks of 64 (XLA's memory
    analysis): the scratch memory at T = 1024 is under half of one (B, H, T, T) array of scores
    and doubles, not quadruples, with T, as each chunk is recomputed in the backward one at a time.
    The plain form's holds more than the scores at every length."""
    def scratch(f, T, B=1, H=2, D=8):
        x = jax.ShapeDtypeStruct((B, T, H, D), jnp.float32)
        grads = jax.jit(jax.grad(lambda q, k, v: f(q, k, v).sum(), argnums=(0, 1, 2)))
        return grads.lower(x, x, x).compile().memory_analysis().temp_size_in_bytes

    chunked = partial(attn.softmax_attention_chunked, chunk_size=64)
    for T in (1024, 2048):
        assert scratch(attn.softmax_attention, T) > 2 * T * T * 4
    assert scratch(chunked, 1024) < 2 * 1024 * 1024 * 4 / 2
    assert scratch(chunked, 2048) < 2.2 * scratch(chunked, 1024)


def test_linear_recurrent_twin_without_jit():
    """The linear twin op by op over a whole sequence (compiled, and the softmax twin:
    test_backend_parity.py; the softmax twin op by op: `test_fixture_without_jit`)."""
    T, (q, k, v) = 30, random_qkv(30)
    B, _, H, D = q.shape
    with jax.enable_x64(True), jax.disable_jit():
        state = attn.KINDS["linear"].empty_state(B, H, D, T, jnp.float64)
        outs = []
        for t in range(T):
            o, state = attn.linear_attention_recurrent(q[:, t], k[:, t], v[:, t], state)
            outs.append(np.asarray(o))
    np.testing.assert_allclose(np.stack(outs, axis=1), reference.linear_attention(q, k, v), rtol=0,
                               atol=TOLERANCE["float64"]["attention"])


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


@pytest.mark.slow
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


# --- training -----------------------------------------------------------------------------------


def test_dropout_only_with_a_key():
    config, params, expected = load_case("linear_mixture_gray")
    config = dataclasses.replace(config, dropout=0.1)
    m = jb.prepare(config, params)
    both = jax.jit(lambda p, t, key: (model.forward(p, config, t), model.forward(p, config, t, key)))
    plain, dropped = both(m.params, jnp.asarray(expected["tokens"]), jax.random.key(0))
    np.testing.assert_allclose(plain, expected["out"], rtol=0, atol=TOLERANCE["float32"]["out"])
    assert np.abs(dropped - expected["out"]).max() > 0.01


@pytest.mark.parametrize("name", ["softmax_mixture_rgb", "linear_favor_mixture_gray"])
def test_train_step_mirrors_torch_and_lowers_the_loss(torch_one_thread, name):
    """RAdam with decoupled weight decay, step for step as torch.optim.RAdam, in float64 (dropout 0
    in these fixtures): the rectification starts at step 6, so 8 steps see both branches. One
    compilation for all the steps. FAVOR+'s projection, a buffer in torch, stays out of JAX's
    optimiser state (and so unchanged, as torch's buffer)."""
    config, params, expected = load_case(name)
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
    opt_names = [k for k in train.state_arrays(state) if k.startswith("opt/")]
    assert opt_names and not any("feature_projection" in k for k in opt_names)
    assert set(tm.state_dict()) == set(jax_params)
    for n, w in tm.state_dict().items():
        np.testing.assert_allclose(jax_params[n], w.detach().numpy(), rtol=0, atol=TOLERANCE["float64"]["out"], err_msg=n)
    assert not np.array_equal(jax_params["layers.0.ff1.weight"], params["layers.0.ff1.weight"])
