# Log-likelihood of bytes under the head, and bits/dim (the math of `linattn.reference.log_prob`).

const LOG_SCALE_MIN = -7.0  # mixture log-scales are clamped below at this value
const BIN = 1 / 255  # half-width of one byte's bin in [-1, 1]

"""
    split_mixture(out, config) -> (logits, μ, log_s)

Mixture head outputs [3M, N] -> logits, means and log-scales [M, N] each, the log-scales clamped
below at -7.
"""
function split_mixture(out::AbstractMatrix{T}, config::ModelConfig) where {T}
    M = config.n_mixtures
    return out[1:M, :], out[M+1:2M, :], max.(out[2M+1:3M, :], T(LOG_SCALE_MIN))
end

"""
    log_prob(out, config, data) -> lp

log p(byte) under the head: [n_outputs, T, B] outputs and [T, B] bytes -> [T, B] in nats.

Mixture: p(b) = Σₖ wₖ [σ((x + 1/255 - μₖ)/sₖ) - σ((x - 1/255 - μₖ)/sₖ)], x = 2b/255 - 1, the outer
bins reaching -∞ and +∞. In logs, with a = (x - μ + 1/255)/s and c = (x - μ - 1/255)/s:
log(σ(a) - σ(c)) = -softplus(-a) - softplus(c) + log(-expm1(c - a)), exact and stable for every s;
at b = 0 it is -softplus(-a), at b = 255 it is -softplus(c).
"""
function log_prob(out::AbstractArray{T,3}, config::ModelConfig, data::AbstractMatrix{<:Integer}) where {T}
    n, L, B = size(out)
    o = reshape(out, n, L * B)  # one column per byte
    bytes = reshape(data, 1, L * B)
    lp = config.head == "categorical" ? categorical_log_prob(o, bytes) : mixture_log_prob(o, config, bytes)
    return reshape(lp, L, B)
end

"log softmax(o)[byte] per column: o [256, N], bytes [1, N] -> [N]."
function categorical_log_prob(o::AbstractMatrix, bytes::AbstractMatrix{<:Integer})
    hit = (0:255) .== bytes  # [256, N] one-hot
    return vec(sum(logsoftmax(o; dims = 1) .* hit; dims = 1))
end

"log Σₖ wₖ p(byte | μₖ, sₖ) per column: o [3M, N], bytes [1, N] -> [N]."
function mixture_log_prob(o::AbstractMatrix{T}, config::ModelConfig, bytes::AbstractMatrix{<:Integer}) where {T}
    logits, μ, log_s = split_mixture(o, config)  # [M, N]
    x = T(2) .* bytes ./ T(255) .- one(T)  # [1, N] in [-1, 1]; PyTorch's order of operations
    inv_s = exp.(-log_s)
    a = (x .- μ .+ T(BIN)) .* inv_s
    c = (x .- μ .- T(BIN)) .* inv_s
    lowest, highest = x .<= -1, x .>= 1  # the bins reaching -∞ and +∞
    middle = .-softplus.(.-a) .- softplus.(c) .+ log.(.-expm1.(c .- a))
    lp = ifelse.(lowest, .-softplus.(.-a), ifelse.(highest, .-softplus.(c), middle))  # [M, N]
    return vec(logsumexp(logsoftmax(logits; dims = 1) .+ lp; dims = 1))
end

"""
    nats_per_dim(out, config, data)

Mean negative log-likelihood per byte in nats: the training loss.
"""
nats_per_dim(out::AbstractArray{<:Real,3}, config::ModelConfig, data::AbstractMatrix{<:Integer}) =
    -mean(log_prob(out, config, data))

"Nats to bits."
bits(nats::Real) = nats / log(2.0)

"""
    bits_per_dim(model, data; batch_size = 32) -> Float64

Mean -log₂ p of [T, N] bytes under the model, in batches of `batch_size` images; the running
total is a Float64, as Python's float in the other backends.
"""
function bits_per_dim(model, data::AbstractMatrix{<:Integer}; batch_size::Integer = 32)
    bytes = Matrix{Int}(data)
    N = size(bytes, 2)
    total = 0.0
    for i in 1:batch_size:N
        chunk = bytes[:, i:min(i + batch_size - 1, N)]
        total += Float64(nats_per_dim(model(input_tokens(chunk)), model.config, chunk)) * size(chunk, 2)
    end
    return bits(total / N)
end
