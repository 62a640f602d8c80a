# The model configuration, mirroring `linattn.config.ModelConfig` field for field.

const START_TOKEN = 256  # the input at position 0; byte values are 0..255
const VOCAB = 257  # 256 byte values and the start token
const ATTENTIONS = ("softmax", "linear")  # the model's attention kinds (KINDS has more for timing)
const FEATURE_MAPS = ("elu", "favor")  # linear attention's φ: elu(x) + 1, or FAVOR+'s positive random features
const N_FEATURES = 64  # m: FAVOR+'s random features per head (feature_map = "favor" only)
const LAYER_LETTERS = ("a", "f")  # layer_pattern: "a" attention + feed-forward, "f" feed-forward only (PAR)

# Generation modes and the attention kind each one needs (DESIGN section 3, "Generation modes").
const MODES = Dict(
    "softmax-uncached" => "softmax",
    "softmax-cached" => "softmax",
    "linear-recurrent" => "linear",
)

"""
    ModelConfig(; attention, n_layers, n_heads, d_model, head, n_mixtures, image_shape, dropout,
                feature_map, n_features, layer_pattern)

The fields of a checkpoint's `config.json`, with the Python defaults. Invalid values throw an
`ArgumentError` that names the field. A `config.json` written before `feature_map`, `n_features`
and `layer_pattern` existed loads with their defaults, the model it holds.
"""
Base.@kwdef struct ModelConfig
    attention::String = "linear"  # "softmax" or "linear" (φ: feature_map)
    n_layers::Int = 8  # L: post-LN transformer layers
    n_heads::Int = 8  # H: heads of size d_model / n_heads
    d_model::Int = 256  # C: width; the byte embedding and the position code take half each
    head::String = "mixture"  # "mixture" of discretized logistics, or a 256-way "categorical"
    n_mixtures::Int = 10  # M: logistic components (mixture head only)
    image_shape::NTuple{3,Int} = (28, 28, 1)  # (height, width, channels)
    dropout::Float64 = 0.1  # training only; a probability, not array data, so Float64
    feature_map::String = "elu"  # linear attention's φ: "elu" (elu(x) + 1) or "favor" (FAVOR+, Performer)
    n_features::Int = N_FEATURES  # m: FAVOR+'s random features per head; the state S is m × D
    layer_pattern::String = ""  # PAR: "" every layer attends, else n_layers letters "a" (attention + feed-forward) or "f"

    function ModelConfig(attention, n_layers, n_heads, d_model, head, n_mixtures, image_shape, dropout,
                         feature_map, n_features, layer_pattern)
        attention in ATTENTIONS ||
            throw(ArgumentError("attention must be \"softmax\" or \"linear\", got $(repr(attention))"))
        head in ("mixture", "categorical") ||
            throw(ArgumentError("head must be \"mixture\" or \"categorical\", got $(repr(head))"))
        feature_map in FEATURE_MAPS ||
            throw(ArgumentError("feature_map must be one of $(collect(FEATURE_MAPS)), got $(repr(feature_map))"))
        feature_map == "elu" || attention == "linear" ||
            throw(ArgumentError("feature_map=$(repr(feature_map)) needs attention=\"linear\" (softmax attention has " *
                                "no feature map); set attention = \"linear\", or feature_map = \"elu\""))
        min(n_layers, n_heads, d_model, n_mixtures, n_features, image_shape...) >= 1 ||
            throw(ArgumentError("sizes must be integers >= 1"))
        d_model % n_heads == 0 ||
            throw(ArgumentError("n_heads=$n_heads must divide d_model=$d_model"))
        d_model % 4 == 0 ||
            throw(ArgumentError("d_model=$d_model must be a multiple of 4 (sin/cos pairs of the position code)"))
        0 <= dropout < 1 || throw(ArgumentError("dropout must be in [0, 1), got $dropout"))
        isempty(layer_pattern) || (length(layer_pattern) == n_layers && all(c -> string(c) in LAYER_LETTERS, layer_pattern)) ||
            throw(ArgumentError("layer_pattern must be \"\" (every layer attends) or n_layers=$n_layers letters, 'a' " *
                                "(attention + feed-forward) or 'f' (feed-forward only); got $(repr(layer_pattern))"))
        return new(attention, n_layers, n_heads, d_model, head, n_mixtures, image_shape, dropout, feature_map, n_features,
                   layer_pattern)
    end
end

"T: bytes per image, raster order with channels interleaved."
seq_len(c::ModelConfig) = prod(c.image_shape)

"D: the size of one head."
d_head(c::ModelConfig) = c.d_model ÷ c.n_heads

"""
    has_attention(config, i) -> Bool

Whether layer i (0-based, as in the weights' names "layers.\$i") has attention ("a" in
`layer_pattern`, or no pattern), or is feed-forward only ("f": no attention weights, no state).
"""
has_attention(c::ModelConfig, i::Integer) = isempty(c.layer_pattern) || c.layer_pattern[i+1] == 'a'

"""
    attention_kind(config) -> String

The name of the model's attention in `KINDS`: "softmax", "linear" (φ = elu + 1) or "linear-favor".
"""
attention_kind(c::ModelConfig) = c.feature_map == "favor" ? "linear-favor" : c.attention

"""
    d_feature(config) -> Int

F: the size of linear attention's φ(x), so the state S is F × D and z has F entries: n_features
for FAVOR+, else D (elu + 1 keeps the size; softmax has no such state).
"""
d_feature(c::ModelConfig) = c.feature_map == "favor" ? c.n_features : d_head(c)

"Width of the head: 3M (logits, means, log-scales) or 256."
n_outputs(c::ModelConfig) = c.head == "mixture" ? 3 * c.n_mixtures : 256

"""
    config_from_dict(d) -> ModelConfig

Read the fields of a parsed `config.json`; unknown fields are refused, as in Python.
"""
function config_from_dict(d::AbstractDict)
    known = [string(f) for f in fieldnames(ModelConfig)]
    unknown = sort([string(k) for k in keys(d) if !(string(k) in known)])
    isempty(unknown) || throw(ArgumentError("unknown config field(s) $unknown; known fields: $(sort(known))"))
    kw = Dict{Symbol,Any}(Symbol(k) => v for (k, v) in d)
    if haskey(kw, :image_shape)
        shape = kw[:image_shape]
        length(shape) == 3 || throw(ArgumentError("image_shape must be [height, width, channels], got $shape"))
        kw[:image_shape] = Tuple(Int.(shape))
    end
    return ModelConfig(; kw...)
end

"The fields of `config` as a `Dict`, ready for `JSON.json`."
config_dict(c::ModelConfig) = Dict{String,Any}(
    "attention" => c.attention, "n_layers" => c.n_layers, "n_heads" => c.n_heads,
    "d_model" => c.d_model, "head" => c.head, "n_mixtures" => c.n_mixtures,
    "image_shape" => collect(c.image_shape), "dropout" => c.dropout, "feature_map" => c.feature_map,
    "n_features" => c.n_features, "layer_pattern" => c.layer_pattern,
)

"""
    check_mode(mode, config)

Refuse a generation mode that does not exist or does not fit the model's attention.
"""
function check_mode(mode::AbstractString, config::ModelConfig)
    haskey(MODES, mode) || throw(ArgumentError("mode must be one of $(sort(collect(keys(MODES)))), got $(repr(mode))"))
    if MODES[mode] != config.attention
        fitting = sort([m for (m, a) in MODES if a == config.attention])
        throw(ArgumentError("mode '$mode' needs a model with attention='$(MODES[mode])', but this model has " *
                            "attention='$(config.attention)'; use one of $fitting"))
    end
    return nothing
end
