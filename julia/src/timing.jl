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

Seconds of each of `repeats` forward + backward passes (Zygote) of one causal attention, "softmax"
or "linear", on random Float32 inputs [d_head, n_heads, len, batch], after one untimed warm-up
pass: the Julia side of the scaling measurement (PyTorch's `time_attention`).
"""
function time_attention(kind::AbstractString, batch::Integer, len::Integer, n_heads::Integer, d_head::Integer,
                        repeats::Integer)
    kind in ("softmax", "linear") || throw(ArgumentError("kind must be \"softmax\" or \"linear\", got $(repr(kind))"))
    attend = kind == "softmax" ? softmax_attention : linear_attention
    q, k, v = (randn(Float32, d_head, n_heads, len, batch) for _ in 1:3)
    seconds = Float64[]
    for i in 0:repeats
        t0 = time_ns()
        Zygote.gradient((q, k, v) -> sum(attend(q, k, v)), q, k, v)
        i > 0 && push!(seconds, (time_ns() - t0) / 1e9)
    end
    return seconds
end
