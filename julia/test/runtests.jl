# Tests of the Julia backend: run with `julia --project=julia -e 'using Pkg; Pkg.test()'`.
#
# The committed fixtures (../../fixtures, made by the float64 numpy reference) are read with NPZ.jl.
# numpy arrays arrive in their logical C-order shapes, (B, T, ...); `julia_layout` reverses the
# dimensions into this package's feature-first layout, [..., T, B].
#
# Samples from noise: the float64 model must reproduce the fixtures' bytes exactly. In float32 a
# byte can move across a bin edge when the value lies within float32 rounding (~1e-6) of it, and
# the next bytes then follow another path; the float32 check asks for 95% equal bytes.

using LinAttn
using LinAttn: ChunkedSoftmaxKind, KINDS, KVCache, LinearKind, LinearState, MODES, SoftmaxKind, TorchRAdam,
    attention_kind, d_feature, has_attention, optimiser_rule, parallel, projected
using NPZ: npzread
using Optimisers: Optimisers
using Random: Random
using Test
using Zygote: Zygote

const FIXTURES = normpath(joinpath(@__DIR__, "..", "..", "fixtures"))
const CASES = sort([d for d in readdir(FIXTURES) if isfile(joinpath(FIXTURES, d, "expected.npz"))])

# Absolute tolerances against the float64 reference: the table of tests/conftest.py.
const TOLERANCE = Dict(
    Float64 => (out = 1e-10, log_prob = 1e-9, bits_per_dim = 1e-9, attention = 1e-10),
    Float32 => (out = 1e-5, log_prob = 1e-4, bits_per_dim = 1e-5, attention = 1e-5),
)

"numpy's (B, T, ...) as read by NPZ.jl -> the Julia layout [..., T, B]."
julia_layout(x::AbstractArray) = permutedims(x, ndims(x):-1:1)

maxdiff(a, b) = maximum(abs.(a .- b))

"The exception `f()` throws, or nothing."
function thrown(f)
    try
        f()
    catch e
        return e
    end
    return nothing
end

fixture_model(name; float_type = Float32) = model_from_params(load_checkpoint(joinpath(FIXTURES, name))...; float_type)

@testset "LinAttn" begin

@testset "attention against the fixture ($T)" for T in (Float64, Float32)
    f = npzread(joinpath(FIXTURES, "attention.npz"))
    q, k, v = (T.(julia_layout(f[n])) for n in ("q", "k", "v"))  # (B, T, H, D) -> [D, H, T, B]
    tol = TOLERANCE[T].attention
    @test eltype(softmax_attention(q, k, v)) == T
    @test eltype(linear_attention(q, k, v)) == T
    @test maxdiff(softmax_attention(q, k, v), julia_layout(f["softmax_attention"])) < tol
    # T = 7 in chunks of 3 (two full chunks and a short one), and in one chunk
    @test eltype(softmax_attention_chunked(q, k, v; chunk_size = 3)) == T
    @test maxdiff(softmax_attention_chunked(q, k, v; chunk_size = 3), julia_layout(f["softmax_attention"])) < tol
    @test maxdiff(softmax_attention_chunked(q, k, v), julia_layout(f["softmax_attention"])) < tol
    @test maxdiff(linear_attention(q, k, v), julia_layout(f["linear_attention"])) < tol
    # T = 7 in chunks of 3: two full chunks and a padded one
    @test maxdiff(linear_attention(q, k, v; chunk_size = 3), julia_layout(f["linear_attention"])) < tol
    # FAVOR+ with the projection of favor_attention.npz (6 rows for D = 4), in one chunk and in chunks of 3
    g = npzread(joinpath(FIXTURES, "favor_attention.npz"))
    q, k, v = (T.(julia_layout(g[n])) for n in ("q", "k", "v"))
    W = T.(g["projection"])  # (m, D): a matrix keeps its logical shape
    want = julia_layout(g["linear_favor_attention"])
    @test eltype(linear_attention(q, k, v, W; feature_map = favor_feature_map)) == T
    @test maxdiff(linear_attention(q, k, v, W; feature_map = favor_feature_map), want) < tol
    @test maxdiff(linear_attention(q, k, v, W; feature_map = favor_feature_map, chunk_size = 3), want) < tol
    @test maxdiff(parallel(KINDS["linear-favor"], q, k, v, W), want) < tol
end

@testset "recurrent twin equals the parallel form ($kind, T = $L)" for kind in (:softmax, :linear, :favor), L in (1, 5, 70)
    Random.seed!(L)
    D, Dv, H, B = 4, 3, 2, 2
    q, k, v = randn(Float32, D, H, L, B), randn(Float32, D, H, L, B), randn(Float32, Dv, H, L, B)
    args = ()
    if kind == :softmax
        parallel = softmax_attention(q, k, v)
        state = KVCache(zeros(Float32, D, L, H, B), zeros(Float32, Dv, L, H, B), 0)
        twin! = softmax_attention_recurrent!
    elseif kind == :linear
        parallel = linear_attention(q, k, v; chunk_size = 8)  # L = 70: eight full chunks and a padded one
        state = LinearState(zeros(Float32, D, Dv, H, B), zeros(Float32, D, H, B))
        twin! = linear_attention_recurrent!
    else  # FAVOR+: m = 6 features of D = 4, the state S is m × Dv
        args = (Float32.(favor_projection(6, D, Random.Xoshiro(L))),)
        parallel = linear_attention(q, k, v, args...; feature_map = favor_feature_map, chunk_size = 8)
        state = LinearState(zeros(Float32, 6, Dv, H, B), zeros(Float32, 6, H, B))
        twin! = (q, k, v, s) -> linear_attention_recurrent!(q, k, v, s, args...; feature_map = favor_feature_map)
    end
    worst = 0.0f0
    for t in 1:L
        o, state = twin!(q[:, :, t, :], k[:, :, t, :], v[:, :, t, :], state)
        worst = max(worst, maxdiff(o, parallel[:, :, t, :]))
    end
    @test worst < 1f-5
    kind == :softmax && @test state.length == L
end

@testset "chunkwise linear attention equals the quadratic form (T = $L, chunk $C)" for L in (1, 7, 50, 64, 100, 130),
                                                                                       C in (4, 16, 64)
    Random.seed!(L)
    q, k, v = randn(4, 3, L, 2), randn(4, 3, L, 2), randn(4, 3, L, 2)
    # one chunk of all L positions is the masked quadratic form itself
    @test maxdiff(linear_attention(q, k, v; chunk_size = C), linear_attention(q, k, v; chunk_size = L)) < 1e-10
end

@testset "chunked softmax attention equals softmax attention (T = $L, chunk $C)" for (L, C) in
                                                                                   ((5, 2), (50, 16), (100, 32), (33, 64))
    # chunks that divide T, that leave a short last chunk, and one chunk longer than T; Float64
    Random.seed!(L)
    q, k, v = randn(4, 3, L, 2), randn(4, 3, L, 2), randn(5, 3, L, 2)
    w = randn(5, 3, L, 2)  # no output sums to a constant
    @test maxdiff(softmax_attention_chunked(q, k, v; chunk_size = C), softmax_attention(q, k, v)) < 1e-10
    @test softmax_attention_chunked(q, k, v, C) == softmax_attention_chunked(q, k, v; chunk_size = C)
    # gradients through its rule (each chunk recomputed in the pullback) against Zygote's of the plain form
    plain = Zygote.gradient((q, k, v) -> sum(softmax_attention(q, k, v) .* w), q, k, v)
    chunked = Zygote.gradient((q, k, v) -> sum(softmax_attention_chunked(q, k, v; chunk_size = C) .* w), q, k, v)
    for (want, got) in zip(plain, chunked)
        @test size(got) == size(want) && maximum(abs, want) > 0.1
        @test maxdiff(got, want) < 1e-10
    end
    # a plain `sum` hands the pullback a FillArrays.Fill, not an Array
    @test maxdiff(Zygote.gradient(q -> sum(softmax_attention_chunked(q, k, v, C)), q)[1],
                  Zygote.gradient(q -> sum(softmax_attention(q, k, v)), q)[1]) < 1e-10
    @test_throws ArgumentError softmax_attention_chunked(q, k, v; chunk_size = 0)
end

@testset "causality of the attention" begin
    Random.seed!(1)
    D, H, L, B, t0 = 4, 2, 11, 2, 6
    q, k, v = randn(D, H, L, B), randn(D, H, L, B), randn(D, H, L, B)
    q2, k2, v2 = copy(q), copy(k), copy(v)
    for x in (q2, k2, v2)
        x[:, :, t0:end, :] .+= 10 .* randn(D, H, L - t0 + 1, B)
    end
    chunked(q, k, v) = linear_attention(q, k, v; chunk_size = 4)
    softmax_chunked(q, k, v) = softmax_attention_chunked(q, k, v; chunk_size = 4)  # t = 5 in the second chunk
    for attend in (softmax_attention, chunked, softmax_chunked)
        before, after = attend(q, k, v), attend(q2, k2, v2)
        @test maxdiff(before[:, :, 1:t0-1, :], after[:, :, 1:t0-1, :]) < 1e-12
        @test maxdiff(before[:, :, t0:end, :], after[:, :, t0:end, :]) > 1e-3
        # the output at t has zero gradient with respect to every input after t (Zygote)
        t = 5
        grads = Zygote.gradient((q, k, v) -> sum(attend(q, k, v)[:, :, t, :]), q, k, v)
        for g in grads
            @test all(iszero, g[:, :, t+1:end, :])
            @test !all(iszero, g[:, :, 1:t, :])
        end
    end
end

@testset "the table of attention kinds" begin
    Random.seed!(3)
    q, k, v = randn(4, 2, 9, 2), randn(4, 2, 9, 2), randn(4, 2, 9, 2)
    @test KINDS["softmax"] isa SoftmaxKind && KINDS["linear"] isa LinearKind && KINDS["linear-favor"] isa LinearKind
    @test KINDS["softmax-chunked"] isa ChunkedSoftmaxKind && KINDS["softmax-chunked"].chunk_size == 256
    @test parallel(KINDS["softmax"], q, k, v) == softmax_attention(q, k, v)
    @test maxdiff(parallel(KINDS["softmax-chunked"], q, k, v), softmax_attention(q, k, v)) < 1e-12
    @test maxdiff(parallel(ChunkedSoftmaxKind(4), q, k, v), softmax_attention(q, k, v)) < 1e-12
    @test parallel(KINDS["linear"], q, k, v) == linear_attention(q, k, v)
    # FAVOR+ takes the layer's projection, and only it
    @test !projected(KINDS["softmax"]) && !projected(KINDS["linear"]) && projected(KINDS["linear-favor"])
    W = favor_projection(6, 4, Random.Xoshiro(1))
    @test parallel(KINDS["linear-favor"], q, k, v, W) == linear_attention(q, k, v, W; feature_map = favor_feature_map)
    @test all(>(0), favor_feature_map(q, W)) && size(favor_feature_map(q, W)) == (6, 2, 9, 2)
    @test size(empty_state(KINDS["linear-favor"], Float32, 2, 3, 4, 5, 6).S) == (6, 4, 3, 2)
    # the feature map is an argument of the linear kind: another map, other numbers
    squared = LinearKind(x -> elu_feature_map(x) .^ 2)
    @test maxdiff(parallel(squared, q, k, v), linear_attention(q, k, v)) > 1e-3
    @test empty_state(KINDS["softmax"], Float32, 2, 3, 4, 5) isa KVCache
    @test empty_state(KINDS["softmax-chunked"], Float32, 2, 3, 4, 5) isa KVCache
    @test empty_state(KINDS["linear"], Float32, 2, 3, 4, 5) isa LinearState
    for name in CASES  # every attending layer of a model keeps the kind of its config, looked up once
        model = fixture_model(name)
        c = model.config
        attending = [l for (i, l) in enumerate(model.layers) if has_attention(c, i - 1)]
        @test all(l -> l.attn.kind === KINDS[attention_kind(c)], attending)
        @test all(l -> length(l.attn.feature_args) == projected(l.attn.kind), attending)
        # a feed-forward-only layer (PAR) has no attention and no state
        @test all(i -> (model.layers[i].attn === nothing) == !has_attention(c, i - 1), eachindex(model.layers))
        states = empty_state(model, 1)
        @test all(i -> states[i] isa (!has_attention(c, i - 1) ? Nothing : c.attention == "softmax" ? KVCache : LinearState),
                  eachindex(states))
        c.attention == "linear" && @test all(s -> s === nothing || size(s.z, 1) == d_feature(c), states)
    end
end

@testset "fixture $name ($T)" for name in CASES, T in (Float64, Float32)
    config, params = load_checkpoint(joinpath(FIXTURES, name))
    model = model_from_params(config, params; float_type = T)
    expected = npzread(joinpath(FIXTURES, name, "expected.npz"))
    tol = TOLERANCE[T]
    data = julia_layout(expected["data"])  # (B, T) -> [T, B], UInt8
    tokens = julia_layout(expected["tokens"])
    @test input_tokens(data) == tokens
    out = forward(model, tokens)
    @test eltype(out) == T
    @test maxdiff(out, julia_layout(expected["out"])) < tol.out
    lp = log_prob(out, config, data)
    @test eltype(lp) == T && nats_per_dim(out, config, data) isa T
    @test maxdiff(lp, julia_layout(expected["log_prob"])) < tol.log_prob
    @test abs(bits_per_dim(model, data; batch_size = 1) - expected["bits_per_dim"]) < tol.bits_per_dim
    noise = julia_layout(expected["noise"])  # (B, T, 2) -> [2, T, B]
    modes = sort([m for (m, a) in MODES if a == config.attention])
    @test !isempty(modes)
    for mode in modes
        want = julia_layout(expected["sample_$mode"])
        got = generate(model, mode, noise)
        @test size(got) == size(want) && eltype(got) == UInt8
        if T == Float64
            @test got == want
        else
            @test count(got .== want) >= 0.95 * length(want)
        end
        timed, seconds, compile_seconds = timed_generate(model, mode, noise)
        @test timed == got && seconds >= 0 && compile_seconds >= 0
        @test all(iszero, generate(model, mode, noise; steps = 3)[4:end, :])
    end
end

@testset "prefix completions ($name, $T)" for name in CASES, T in (Float64, Float32)
    # Given bytes are fed through the model and not drawn, and byte t uses noise column t whether
    # given or drawn: the fixture's own first bytes as the prefix give back the fixture's sample.
    model = fixture_model(name; float_type = T)
    expected = npzread(joinpath(FIXTURES, name, "expected.npz"))
    noise = julia_layout(expected["noise"])  # [2, T, B]
    L, B = size(noise, 2), size(noise, 3)
    P = L ÷ 2
    Random.seed!(5)
    other = rand(0:255, P, B)
    for mode in sort([m for (m, a) in MODES if a == model.config.attention])
        want = julia_layout(expected["sample_$mode"])  # [T, B]
        own = generate(model, mode, noise; prefix = want[1:P, :])
        if T == Float64
            @test own == want
        else
            @test own[1:P, :] == want[1:P, :] && count(own .== want) >= 0.95 * length(want)
        end
        completed = generate(model, mode, noise; prefix = other)
        @test completed[1:P, :] == other
        @test completed[P+1:end, :] != want[P+1:end, :]  # the rest follows the given bytes
        @test generate(model, mode, noise; prefix = zeros(Int, 0, B)) == generate(model, mode, noise)
        @test all(iszero, generate(model, mode, noise; prefix = other, steps = 3)[4:end, :])
        @test_throws ArgumentError generate(model, mode, noise; prefix = fill(256, P, B))
        @test_throws ArgumentError generate(model, mode, noise; prefix = zeros(Int, P, B + 1))
        @test_throws ArgumentError generate(model, mode, noise; prefix = zeros(Int, L + 1, B))
    end
end

@testset "causality of the model" begin
    for name in CASES
        model = fixture_model(name; float_type = Float64)
        L = size(model.pe, 2)
        Random.seed!(2)
        tokens = vcat(fill(256, 1, 2), rand(0:255, L - 1, 2))
        t0 = L ÷ 2
        changed = copy(tokens)
        changed[t0:end, :] = rand(0:255, L - t0 + 1, 2)
        before, after = forward(model, tokens), forward(model, changed)
        @test maxdiff(before[:, 1:t0-1, :], after[:, 1:t0-1, :]) < 1e-12
        @test maxdiff(before[:, t0:end, :], after[:, t0:end, :]) > 1e-6
    end
end

@testset "forward_step equals forward ($name)" for name in CASES
    model = fixture_model(name; float_type = Float64)
    L = size(model.pe, 2)
    Random.seed!(4)
    tokens = vcat(fill(256, 1, 2), rand(0:255, L - 1, 2))  # [T, B]
    out = forward(model, tokens)  # [n_outputs, T, B]
    state = empty_state(model, 2)
    worst = 0.0
    for t in 1:L  # row t of tokens is position t - 1: the step takes the 0-based position
        worst = max(worst, maxdiff(forward_step!(model, tokens[t, :], t - 1, state), out[:, t, :]))
    end
    @test worst < TOLERANCE[Float64].out
end

@testset "sample_from_head" begin
    mixture = ModelConfig(n_mixtures = 2)
    out = reshape(Float32[0, 0, 0.2, -0.3, -3, -3], 6, 1)  # equal weights, means 0.2 and -0.3
    sample(u₁, u₂) = only(sample_from_head(out, mixture, reshape([u₁, u₂], 2, 1)))
    @test sample(0.1, 0.5) == 153  # component 1, x = 0.2: round(0.6 · 255)
    @test sample(0.9, 0.5) == 89  # component 2, x = -0.3: round(0.35 · 255) = round(89.25)
    @test sample(1.0, 0.5) == 89  # no cumulative weight exceeds u₁: the last component
    @test sample(0.1, 0.0) == 0  # log(0) = -∞: clipped to -1
    @test sample(0.1, 1.0) == 255
    categorical = ModelConfig(head = "categorical")
    @test only(sample_from_head(zeros(Float32, 256, 1), categorical, reshape([0.5, 0.5], 2, 1))) == 128
end

@testset "checkpoints" begin
    name = first(CASES)
    config, params = load_checkpoint(joinpath(FIXTURES, name))
    model = model_from_params(config, params)
    @test params_of(model) == params
    mktempdir() do dir
        save_checkpoint(dir, model)
        @test load_checkpoint(dir) == (config, params)
        # the permissions of any new file under the umask (mktemp's would be 0600), no temporaries left
        write(joinpath(dir, "plain"), "x")
        @test filemode(joinpath(dir, "weights.npz")) & 0o777 == filemode(joinpath(dir, "plain")) & 0o777
        @test sort(readdir(dir)) == ["config.json", "plain", "weights.npz"]
    end
    mktempdir() do dir  # every fault of a checkpoint is an ArgumentError naming its file
        save_checkpoint(dir, model)
        write(joinpath(dir, "weights.npz"), "not a zip archive")
        err = thrown(() -> load_checkpoint(dir))
        @test err isa ArgumentError && occursin(joinpath(dir, "weights.npz"), err.msg)
        save_checkpoint(dir, model)
        write(joinpath(dir, "config.json"), "{\"attention\": ")
        err = thrown(() -> load_checkpoint(dir))
        @test err isa ArgumentError && occursin(joinpath(dir, "config.json"), err.msg)
    end
    @test_throws ArgumentError load_checkpoint(joinpath(FIXTURES, "no such checkpoint"))
    wrong = ModelConfig(; attention = config.attention, n_layers = config.n_layers + 1, n_heads = config.n_heads,
                        d_model = config.d_model, head = config.head, n_mixtures = config.n_mixtures,
                        image_shape = config.image_shape, dropout = config.dropout)
    @test_throws ArgumentError model_from_params(wrong, params)
    @test_throws ArgumentError ModelConfig(attention = "quadratic")
    @test_throws ArgumentError ModelConfig(d_model = 30, n_heads = 4)
    @test_throws ArgumentError ModelConfig(feature_map = "relu")
    @test_throws ArgumentError ModelConfig(attention = "softmax", feature_map = "favor")
    @test_throws ArgumentError ModelConfig(n_layers = 3, layer_pattern = "af")
    @test_throws ArgumentError ModelConfig(n_layers = 2, layer_pattern = "ax")
    # a PAR model's feed-forward-only layers have no attn.* or norm1 weights, through the boundary and back
    par_config, par_params = load_checkpoint(joinpath(FIXTURES, "linear_par_mixture_rgb"))
    @test par_config.layer_pattern == "afa" && !any(n -> startswith(n, "layers.1.attn") || startswith(n, "layers.1.norm1"),
                                                     keys(par_params))
    @test params_of(model_from_params(par_config, par_params)) == par_params
    # FAVOR+'s projection crosses the boundary and a checkpoint unchanged; a config.json without
    # feature_map and n_features (the first fixtures') reads as the elu model
    favor_config, favor_params = load_checkpoint(joinpath(FIXTURES, "linear_favor_mixture_gray"))
    @test favor_config.feature_map == "favor" && haskey(favor_params, "layers.1.attn.feature_projection")
    @test params_of(model_from_params(favor_config, favor_params)) == favor_params
    mktempdir() do dir
        save_checkpoint(dir, model_from_params(favor_config, favor_params))
        @test load_checkpoint(dir) == (favor_config, favor_params)
    end
    @test load_checkpoint(joinpath(FIXTURES, "linear_mixture_gray"))[1].feature_map == "elu"
    noise = rand(2, size(model.pe, 2), 1)
    wrong_mode = config.attention == "linear" ? "softmax-cached" : "linear-recurrent"
    @test_throws ArgumentError generate(model, wrong_mode, noise)
end

@testset "TorchRAdam and decoupled weight decay match torch.optim.RAdam" begin
    # x after 8 steps of torch.optim.RAdam(lr=0.1, weight_decay=wd, decoupled_weight_decay=True) in
    # float64 from x = [1, -2] with gradients [0.5, 0.25] · t (computed with torch 2.13).
    torch_x = Dict(0.0 => [0.46850811557318467, -2.2705561663092557],
                   0.01 => [0.46287297251320436, -2.253439462335201])
    for (wd, want) in torch_x
        x = [1.0, -2.0]
        state = Optimisers.setup(optimiser_rule(; lr = 0.1, weight_decay = wd), x)
        for t in 1:8
            state, x = Optimisers.update!(state, x, [0.5, 0.25] .* t)
        end
        @test isapprox(x, want; rtol = 1e-12)
    end
    # Optimisers.RAdam agrees for steps 1 to 4 and rectifies one step earlier (ρ₅ ≈ 4.996 > 4)
    x1, x2 = [1.0, -2.0], [1.0, -2.0]
    s1, s2 = Optimisers.setup(TorchRAdam(0.1), x1), Optimisers.setup(Optimisers.RAdam(0.1), x2)
    for t in 1:5
        s1, x1 = Optimisers.update!(s1, x1, [0.5, 0.25] .* t)
        s2, x2 = Optimisers.update!(s2, x2, [0.5, 0.25] .* t)
        t <= 4 && @test isapprox(x1, x2; rtol = 1e-12)
        t == 5 && @test !isapprox(x1, x2; rtol = 1e-3)
    end
end

@testset "time_attention" begin
    for kind in ("softmax", "softmax-chunked", "linear", "linear-favor")
        seconds = time_attention(kind, 2, 9, 2, 4, 3)
        @test length(seconds) == 3 && all(>(0), seconds)
    end
    @test_throws ArgumentError time_attention("softmax-fused", 1, 4, 1, 2, 1)
    seconds, peak = time_attention_peak("softmax", 2, 64, 2, 4, 2)
    @test length(seconds) == 2 && peak isa Int && peak >= 0
end

@testset "time_window ($name)" for name in CASES
    model = fixture_model(name)
    mode = model.config.attention == "linear" ? "linear-recurrent" : "softmax-cached"
    L = size(model.pe, 2)
    @test time_window(model, mode, 2, 0, 3) > 0
    @test time_window(model, mode, 2, L - 3, 3; seed = 1) > 0
    @test_throws ArgumentError time_window(model, mode, 2, L - 2, 3)
    wrong = model.config.attention == "linear" ? "softmax-cached" : "linear-recurrent"
    @test_throws ArgumentError time_window(model, wrong, 1, 0, 1)
end

@testset "train_step" begin
    lr, wd, steps = 1e-2, 0.01, 30
    model = fixture_model("linear_mixture_gray")
    Random.seed!(3)
    data = rand(0:9, size(model.pe, 2), 4)  # bytes 10..255 never appear: their embeddings get no gradient
    unused = 11:256  # embedding column b + 1 holds byte b
    embed0, pe0 = copy(model.embed.weight), copy(model.pe)
    opt_state = make_optimizer(model; lr, weight_decay = wd)
    losses = [train_step(model, opt_state, data) for _ in 1:steps]
    @test all(isfinite, losses)
    @test losses[end] < losses[1]
    # decoupled decay: a zero-gradient weight shrinks by (1 - lr wd) per step and nothing else
    @test isapprox(model.embed.weight[:, unused], embed0[:, unused] .* (1 - lr * wd)^steps; rtol = 1e-5)
    @test model.embed.weight[:, 1:10] != embed0[:, 1:10]
    @test model.pe == pe0  # the position code is not trained
    # FAVOR+'s projection is not trained either (nor decayed): the same bits after the steps
    favor = fixture_model("linear_favor_mixture_gray")
    W0 = [copy(only(l.attn.feature_args)) for l in favor.layers]
    q0 = copy(favor.layers[1].attn.q.weight)
    favor_state = make_optimizer(favor; lr, weight_decay = wd)
    favor_losses = [train_step(favor, favor_state, data) for _ in 1:steps]
    @test all(isfinite, favor_losses) && favor_losses[end] < favor_losses[1]
    @test [only(l.attn.feature_args) for l in favor.layers] == W0
    @test favor.layers[1].attn.q.weight != q0
end

end
