# The checkpoint format shared by every backend (DESIGN section 3, "Weights"), and the one boundary
# where its layout meets Flux's.
#
# A checkpoint is a folder with `config.json` and `weights.npz` (float32, PyTorch conventions).
# Arrays are handled in their logical shapes, which are the same in both languages: NPZ.jl
# permutes C-order data on reading, and a numpy array passed through juliacall keeps its shape
# and strides (a `PyArray`). Only the embedding differs: Flux stores it as [C/2, 257].

"""
    param_shapes(config) -> Dict{String,Tuple}

Every parameter's name and shape in the weights format, as `linattn.weights.param_shapes`.
"""
function param_shapes(config::ModelConfig)
    C = config.d_model
    shapes = Dict{String,Tuple}("embed.weight" => (VOCAB, C ÷ 2))
    for i in 0:config.n_layers-1
        p = "layers.$i"
        attends = has_attention(config, i)  # a feed-forward-only layer (PAR) has no attn.* and no norm1
        for n in (attends ? ("q", "k", "v", "o") : ())
            shapes["$p.attn.$n.weight"] = (C, C)
            shapes["$p.attn.$n.bias"] = (C,)
        end
        if attends && config.feature_map == "favor"  # FAVOR+'s projection W, shared by the layer's heads, never trained
            shapes["$p.attn.feature_projection"] = (config.n_features, d_head(config))
        end
        for n in (attends ? ("norm1", "norm2") : ("norm2",))
            shapes["$p.$n.weight"] = (C,)
            shapes["$p.$n.bias"] = (C,)
        end
        shapes["$p.ff1.weight"] = (4C, C)
        shapes["$p.ff1.bias"] = (4C,)
        shapes["$p.ff2.weight"] = (C, 4C)
        shapes["$p.ff2.bias"] = (C,)
    end
    shapes["norm.weight"] = (C,)
    shapes["norm.bias"] = (C,)
    shapes["head.weight"] = (n_outputs(config), C)
    shapes["head.bias"] = (n_outputs(config),)
    return shapes
end

"""
    check_params(config, params; source = "weights")

Refuse parameters whose names or shapes do not match the config (an `ArgumentError`).
"""
function check_params(config::ModelConfig, params::AbstractDict; source::AbstractString = "weights")
    expected = param_shapes(config)
    names = Set(string(n) for n in keys(params))
    missing_names = sort([n for n in keys(expected) if !(n in names)])
    extra = sort([n for n in names if !haskey(expected, n)])
    if !isempty(missing_names) || !isempty(extra)
        throw(ArgumentError("$source: parameter names do not match the config (missing $(first(missing_names, 5)), " *
                            "unexpected $(first(extra, 5))); was the checkpoint written for another n_layers or head?"))
    end
    for (n, shape) in expected
        size(params[n]) == shape ||
            throw(ArgumentError("$source: $n has shape $(size(params[n])), the config needs $shape"))
    end
    return nothing
end

"""
    model_from_params(config, params; float_type = Float32) -> Transformer

The boundary from the weights format to Flux layers. `params` maps the format's names to arrays
in their logical shapes (from `load_checkpoint`, or numpy arrays passed through juliacall); each
is copied into an `Array{float_type}`. A Linear weight (out, in) is a Dense weight as it is; the
embedding (257, C/2) is transposed to Flux's [C/2, 257]; FAVOR+'s projection (m, D) is kept as it
is, in each `Attention`'s `feature_args`.
"""
function model_from_params(config::ModelConfig, params::AbstractDict; float_type::Type{<:AbstractFloat} = Float32)
    check_params(config, params)
    T = float_type
    dense(name) = Dense(Matrix{T}(params["$name.weight"]), Vector{T}(params["$name.bias"]))
    norm(name) = LayerNorm(Vector{T}(params["$name.weight"]), Vector{T}(params["$name.bias"]))
    kind = KINDS[attention_kind(config)]  # looked up once: its parallel form, recurrent twin and empty state
    layers = map(0:config.n_layers-1) do i
        p = "layers.$i"
        if !has_attention(config, i)  # feed-forward only (PAR)
            return Layer(nothing, nothing, norm("$p.norm2"), dense("$p.ff1"), dense("$p.ff2"), Dropout(config.dropout))
        end
        feature_args = projected(kind) ? (Matrix{T}(params["$p.attn.feature_projection"]),) : ()
        attn = Attention(dense("$p.attn.q"), dense("$p.attn.k"), dense("$p.attn.v"), dense("$p.attn.o"),
                         config.n_heads, kind, feature_args)
        Layer(attn, norm("$p.norm1"), norm("$p.norm2"), dense("$p.ff1"), dense("$p.ff2"), Dropout(config.dropout))
    end
    embed = Embedding(permutedims(Matrix{T}(params["embed.weight"])))  # (257, C/2) -> [C/2, 257]
    pe = T.(position_code(seq_len(config), config.d_model ÷ 2))  # [C/2, T]
    return Transformer(config, embed, layers, norm("norm"), dense("head"), pe)
end

"""
    params_of(model) -> Dict{String,Array}

The inverse boundary: the model's parameters under the format's names and shapes.
"""
function params_of(model::Transformer)
    T = weight_type(model)
    params = Dict{String,Array{T}}("embed.weight" => permutedims(model.embed.weight))
    add_dense!(name, d) = (params["$name.weight"] = copy(d.weight); params["$name.bias"] = copy(d.bias))
    add_norm!(name, n) = (params["$name.weight"] = copy(n.weight); params["$name.bias"] = copy(n.bias))
    for (i, l) in enumerate(model.layers)
        p = "layers.$(i - 1)"
        if l.attn !== nothing  # not a feed-forward-only layer
            add_dense!("$p.attn.q", l.attn.q)
            add_dense!("$p.attn.k", l.attn.k)
            add_dense!("$p.attn.v", l.attn.v)
            add_dense!("$p.attn.o", l.attn.o)
            projected(l.attn.kind) && (params["$p.attn.feature_projection"] = copy(only(l.attn.feature_args)))
            add_norm!("$p.norm1", l.norm1)
        end
        add_norm!("$p.norm2", l.norm2)
        add_dense!("$p.ff1", l.ff1)
        add_dense!("$p.ff2", l.ff2)
    end
    add_norm!("norm", model.norm)
    add_dense!("head", model.head)
    return params
end

"""
    load_checkpoint(path) -> (config, params)

Read a checkpoint folder: its `ModelConfig` and its float32 arrays by name (logical shapes).
Every fault is an `ArgumentError` that names the file. Then `model_from_params(config, params)`.
"""
function load_checkpoint(path::AbstractString)
    isdir(path) || throw(ArgumentError("checkpoint $path is not a folder; it should hold config.json and weights.npz"))
    for name in ("config.json", "weights.npz")
        isfile(joinpath(path, name)) || throw(ArgumentError("checkpoint $path has no $name"))
    end
    config_file = joinpath(path, "config.json")
    config = refuse_as_argument_error(config_file) do
        config_from_dict(JSON.parsefile(config_file))
    end
    weights = joinpath(path, "weights.npz")
    params = refuse_as_argument_error(weights) do
        Dict{String,Array{Float32}}(string(n) => Array{Float32}(a) for (n, a) in npzread(weights))
    end
    check_params(config, params; source = weights)
    return config, params
end

"""
    save_checkpoint(path, config, params)
    save_checkpoint(path, model)

Write `config.json` and `weights.npz` (float32) into the folder `path`, each atomically (a
temporary file renamed over the old one). NPZ.jl writes Fortran-ordered arrays with the logical
shapes, which numpy reads as the same arrays.
"""
function save_checkpoint(path::AbstractString, config::ModelConfig, params::AbstractDict)
    check_params(config, params)
    mkpath(path)
    arrays = Dict{String,Array{Float32}}(n => Array{Float32}(params[n]) for n in keys(param_shapes(config)))
    atomic_write(tmp -> npzwrite(tmp, arrays), joinpath(path, "weights.npz"))
    atomic_write(tmp -> write(tmp, JSON.json(config_dict(config))), joinpath(path, "config.json"))
    return path
end

save_checkpoint(path::AbstractString, model::Transformer) = save_checkpoint(path, model.config, params_of(model))

"""
    refuse_as_argument_error(read, file)

`read()`, with any fault it raises (bad JSON, a corrupt npz, a wrong config) turned into an
`ArgumentError` that names `file`; an interrupt passes as it is.
"""
function refuse_as_argument_error(read::Function, file::AbstractString)
    try
        return read()
    catch e
        e isa InterruptException && rethrow()
        message = e isa ArgumentError ? e.msg : sprint(showerror, e)
        throw(ArgumentError("checkpoint file $file cannot be read: $message"))
    end
end

"""
    atomic_write(write_to, path)

Call `write_to(tmp)` on a new temporary file beside `path`, sync it to disk, then rename it over
`path`. The file is created by `write_to` itself (`tmp` does not exist before), so it gets the
permissions of any new file under the umask, as the Python twin's; `mktemp` would make it 0600.
"""
function atomic_write(write_to::Function, path::AbstractString)
    tmp = tempname(dirname(abspath(path)); cleanup = false)
    try
        write_to(tmp)
        open(sync_to_disk, tmp, "r+")
        mv(tmp, path; force = true)
    catch
        rm(tmp; force = true)
        rethrow()
    end
    return path
end

"Flush `io` and, on Unix, fsync its file: its bytes are on disk before the rename publishes it."
function sync_to_disk(io::IOStream)
    flush(io)
    if Sys.isunix()
        ccall(:fsync, Cint, (Cint,), fd(io)) == 0 || throw(SystemError("fsync", Libc.errno()))
    end
    return nothing
end
