# Timings taken inside Julia, after a warm-up (the first call of a method compiles it). The Python
# backend reports them; the compile time is reported apart.

"""
    timed_generate(model, mode, noise; steps = nothing) -> (data, seconds, compile_seconds)

`generate`, timed inside Julia: first one warm-up step on one noise row (its time, dominated by
compilation on the first call, is `compile_seconds`), then the timed run. The noise is converted
before the clock starts.
"""
function timed_generate(model::Transformer, mode::AbstractString, noise::AbstractArray{<:Real,3};
                        steps::Union{Nothing,Integer} = nothing)
    u = Array{weight_type(model)}(noise)
    n = something(steps, size(u, 2))
    t0 = time_ns()
    generate(model, mode, u[:, 1:1, 1:1]; steps = min(n, 1))
    compile_seconds = (time_ns() - t0) / 1e9
    t0 = time_ns()
    data = generate(model, mode, u; steps = n)
    seconds = (time_ns() - t0) / 1e9
    return data, seconds, compile_seconds
end

"""
    time_generation(model, mode, noise; steps = nothing) -> seconds

The seconds of `generate` after a warm-up step (see `timed_generate`).
"""
time_generation(model::Transformer, mode::AbstractString, noise::AbstractArray{<:Real,3}; steps = nothing) =
    timed_generate(model, mode, noise; steps)[2]

"""
    time_attention(kind, batch, len, n_heads, d_head, repeats) -> seconds

Seconds of each of `repeats` forward + backward passes (Zygote) of one causal attention of `KINDS`
("softmax", "softmax-chunked", "linear" or "linear-favor", the last with a FAVOR+ projection of
`N_FEATURES` rows), on random Float32 inputs [d_head, n_heads, len, batch], after one untimed warm-up
pass: the Julia side of the scaling measurement (PyTorch's `time_attention`). See
`time_attention_peak` for the memory it takes.
"""
time_attention(kind::AbstractString, batch::Integer, len::Integer, n_heads::Integer, d_head::Integer, repeats::Integer) =
    first(time_attention_peak(kind, batch, len, n_heads, d_head, repeats))

"""
    time_attention_peak(kind, batch, len, n_heads, d_head, repeats) -> (seconds, peak_bytes)

`time_attention`, with the memory the passes take: the growth of the process's peak resident size
(`Sys.maxrss`) from just before the full-size warm-up pass to the end of the timed repeats. A first
pass on a 2-step problem of the same types compiles every method before that baseline, so neither
Julia's start-up nor compilation is counted.
"""
function time_attention_peak(kind::AbstractString, batch::Integer, len::Integer, n_heads::Integer, d_head::Integer,
                             repeats::Integer)
    haskey(KINDS, kind) || throw(ArgumentError("kind must be one of $(sort(collect(keys(KINDS)))), got $(repr(kind))"))
    return time_attention_peak(KINDS[kind], batch, len, n_heads, d_head, repeats)
end

# The passes behind a function barrier, compiled for the kind's type.
function time_attention_peak(attention::AttentionKind, batch::Integer, len::Integer, n_heads::Integer, d_head::Integer,
                             repeats::Integer)
    args = projected(attention) ? (Float32.(favor_projection(N_FEATURES, d_head, Random.Xoshiro(0))),) : ()
    pass(q, k, v) = Zygote.gradient((q, k, v) -> sum(parallel(attention, q, k, v, args...)), q, k, v)
    pass((randn(Float32, d_head, n_heads, 2, 1) for _ in 1:3)...)  # compiles, on a tiny problem
    q, k, v = (randn(Float32, d_head, n_heads, len, batch) for _ in 1:3)
    GC.gc()
    base = Sys.maxrss()
    seconds = Float64[]
    for i in 0:repeats
        t0 = time_ns()
        pass(q, k, v)
        i > 0 && push!(seconds, (time_ns() - t0) / 1e9)
    end
    return seconds, Int(Sys.maxrss() - min(base, Sys.maxrss()))
end

"""
    time_window(model, mode, batch, start, steps; seed = 0) -> seconds

Seconds to generate positions start .. start+steps-1 (0-based) of `batch` images from the state
those positions see: a key/value cache holding `start` random entries, or a random (S, z) state,
whose cost does not depend on its content (PyTorch's and JAX's `time_window`). The caller warms
up first (the first call for a batch compiles).
"""
function time_window(model::Transformer, mode::AbstractString, batch::Integer, start::Integer, steps::Integer;
                     seed::Integer = 0)
    check_mode(mode, model.config)
    L = seq_len(model.config)
    (0 <= start && 0 < steps && start + steps <= L) ||
        throw(ArgumentError("the window start=$start, steps=$steps must lie inside 0..$L"))
    rng = Random.Xoshiro(seed)
    state = empty_state(model, batch; max_len = L)
    foreach(s -> randomize_state!(s, rng, start), state)
    noise = rand(rng, weight_type(model), 2, steps, batch)  # [2, steps, B]
    token = rand(rng, 0:255, batch)
    t0 = time_ns()
    run_window!(model, token, state, noise, start)
    return (time_ns() - t0) / 1e9
end

# The window's steps behind a function barrier: step i (1-based) is position start + i - 1 (0-based).
function run_window!(model::Transformer, token::Vector{Int}, state::AbstractVector, noise::AbstractArray{<:Real,3},
                     start::Integer)
    for i in axes(noise, 2)
        out = forward_step!(model, token, start + i - 1, state)
        token = sample_from_head(out, model.config, view(noise, :, i, :))
    end
    return token
end

"A cache holding `start` random keys and values (later positions are overwritten as they come)."
function randomize_state!(s::KVCache, rng::Random.AbstractRNG, start::Integer)
    Random.randn!(rng, s.K)
    Random.randn!(rng, s.V)
    s.length = start
    return s
end

"No state to randomise: a feed-forward-only layer."
randomize_state!(::Nothing, ::Random.AbstractRNG, ::Integer) = nothing

"A random linear state, its normaliser z in [1, 2) as the other backends'."
function randomize_state!(s::LinearState, rng::Random.AbstractRNG, ::Integer)
    Random.rand!(rng, s.S)
    s.z .= 1 .+ rand(rng, eltype(s.z), size(s.z))
    return s
end
