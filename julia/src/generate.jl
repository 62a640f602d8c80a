# Sampling from given noise and the three generation modes (DESIGN section 3, "Generation modes").

"""
    sample_from_head(out, config, u) -> bytes

One byte (0..255) per column from head outputs [n_outputs, B] and uniforms u [2, B].

The component (or byte, for a categorical head) is the first k whose cumulative weight exceeds
u₁ (the last if none does); a mixture value is x = μₖ + sₖ (log u₂ - log(1 - u₂)), sₖ = exp(log-scaleₖ),
clipped to [-1, 1], and the byte is round((x + 1)/2 · 255) clipped to 0..255 (round half to even,
as numpy and PyTorch).
"""
function sample_from_head(out::AbstractMatrix{T}, config::ModelConfig, u::AbstractMatrix) where {T}
    if config.head == "categorical"
        return first_above(softmax(out; dims = 1), u[1, :]) .- 1  # column k holds byte k - 1
    end
    logits, μ, log_s = split_mixture(out, config)  # [M, B]
    k = first_above(softmax(logits; dims = 1), u[1, :])  # [B], 1-based components
    x = map(1:size(out, 2)) do b
        u₂ = T(u[2, b])
        μ[k[b], b] + exp(log_s[k[b], b]) * (log(u₂) - log(1 - u₂))
    end
    return Int.(clamp.(round.((clamp.(x, -one(T), one(T)) .+ 1) ./ 2 .* 255), 0, 255))
end

"Index (1-based) of the first cumulative weight > u₁ in each column, the last if none: [K, B], [B] -> [B]."
function first_above(weights::AbstractMatrix, u₁::AbstractVector)
    cum = cumsum(weights; dims = 1)
    return min.(vec(sum(cum .<= reshape(u₁, 1, :); dims = 1)) .+ 1, size(weights, 1))
end

"""
    generate(model, mode, noise; steps = nothing, prefix = nothing) -> data

Generate [T, B] bytes (UInt8) from uniform noise [2, T, B] in one of the modes `softmax-uncached`
(re-run the parallel form on the whole prefix at every step), `softmax-cached` (a `KVCache` per
layer) or `linear-recurrent` (the S, z state per layer). `steps` stops after that many bytes (for
timing a prefix); the rest of `data` stays 0. The noise is copied to the model's float type first.

`prefix` [P, B] bytes (0..255, P <= T; Python (B, P)) completes a partly given image: positions
1..P are the given bytes, fed to the model as if sampled, and not drawn; sampling starts at P + 1.
Byte t, given or drawn, belongs to noise column t, so a completion uses the same noise positions as
in every backend (a given byte leaves its column unused).
"""
function generate(model::Transformer, mode::AbstractString, noise::AbstractArray{<:Real,3};
                  steps::Union{Nothing,Integer} = nothing, prefix::Union{Nothing,AbstractMatrix{<:Integer}} = nothing)
    check_mode(mode, model.config)
    u = Array{weight_type(model)}(noise)  # [2, T, B]
    size(u, 1) == 2 || throw(ArgumentError("noise must be [2, T, B] (Python: (B, T, 2)), got $(size(u))"))
    _, L, B = size(u)
    n = something(steps, L)
    0 <= n <= L || throw(ArgumentError("steps=$n must be in 0:$L"))
    given = given_bytes(prefix, L, B)  # [P, B]
    P = size(given, 1)
    data = zeros(Int, L, B)
    if mode == "softmax-uncached"
        for t in 1:n
            if t <= P  # given: no forward pass needed, as the next step re-runs the whole prefix
                data[t, :] = view(given, t, :)
                continue
            end
            out = model(input_tokens(view(data, 1:t, :)))[:, t, :]  # [n_outputs, B]: the last position
            data[t, :] = sample_from_head(out, model.config, view(u, :, t, :))
        end
    else
        generate_recurrent!(data, model, empty_state(model, B; max_len = L), u, n, given)
    end
    return UInt8.(data)
end

"""
    given_bytes(prefix, L, B) -> Matrix{Int}

The given first bytes of `generate` as a [P, B] matrix: `prefix` checked (P <= L columns of B
bytes, each 0..255), or [0, B] when there is none.
"""
given_bytes(::Nothing, ::Integer, B::Integer) = zeros(Int, 0, B)
function given_bytes(prefix::AbstractMatrix{<:Integer}, L::Integer, B::Integer)
    (size(prefix, 1) <= L && size(prefix, 2) == B) ||
        throw(ArgumentError("prefix must be [P, B] with P <= $L and B = $B (Python: (B, P)), got $(size(prefix))"))
    all(b -> 0 <= b <= 255, prefix) || throw(ArgumentError("prefix must hold bytes 0..255, got $(extrema(prefix))"))
    return Matrix{Int}(prefix)
end

# The recurrent loop behind a function barrier, so that it compiles for the concrete state type.
# Every position runs a step (a given byte must enter the state too); rows 1..size(given, 1) take
# the given bytes instead of a sample.
function generate_recurrent!(data::Matrix{Int}, model::Transformer, state::AbstractVector, u::AbstractArray{<:Real,3},
                             n::Integer, given::Matrix{Int})
    token = fill(START_TOKEN, size(data, 2))
    for t in 1:n
        out = forward_step!(model, token, t - 1, state)  # [n_outputs, B]; row t is position t - 1
        token = t <= size(given, 1) ? given[t, :] : sample_from_head(out, model.config, view(u, :, t, :))
        data[t, :] = token
    end
    return data
end

"""
    uncached_step(model, prefix) -> out

The work of one softmax-uncached step after a [t, B] prefix of bytes, as the PyTorch backend's:
a full forward pass over `input_tokens(prefix)`, returning the last position's head outputs
[n_outputs, B] (for timing).
"""
function uncached_step(model::Transformer, prefix::AbstractMatrix{<:Integer})
    tokens = input_tokens(Matrix{Int}(prefix))
    return model(tokens)[:, end, :]
end
