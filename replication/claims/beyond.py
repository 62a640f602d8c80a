"""Beyond the paper: FAVOR+ (seed 003: Performer's positive random features as linear attention's
feature map) and PAR layer patterns (seed 002: fewer attention blocks), measured as the paper's
claims are, with no verdict (they are not claims of the paper).

- FAVOR+ speed: seconds per image at batch 1 of linear-recurrent generation with
  feature_map = "favor", C2's latency task with the feature map set; elu + 1 beside it is C2's own
  row of the same task. Reported: favor / elu time, and the same ratio of their roofline floors.
- PAR speed: batch 1, softmax-cached and linear-recurrent, the preset model with the profile's PAR
  pattern for its number of layers ([beyond.par_patterns]), beside C2's full model. Reported:
  full / PAR time (the speed-up) and the floors' ratio. softmax-cached keeps a key/value cache per
  attending layer only, so its speed-up is the headline.
- Quality: test bits/dim after C3's budget (the profile's [quality] settings and seeds, or
  [beyond] quality_seeds) of the variants named in [beyond] quality_variants, each beside the C3 run
  of its attention (elu + 1 linear, softmax), read from summary["quality"], not trained again.
  Each difference is variant - C3, over the seeds both have.

Where C2 does not time a baseline this claim needs (a model or mode missing from [latency]), it
times it itself, with the same task. Timings follow the hygiene of C1 and C2: a contended or
outlying one is flagged and left out (verdicts.usable). Experiments have claim "B", so that the
report's compute table groups them; `judge` returns no row.
"""

from __future__ import annotations

from dataclasses import dataclass

from linattn.backends import BACKENDS

from .. import estimates, profiles, roofline, speed, train, verdicts
from ..experiments import Context, Experiment, select
from ..formatting import BACKEND_NAMES, DASH, SHORT_NAMES, fmt, table
from ..presets import MODELS, preset_config
from ..profiles import ProfileError
from ..verdicts import usable
from .generation import estimate as speed_estimate
from .generation import latency_task
from .quality import aggregate, run_name

CLAIM = "B"  # not a claim of the paper: no verdict, its own group in the compute table
FAVOR_MODE = "linear-recurrent"  # FAVOR+ changes linear attention only
PAR_MODES = ("softmax-cached", "linear-recurrent")  # the two step modes whose state PAR shrinks
TASKS = {"speed": speed.measure_task, "train_variant": train.train}  # what a worker runs, by task kind
SPEED_FIELDS = ("seconds_per_image", "roofline_seconds_per_image", "extrapolated", "method")
RUN_FIELDS = ("steps", "wall_seconds", "seconds_per_step", "curve", "test_bits_per_dim", "n_test_images", "config")
NO_SUMMARY = ("this run's summary has no beyond-the-paper measurements (it was made before they were part of the "
              "study)")


@dataclass(frozen=True)
class Variant:
    """A trained variant of C3's models: its attention (and the C3 run it is compared with), its
    feature map, and whether the profile's PAR pattern of the quality model applies."""

    attention: str
    feature_map: str = "elu"
    par: bool = False


VARIANTS = {
    "linear-favor": Variant("linear", feature_map="favor"),
    "linear-par": Variant("linear", par=True),
    "softmax-par": Variant("softmax", par=True),
}


def par_pattern(settings: dict, n_layers: int):
    """The profile's PAR pattern for a model of `n_layers` layers, or None where it names none."""
    return settings.get("par_patterns", {}).get(str(n_layers))


def _no_pattern(n_layers):
    return f"no PAR pattern for {n_layers} layers in the profile's [beyond.par_patterns]"


def _skip(why, task):
    return {**task, "kind": "skip", "status": "not run", "reason": why} if why else task


# --- plan and estimate ------------------------------------------------------------------------------

def plan(ctx: Context):
    """The speed variants on every backend and model of [beyond], and the trained variants of
    [beyond] quality_variants once per seed."""
    if "beyond" not in ctx.profile:  # a run resumed from before [beyond] existed: its profile has none
        return [], {}
    b = profiles.settings(ctx.profile, "beyond")
    unknown = [v for v in b["quality_variants"] if v not in VARIANTS]
    if unknown:
        raise ProfileError(f"[beyond] quality_variants: unknown {unknown}; choose from {list(VARIANTS)}")
    return _speed_plan(ctx, b) + _quality_plan(ctx, b), {}


def _speed_plan(ctx, b):
    lt, out = ctx.profile["latency"], []

    def add(eid, task, why=None):
        out.append(Experiment(eid, CLAIM, "speed", _skip(why, task), estimate(task, ctx.machine)))

    for backend in ctx.backends:
        for model in b["models"]:
            n_layers = preset_config(model, "linear").n_layers
            pattern = par_pattern(b, n_layers)
            for mode in PAR_MODES:  # the baselines C2 does not time
                if model not in lt["models"] or mode not in lt["modes"]:
                    add(f"B-{backend}-{model}-{mode}", {**latency_task(ctx, backend, model, mode), "variant": "baseline"})
            add(f"B-{backend}-{model}-{FAVOR_MODE}-favor", {**latency_task(ctx, backend, model, FAVOR_MODE),
                                                            "variant": "favor", "feature_map": "favor"})
            for mode in PAR_MODES:
                task = {**latency_task(ctx, backend, model, mode), "variant": "par"}
                add(f"B-{backend}-{model}-{mode}-par", {**task, "layer_pattern": pattern} if pattern else task,
                    None if pattern else _no_pattern(n_layers))
    return out


def _quality_plan(ctx, b):
    q = profiles.settings(ctx.profile, "quality")
    c3_seeds = q.pop("seeds", [0])
    seeds = b.get("quality_seeds", c3_seeds)
    dataset = ctx.data.get("dataset")
    if q["backend"] not in ctx.backends:
        why = f"the quality backend ({q['backend']}) is not available in this run"
    else:
        why = None if dataset else f"{ctx.data['reason']}; {ctx.data['fix']}"
    out = []
    for name in b["quality_variants"]:
        v = VARIANTS[name]
        model = {**q["model"], "feature_map": v.feature_map}
        missing = why
        if v.par:
            pattern = par_pattern(b, model["n_layers"])
            model["layer_pattern"] = pattern or ""
            missing = missing or (None if pattern else _no_pattern(model["n_layers"]))
        for seed in seeds:
            run = run_name(name, seed)
            task = {**q, "kind": "train_variant", "variant": name, "attention": v.attention, "model": model, "seed": seed,
                    "dataset": dataset, "data_dir": ctx.data_dir, "checkpoint_dir": str(ctx.folder / "checkpoints" / run),
                    "threads": ctx.threads, "device": ctx.device}
            out.append(Experiment(f"B-{run}", CLAIM, "train_variant", _skip(missing, task), estimate(task, ctx.machine)))
    return out


def estimate(task, machine) -> dict:
    """A speed task as C2's (generation.estimate, with the variant's config); a training as C3's
    rule (3x the forward FLOPs per step, x2 for small matrices, times the overhead), counting only
    the attending layers (PAR) and FAVOR+'s m features and projections."""
    if task["kind"] == "speed":
        return speed_estimate(task, machine)
    config = train.model_config(task)
    P, F = roofline.matmul_params(config), estimates.FLOAT
    T, L, La, C, B = config.seq_len, config.n_layers, config.n_attention_layers, config.d_model, task["batch_size"]
    Fd = config.d_feature
    softmax = config.attention == "softmax"
    if softmax:
        attn = La * 4 * T * T * C * B
    else:  # per head 6 T F D (features, state, output); FAVOR+ projects q and k: 4 T F D more
        attn = La * (6 + (4 if config.feature_map == "favor" else 0)) * T * C * Fd * B
    flops_step = 3 * (2 * P * B * T + attn)
    evals = task["steps"] // task["eval_every"] + 1
    eval_flops = (evals * task["eval_images"] + task["test_images"]) * T * 2 * P
    memory = 4 * P * F + 40 * B * T * C * F * L + (B * config.n_heads * T * T * F * 3 * La if softmax else 0)
    seconds = estimates.OVERHEAD * 2 * estimates.gemm_seconds(task["steps"] * flops_step + eval_flops, machine)
    return estimates.estimate(seconds, memory, "C3's rule (3x forward FLOPs per step, x2 for small matrices, times "
                              "the overhead), attending layers and FAVOR+ features counted")


# --- summarise and judge ---------------------------------------------------------------------------

def c3_runs(summary) -> dict:
    """C3's training runs {attention: [one per seed]}, from summary["quality"]["runs"] written as
    {attention: [runs]} or as {attention: run} (one run each)."""
    runs = (summary.get("quality") or {}).get("runs") or {}
    return {a: (list(rs) if isinstance(rs, list) else [rs]) for a, rs in runs.items()}


def summarise(summary, outcomes, folder):
    """summary["beyond"]: every variant's speed row and training run, and the comparisons the
    report shows (each with `missing`, why it cannot be made, or None)."""
    rows = []
    for o in select(outcomes, CLAIM, "speed"):
        t = o.task
        rows.append({**o.row(), "model": t["model"], "mode": t["mode"], "variant": t["variant"],
                     "feature_map": t.get("feature_map", "elu"), "layer_pattern": t.get("layer_pattern", ""),
                     **({k: o.result.get(k) for k in SPEED_FIELDS} if o.ok else {}),
                     **({"n_features": o.result["config"]["n_features"]} if o.ok else {})})
    runs = []
    for o in select(outcomes, CLAIM, "train_variant"):
        runs.append({**o.row(), "variant": o.task["variant"], "attention": o.task["attention"],
                     "seed": o.task.get("seed", 0), "dataset": o.task.get("dataset"),
                     "feature_map": o.task["model"].get("feature_map", "elu"),
                     "layer_pattern": o.task["model"].get("layer_pattern", ""),
                     **({k: o.result.get(k) for k in RUN_FIELDS} if o.ok else {})})
    latency = summary.get("latency") or []
    summary["beyond"] = {"speed": rows, "runs": runs, "favor": favor_comparisons(rows, latency),
                         "par": par_comparisons(rows, latency), "quality": quality_comparisons(runs, c3_runs(summary))}


def _why(r, name):
    """Why a timing cannot be used, or None if it can."""
    if r is None:
        return f"{name}: not timed in this run"
    if r.get("status") != "ok":
        return f"{name}: {r.get('status')} ({r.get('reason')})"
    if r.get("flag"):
        return f"{name}: measured but left out ({r['flag']})"
    return None


def _find(rows, backend, model, mode, variant):
    return next((r for r in rows if r["backend"] == backend and r["model"] == model and r["mode"] == mode
                 and r["variant"] == variant), None)


def _baseline(rows, latency, backend, model, mode):
    """The full elu + 1 / softmax model's batch-1 row: this claim's own, else C2's."""
    return _find(rows, backend, model, mode, "baseline") or next(
        (r for r in latency if r["backend"] == backend and r["model"] == model and r["mode"] == mode), None)


def _pair(base, variant, base_name, variant_name) -> dict:
    """Seconds per image and roofline floors of a baseline and its variant, and why a ratio is
    missing (None: both usable)."""
    missing = [w for w in (_why(base, base_name), _why(variant, variant_name)) if w]
    ok = {k: r for k, r in (("base", base), ("variant", variant)) if r is not None and usable(r)}
    return {"base_seconds": ok["base"]["seconds_per_image"] if "base" in ok else None,
            "variant_seconds": ok["variant"]["seconds_per_image"] if "variant" in ok else None,
            "base_floor": ok["base"]["roofline_seconds_per_image"] if "base" in ok else None,
            "variant_floor": ok["variant"]["roofline_seconds_per_image"] if "variant" in ok else None,
            "extrapolated": any(r.get("extrapolated") for r in ok.values()),
            "missing": "; ".join(missing) or None}


def _keys(rows):
    """(backend, model) in the order of BACKENDS and MODELS (then any other model)."""
    models = list(dict.fromkeys([*MODELS, *(r["model"] for r in rows)]))
    return [(b, m) for b in BACKENDS for m in models if any(r["backend"] == b and r["model"] == m for r in rows)]


def favor_comparisons(rows, latency) -> list[dict]:
    """Per backend and model: FAVOR+ against elu + 1, linear-recurrent at batch 1. time_ratio is
    favor / elu seconds per image (above 1: FAVOR+ is slower); floor_ratio the same of the floors."""
    out = []
    for backend, model in _keys([r for r in rows if r["variant"] == "favor"]):
        favor = _find(rows, backend, model, FAVOR_MODE, "favor")
        p = _pair(_baseline(rows, latency, backend, model, FAVOR_MODE), favor, "elu + 1", "FAVOR+")
        both = p["missing"] is None
        out.append({"backend": backend, "model": model, "n_features": (favor or {}).get("n_features"), **p,
                    "time_ratio": p["variant_seconds"] / p["base_seconds"] if both else None,
                    "floor_ratio": p["variant_floor"] / p["base_floor"] if both else None})
    return out


def par_comparisons(rows, latency) -> list[dict]:
    """Per backend, model and mode: the PAR pattern against the full model at batch 1. speedup is
    full / PAR seconds per image (above 1: PAR is faster); floor_speedup the same of the floors."""
    out = []
    for backend, model in _keys([r for r in rows if r["variant"] == "par"]):
        for mode in PAR_MODES:
            par = _find(rows, backend, model, mode, "par")
            if par is None:
                continue
            p = _pair(_baseline(rows, latency, backend, model, mode), par, "full model", "PAR")
            both = p["missing"] is None
            pattern = par["layer_pattern"]
            out.append({"backend": backend, "model": model, "mode": mode, "pattern": pattern,
                        "n_layers": preset_config(model, "linear").n_layers,
                        "n_attending": pattern.count("a") if pattern else None,
                        **p, "speedup": p["base_seconds"] / p["variant_seconds"] if both else None,
                        "floor_speedup": p["base_floor"] / p["variant_floor"] if both else None})
    return out


def _trained(runs, name):
    """The convergence notes of the runs that are still learning (verdicts.convergence)."""
    out = []
    for r in runs:
        trained, why = verdicts.convergence(r.get("curve") or [])
        if not trained:
            out.append(f"{name} seed {r.get('seed', 0)}: {why}")
    return out


def quality_comparisons(runs, c3) -> list[dict]:
    """Per variant: its runs, test bits/dim over the seeds that finished, C3's run of its attention
    over the same seeds, the difference variant - C3 (of the means over the seeds both finished),
    and which runs are undertrained by C3's convergence rule."""
    out = []
    for name in dict.fromkeys(r["variant"] for r in runs):
        v = VARIANTS[name]
        mine = sorted((r for r in runs if r["variant"] == name), key=lambda r: r["seed"])
        done = [r for r in mine if _finished(r)]
        base = [r for r in c3.get(v.attention, []) if r.get("seed", 0) in {r["seed"] for r in mine}]
        base_done = [r for r in base if _finished(r) and r.get("seed", 0) in {r["seed"] for r in done}]
        paired = [r for r in done if r["seed"] in {b.get("seed", 0) for b in base_done}]
        missing = [f"{run_name(name, r['seed'])}: {r.get('status')} ({r.get('reason')})" for r in mine if r not in done]
        missing += [f"C3 {run_name(v.attention, r.get('seed', 0))}: {r.get('status')} ({r.get('reason')})"
                    for r in base if not _finished(r)]
        if not base:
            seeds = ", ".join(str(r["seed"]) for r in mine)
            missing.append(f"C3 has no {v.attention} run of seed(s) {seeds} in this run")
        agg, agg_base, agg_paired = aggregate(done), aggregate(base_done), aggregate(paired)
        out.append({"variant": name, "attention": v.attention, "feature_map": v.feature_map,
                    "layer_pattern": next((r["layer_pattern"] for r in mine), ""), "runs": mine,
                    "dataset": next((r["dataset"] for r in mine if r.get("dataset")), None),
                    "steps": next((r["steps"] for r in done), None),
                    "seconds_per_step": _mean([r["seconds_per_step"] for r in done]),
                    "aggregate": agg, "baseline": agg_base, "n_paired": agg_paired["n"],
                    "difference": agg_paired["mean"] - agg_base["mean"] if agg_paired["n"] else None,
                    "undertrained": _trained(done, name) + _trained(base_done, f"C3 {v.attention}"),
                    "missing": "; ".join(missing) or None})
    return out


def _finished(r):
    return r.get("status") == "ok" and r.get("test_bits_per_dim") is not None


def _mean(v):
    return sum(v) / len(v) if v else None


def judge(paper, s) -> list[dict]:
    return []  # beyond the paper: measured and reported, never judged


# --- the report: tables, prose -----------------------------------------------------------------------

def report(summary, paper, folder, figures_dir) -> dict:
    b = summary.get("beyond")
    return {"sections": {"beyond": beyond_section(b)}, "figures": {},
            "prose": {"beyond_favor": favor_prose(b), "beyond_par": par_prose(b), "beyond_quality": quality_prose(b)}}


def figures(summary, paper, out_dir) -> dict:
    return {}  # three small tables say it


def _s(x):
    return fmt(x, " s") if x is not None else DASH


def _x(x):
    return fmt(x, "×") if x is not None else DASH


def _pattern(p):
    return f"{p['pattern']} ({p['n_attending']} of {p['n_layers']} attend)" if p["pattern"] else DASH




TITLES = {"favor": "FAVOR+ generation speed", "par": "PAR generation speed", "variants": "Quality of the variants"}
NONE_PLANNED = {"favor": "no FAVOR+ timing was planned (the profile's [beyond] names no model, or no backend ran)",
                "par": "no PAR timing was planned (the profile's [beyond] names no model, or no backend ran)",
                "variants": "no variant was trained (the profile's [beyond] names none in quality_variants)"}


def _not_run(entries, key, none_planned):
    """Why a table has no comparison at all (the reasons of its entries, each once), or None."""
    if any(e[key] is not None for e in entries):
        return None
    if not entries:
        return none_planned
    return "; ".join(dict.fromkeys(_where(e) + (e["missing"] or "no usable result") for e in entries))


def _where(e):
    """'PyTorch mnist softmax-cached: ' for a timing (a trained variant's reasons name their runs)."""
    if "backend" not in e:
        return ""
    return " ".join([BACKEND_NAMES[e["backend"]], e["model"], *([e["mode"]] if "mode" in e else [])]) + ": "


def _bpd(a):
    if not a["n"]:
        return DASH
    return f"{a['mean']:.3f}" + (f" ± {a['sd']:.3f}" if a["sd"] is not None else "")


def _model(q):
    """A trained variant in words: its attention, FAVOR+ or its PAR pattern."""
    return q["attention"] + (", FAVOR+" if q["feature_map"] == "favor" else "") + (
        f", PAR {q['layer_pattern']}" if q["layer_pattern"] else "")


def beyond_section(b) -> dict:
    """The three tables of 'Results beyond the paper' (None where nothing of the kind was
    planned); for each table without a single comparison a 'not run: <why>' text, and those texts
    as the section's notices."""
    if b is None:
        why = {k: NO_SUMMARY for k in TITLES}
        favor = par = quality = []
    else:
        why = {"favor": _not_run(b["favor"], "time_ratio", NONE_PLANNED["favor"]),
               "par": _not_run(b["par"], "speedup", NONE_PLANNED["par"]),
               "variants": _not_run(b["quality"], "difference", NONE_PLANNED["variants"])}
        favor = [[BACKEND_NAMES[f["backend"]], f["model"], fmt(f["n_features"]) if f["n_features"] else DASH,
                  _s(f["base_seconds"]), _s(f["variant_seconds"]),
                  f"not run: {f['missing']}" if f["missing"] else _x(f["time_ratio"]), _x(f["floor_ratio"])]
                 for f in b["favor"]]
        par = [[BACKEND_NAMES[p["backend"]], p["model"], p["mode"], _pattern(p), _s(p["base_seconds"]),
                _s(p["variant_seconds"]), f"not run: {p['missing']}" if p["missing"] else _x(p["speedup"]),
                _x(p["floor_speedup"])] for p in b["par"]]
        quality = [[q["variant"], _model(q), q["dataset"] or DASH, f"{q['steps']:,}" if q["steps"] else DASH,
                    str(q["aggregate"]["n"]) if q["aggregate"]["n"] else DASH, _bpd(q["aggregate"]), _bpd(q["baseline"]),
                    f"{q['difference']:+.3f}" if q["difference"] is not None
                    else f"not run: {q['missing'] or 'no run finished'}",
                    fmt(q["seconds_per_step"], " s") if q["seconds_per_step"] else DASH,
                    ("undertrained" if q["undertrained"] else "converged") if q["aggregate"]["n"] else DASH]
                   for q in b["quality"]]
    texts = {k: f"{TITLES[k]} not run: {w}." for k, w in why.items() if w}
    out = {"notices": list(texts.values()),
           "extrapolated": bool(b) and any(e["extrapolated"] for e in b["favor"] + b["par"])}
    headers = {"favor": ["backend", "model", "features m", "elu + 1 s/image", "FAVOR+ s/image", "FAVOR+ / elu time",
                         "floor ratio"],
               "par": ["backend", "model", "mode", "PAR pattern", "full s/image", "PAR s/image", "full / PAR time",
                       "floor ratio"],
               "variants": ["variant", "model", "data", "steps", "seeds", "test bits/dim", "C3, same seeds", "difference",
                            "s/step", "training"]}
    for key, rows in (("favor", favor), ("par", par), ("variants", quality)):
        out[key] = table(headers[key], rows) if rows else None
        out[f"{key}_missing"] = key in texts
        out[f"{key}_missing_text"] = texts.get(key, "")
    return out


def _first_backend(entries, key):
    """The entries with a value of `key` of the first backend (in BACKENDS order) that has any,
    and the other backends' entries."""
    ok = [e for e in entries if e[key] is not None]
    if not ok:
        return None, [], []
    first = next(b for b in BACKENDS if any(e["backend"] == b for e in ok))
    return first, [e for e in ok if e["backend"] == first], [e for e in ok if e["backend"] != first]


def _faster(r):
    return f"{_x(r)} faster" if r >= 1 else f"{_x(1 / r)} slower"


def favor_prose(b) -> str:
    """FAVOR+ against elu + 1 at batch 1, in full for the first backend, one clause per other one."""
    if not b:
        return ""
    first, mine, rest = _first_backend(b["favor"], "time_ratio")
    if first is None:
        return ""
    parts = [f"{_x(f['time_ratio'])} the time of elu + 1 on {f['model'].upper()} ({_s(f['variant_seconds'])} against "
             f"{_s(f['base_seconds'])} per image)" for f in mine]
    m = next((f["n_features"] for f in mine if f["n_features"]), None)
    d = preset_config(mine[0]["model"], "linear").d_head
    s = (f"With {SHORT_NAMES[first]} at batch 1, linear-recurrent generation with FAVOR+ took " + "; ".join(parts) + ". "
         f"Its state per head is m × D = {m} × {d} against elu + 1's {d} × {d}, and each step projects q and k onto "
         f"the m random features; the ratio of the roofline floors, which counts these bytes and FLOPs, is "
         + ", ".join(f"{_x(f['floor_ratio'])} ({f['model'].upper()})" for f in mine) + ".")
    others = _by_backend(rest, lambda f: f"{_x(f['time_ratio'])} ({f['model'].upper()})")
    if others:
        s += " " + others + "."
    return s


def _by_backend(rows, label) -> str:
    """The other backends' rows, each by `label`, grouped per backend: "PyTorch: a, b; JAX: c"."""
    groups = {}
    for r in rows:
        groups.setdefault(r["backend"], []).append(label(r))
    return "; ".join(f"{SHORT_NAMES[k]}: {', '.join(v)}" for k, v in groups.items())


def par_prose(b) -> str:
    """The PAR pattern against the full model at batch 1: the speed-up of each mode for the first
    backend, and PAR's cached softmax beside the full model's linear-recurrent generation."""
    if not b:
        return ""
    first, mine, rest = _first_backend(b["par"], "speedup")
    if first is None:
        return ""
    out = []
    for model in dict.fromkeys(p["model"] for p in mine):
        by = {p["mode"]: p for p in mine if p["model"] == model}
        any_p = next(iter(by.values()))
        modes = "; ".join(f"{mode} {_faster(p['speedup'])} ({_s(p['variant_seconds'])} against {_s(p['base_seconds'])} "
                          f"per image; floor ratio {_x(p['floor_speedup'])})" for mode, p in by.items())
        s = f"{model.upper()} with pattern {_pattern(any_p)}: {modes}."
        cached, linear = by.get("softmax-cached"), by.get("linear-recurrent")
        if cached and linear:
            r = cached["variant_seconds"] / linear["base_seconds"]
            s += (f" The PAR model's cached softmax took {_s(cached['variant_seconds'])} per image, "
                  f"{_x(r)} the full model's linear-recurrent time ({_s(linear['base_seconds'])}).")
        out.append(s)
    text = (f"With {SHORT_NAMES[first]} at batch 1, generating with PAR's fewer attention blocks against the full "
            "model: " + " ".join(out))
    others = _by_backend(rest, lambda p: f"{p['model'].upper()} {p['mode']} {_x(p['speedup'])}")
    if others:
        text += " Full / PAR time with " + others + "."
    return text


def quality_prose(b) -> str:
    """Test bits/dim of each variant beside its C3 run, with what the budget and the seeds allow."""
    if not b:
        return ""
    ok = [q for q in b["quality"] if q["difference"] is not None]
    if not ok:
        return ""
    describe = {"linear-favor": "linear attention with FAVOR+", "linear-par": "linear attention with PAR pattern {p}",
                "softmax-par": "softmax attention with PAR pattern {p}"}
    parts = [f"{describe.get(q['variant'], q['variant']).format(p=q['layer_pattern'])} {q['aggregate']['mean']:.3f} "
             f"against C3's {q['attention']} {q['baseline']['mean']:.3f} ({q['difference']:+.3f})" for q in ok]
    n = min(q["n_paired"] for q in ok)
    s = (f"After C3's budget ({ok[0]['steps']:,} steps on {ok[0]['dataset']}, "
         f"{'one seed each' if n == 1 else f'means over {n} seeds'}), test bits/dim: " + "; ".join(parts) + ".")
    notes = list(dict.fromkeys(note for q in ok for note in q["undertrained"]))  # C3's run may serve two variants
    if notes:
        s += (f" {len(notes)} of these runs are undertrained by C3's rule ({notes[0]}"
              + (f"; and {len(notes) - 1} more" if len(notes) > 1 else "") + "): the differences say how the variants "
              "compare at this budget, not after training.")
    if n == 1:
        s += " With one seed, a difference cannot be set against the spread between seeds."
    if ok[0]["dataset"] == "synthetic":
        s += " The data were synthetic: these numbers test the pipeline only."
    return s
