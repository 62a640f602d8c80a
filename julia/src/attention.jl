# Causal softmax and linear attention, each as a parallel form and a recurrent twin.
#
# Shapes: q, k, v are [D, H, T, B] in the parallel forms and [D, H, B] for one step
# (Python: (B, T, H, D) and (B, H, D)); F is the size of a linear kind's features φ(x) (D for
# elu + 1, m for FAVOR+). Every function is generic in the float type T.

const LINEAR_EPS = 1e-6  # added to the linear attention's normaliser; used as T(LINEAR_EPS)
const SOFTMAX_CHUNK = 256  # query chunk of the memory-efficient softmax ("softmax-chunked")

"""
    elu_feature_map(x)

φ(x) = elu(x) + 1, positive everywhere.
"""
elu_feature_map(x::AbstractArray{T}) where {T} = elu.(x) .+ one(T)

"""
    favor_feature_map(x, projection)

FAVOR+ (Choromanski et al. 2020, positive random features of the softmax kernel):
φ(x) = exp(W x′ - |x′|²/2) / √m, x′ = x / D^(1/4), W = `projection` [m, D], so that
E[φ(q)·φ(k)] = exp(q·k / √D) over Gaussian rows of W. x [D, ...] -> [m, ...]. No max subtracted
before exp (Performer's stabiliser): its shift would differ between the parallel form (a max over
all positions) and the recurrent twin (a max so far).
"""
function favor_feature_map(x::AbstractArray{T}, projection::AbstractMatrix{T}) where {T}
    D, m = size(x, 1), size(projection, 1)
    x2 = reshape(x, D, :) .* T(D^(-1 / 4))  # [D, N]: every position of every head
    φ = exp.(projection * x2 .- sum(abs2, x2; dims = 1) ./ 2) ./ T(sqrt(m))  # [m, N]
    return reshape(φ, m, size(x)[2:end]...)
end

"""
    favor_projection(n_features, d_head, rng) -> W

FAVOR+'s W [n_features, d_head] (Float64), positive orthogonal random features, drawn as
`linattn.weights.favor_projection` draws it (not with the same numbers: a model's W comes from its
checkpoint; this one serves `time_attention`): blocks of d_head orthogonal rows, each the Q of the
QR factorisation of a standard Gaussian matrix with the signs of R's diagonal moved into Q, stacked
and cut to n_features rows, each row then scaled to the length of an independent Gaussian vector.
"""
function favor_projection(n_features::Integer, d_head::Integer, rng::Random.AbstractRNG)
    blocks = map(1:cld(n_features, d_head)) do _
        f = qr(randn(rng, d_head, d_head))
        permutedims(Matrix(f.Q) .* sign.(diag(f.R))')  # rows orthonormal
    end
    W = reduce(vcat, blocks)[1:n_features, :]
    return W .* sqrt.(sum(abs2, randn(rng, n_features, d_head); dims = 2))
end

# [D, H, T, B] -> [D, T, H*B]: one matrix per head and batch row, for batched_mul.
heads_to_batch(x::AbstractArray{<:Any,4}) = reshape(permutedims(x, (1, 3, 2, 4)), size(x, 1), size(x, 3), :)

"""
    softmax_attention(q, k, v) -> o

oᵢ = Σ_{j≤i} softmax_j(qᵢ·kⱼ / √D) vⱼ, max-subtracted (NNlib.softmax), future keys masked by an
additive bias of -Inf.  q, k: [D, H, T, B]; v: [Dv, H, T, B]; o: [Dv, H, T, B].

The materialised form: the whole [T, T] scores of each head are held (as in every backend's
"softmax"). q is scaled by 1/√D before the product, and the mask is a constant [T, T] bias built
outside differentiation and added by `add_constant`, so that Zygote's backward is the softmax's
and two batched products, with no elementwise rule over the scores.
"""
softmax_attention(q::AbstractArray{T,4}, k::AbstractArray{T,4}, v::AbstractArray{T,4}) where {T} =
    softmax_attention_rows(q, k, v, 1)

"""
    softmax_attention_rows(q, k, v, start) -> o

Rows start, start+1, ... of causal softmax attention: the queries q [D, H, R, B] at positions
start:N (1-based), N = start+R-1, against the keys k [D, H, N, B] and values v [Dv, H, N, B] at
positions 1:N, with oᵢ = Σ_{j≤i} softmax_j(qᵢ·kⱼ / √D) vⱼ; o: [Dv, H, R, B]. With start = 1 and
R = T it is `softmax_attention`: the [N, R] scores of each head held, the mask a constant bias.
"""
function softmax_attention_rows(q::AbstractArray{T,4}, k::AbstractArray{T,4}, v::AbstractArray{T,4},
                                start::Integer) where {T}
    D, H, R, B = size(q)
    N = size(k, 3)
    N == start + R - 1 || throw(ArgumentError("rows $start:$(start + R - 1) need the keys 1:$(start + R - 1), got $N"))
    q3, k3, v3 = heads_to_batch(q .* T(1 / sqrt(D))), heads_to_batch(k), heads_to_batch(v)  # [D, R or N, H*B]
    bias = ignore_derivatives(() -> causal_bias(T, 1:N, start:N))  # [N_key, R_query]: 0 where key j <= query i
    scores = add_constant(batched_mul(batched_transpose(k3), q3), bias)  # [N_key, R_query, H*B]
    o = batched_mul(v3, softmax(scores; dims = 1))  # [Dv, R, H*B]; softmax over keys
    return permutedims(reshape(o, size(v, 1), R, H, B), (1, 3, 2, 4))  # [Dv, H, R, B]
end

"""
    softmax_attention_chunked(q, k, v; chunk_size = SOFTMAX_CHUNK) -> o
    softmax_attention_chunked(q, k, v, chunk_size) -> o

Memory-efficient causal softmax attention (Rabe & Staats, seed 001): `softmax_attention`'s
oᵢ = Σ_{j≤i} softmax_j(qᵢ·kⱼ / √D) vⱼ, with no [T, T] scores held, forward or backward.

Queries in chunks of C = `chunk_size` (the last may be shorter); each chunk's rows against the
keys up to its last row, in one softmax (`softmax_attention_rows`), so that key chunks the causal
mask would empty are never computed. Its rule for reverse mode (an rrule) keeps only q, k, v: the
pullback recomputes one chunk at a time, differentiates it with Zygote and adds its gradients
into dq, dk, dv (checkpointing). Memory O(T D + C T) per head, forward and backward; time: the
forward twice and the backward. q, k: [D, H, T, B]; v: [Dv, H, T, B]; o: [Dv, H, T, B].
"""
softmax_attention_chunked(q::AbstractArray, k::AbstractArray, v::AbstractArray; chunk_size::Integer = SOFTMAX_CHUNK) =
    softmax_attention_chunked(q, k, v, chunk_size)

function softmax_attention_chunked(q::AbstractArray{T,4}, k::AbstractArray{T,4}, v::AbstractArray{T,4},
                                   chunk_size::Integer) where {T}
    o = similar(q, size(v, 1), size(q, 2), size(q, 3), size(q, 4))  # [Dv, H, T, B]
    for (rows, keys) in query_chunks(size(q, 3), chunk_size)
        o[:, :, rows, :] = softmax_attention_rows(view(q, :, :, rows, :), view(k, :, :, keys, :), view(v, :, :, keys, :),
                                                  first(rows))
    end
    return o
end

"""
    query_chunks(L, chunk_size) -> [(rows, keys), ...]

The chunks of `softmax_attention_chunked`: the query positions `rows` of each chunk of
`chunk_size` (the last may be shorter) and the key positions it attends to, 1:last(rows).
"""
function query_chunks(L::Integer, chunk_size::Integer)
    chunk_size >= 1 || throw(ArgumentError("chunk_size must be >= 1, got $chunk_size"))
    return [(s:min(s + chunk_size - 1, L), 1:min(s + chunk_size - 1, L)) for s in 1:chunk_size:L]
end

function ChainRulesCore.rrule(::typeof(softmax_attention_chunked), q::AbstractArray{T,4}, k::AbstractArray{T,4},
                              v::AbstractArray{T,4}, chunk_size::Integer) where {T}
    o = softmax_attention_chunked(q, k, v, chunk_size)
    function softmax_attention_chunked_pullback(Δ)
        Δo = copyto!(similar(o), unthunk(Δ))  # dense (Zygote's `sum` sends a FillArrays.Fill)
        dq, dk, dv = zero(q), zero(k), zero(v)
        for (rows, keys) in query_chunks(size(q, 3), chunk_size)  # recompute the chunk, then differentiate it
            _, back = Zygote.pullback(softmax_attention_rows, view(q, :, :, rows, :), view(k, :, :, keys, :),
                                      view(v, :, :, keys, :), first(rows))
            gq, gk, gv, _ = back(Δo[:, :, rows, :])
            view(dq, :, :, rows, :) .+= gq
            view(dk, :, :, keys, :) .+= gk
            view(dv, :, :, keys, :) .+= gv
        end
        return NoTangent(), dq, dk, dv, NoTangent()
    end
    return o, softmax_attention_chunked_pullback
end

"""
    causal_bias(T, L) -> Matrix{T}
    causal_bias(T, keys, queries) -> Matrix{T}

The [L_key, L_query] bias of causal attention: 0 where key j <= query i, else -Inf; for the
positions `keys` and `queries` (ranges), a [length(keys), length(queries)] block of it.
"""
causal_bias(::Type{T}, L::Integer) where {T<:AbstractFloat} = causal_bias(T, 1:L, 1:L)
causal_bias(::Type{T}, keys::AbstractUnitRange, queries::AbstractUnitRange) where {T<:AbstractFloat} =
    [j <= i ? zero(T) : typemin(T) for j in keys, i in queries]

"""
    causal_keep(T, L) -> Matrix{T}

The [L_key, L_query] mask of causal attention as numbers: 1 where key j <= query i, else 0.
"""
causal_keep(::Type{T}, L::Integer) where {T<:Real} = [j <= i ? one(T) : zero(T) for j in 1:L, i in 1:L]

"""
    add_constant(x, c) = x .+ c
    times_constant(x, c) = x .* c

Broadcast a constant `c` (a mask or bias, never differentiated) onto `x`. Their rules give `x` its
gradient directly (Δ, and Δ .* c) and `c` none, where Zygote's rules for `.+` and `.*` would also
sum a gradient for `c` over the whole of `x`.
"""
add_constant(x::AbstractArray, c::AbstractArray) = x .+ c
times_constant(x::AbstractArray, c::AbstractArray) = x .* c

function ChainRulesCore.rrule(::typeof(add_constant), x::AbstractArray, c::AbstractArray)
    add_constant_pullback(Δ) = (NoTangent(), unthunk(Δ), NoTangent())
    return add_constant(x, c), add_constant_pullback
end

function ChainRulesCore.rrule(::typeof(times_constant), x::AbstractArray, c::AbstractArray)
    times_constant_pullback(Δ) = (NoTangent(), unthunk(Δ) .* c, NoTangent())
    return times_constant(x, c), times_constant_pullback
end

"""
    KVCache(K, V, length)

The recurrent state of softmax attention: keys K [D, T_max, H, B] and values V [Dv, T_max, H, B]
preallocated for T_max positions, of which the first `length` are filled.
"""
mutable struct KVCache{A<:AbstractArray{<:Real,4}}
    K::A  # [D, T_max, H, B]
    V::A  # [Dv, T_max, H, B]
    length::Int  # positions filled
end

"""
    softmax_attention_recurrent!(q, k, v, state::KVCache) -> (o, state)

One step of softmax attention with a key/value cache: this step's key and value are written into
the cache in place, then o = Σ_{j≤t} softmax_j(q·kⱼ / √D) vⱼ.  q, k: [D, H, B]; v: [Dv, H, B];
o: [Dv, H, B].
"""
function softmax_attention_recurrent!(q::AbstractArray{T,3}, k::AbstractArray{T,3}, v::AbstractArray{T,3},
                                      state::KVCache) where {T}
    D, H, B = size(q)
    Dv, T_max = size(state.V, 1), size(state.K, 2)
    t = state.length + 1
    t <= T_max || throw(ArgumentError("the key/value cache holds $T_max positions; step $t does not fit"))
    state.K[:, t, :, :] .= k
    state.V[:, t, :, :] .= v
    state.length = t
    K = view(reshape(state.K, D, T_max, H * B), :, 1:t, :)  # [D, t, H*B], shares memory
    V = view(reshape(state.V, Dv, T_max, H * B), :, 1:t, :)  # [Dv, t, H*B]
    scores = batched_mul(batched_transpose(K), reshape(q, D, 1, H * B)) .* T(1 / sqrt(D))  # [t, 1, H*B]
    o = batched_mul(V, softmax(scores; dims = 1))  # [Dv, 1, H*B]
    return reshape(o, Dv, H, B), state
end

"""
    linear_attention(q, k, v, feature_args...; feature_map = elu_feature_map, chunk_size = 64) -> o

oᵢ = φ(qᵢ)ᵀ Sᵢ / (φ(qᵢ)ᵀ zᵢ + ε), Sᵢ = Σ_{j≤i} φ(kⱼ) vⱼᵀ, zᵢ = Σ_{j≤i} φ(kⱼ), ε = 1e-6,
φ(x) = feature_map(x, feature_args...) (FAVOR+ takes the layer's projection): a function of whole
arrays [D, H, T, B] giving [F, H, T, B], as `elu_feature_map` (F = D) or `favor_feature_map`.

Computed chunkwise, as the PyTorch backend (GLA, arXiv 2312.06635): within a chunk of C steps the
masked quadratic form, across chunks the states S and z at chunk boundaries (an exclusive cumsum
over chunks). Memory O(T C + (T/C) F Dv) per head, never a T × F × Dv tensor; exact, not an
approximation. q, k: [D, H, T, B]; v: [Dv, H, T, B]; o: [Dv, H, T, B].
"""
function linear_attention(q::AbstractArray{T,4}, k::AbstractArray{T,4}, v::AbstractArray{T,4}, feature_args...;
                          feature_map = elu_feature_map, chunk_size::Integer = 64) where {T}
    _, H, L, B = size(q)
    Dv = size(v, 1)
    C = min(chunk_size, L)
    N = cld(L, C)
    pad = N * C - L
    fq, fk, fv = feature_map(q, feature_args...), feature_map(k, feature_args...), v
    F = size(fq, 1)
    if pad > 0  # padded keys get φ = 0 and padded values 0, so they add nothing
        fq, fk, fv = pad_zeros(fq, (0, pad); dims = 3), pad_zeros(fk, (0, pad); dims = 3), pad_zeros(fv, (0, pad); dims = 3)
    end
    # time t = c + C (n - 1): [X, H, N*C, B] -> [X, H, C, N, B] -> [X, C, H, N, B] -> [X, C, H*N*B]
    chunks(x) = reshape(permutedims(reshape(x, size(x, 1), H, C, N, B), (1, 3, 2, 4, 5)), size(x, 1), C, H * N * B)
    q3, k3, v3 = chunks(fq), chunks(fk), chunks(fv)  # [F, C, H*N*B], v3: [Dv, C, H*N*B]
    keep = ignore_derivatives(() -> causal_keep(T, C))  # [C_key, C_query]: 1 where key j <= query i
    A = times_constant(batched_mul(batched_transpose(k3), q3), keep)  # [C_key, C_query, H*N*B]: φ(kⱼ)·φ(qᵢ), causal
    kv = reshape(batched_mul(k3, batched_transpose(v3)), F, Dv, H, N, B)  # each chunk's Σ φ(k) vᵀ
    S = exclusive_cumsum(kv, 4)  # [F, Dv, H, N, B]: the state before each chunk
    ksum = reshape(sum(k3; dims = 2), F, H, N, B)  # each chunk's Σ φ(k)
    z = exclusive_cumsum(ksum, 3)  # [F, H, N, B]: the normaliser before each chunk
    S3 = reshape(S, F, Dv, H * N * B)
    z3 = reshape(z, F, 1, H * N * B)
    num = batched_mul(batched_transpose(S3), q3) .+ batched_mul(v3, A)  # [Dv, C, H*N*B]
    den = batched_mul(batched_transpose(z3), q3) .+ sum(A; dims = 1) .+ T(LINEAR_EPS)  # [1, C, H*N*B]
    o = reshape(num ./ den, Dv, C, H, N, B)
    o = reshape(permutedims(o, (1, 3, 2, 4, 5)), Dv, H, N * C, B)  # [Dv, H, N*C, B]
    return pad > 0 ? o[:, :, 1:L, :] : o
end

# Sums over the chunks before each chunk along `dims`, by shifting the cumulative sum one chunk
# (zeros first, the last dropped): no later chunk enters an earlier one, not even by rounding.
function exclusive_cumsum(x::AbstractArray, dims::Int)
    shifted = pad_zeros(cumsum(x; dims = dims), (1, 0); dims = dims)
    return shifted[ntuple(d -> d == dims ? (1:size(x, d)) : Colon(), ndims(x))...]
end

"""
    LinearState(S, z)

The recurrent state of linear attention: S = Σ φ(kⱼ) vⱼᵀ [F, Dv, H, B] and z = Σ φ(kⱼ) [F, H, B].
"""
struct LinearState{A4<:AbstractArray{<:Real,4},A3<:AbstractArray{<:Real,3}}
    S::A4  # [F, Dv, H, B]
    z::A3  # [F, H, B]
end

"""
    linear_attention_recurrent!(q, k, v, state::LinearState, feature_args...; feature_map = elu_feature_map)
        -> (o, state)

One RNN step: S += φ(k) vᵀ, z += φ(k) (both in place), o = φ(q)ᵀ S / (φ(q)ᵀ z + ε),
φ(x) = feature_map(x, feature_args...) as in `linear_attention`. q, k: [D, H, B]; v: [Dv, H, B];
o: [Dv, H, B]; state: S [F, Dv, H, B], z [F, H, B].
"""
function linear_attention_recurrent!(q::AbstractArray{T,3}, k::AbstractArray{T,3}, v::AbstractArray{T,3},
                                     state::LinearState, feature_args...; feature_map = elu_feature_map) where {T}
    _, H, B = size(q)
    Dv = size(v, 1)
    fq, fk = feature_map(q, feature_args...), feature_map(k, feature_args...)  # [F, H, B]
    F = size(fq, 1)
    state.S .+= reshape(fk, F, 1, H, B) .* reshape(v, 1, Dv, H, B)
    state.z .+= fk
    num = batched_mul(batched_transpose(reshape(state.S, F, Dv, H * B)), reshape(fq, F, 1, H * B))  # [Dv, 1, H*B]
    den = sum(fq .* state.z; dims = 1) .+ T(LINEAR_EPS)  # [1, H, B]
    return reshape(num, Dv, H, B) ./ den, state
end

"""
    AttentionKind

An attention kind: its parallel form (`parallel`), its recurrent twin (`recurrent!`) and the
state before the first step (`empty_state`), each a method dispatched on the kind's type. `KINDS`
holds one of each by name (Python: `attention.KINDS`); the model looks its kind up there once
(`model_from_params`) and keeps it in every `Attention` layer.
"""
abstract type AttentionKind end

"Softmax attention: the [T, T] scores materialised; its twin reads a key/value cache (`KVCache`)."
struct SoftmaxKind <: AttentionKind end

"""
    ChunkedSoftmaxKind(chunk_size)

The memory-efficient softmax (`softmax_attention_chunked`, queries in chunks of `chunk_size`,
each recomputed in the backward): the same numbers as `SoftmaxKind`, and the same twin.
"""
struct ChunkedSoftmaxKind <: AttentionKind
    chunk_size::Int
end

"""
    LinearKind(feature_map)

Linear attention with the feature map φ (`elu_feature_map`: φ(x) = elu(x) + 1;
`favor_feature_map`: FAVOR+, which takes the layer's projection), in the chunkwise form; its twin
carries the state S, z (`LinearState`).
"""
struct LinearKind{F} <: AttentionKind
    feature_map::F
end

# The attention kinds by name (a model's: `attention_kind(config)`). A linear kind with another
# feature map is one more entry.
const KINDS = Dict{String,AttentionKind}(
    "softmax" => SoftmaxKind(),
    "softmax-chunked" => ChunkedSoftmaxKind(SOFTMAX_CHUNK),
    "linear" => LinearKind(elu_feature_map),
    "linear-favor" => LinearKind(favor_feature_map),
)

"""
    projected(kind) -> Bool

Whether the kind's forms take the layer's FAVOR+ projection W [m, D] as their `feature_args`
(Python: `Kind.projected`).
"""
projected(::AttentionKind) = false
projected(::LinearKind{typeof(favor_feature_map)}) = true

"""
    parallel(kind, q, k, v, feature_args...) -> o

The kind's parallel form: q, k [D, H, T, B], v [Dv, H, T, B] -> o [Dv, H, T, B]; `feature_args`
(FAVOR+'s projection, or nothing) go to a linear kind's feature map.
"""
parallel(::SoftmaxKind, q::AbstractArray, k::AbstractArray, v::AbstractArray) = softmax_attention(q, k, v)
parallel(kind::ChunkedSoftmaxKind, q::AbstractArray, k::AbstractArray, v::AbstractArray) =
    softmax_attention_chunked(q, k, v, kind.chunk_size)
parallel(kind::LinearKind, q::AbstractArray, k::AbstractArray, v::AbstractArray, feature_args...) =
    linear_attention(q, k, v, feature_args...; feature_map = kind.feature_map)

"""
    recurrent!(kind, q, k, v, state, feature_args...) -> (o, state)

The kind's recurrent twin, one step: q, k [D, H, B], v [Dv, H, B] -> o [Dv, H, B]; `state` (from
`empty_state(kind, ...)`) is updated in place.
"""
recurrent!(::Union{SoftmaxKind,ChunkedSoftmaxKind}, q::AbstractArray, k::AbstractArray, v::AbstractArray,
           state::KVCache) =
    softmax_attention_recurrent!(q, k, v, state)
recurrent!(kind::LinearKind, q::AbstractArray, k::AbstractArray, v::AbstractArray, state::LinearState, feature_args...) =
    linear_attention_recurrent!(q, k, v, state, feature_args...; feature_map = kind.feature_map)

"""
    empty_state(kind, T, batch, n_heads, d_head, max_len, d_feature = d_head) -> state

The state of one layer before the first step, in float type `T`: a `KVCache` with room for
`max_len` positions (softmax, chunked or not; `d_feature` unused, a cache holds keys), or a zero
`LinearState` with S [d_feature, d_head, H, B], which has no length (linear).
"""
empty_state(::Union{SoftmaxKind,ChunkedSoftmaxKind}, ::Type{T}, batch::Integer, n_heads::Integer, d_head::Integer,
            max_len::Integer, ::Integer = d_head) where {T} =
    KVCache(zeros(T, d_head, max_len, n_heads, batch), zeros(T, d_head, max_len, n_heads, batch), 0)
empty_state(::LinearKind, ::Type{T}, batch::Integer, n_heads::Integer, d_head::Integer, ::Integer,
            d_feature::Integer = d_head) where {T} =
    LinearState(zeros(T, d_feature, d_head, n_heads, batch), zeros(T, d_feature, n_heads, batch))
