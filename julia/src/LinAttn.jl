"""
    LinAttn

Softmax and linear (RNN-form) autoregressive transformers over image bytes, in Flux: the Julia
twin of the Python package `linattn` (DESIGN section 3). Function names are the Python ones;
a trailing `!` marks a function that updates its arguments in place (the recurrent state).

Layout: features first, batch last, so that a C-order numpy array `(B, T, C)` is the same memory
as a Julia array `[C, T, B]`.

| what | Python | Julia |
| --- | --- | --- |
| activations | `(B, T, C)` | `[C, T, B]` |
| heads | `(B, T, H, D)` | `[D, H, T, B]` |
| one step of heads | `(B, H, D)` | `[D, H, B]` |
| head outputs | `(B, T, n_outputs)` | `[n_outputs, T, B]` |
| bytes, tokens | `(B, T)` | `[T, B]` |
| noise | `(B, T, 2)` | `[2, T, B]` |

Byte and token values are the same numbers in both languages (bytes 0..255, start token 256);
only the embedding lookup adds 1 for Julia's indexing. Weights cross between the languages at one
boundary, `model_from_params` / `params_of` (weights.jl).
"""
module LinAttn

using ChainRulesCore: ChainRulesCore, NoTangent, ignore_derivatives, unthunk
using Flux: Flux, Dense, Dropout, Embedding
using JSON: JSON
using LinearAlgebra: BLAS, diag, qr
using NNlib: batched_mul, batched_transpose, elu, logsoftmax, logsumexp, pad_zeros, relu,
    softmax, softplus
using NPZ: npzread, npzwrite
using Optimisers: Optimisers
using Random: Random
using Statistics: mean
using Zygote: Zygote

export ModelConfig, Transformer, KVCache, LinearState, AttentionKind, SoftmaxKind, ChunkedSoftmaxKind, LinearKind
export elu_feature_map, favor_feature_map, favor_projection, softmax_attention, softmax_attention_chunked, softmax_attention_recurrent!,
    linear_attention, linear_attention_recurrent!
export input_tokens, position_code, forward, forward_step!, empty_state
export split_mixture, log_prob, nats_per_dim, bits_per_dim
export sample_from_head, generate, uncached_step, timed_generate, time_generation, time_attention,
    time_attention_peak, time_window
export model_from_params, params_of, check_params, load_checkpoint, save_checkpoint
export make_optimizer, train_step

include("config.jl")
include("attention.jl")
include("model.jl")
include("loss.jl")
include("generate.jl")
include("timing.jl")
include("weights.jl")
include("train.jl")

"""
    info() -> Dict

Provenance for results: Julia and Flux versions, Julia and BLAS threads, the device.
"""
info() = Dict{String,Any}(
    "backend" => "julia", "version" => string(VERSION), "flux" => string(pkgversion(Flux)),
    "threads" => Threads.nthreads(), "blas_threads" => BLAS.get_num_threads(), "device" => "cpu",
)

end # module
