# One training step, mirroring `linattn.torch_backend.train` (Optimisers.jl and Zygote).
#
# Optimiser: RAdam with decoupled weight decay, as the authors' image-generation code (lr 1e-4,
# weight decay 0.01 applied to the weights directly) and `torch.optim.RAdam(...,
# decoupled_weight_decay=True)`:  x ← x (1 - η λ) - η · radam_step(g).

const LEARNING_RATE = 1e-4  # paper, Sec. 4.2.1 (MNIST); the authors' README uses 2e-4 for CIFAR-10
const WEIGHT_DECAY = 0.01  # authors' code (radam.py default argument)

"""
    TorchRAdam(eta = 1e-3; beta = (0.9, 0.999), epsilon = 1e-8)

RAdam exactly as `torch.optim.RAdam` (without weight decay), as an Optimisers.jl rule. With
m̂ = m / (1 - β₁ᵗ), ρ∞ = 2/(1 - β₂) - 1 and ρₜ = ρ∞ - 2t β₂ᵗ / (1 - β₂ᵗ), the step is

    η m̂ r √(1 - β₂ᵗ) / (√v + ϵ),  r = √((ρₜ - 4)(ρₜ - 2) ρ∞ / ((ρ∞ - 4)(ρ∞ - 2) ρₜ))   if ρₜ > 5,
    η m̂                                                                              otherwise.

`Optimisers.RAdam` differs in two details: it rectifies from ρₜ > 4 (with β₂ = 0.999 that is
step 5, where ρ₅ ≈ 4.996, so step 5 differs) and adds ϵ to √(v / (1 - β₂ᵗ)). The scalar
coefficients are computed in Float64, as PyTorch computes them in Python floats.
"""
struct TorchRAdam <: Optimisers.AbstractRule
    eta::Float64
    beta::Tuple{Float64,Float64}
    epsilon::Float64
end
TorchRAdam(eta::Real = 1e-3; beta = (0.9, 0.999), epsilon = 1e-8) = TorchRAdam(eta, beta, epsilon)

Optimisers.init(::TorchRAdam, x::AbstractArray) = (zero(x), zero(x), 1)

function Optimisers.apply!(o::TorchRAdam, state, x::AbstractArray{T}, dx) where {T}
    m, v, t = state
    β₁, β₂ = o.beta
    m .= T(β₁) .* m .+ T(1 - β₁) .* dx
    v .= T(β₂) .* v .+ T(1 - β₂) .* abs2.(dx)
    bc₁, bc₂ = 1 - β₁^t, 1 - β₂^t
    ρ∞ = 2 / (1 - β₂) - 1
    ρ = ρ∞ - 2t * β₂^t / bc₂
    if ρ > 5
        r = sqrt((ρ - 4) * (ρ - 2) * ρ∞ / ((ρ∞ - 4) * (ρ∞ - 2) * ρ))
        a, ϵ = T(o.eta * r * sqrt(bc₂) / bc₁), T(o.epsilon)
        step = @. a * m / (sqrt(v) + ϵ)
    else
        step = T(o.eta / bc₁) .* m
    end
    return (m, v, t + 1), step
end

"""
    optimiser_rule(; lr = 1e-4, weight_decay = 0.01)

`OptimiserChain(TorchRAdam(lr), WeightDecay(lr * weight_decay))`: the chain subtracts
η · radam_step + η λ x, i.e. x (1 - η λ) - η · radam_step, PyTorch's decoupled weight decay. (The
other order, `WeightDecay` first, would be L2 regularisation passed through RAdam's scaling.)
"""
optimiser_rule(; lr::Real = LEARNING_RATE, weight_decay::Real = WEIGHT_DECAY) =
    Optimisers.OptimiserChain(TorchRAdam(lr), Optimisers.WeightDecay(lr * weight_decay))

"""
    make_optimizer(model; lr = 1e-4, weight_decay = 0.01) -> opt_state

The optimiser state for `optimiser_rule` over the model's trainable arrays: every array decays,
as `model.parameters()` in PyTorch; the position code is not trainable.
"""
make_optimizer(model::Transformer; lr::Real = LEARNING_RATE, weight_decay::Real = WEIGHT_DECAY) =
    Optimisers.setup(optimiser_rule(; lr, weight_decay), model)

"""
    train_step(model, opt_state, data) -> loss

One update on [T, B] bytes with dropout on (Flux enables it inside the gradient); returns the
batch's loss in nats per byte before the update. The model's arrays are updated in place.
"""
function train_step(model::Transformer, opt_state, data::AbstractMatrix{<:Integer})
    bytes = Matrix{Int}(data)
    tokens = input_tokens(bytes)
    loss, grads = Zygote.withgradient(m -> nats_per_dim(m(tokens), m.config, bytes), model)
    Optimisers.update!(opt_state, model, grads[1])
    return loss
end
