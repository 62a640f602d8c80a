"""The properties the PyTorch and JAX backends share, written once and run for each.

Test names are the titles of the @testsets in julia/test/runtests.jl (`@testset "causality of the
model"` is `test_causality_of_the_model` here), so that one property has one name in every language;
`test_names_match_the_julia_testsets` checks it, and names the few properties Julia lacks. What only
one backend has (PyTorch's fused kernel and T = 2^16, JAX's jit vs no-jit and recompilation, the
byte-for-byte comparisons between the two) stays in test_torch_backend.py and test_jax_backend.py.

Each backend is reached through a small adapter (`Torch`, `Jax`) that spells the few calls that
differ: arrays in and out, gradients, the recurrent step, the training step. float64 runs JAX inside
`jax.enable_x64(True)` (`precision`); JAX functions are jitted whole, as every compilation costs
~0.5-1 s on 2 cores and op-by-op execution compiles each op.
"""

import contextlib
import importlib
import re
from functools import partial

import numpy as np
import pytest

from conftest import CASES, ROOT, TOLERANCE, load_attention, load_case, random_model, random_qkv
from linattn import reference
from linattn.backends import TIME_ATTENTION_KINDS, BackendUnavailable
from linattn.config import MODES, ConfigError, ModelConfig
from linattn.weights import favor_projection, init_params, load_checkpoint, save_checkpoint


class Torch:
    name = "torch"

    def __init__(self):
        self.torch = pytest.importorskip("torch")
        self.backend = importlib.import_module("linattn.torch_backend")
        self.attention = importlib.import_module("linattn.torch_backend.attention")
        self.loss = importlib.import_module("linattn.torch_backend.loss")
        self.generate = importlib.import_module("linattn.torch_backend.generate")
        self.training = importlib.import_module("linattn.torch_backend.train")

    def precision(self, dtype):
        return contextlib.nullcontext()

    def array(self, x):
        return self.torch.as_tensor(np.asarray(x))

    def run(self, fn, *arrays):
        """fn(*arrays) -> {name: array}, on this backend's arrays; the results as numpy."""
        with self.torch.no_grad():
            out = fn(*(self.array(x) for x in arrays))
        return {n: o.numpy() for n, o in out.items()}

    def gradients(self, losses, *arrays):
        """For each scalar function in `losses`, its gradients with respect to every array."""
        out = []
        for loss in losses:
            xs = [self.torch.tensor(np.asarray(x), requires_grad=True) for x in arrays]
            loss(*xs).backward()
            out.append([x.grad.numpy() for x in xs])
        return out

    def recurrent(self, kind, B, H, D, T, *feature_args):
        """(step, empty state) of a kind's recurrent twin, in float64; step takes numpy q, k, v;
        `feature_args` (numpy: FAVOR+'s projection) are passed to every step."""
        twin = self.attention.KINDS[kind]
        args = [self.array(w) for w in feature_args]
        d_feature = len(feature_args[0]) if feature_args else None
        state = twin.empty_state(B, H, D, T, self.torch.zeros((), dtype=self.torch.float64), d_feature)
        return lambda q, k, v, s: twin.recurrent(self.array(q), self.array(k), self.array(v), s, *args), state

    def embedded(self, model):
        return model.forward_embedded

    def forward_by_steps(self, model, tokens):
        """The model's recurrent form over every position of `tokens` (B, T): (B, T, n_outputs)."""
        tokens = self.array(tokens)
        T = tokens.shape[1]
        with self.torch.inference_mode():
            state, packed = model.empty_state(len(tokens), T), model.packed(T)
            return np.stack([model.step(tokens[:, t], t, state, packed).numpy() for t in range(T)], axis=1)

    def log_prob(self, out, config, data):
        return self.loss.log_prob(self.array(out), config, self.array(data)).numpy()

    def sample_from_head(self, out, config, u):
        return self.generate.sample_from_head(self.array(out), config, self.array(u)).numpy()

    def train(self, config, params, data, steps, lr, weight_decay):
        """Losses of `steps` training steps on the batch `data`, and the weights after them."""
        model = self.backend.prepare(config, params)
        optimizer = self.training.make_optimizer(model, lr=lr, weight_decay=weight_decay)
        data = self.array(data)
        losses = [self.training.train_step(model, optimizer, data) for _ in range(steps)]
        return losses, self.backend.params_of(model)


class Jax:
    name = "jax"

    def __init__(self):
        self.jax = pytest.importorskip("jax")
        self.backend = importlib.import_module("linattn.jax_backend")
        self.attention = importlib.import_module("linattn.jax_backend.attention")
        self.model = importlib.import_module("linattn.jax_backend.model")
        self.generate = importlib.import_module("linattn.jax_backend.generate")
        self.training = importlib.import_module("linattn.jax_backend.train")

    def precision(self, dtype):
        return self.jax.enable_x64(dtype == "float64")

    def array(self, x):
        return self.jax.numpy.asarray(x)

    def run(self, fn, *arrays):
        return {n: np.asarray(o) for n, o in self.jax.jit(fn)(*arrays).items()}

    def gradients(self, losses, *arrays):
        argnums = tuple(range(len(arrays)))
        grads = self.jax.jit(lambda *xs: [self.jax.grad(loss, argnums)(*xs) for loss in losses])(*arrays)
        return [[np.asarray(g) for g in gs] for gs in grads]

    def recurrent(self, kind, B, H, D, T, *feature_args):
        """The softmax cache is read in blocks of 8, so that every branch of its switch runs."""
        twin = self.attention.KINDS[kind]
        step = self.jax.jit(partial(twin.recurrent, block_size=8) if kind.startswith("softmax") else twin.recurrent)
        args = [self.array(w) for w in feature_args]
        d_feature = len(feature_args[0]) if feature_args else None
        return (lambda q, k, v, s: step(q, k, v, s, *args)), twin.empty_state(B, H, D, T, self.jax.numpy.float64, d_feature)

    def embedded(self, model):
        return lambda x: self.model.forward_embedded(model.params, model.config, x)

    def forward_by_steps(self, model, tokens):
        config = model.config
        B, T = tokens.shape
        dtype = model.params["embed.weight"].dtype
        step = self.jax.jit(self.model.forward_step, static_argnames="config")
        state = self.model.empty_state(config, B, dtype, max_len=T)
        outs = []
        for t in range(T):  # the position is traced: one compilation for all of them
            out, state = step(model.params, config, self.array(tokens[:, t]), t, state)
            outs.append(np.asarray(out))
        return np.stack(outs, axis=1)

    def log_prob(self, out, config, data):
        return np.asarray(self.backend._log_prob(self.array(out), config, self.array(data)))

    def sample_from_head(self, out, config, u):
        sample = self.jax.jit(self.generate.sample_from_head, static_argnames="config")
        return np.asarray(sample(self.array(out), config, self.array(u)))

    def train(self, config, params, data, steps, lr, weight_decay):
        prepared = self.backend.prepare(config, params)
        state = self.training.init_state(config, prepared.params, self.training.make_optimizer(lr=lr, weight_decay=weight_decay))
        losses = []
        for _ in range(steps):
            state, loss = self.training.train_step(state, self.array(data))
            losses.append(float(loss))
        return losses, self.model.to_format(state.params)


@pytest.fixture(params=[Torch, Jax], ids=lambda b: b.name)
def backend(request):
    return request.param()


def parallel_forms(backend, chunk_size, projected=False):
    """The attention kinds of the backend's table that take FAVOR+'s projection (`projected`) or
    those that do not, by their parallel forms (q, k, v, *feature_args), and each linear one (and
    the chunked softmax) in chunks of `chunk_size`."""
    A = backend.attention
    kinds = {name: kind for name, kind in A.KINDS.items() if kind.projected == projected}
    chunked = {} if projected else {"softmax, chunked": partial(A.softmax_attention_chunked, chunk_size=chunk_size)}
    return {**{name: kind.parallel for name, kind in kinds.items()},
            **{f"{name}, chunked": partial(kind.parallel, chunk_size=chunk_size) for name, kind in kinds.items()
               if name.startswith("linear")}, **chunked}


def favor_qkv(T, seed=0, m=7):
    """random_qkv (B=2, H=3, D=5) and a FAVOR+ projection of m = 7 rows (a block of 5, part of another)."""
    q, k, v = random_qkv(T, seed=seed)
    return q, k, v, favor_projection(m, q.shape[-1], np.random.default_rng(seed + 1))


# --- attention ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_attention_against_the_fixture(backend, dtype):
    """Every kind in the backend's table, and each linear one and the chunked softmax in chunks of 3
    over T = 7 (two full chunks and a padded one), against the float64 reference's outputs: attention.npz, and
    favor_attention.npz with its projection for the FAVOR+ kind."""
    outs = {}
    for projected, a in ((False, load_attention()), (True, load_attention("favor_attention"))):
        forms = parallel_forms(backend, 3, projected)
        args = [a["projection"].astype(dtype)] if projected else []
        with backend.precision(dtype):
            got = backend.run(lambda q, k, v, *w: {n: f(q, k, v, *w) for n, f in forms.items()},
                              *(a[n].astype(dtype) for n in "qkv"), *args)
        for name, o in got.items():
            outs[name] = o
            expected = a["linear_favor_attention" if projected else "linear_attention" if name.startswith("linear")
                         else "softmax_attention"]
            assert o.dtype == np.dtype(dtype), name
            np.testing.assert_allclose(o, expected, rtol=0, atol=TOLERANCE[dtype]["attention"], err_msg=name)
    assert {"softmax", "softmax-chunked", "softmax, chunked", "linear", "linear, chunked", "linear-favor",
            "linear-favor, chunked"} <= set(outs)


@pytest.mark.parametrize("kind", ["softmax", "linear", "linear-favor"])
def test_recurrent_twin_equals_the_parallel_form(backend, kind):
    """The twin of the kind's table entry stepped over a whole sequence from its empty state (FAVOR+:
    its state is m x D, m = 7 features per head of 5)."""
    q, k, v, W = favor_qkv(30)
    args = [W] if backend.attention.KINDS[kind].projected else []
    B, T, H, D = q.shape
    with backend.precision("float64"):
        parallel = backend.run(lambda q, k, v, *w: {"o": backend.attention.KINDS[kind].parallel(q, k, v, *w)},
                               q, k, v, *args)["o"]
        step, state = backend.recurrent(kind, B, H, D, T, *args)
        outs = []
        for t in range(T):
            o, state = step(q[:, t], k[:, t], v[:, t], state)
            outs.append(np.asarray(o))
    np.testing.assert_allclose(np.stack(outs, axis=1), parallel, rtol=0, atol=TOLERANCE["float64"]["attention"])


@pytest.mark.parametrize("T, chunk, kind", [(1, 4, "linear"), (7, 4, "linear"), (50, 16, "linear"), (64, 16, "linear"),
                                           (100, 64, "linear"), (130, 32, "linear"), (7, 4, "linear-favor"),
                                           (130, 32, "linear-favor")])
def test_chunkwise_linear_attention_equals_the_quadratic_form(backend, T, chunk, kind):
    """Chunks that divide T, that leave a padded last chunk, and one chunk longer than T; against
    the reference's masked quadratic form, in float64; FAVOR+'s features (m = 7 of D = 5) too."""
    q, k, v, W = favor_qkv(T, seed=T)
    args = [W] if kind == "linear-favor" else []
    fm = {"linear": backend.attention.elu_feature_map, "linear-favor": backend.attention.favor_feature_map}[kind]
    with backend.precision("float64"):
        o = backend.run(lambda q, k, v, *w: {"o": backend.attention.linear_attention(q, k, v, *w, feature_map=fm,
                                                                                     chunk_size=chunk)}, q, k, v, *args)["o"]
    ref_fm = {"linear": reference.elu_feature_map, "linear-favor": reference.favor_feature_map}[kind]
    np.testing.assert_allclose(o, reference.linear_attention(q, k, v, *args, feature_map=ref_fm), rtol=0, atol=1e-10)


@pytest.mark.parametrize("T, chunk", [(5, 2), (50, 16), (100, 32), (33, 64)])
def test_chunked_softmax_attention_equals_softmax_attention(backend, T, chunk):
    """The memory-efficient softmax (queries in chunks, recomputed in the backward; PyTorch: keys
    too, with a running max and sum) against the reference's plain masked softmax, and its
    gradients against the plain form's, in float64: chunks that divide T, that leave a short last
    chunk, and one chunk longer than T."""
    q, k, v = random_qkv(T, seed=T)
    w = np.random.default_rng(T + 1).standard_normal(q.shape)  # no output sums to a constant
    A = backend.attention
    chunked = partial(A.softmax_attention_chunked, chunk_size=chunk)
    with backend.precision("float64"):
        o = backend.run(lambda q, k, v: {"o": chunked(q, k, v)}, q, k, v)["o"]
        wt = backend.array(w)
        plain, grads = backend.gradients([lambda q, k, v, f=f: (f(q, k, v) * wt).sum() for f in (A.softmax_attention, chunked)],
                                         q, k, v)
    np.testing.assert_allclose(o, reference.softmax_attention(q, k, v), rtol=0, atol=1e-10)
    for name, want, got in zip("qkv", plain, grads):
        assert np.abs(want).max() > 0.1, name
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10, err_msg=f"d/d{name}")


def test_causality_of_the_attention(backend):
    """For every form: the gradient of the output at position t with respect to q, k and v is
    exactly zero after t, and not zero up to t (at every position for k and v). T = 11, t = 5:
    chunks of 4 (linear attention, the chunked softmax) put t in the second chunk."""
    q, k, v, W = favor_qkv(11, seed=1)
    t = 5
    forms = {**parallel_forms(backend, 4), **parallel_forms(backend, 4, projected=True)}
    projected = set(parallel_forms(backend, 4, projected=True))
    w = np.random.default_rng(2).standard_normal(q.shape[2:])  # (H, D): no output sums to a constant
    with backend.precision("float64"):
        wt, Wt = backend.array(w), backend.array(W)
        losses = [lambda q, k, v, f=f, args=[Wt] if n in projected else []: (f(q, k, v, *args)[:, t] * wt).sum()
                  for n, f in forms.items()]
        grads = backend.gradients(losses, q, k, v)
    for name, (dq, dk, dv) in zip(forms, grads):
        for g in (dq, dk, dv):
            assert np.all(g[:, t + 1 :] == 0.0), f"{name}: position {t} depends on later inputs"
        assert np.any(dq[:, : t + 1] != 0.0), name
        for g in (dk, dv):
            assert np.all(np.abs(g[:, : t + 1]).sum(axis=(0, 2, 3)) > 0), f"{name}: position {t} ignores an earlier input"


# --- the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fixture(backend, case, dtype):
    """Head outputs, log p and bits/dim of each committed fixture, and the bytes every generation
    mode of its attention draws from its noise. (JAX samples in float32 only: its float64 samples
    are the same bytes, and compiling the loops again costs seconds.)"""
    config, params, expected = case
    tol = TOLERANCE[dtype]
    b = backend.backend
    modes = [mode for mode in MODES if f"sample_{mode}" in expected]
    assert modes
    with backend.precision(dtype):
        m = b.prepare(config, params, dtype=dtype)
        out = b.forward(m, expected["tokens"])
        assert out.dtype == np.dtype(dtype)
        np.testing.assert_allclose(out, expected["out"], rtol=0, atol=tol["out"])
        lp = backend.log_prob(out, config, expected["data"])
        np.testing.assert_allclose(lp, expected["log_prob"], rtol=0, atol=tol["log_prob"])
        assert abs(b.bits_per_dim(m, expected["data"]) - expected["bits_per_dim"]) < tol["bits_per_dim"]
        for mode in modes if backend.name == "torch" or dtype == "float32" else ():
            sample = b.generate(m, mode, expected["noise"])
            assert sample.dtype == np.uint8
            np.testing.assert_array_equal(sample, expected[f"sample_{mode}"], err_msg=mode)


def test_prefix_completions(backend, case):
    """Completion of a given first half (float32): the fixture's own first bytes as the prefix give
    back the fixture's sample, as given bytes are fed through the model and not drawn, and byte t
    uses noise position t either way; other given bytes are kept and change what follows. (Julia
    against PyTorch, given bytes included: test_julia_backend.py.)"""
    config, params, expected = case
    b = backend.backend
    m = b.prepare(config, params)
    noise = expected["noise"]
    P = config.seq_len // 2
    other = np.random.default_rng(5).integers(0, 256, (len(noise), P))
    for mode in (mode for mode in MODES if f"sample_{mode}" in expected):
        want = expected[f"sample_{mode}"]
        np.testing.assert_array_equal(b.generate(m, mode, noise, prefix=want[:, :P]), want, err_msg=mode)
        completed = b.generate(m, mode, noise, prefix=other)
        np.testing.assert_array_equal(completed[:, :P], other, err_msg=mode)
        assert np.any(completed[:, P:] != want[:, P:]), mode


@pytest.mark.parametrize("mode, kind, pattern", [*((m, a, "") for m, a in MODES.items()),
                                                ("linear-recurrent", "linear-favor", ""),
                                                *((m, a, "faf") for m, a in MODES.items())])
def test_generation_equals_the_reference(backend, mode, kind, pattern):
    """Every mode draws the reference's bytes from the same noise on a random model too (float32,
    T = 48, batch 1), not only on the committed fixtures: JAX once read wrong position-code rows
    inside its compiled generation loop here while every fixture still passed. FAVOR+ too, and PAR
    layer patterns (feed-forward-only layers around an attention layer)."""
    config, params = random_model(kind, (4, 4, 3), seed=5, layer_pattern=pattern)
    noise = np.random.default_rng(6).random((1, config.seq_len, 2))  # batch 1: where that fault showed
    expected = reference.generate(params, config, mode, noise)
    got = backend.backend.generate(backend.backend.prepare(config, params), mode, noise)
    np.testing.assert_array_equal(got, expected)
    assert len(np.unique(expected)) > 10  # not a constant image


@pytest.mark.parametrize("attention, pattern", [("softmax", ""), ("linear", ""), ("linear-favor", ""), ("softmax", "fafa"),
                                                ("linear", "afaf")])
def test_forward_step_equals_forward(backend, attention, pattern):
    """The recurrent form position by position equals the parallel form, in float64 (T = 40); with
    PAR layer patterns too (the state of a feed-forward-only layer is None)."""
    config, params = random_model(attention, (5, 4, 2), layer_pattern=pattern)
    tokens = np.random.default_rng(1).integers(0, 257, size=(2, config.seq_len))
    with backend.precision("float64"):
        m = backend.backend.prepare(config, params, dtype="float64")
        stepped = backend.forward_by_steps(m, tokens)
        expected = backend.backend.forward(m, tokens)
    np.testing.assert_allclose(stepped, expected, rtol=0, atol=TOLERANCE["float64"]["out"])


@pytest.mark.parametrize("attention, pattern", [("softmax", ""), ("linear", ""), ("linear-favor", ""), ("linear", "fa")])
def test_causality_of_the_model(backend, attention, pattern):
    """d out[:, i] / d x[:, j] is exactly zero for every j > i, and not for any j <= i (x: the
    embedded inputs; out: the head outputs, projected on a random vector). T = 70 spans two
    linear-attention chunks of 64, the second one padded."""
    config, params = random_model(attention, (7, 10, 1), layer_pattern=pattern)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, config.seq_len, config.d_model)).astype(np.float32)
    w = backend.array(rng.standard_normal(config.n_outputs).astype(np.float32))
    f = backend.embedded(backend.backend.prepare(config, params))
    positions = (0, 31, 63, 64, 69)
    grads = backend.gradients([lambda x, i=i: (f(x)[:, i] * w).sum() for i in positions], x)
    for i, (dx,) in zip(positions, grads):
        assert np.all(dx[:, i + 1 :] == 0.0), f"position {i} depends on later inputs"
        assert np.all(np.abs(dx[:, : i + 1]).sum(-1) > 0), f"position {i} ignores an earlier input"


def test_sample_from_head(backend):
    """The inverse CDF of DESIGN section 3 on hand-made head outputs (the Julia testset's cases)."""
    mixture = ModelConfig(n_mixtures=2)
    out = np.array([[0.0, 0.0, 0.2, -0.3, -3.0, -3.0]] * 5, np.float32)  # equal weights, means 0.2 and -0.3
    u = np.array([[0.1, 0.5], [0.9, 0.5], [1.0, 0.5], [0.1, 0.0], [0.1, 1.0]], np.float32)
    # component 1: round(0.6 * 255); component 2: round(0.35 * 255) = round(89.25); no cumulative
    # weight exceeds u1 = 1: the last component; log(0) = -inf: clipped to -1, +inf to 1
    np.testing.assert_array_equal(backend.sample_from_head(out, mixture, u), [153, 89, 89, 0, 255])
    categorical = ModelConfig(head="categorical")
    two = np.full((2, 256), -np.inf, np.float32)
    two[:, [3, 200]] = 0.0  # half the mass on byte 3, half on byte 200
    np.testing.assert_array_equal(backend.sample_from_head(two, categorical, np.array([[0.2, 0.5], [0.7, 0.5]], np.float32)),
                                  [3, 200])
    flat = np.zeros((1, 256), np.float32)  # cumulative weights k/256, exact: the first above 0.5 is byte 128
    np.testing.assert_array_equal(backend.sample_from_head(flat, categorical, np.array([[0.5, 0.5]], np.float32)), [128])


@pytest.mark.parametrize("name", ["softmax_categorical_gray", "linear_favor_mixture_gray", "softmax_par_categorical_gray"])
def test_checkpoints(backend, tmp_path, name):
    """A prepared model gives back the format's weights exactly (FAVOR+'s projection included);
    they survive a save and a load, and the reloaded model computes the same outputs; bits/dim in
    batches of one."""
    config, params, expected = load_case(name)
    b = backend.backend
    m = b.prepare(config, params)
    back = b.params_of(m)
    assert set(back) == set(params)
    for n in params:
        assert back[n].dtype == np.float32, n
        np.testing.assert_array_equal(back[n], params[n], err_msg=n)
    save_checkpoint(tmp_path / "ckpt", config, back)
    config2, params2 = load_checkpoint(tmp_path / "ckpt")
    assert config2 == config
    for n in params:
        np.testing.assert_array_equal(params2[n], params[n], err_msg=n)
    np.testing.assert_array_equal(b.forward(b.prepare(config2, params2), expected["tokens"]), b.forward(m, expected["tokens"]))
    bpd = b.bits_per_dim(m, expected["data"], batch_size=1)  # two batches of one
    assert abs(bpd - expected["bits_per_dim"]) < TOLERANCE["float32"]["bits_per_dim"]


# --- timing -------------------------------------------------------------------------------------


def test_time_attention(backend):
    """Every kind the scaling study plans for the backend gives `repeats` positive times; a kind
    it lacks (another backend's, or none at all) is refused as unavailable, not failed."""
    b = backend.backend
    offered = TIME_ATTENTION_KINDS[backend.name]
    for kind in offered:
        seconds = b.time_attention(kind, 1, 12, 2, 4, 2)
        assert len(seconds) == 2 and all(s > 0 for s in seconds), kind
    lacking = {k for kinds in TIME_ATTENTION_KINDS.values() for k in kinds} - set(offered) | {"quadratic"}
    for kind in sorted(lacking):
        with pytest.raises(BackendUnavailable, match=kind):
            b.time_attention(kind, 1, 12, 2, 4, 2)


@pytest.mark.parametrize("name", CASES)
def test_time_window(backend, name):
    """Windows at the first and the last positions; a window past the end and a mode of the other
    attention are refused."""
    config, params, _ = load_case(name)
    b = backend.backend
    m = b.prepare(config, params)
    mode, wrong = ("linear-recurrent", "softmax-cached") if config.attention == "linear" else ("softmax-cached", "linear-recurrent")
    T = config.seq_len
    assert b.time_window(m, mode, 2, 0, 3) > 0
    assert b.time_window(m, mode, 2, T - 3, 3, seed=1) > 0
    with pytest.raises(ConfigError, match="window"):
        b.time_window(m, mode, 2, T - 2, 3)
    with pytest.raises(ConfigError, match=f"attention='{config.attention}'"):
        b.time_window(m, wrong, 1, 0, 1)


# --- training -----------------------------------------------------------------------------------


@pytest.mark.parametrize("feature_map, pattern", [("elu", ""), ("favor", ""), ("elu", "fa")])
def test_train_step(backend, feature_map, pattern, tmp_path):
    """30 steps on one repeated batch of bytes 0..9 lower the loss; decoupled weight decay shrinks
    every weight that gets no gradient (the embeddings of bytes 10..255) by (1 - lr wd) per step
    and nothing else; the embeddings of the bytes seen are trained. FAVOR+'s projection is not
    trained: not decayed either, the same bits after the steps, and through a checkpoint, whose
    model computes what the trained one does. A PAR model (a feed-forward-only layer first) too."""
    lr, wd, steps = 1e-2, 0.01, 30
    config = ModelConfig(n_layers=len(pattern) or 1, n_heads=2, d_model=16, image_shape=(4, 4, 1), dropout=0.0,
                         feature_map=feature_map, n_features=12, layer_pattern=pattern)
    params = init_params(config, 0)
    data = np.random.default_rng(3).integers(0, 10, (4, config.seq_len))
    with backend.precision("float32"):
        losses, after = backend.train(config, params, data, steps, lr, wd)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.1
    unused = slice(10, 256)  # row b of embed.weight holds byte b; row 256 the start token
    np.testing.assert_allclose(after["embed.weight"][unused], params["embed.weight"][unused] * (1 - lr * wd) ** steps,
                               rtol=1e-5, atol=0)
    assert np.all(after["embed.weight"][:10] != params["embed.weight"][:10] * (1 - lr * wd) ** steps)
    last = f"layers.{config.n_layers - 1}"  # a layer with attention in every variant
    for n in (f"{last}.attn.q.weight", "layers.0.ff1.weight"):
        assert not np.array_equal(after[n], params[n]), n
    fixed = [n for n in params if n.endswith(".feature_projection")]
    assert len(fixed) == (feature_map == "favor")
    for n in fixed:
        np.testing.assert_array_equal(after[n], params[n], err_msg=n)
    save_checkpoint(tmp_path / "trained", config, after)
    config2, reloaded = load_checkpoint(tmp_path / "trained")
    assert config2 == config and all(np.array_equal(reloaded[n], after[n]) for n in after)
    tokens = reference.input_tokens(data)
    np.testing.assert_allclose(backend.backend.forward(backend.backend.prepare(config2, reloaded), tokens),
                               reference.forward(after, config, tokens), rtol=0, atol=TOLERANCE["float32"]["out"])


# --- one name per property in every language ------------------------------------------------------

# Properties without a Julia testset of their own, with the reason.
NOT_IN_JULIA = {"generation_equals_the_reference": "Julia checks its generation against the fixtures (fixture)"}


def python_name_of(title: str) -> str:
    """A Julia @testset title as a Python test name: interpolated parts ("$name", "($T)") dropped,
    snake case."""
    title = re.sub(r"\s*\$\w+", "", re.sub(r"\s*\([^)]*\$[^)]*\)", "", title))
    return re.sub(r"[^0-9a-z]+", "_", title.lower()).strip("_")


def test_names_match_the_julia_testsets():
    titles = re.findall(r'@testset\s+"([^"]*)"', (ROOT / "julia" / "test" / "runtests.jl").read_text())
    julia = {python_name_of(t) for t in titles}
    assert python_name_of("attention against the fixture ($T)") == "attention_against_the_fixture"
    assert python_name_of("time_window ($name)") == "time_window"
    assert python_name_of("fixture $name ($T)") == "fixture"
    here = {n.removeprefix("test_") for n in globals() if n.startswith("test_")} - {"names_match_the_julia_testsets"}
    assert len(here) >= 10
    assert not set(NOT_IN_JULIA) & julia, "a property listed as missing in Julia has a testset there"
    missing = sorted(here - julia - set(NOT_IN_JULIA))
    assert not missing, f"no @testset of these names in julia/test/runtests.jl: {missing}"
