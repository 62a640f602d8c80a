# The model of DESIGN section 3 as Flux layers. `(m::Transformer)(tokens)` is the parallel
# (training) form; `forward_step!` is the recurrent form, one position at a time with the
# attention's recurrent twin, used by the cached and recurrent generation modes.

const NORM_EPS = 1e-5  # LayerNorm; used as T(NORM_EPS)

"""
    position_code(len, dp) -> pe

The sinusoidal code of DESIGN section 3 as a Float64 [dp, len] matrix: column p + 1 is position
p = 0..len-1 (counted from 0), and rows 2i + 1 and 2i + 2 hold sin(p / 10000^(2i/dp)) and
cos(p / 10000^(2i/dp)), i = 0..dp/2-1 (Python's pe[p, 2i] and pe[p, 2i+1]). Computed in Float64
as in PyTorch; the model stores it converted to its float type.
"""
function position_code(len::Integer, dp::Integer)
    pe = zeros(Float64, dp, len)
    for p in 0:len-1, i in 0:2:dp-1
        angle = p / 10000.0^(i / dp)
        pe[i+1, p+1] = sin(angle)
        pe[i+2, p+1] = cos(angle)
    end
    return pe
end

"""
    input_tokens(data) -> tokens

[T, B] bytes -> [T, B] inputs: the start token 256, then bytes 1..T-1 (the targets are all T).
"""
input_tokens(data::AbstractMatrix{<:Integer}) =
    vcat(fill(START_TOKEN, 1, size(data, 2)), Int.(data[1:end-1, :]))

"""
    LayerNorm(weight, bias)

(x - μ) / √(σ² + 1e-5) ⊙ weight + bias over the first axis, σ² the biased variance: PyTorch's
`nn.LayerNorm`. Not `Flux.LayerNorm`, whose eps enters as (σ + ε) in Flux 0.14, √(σ² + ε²) in
0.15 to 0.16.10 and √(σ² + ε) only from 0.16.11: this one gives the same numbers on every version.
"""
struct LayerNorm{V<:AbstractVector}
    weight::V  # [C]
    bias::V  # [C]
end
Flux.@layer LayerNorm

function (ln::LayerNorm)(x::AbstractArray{T}) where {T}
    μ = mean(x; dims = 1)
    σ² = mean(abs2.(x .- μ); dims = 1)
    return (x .- μ) ./ sqrt.(σ² .+ T(NORM_EPS)) .* ln.weight .+ ln.bias
end

"""
    Attention(q, k, v, o, n_heads, kind, feature_args)

H heads of size D = C/H; head h takes features (h-1)D+1:hD of each projection, which is what
reshaping [C, T, B] to [D, H, T, B] does (PyTorch: `view(B, T, H, D)`). `kind` (an
`AttentionKind`, from `KINDS`) says how the heads attend: its parallel form here, its recurrent
twin in `layer_step!`; dispatch on its type picks both. `feature_args` is what the kind's forms
take after their inputs: `()`, or `(W,)` for FAVOR+, its projection W [m, D] from the checkpoint,
which is not trained (not among the `trainable` fields, so `Optimisers.setup` gives it no state and
`update!` leaves it as it is, as the position code of `Transformer`).
"""
struct Attention{L<:Dense,K<:AttentionKind,A<:Tuple}
    q::L
    k::L
    v::L
    o::L
    n_heads::Int
    kind::K
    feature_args::A
end
Flux.@layer Attention trainable = (q, k, v, o)  # the kind holds no weights; feature_args are fixed

function (a::Attention)(x::AbstractArray{T,3}) where {T}  # x: [C, T, B]
    C, L, B = size(x)
    H = a.n_heads
    q = reshape(a.q(x), C ÷ H, H, L, B)  # [D, H, T, B]
    k = reshape(a.k(x), C ÷ H, H, L, B)
    v = reshape(a.v(x), C ÷ H, H, L, B)
    o = parallel(a.kind, q, k, v, a.feature_args...)  # [D, H, T, B]
    return a.o(reshape(o, C, L, B))  # [C, T, B]
end

"""
    Layer(attn, norm1, norm2, ff1, ff2, drop)

Post-LN: x = LN(x + drop(Attn(x))); x = LN(x + drop(W₂ drop(relu(W₁ x)))). Dropout acts only
inside a gradient (Flux's default), as PyTorch's `model.train()` in the training step. A
feed-forward-only layer (an "f" of `layer_pattern`, PAR) has `attn` and `norm1` `nothing` and is
the second half alone (`FeedForwardLayer`).
"""
struct Layer{A<:Union{Attention,Nothing},N1<:Union{LayerNorm,Nothing},N2<:LayerNorm,L1<:Dense,L2<:Dense,P<:Dropout}
    attn::A
    norm1::N1
    norm2::N2
    ff1::L1  # C => 4C
    ff2::L2  # 4C => C
    drop::P
end
Flux.@layer Layer

"A layer without attention: feed-forward only."
const FeedForwardLayer = Layer{Nothing,Nothing}

function (l::Layer)(x::AbstractArray{T,3}) where {T}  # x: [C, T, B]
    x = attention_half(l, x)
    return l.norm2(x .+ l.drop(l.ff2(l.drop(relu.(l.ff1(x))))))
end

# x = LN(x + drop(Attn(x))), or x itself in a feed-forward-only layer.
attention_half(l::Layer, x::AbstractArray) = l.norm1(x .+ l.drop(l.attn(x)))
attention_half(::FeedForwardLayer, x::AbstractArray) = x

"""
    Transformer(config, embed, layers, norm, head, pe)

The whole model: byte embedding (257 => C/2) concatenated with the position code (C/2), L post-LN
layers, a final LayerNorm and the head. `pe` [C/2, T] is a constant, excluded from training.
"""
struct Transformer{E<:Embedding,L<:Layer,N<:LayerNorm,D<:Dense,P<:AbstractMatrix}
    config::ModelConfig
    embed::E  # weight [C/2, 257]
    layers::Vector{L}
    norm::N
    head::D  # C => n_outputs
    pe::P  # [C/2, T]
end
Flux.@layer Transformer trainable = (embed, layers, norm, head)

"The float type of the model's weights."
weight_type(m::Transformer) = eltype(m.head.weight)

"""
    (m::Transformer)(tokens) -> out

Parallel form: [T, B] input tokens (0..256) -> [n_outputs, T, B] head outputs.
"""
function (m::Transformer)(tokens::AbstractMatrix{<:Integer})
    L, B = size(tokens)
    L <= size(m.pe, 2) || throw(ArgumentError("$L positions, but the model's position code has $(size(m.pe, 2))"))
    e = m.embed(tokens .+ 1)  # [C/2, T, B]: +1 for 1-based columns
    x = vcat(e, repeat(m.pe[:, 1:L], 1, 1, B))  # [C, T, B]
    for layer in m.layers
        x = layer(x)
    end
    return m.head(m.norm(x))  # [n_outputs, T, B]
end

"""
    forward(model, tokens) -> out

Parallel form: [T, B] input tokens -> [n_outputs, T, B]. Accepts any integer matrix (a numpy
array from Python arrives as a `PyArray`) and copies it into an `Array` first.
"""
forward(model::Transformer, tokens::AbstractMatrix{<:Integer}) = model(Matrix{Int}(tokens))

"""
    empty_state(model, batch; max_len = T) -> state

The recurrent state of every layer before the first step, its attention kind's `empty_state`: a
`KVCache` with room for `max_len` positions (softmax), or a zero `LinearState` (linear);
`nothing` for a feed-forward-only layer.
"""
function empty_state(model::Transformer, batch::Integer; max_len::Integer = seq_len(model.config))
    return [empty_state(l, model.config, weight_type(model), batch, max_len) for l in model.layers]
end

# One layer's state: its kind's, or nothing without attention.
empty_state(l::Layer, c::ModelConfig, ::Type{T}, batch::Integer, max_len::Integer) where {T} =
    empty_state(l.attn.kind, T, batch, c.n_heads, d_head(c), max_len, d_feature(c))
empty_state(::FeedForwardLayer, ::ModelConfig, ::Type, ::Integer, ::Integer) = nothing

"""
    forward_step!(model, token, position, state) -> out

Recurrent form: [B] tokens at `position` (0-based, as in every backend: column position + 1 of the
position code) -> [n_outputs, B]; each layer's state is updated in place by the attention's
recurrent twin.
"""
function forward_step!(m::Transformer, token::AbstractVector{<:Integer}, position::Integer, state::AbstractVector)
    B = length(token)
    x = vcat(m.embed(token .+ 1), repeat(m.pe[:, position+1], 1, B))  # [C, B]: +1 for 1-based columns
    for (layer, s) in zip(m.layers, state)
        x = layer_step!(layer, x, s)
    end
    return m.head(m.norm(x))  # [n_outputs, B]
end

"One layer of the recurrent form: x [C, B] -> [C, B], no dropout (inference only)."
function layer_step!(l::Layer, x::AbstractMatrix, state::Union{KVCache,LinearState})
    C, B = size(x)
    H = l.attn.n_heads
    q = reshape(l.attn.q(x), C ÷ H, H, B)  # [D, H, B]
    k = reshape(l.attn.k(x), C ÷ H, H, B)
    v = reshape(l.attn.v(x), C ÷ H, H, B)
    o, _ = recurrent!(l.attn.kind, q, k, v, state, l.attn.feature_args...)  # [D, H, B]: the kind's twin
    x = l.norm1(x .+ l.attn.o(reshape(o, C, B)))
    return l.norm2(x .+ l.ff2(relu.(l.ff1(x))))
end

"A feed-forward-only layer in the recurrent form: no attention, no state."
layer_step!(l::FeedForwardLayer, x::AbstractMatrix, ::Nothing) = l.norm2(x .+ l.ff2(relu.(l.ff1(x))))
