"""The forms of one computation side by side (notebook 01): every parallel form and recurrent twin
of causal attention, in the float64 reference and in the PyTorch backend's table of kinds, on the
same inputs; and the reference model's parallel form against its step-by-step form.

torch is imported inside `attention_forms` only: the driver's other users of this module (none
today) need not load it.
"""

from __future__ import annotations

import numpy as np

from linattn import reference
from linattn.config import N_FEATURES
from linattn.weights import favor_projection


def run_recurrent(step, state, q, k, v):
    """q, k, v (B, T, H, D) one position at a time through a recurrent twin `step(q, k, v, state)
    -> (o, state)` from `state`; the outputs stacked (B, T, H, D), as numpy."""
    outs = []
    for t in range(q.shape[1]):
        o, state = step(q[:, t], k[:, t], v[:, t], state)
        outs.append(np.asarray(o))
    return np.stack(outs, axis=1)


def attention_forms(q, k, v, chunk_size) -> dict:
    """Every form of causal attention on float64 q, k, v (B, T, H, D), "family: who and form" ->
    output (B, T, H, D): the reference's parallel form and recurrent twin of each family (softmax,
    linear, linear-favor: FAVOR+'s features, with a projection of N_FEATURES rows drawn from seed 0);
    each kind of the PyTorch backend's table (`attention.KINDS`) by its parallel form, each
    distinct recurrent twin stepped from its kind's empty state, and linear attention in chunks of
    `chunk_size` (the chunkwise form's cross-chunk states at work for short T)."""
    import torch

    from linattn.torch_backend import attention as tattn

    B, T, H, D = q.shape
    W = favor_projection(N_FEATURES, D, np.random.default_rng(0))
    favor = dict(feature_map=reference.favor_feature_map)
    forms = {
        "linear: reference parallel": reference.linear_attention(q, k, v),
        "linear: reference recurrent": run_recurrent(reference.linear_attention_recurrent,
                                                     (np.zeros((B, H, D, D)), np.zeros((B, H, D))), q, k, v),
        "linear-favor: reference parallel": reference.linear_attention(q, k, v, W, **favor),
        "linear-favor: reference recurrent": run_recurrent(
            lambda q, k, v, s: reference.linear_attention_recurrent(q, k, v, s, W, **favor),
            (np.zeros((B, H, N_FEATURES, D)), np.zeros((B, H, N_FEATURES))), q, k, v),
        "softmax: reference parallel": reference.softmax_attention(q, k, v),
        "softmax: reference KV cache": run_recurrent(reference.softmax_attention_recurrent,
                                                     (np.zeros((B, 0, H, D)), np.zeros((B, 0, H, D))), q, k, v),
    }
    tq, tk, tv = (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)) for x in (q, k, v))
    like = torch.zeros((), dtype=torch.float64)
    twins = []
    with torch.no_grad():
        for name, kind in tattn.KINDS.items():
            family = "linear-favor" if kind.projected else "linear" if name.startswith("linear") else "softmax"
            args = (torch.from_numpy(W),) if kind.projected else ()
            forms[f"{family}: torch {name}"] = kind.parallel(tq, tk, tv, *args).numpy()
            if kind.recurrent not in twins:  # the softmax kinds share one twin, the key/value cache
                twins.append(kind.recurrent)
                forms[f"{family}: torch {name}, recurrent twin"] = run_recurrent(
                    lambda q, k, v, s, kind=kind, args=args: kind.recurrent(q, k, v, s, *args),
                    kind.empty_state(B, H, D, T, like, len(W) if kind.projected else None), tq, tk, tv)
        forms[f"linear: torch linear in chunks of {chunk_size}"] = tattn.linear_attention(tq, tk, tv,
                                                                                          chunk_size=chunk_size).numpy()
    return forms


def differences(forms) -> list:
    """Each form's largest absolute difference from the reference's parallel form of its family
    (`attention_forms`'s names): rows {"form", "max_abs_difference"}."""
    return [{"form": name, "max_abs_difference": float(np.abs(o - forms[name.split(":")[0] + ": reference parallel"]).max())}
            for name, o in forms.items()]


def step_by_step_difference(params, config, tokens) -> float:
    """The largest |head output of `reference.forward_step`, position by position from the empty
    state, - that of `reference.forward`| over input tokens (B, T)."""
    parallel = reference.forward(params, config, tokens)
    state, steps = reference.empty_state(config, len(tokens)), []
    for t in range(tokens.shape[1]):
        out, state = reference.forward_step(params, config, tokens[:, t], t, state)
        steps.append(out)
    return float(np.abs(np.stack(steps, axis=1) - parallel).max())
