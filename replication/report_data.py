"""report-data.json: everything the Typst template prints, derived from a run folder's summary.json.

`report_data(folder, summary, figures) -> dict`. Numbers are formatted here, in Python (Typst
prints floats in full), tables arrive as lists of rows of strings, and every part whose results
are missing carries an explicit "not run" text with the recorded reason. The raw claims stay beside
the formatted ones, so that tests can compare what the PDF embeds with summary.json.
"""

from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path

from .presets import model_presets
from .provenance import ROOT, git_commit
from .report_discussion import discussion
from .report_figures import BACKEND_NAMES, BACKENDS, MODES, latency_rows
from .summary import fmt, load_claims, usable

IMPLEMENTATIONS = (  # (name, language and framework, backend key, path to count)
    ("Julia (Flux)", "Julia", "julia", "julia/src"),
    ("PyTorch", "Python", "torch", "python/linattn/torch_backend"),
    ("JAX", "Python", "jax", "python/linattn/jax_backend"),
    ("numpy reference (float64)", "Python", None, "python/linattn/reference.py"),
)
DASH = "–"
SHORT_NAMES = {"torch": "PyTorch", "jax": "JAX", "julia": "Julia"}


def short_reason(reason) -> str:
    """The first clause of a recorded reason (install hints follow after '; ')."""
    return str(reason).split("; ")[0] if reason else "no reason recorded"


# --- formatting ---------------------------------------------------------------------------------

def times(x):
    return DASH if x is None else fmt(x, "×")


def seconds(x):
    if x is None:
        return DASH
    s = fmt(x, " s")
    return s + (f" ({x / 3600:.1f} h)" if x >= 3600 else f" ({x / 60:.1f} min)" if x >= 120 else "")


def memory(b):
    if b is None:
        return DASH
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} B"


def value(v):
    """A hyperparameter value as a short string."""
    if isinstance(v, list):
        return ", ".join(value(x) for x in v) or "(none)"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def table(header, rows, note=None):
    return {"header": list(header), "rows": [[str(c) for c in r] for r in rows], "note": note}


# --- the paper ------------------------------------------------------------------------------------

def paper_numbers(claims) -> dict:
    """The paper's headline ratios, computed from configs/claims.toml (Tables 1, 2, 4, 5)."""
    ips, cpu, gpu = claims["C1"]["images_per_second"], claims["C2"]["seconds_per_image_cpu"], claims["C2"]["seconds_per_image_gpu"]
    r = {}
    for m in ("mnist", "cifar"):
        r[f"{m}_total"] = ips[m]["linear-recurrent"] / ips[m]["softmax-uncached"]
        r[f"{m}_cache"] = ips[m]["softmax-cached"] / ips[m]["softmax-uncached"]
        r[f"{m}_linear_over_cached"] = ips[m]["linear-recurrent"] / ips[m]["softmax-cached"]
        r[f"{m}_latency_cached_gpu"] = gpu[m]["softmax-cached"] / gpu[m]["linear-recurrent"]
        r[f"{m}_latency_cached_cpu"] = cpu[m]["softmax-cached"] / cpu[m]["linear-recurrent"]
        r[f"{m}_latency_uncached_cpu"] = cpu[m]["softmax-uncached"] / cpu[m]["linear-recurrent"]
    bpd = claims["C3"]["bits_per_dim"]
    r["mnist_bpd_gap"] = bpd["mnist"]["linear"] - bpd["mnist"]["softmax"]
    text = {k: fmt(v, "×") for k, v in r.items()}
    text["mnist_bpd_gap"] = f"{r['mnist_bpd_gap']:+.3f}"
    text["cifar_uncached_cpu_seconds"] = fmt(cpu["cifar"]["softmax-uncached"], " s")
    text["cifar_linear_ips"] = f"{ips['cifar']['linear-recurrent']:g} images/s"  # as printed in Table 2
    text["cifar_softmax_ips"] = f"{ips['cifar']['softmax-uncached']:g} images/s"
    return {"values": r, "text": text}


# --- sections -----------------------------------------------------------------------------------

def rules_table(summary):
    """The verdict rules as applied in this run (replication/verdicts.py), for the report's scope."""
    return table(["claims", "rule", "reason"], [[r["claims"], r["rule"], r["reason"]] for r in summary.get("rules") or []])


def hygiene_section(summary):
    """Which timings the hygiene checks re-measured or flagged."""
    remeasured = [c for c in summary["compute"] if (c.get("attempts") or 1) > 1]
    flagged = summary.get("flagged") or []
    text = (f"{len(remeasured)} timing(s) were re-measured because other processes used the cores"
            + (f"; {len(flagged)} stayed contended or out of line and were left out of every verdict." if flagged
               else "; none had to be left out of a verdict."))
    return {"text": text, "flagged": [f"{f['id']}: {f['flag']}" for f in flagged]}


def claims_table(summary):
    rows = []
    for c in summary["claims"]:
        if c["status"] != "measured" or not c["rows"]:
            rows.append([c["id"], f"{c['title']} (not run: {c.get('note') or 'no measurement'})", DASH, DASH, DASH, "not run"])
            continue
        for r in c["rows"]:
            rows.append([c["id"], r["what"], r["paper_text"], r["ours_text"],
                         DASH if r["ratio"] is None else fmt(r["ratio"]), r["verdict"]])
    return table(["claim", "comparison", "paper", "ours", "ours / paper", "verdict"], rows)


def models_section(summary):
    from linattn.config import ModelConfig
    from linattn.weights import param_shapes

    presets = model_presets()
    rows = []

    def add(name, cfg, source):
        config = ModelConfig(**{k: v for k, v in cfg.items() if k in ModelConfig.__dataclass_fields__})
        n = sum(math.prod(s) for s in param_shapes(config).values())
        rows.append([name, config.n_layers, config.n_heads, config.d_model, config.d_model // config.n_heads,
                     4 * config.d_model, f"{config.head} ({config.n_mixtures})", "×".join(map(str, config.image_shape)),
                     config.seq_len, f"{n / 1e6:.2f} M", source])

    for name, cfg in presets.items():
        add(f"{name.upper()} (speed)", cfg, cfg.get("source", ""))
    runs = summary["quality"]["runs"]
    trained = next((r["config"] for r in runs.values() if r.get("config")), None)
    if trained is None:
        q = {h["name"]: h["value"] for h in summary["hyperparameters"] if h["section"] == "quality"}
        trained = {k: q[k] for k in ("n_layers", "n_heads", "d_model", "n_mixtures", "image_shape", "dropout") if k in q}
    if trained:
        add("C3 trained (quality)", {"head": "mixture", **trained}, "the profile's [quality] section (3.3)")
    return table(["model", "L", "H", "d", "d/H", "FFN", "head (M)", "image", "T", "parameters", "source"], rows)


def data_section(summary):
    from .datasets.sequences import VALID_FRACTION
    from .datasets.sources import SOURCES

    q = summary["quality"]
    name = q["dataset"]
    hp = {h["name"]: h["value"] for h in summary["hyperparameters"] if h["section"] == "quality"}
    out = {"missing": name is None}
    if name is None:
        out["text"] = "C3 not run: no dataset was used (" + (claim(summary, "C3").get("note") or "training not run") + ")."
        return out
    runs = [r for r in q["runs"].values() if r.get("status") == "ok"]
    steps = max((r.get("steps") or 0 for r in runs), default=0)
    seen = steps * hp.get("batch_size", 0)
    if name == "synthetic":
        out["text"] = ("Synthetic smooth images (sinusoidal patterns drawn from a fixed seed), generated in memory: no real "
                       "data set was available offline on this machine. The smoke profile allows this so that the whole "
                       "pipeline runs anywhere; its bits/dim say nothing about the paper's claim.")
    else:
        src = SOURCES[name]
        n_train = sum(f.count for f in src.split_files("train", "images" if src.format == "idx" else "batch"))
        n_test = sum(f.count for f in src.split_files("test", "images" if src.format == "idx" else "batch"))
        out["text"] = (f"{name} ({'×'.join(map(str, src.image_shape))}, from {src.homepage}), read offline from a verified "
                       f"copy: {n_train:,} official training images, of which a fixed {VALID_FRACTION:.0%} is held out for "
                       f"validation, and {n_test:,} test images.")
    out["table"] = table(["", "value"], [
        ["data set", name], ["dataset checksum (sha256 of the verified data)", q.get("dataset_checksum") or DASH],
        ["training steps × batch size (images seen per model)",
         f"{steps:,} × {hp.get('batch_size', DASH)} = {seen:,}" if steps else "not trained in this run"],
        ["validation images per evaluation", value(hp.get("eval_images", DASH))],
        ["test images for the final bits/dim", ", ".join(sorted({str(r.get("n_test_images")) for r in runs})) or DASH],
    ])
    return out


def hyperparameter_section(summary):
    rows = [[h["section"], h["name"], value(h["value"]), h["source"]] for h in summary["hyperparameters"]
            if h["name"] != "description"]
    sources = [h["source"] for h in summary["hyperparameters"]]
    counts = {k: sum(s.startswith(k) for s in sources) for k in ("paper", "authors'", "our choice")}
    return {"table": table(["section", "setting", "value", "source"], rows),
            "counts": {"paper": counts["paper"], "authors": counts["authors'"], "ours": counts["our choice"],
                       "total": len(sources)}}


def count_lines(path: Path):
    """(files, lines, code lines: non-blank and not a # comment) of a file or a folder's .py/.jl files."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".py", ".jl"))
    lines = code = 0
    for p in files:
        for line in p.read_text(errors="replace").splitlines():
            lines += 1
            code += bool(line.strip()) and not line.strip().startswith("#")
    return len(files), lines, code


def implementation_section(summary):
    backends = summary["backends"]
    rows, notices = [], []
    for name, language, key, rel in IMPLEMENTATIONS:
        path = ROOT / rel
        n_files, lines, code = count_lines(path) if path.exists() else (0, 0, 0)
        if key is None:
            version = f"numpy {_version('numpy')} (at report build)"
        elif backends.get(key, {}).get("status") == "ok":
            info = backends[key].get("info") or {}
            version = f"{key} {info.get('version', '?')}" + (f", Flux {info['flux']}" if info.get("flux") else "")
            version = version.replace("julia", "Julia")
        else:
            reason = backends.get(key, {}).get("reason") or "not in this run's backends"
            version = "not run"
            notices.append(f"{SHORT_NAMES[key]} backend not run: {reason}")
        rows.append([name, language, version, rel, n_files, f"{lines:,}", f"{code:,}"])
    prov = summary["run"].get("provenance") or {}
    now = git_commit()
    return {"table": table(["implementation", "language", "versions (this run)", "path", "files", "lines", "code lines"], rows),
            "python": prov.get("python", DASH), "run_dirty": bool((prov.get("git") or {}).get("dirty")),
            "build_commit": (now["commit"] or "unknown")[:12], "build_dirty": bool(now["dirty"]),
            "report_tools": f"typst {_version('typst')}, matplotlib {_version('matplotlib')}", "notices": notices}


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def setup_section(summary):
    run = summary["run"]
    prov, machine = run.get("provenance") or {}, run.get("machine") or {}
    rows = [
        ["processor", prov.get("cpu", DASH)], ["logical cores / threads used", f"{prov.get('cpu_count', DASH)} / {run.get('threads', DASH)}"],
        ["memory available at start", memory(run.get("memory_available_bytes"))],
        ["device for generation and training", run.get("device") or DASH],
        ["operating system", prov.get("platform", DASH)], ["Python", prov.get("python", DASH)],
        ["measured memory bandwidth (streaming read)", f"{machine['bandwidth_GBps']:.3g} GB/s" if machine else DASH],
        ["measured float32 GEMM throughput (2048³)", f"{machine['gemm_GFLOPs']:.3g} GFLOP/s" if machine else DASH],
        ["measured with", machine.get("measured_with", DASH)],
        ["run started / finished", f"{run.get('started') or DASH} / {run.get('finished') or 'not finished'}"],
    ]
    return {"table": table(["", "this run"], rows), "profile": run.get("profile") or DASH,
            "description": run.get("description") or ""}


def compute_section(summary):
    rows = summary["compute"]
    by_claim = {}
    for r in rows:
        by_claim.setdefault(r["claim"], []).append(r)
    agg = []
    for claim_id, rs in sorted(by_claim.items()):
        done = [r for r in rs if r.get("actual_seconds") is not None]
        est, act = sum(r["estimate_seconds"] for r in done), sum(r["actual_seconds"] for r in done)
        status = {}
        for r in rs:
            status[r["status"]] = status.get(r["status"], 0) + 1
        agg.append([claim_id, len(rs), ", ".join(f"{n} {s}" for s, n in sorted(status.items(), key=lambda kv: str(kv[0]))),
                    seconds(est) if done else DASH, seconds(act) if done else DASH, times(act / est) if done and est else DASH,
                    memory(max((r["estimate_memory_bytes"] or 0 for r in rs), default=None)),
                    memory(max((r["actual_memory_bytes"] or 0 for r in done), default=None)) if done else DASH])
    timed = [r for r in rows if r.get("actual_seconds") and r.get("estimate_seconds")]
    ratios = sorted(r["actual_seconds"] / r["estimate_seconds"] for r in timed)
    within = sum(0.5 <= x <= 2 for x in ratios)
    full = [[r["id"], r["status"] or DASH, seconds(r["estimate_seconds"]), seconds(r["actual_seconds"]),
             times(r["actual_seconds"] / r["estimate_seconds"]) if r.get("actual_seconds") and r["estimate_seconds"] else DASH,
             memory(r["estimate_memory_bytes"]), memory(r["actual_memory_bytes"])] for r in rows]
    total_est = sum(r["estimate_seconds"] for r in rows)
    total_act = sum(r["actual_seconds"] or 0 for r in timed)
    text = (f"{len(rows)} experiments were planned with a total estimate of {seconds(total_est)}; "
            f"{len(timed)} ran and took {seconds(total_act)} of worker wall-clock time. "
            + (f"The median ratio of actual to estimated time is {times(ratios[len(ratios) // 2])}; "
               f"{within} of {len(ratios)} estimates were within a factor of 2." if ratios else "")) if rows else \
        "No experiment was recorded in this run."
    return {
        "by_claim": table(["claim", "experiments", "status", "estimated time", "actual time", "actual / est.",
                           "est. peak memory", "actual peak RSS"], agg),
        "full": table(["experiment", "status", "est. time", "actual time", "actual / est.", "est. memory", "peak RSS"], full),
        "text": text,
    }


def claim(summary, cid):
    return next((c for c in summary["claims"] if c["id"] == cid), {})


def throughput_section(summary, paper):
    ok = [r for r in summary["throughput"] if usable(r)]
    rows = []
    ips = paper["C1"]["images_per_second"]
    for backend in BACKENDS:
        for model in ("mnist", "cifar"):
            for mode in MODES:
                rs = [r for r in ok if r["backend"] == backend and r["model"] == model and r["mode"] == mode]
                if not rs:
                    continue
                b = max(rs, key=lambda r: r["images_per_second"])
                rows.append([BACKEND_NAMES[backend], model, mode, b["batch"], fmt(b["images_per_second"]),
                             fmt(ips.get(model, {}).get(mode)), fmt(b["seconds_per_image"], " s"),
                             fmt(b["roofline_seconds_per_image"], " s"),
                             times(b["seconds_per_image"] / b["roofline_seconds_per_image"]),
                             "yes" if b.get("extrapolated") else "no"])
    failed = [f"{r['backend']} {r['model']} {r['mode']} batch {r['batch']}: "
              + (f"measured but left out ({r['flag']})" if r.get("flag") else f"{r.get('status')} ({r.get('reason')})")
              for r in summary["throughput"] if not usable(r)]
    pv = paper_numbers(paper)["values"]
    dec = []
    for d in summary["decomposition"].values():
        dec.append([BACKEND_NAMES[d["backend"]], d["model"], times(d["total"]), times(d["from_cache"]),
                    times(d["linear_over_cached"]), times(d["from_batch"]),
                    ", ".join(str(d["best_batch"][m]) for m in MODES)])
    for m in ("mnist", "cifar"):
        dec.append(["paper (GPU)", m, times(pv[f"{m}_total"]), times(pv[f"{m}_cache"]), times(pv[f"{m}_linear_over_cached"]),
                    DASH, "not stated"])
    n_extra = sum(bool(r.get("extrapolated")) for r in ok)
    return {
        "table": table(["backend", "model", "mode", "best batch", "images/s", "paper images/s", "s/image", "roofline s/image",
                        "× floor", "extrap."], rows),
        "decomposition": table(["backend", "model", "linear / uncached", "cached / uncached", "linear / cached",
                                "linear: best batch / batch 1", "best batches (uncached, cached, linear)"], dec),
        "failed": failed, "n_points": len(ok), "n_extrapolated": n_extra, "missing": not ok,
        "missing_text": "C1 not run: " + (claim(summary, "C1").get("note") or "no throughput measurement succeeded") + ".",
    }


def latency_section(summary, paper):
    lat = latency_rows(summary)
    backends = [b for b in BACKENDS if any(k[0] == b for k in lat)]
    cpu, gpu = paper["C2"]["seconds_per_image_cpu"], paper["C2"]["seconds_per_image_gpu"]
    rows = []
    for model in ("mnist", "cifar"):
        for mode in MODES:
            ours = [lat.get((b, model, mode)) for b in backends]
            if any(v is not None for v in ours):
                rows.append([model, mode, *[fmt(v, " s") if v is not None else DASH for v in ours],
                             fmt(cpu[model][mode], " s"), fmt(gpu[model][mode], " s")])
    extrapolated = sorted({f"{r['model']} {r['mode']}" for r in summary["latency"] if usable(r) and r.get("extrapolated")})
    return {"table": table(["model", "mode", *[f"{BACKEND_NAMES[b]} (CPU)" for b in backends], "paper CPU", "paper GPU"], rows),
            "missing": not rows, "extrapolated": extrapolated,
            "missing_text": "C2 not run: " + (claim(summary, "C2").get("note") or "no latency measurement succeeded") + "."}


def quality_section(summary, paper, folder: Path):
    q = summary["quality"]
    c3 = claim(summary, "C3")
    bpd = paper["C3"]["bits_per_dim"]
    rows = []
    for attention in ("linear", "softmax"):
        r = q["runs"].get(attention)
        if r is None:
            rows.append([attention, "not run", DASH, DASH, DASH, DASH, fmt(bpd["mnist"][attention])])
        elif r.get("status") != "ok":
            status = "" if r.get("status") == "not run" else f" {r.get('status')}"
            rows.append([attention, f"not run:{status} ({r.get('reason')})", DASH, DASH, DASH, DASH,
                         fmt(bpd["mnist"][attention])])
        else:
            rows.append([attention, r["dataset"], f"{r['steps']:,}", f"{r['test_bits_per_dim']:.3f}",
                         fmt(r["seconds_per_step"], " s"), seconds(r["wall_seconds"]), fmt(bpd["mnist"][attention])])
    samples = {}
    for attention, s in summary["samples"].items():
        files = s.get("files") or {}
        samples[attention] = {"status": s.get("status"), "reason": s.get("reason"),
                              "files": {k: v for k, v in files.items() if (folder / v).is_file()}}
    return {"table": table(["attention", "data", "steps", "test bits/dim", "s/step", "training time", "paper (MNIST)"], rows),
            "missing": c3.get("status") != "measured",
            "missing_text": "C3 not run: " + (c3.get("note") or "training not run") + ".",
            "samples": samples}


def scaling_section(summary, paper):
    fits = summary["scaling_fit"]
    exp = paper["C4"]["exponent"]
    rows = [[BACKEND_NAMES[f["backend"]], f["attention"], f"{f['time_exponent']:.2f}" if f["time_exponent"] is not None else DASH,
             f"{exp[f['attention']]:.1f}" if f["attention"] in exp else DASH,
             f"{f['memory_exponent']:.2f}" if f["memory_exponent"] is not None else DASH, f"{f['largest_T']:,}",
             f"{paper['C4']['largest_length'][f['attention']]:,}" if f["attention"] in paper["C4"]["largest_length"] else DASH]
            for f in fits]
    skipped = [f"{BACKEND_NAMES.get(r['backend'], r['backend'])} {r['attention']} T = {r['T']:,}: {r.get('status')} ({r.get('reason')})"
               for r in summary["scaling"] if r.get("status") != "ok"]
    skipped += [f"{BACKEND_NAMES.get(r['backend'], r['backend'])} {r['attention']} T = {r['T']:,}: measured but left out ({r['flag']})"
                for r in summary["scaling"] if r.get("status") == "ok" and r.get("flag")]
    budget = summary.get("scaling_budget") or {}
    budget_text = (f"Lengths were limited by a memory budget of {budget['why']}"
                   + (" (the largest lengths are therefore not comparable with the paper's Figure 1)."
                      if budget.get("limited_by_machine") else ", so the largest length that fits is comparable with "
                      "the paper's Figure 1 where the time cap did not stop it first.")) if budget else ""
    return {"budget_text": budget_text, "table": table(["backend", "attention", "time exponent", "paper", "memory exponent", "largest T", "paper largest T"], rows),
            "skipped": skipped, "missing": not fits,
            "missing_text": "C4 not run: " + (claim(summary, "C4").get("note") or "no scaling measurement succeeded") + "."}


def languages_section(summary):
    c5 = claim(summary, "C5")
    rows = []
    present = [b for b in BACKENDS if any(b in r["values"] for r in summary["languages"])]
    for r in summary["languages"]:
        cells = []
        for b in present:
            v = r["values"].get(b)
            rel = r["relative_to_torch"].get(b)
            cells.append(DASH if v is None else fmt(v) + ("" if b == "torch" or rel is None else f" ({fmt(rel, '×')})"))
        rows.append([r["what"], r["unit"], *cells])
    notices = [f"{SHORT_NAMES.get(b, b)} backend not run: {short_reason(why)} (details in section 3.4)"
               for b, why in (c5.get("backends_missing") or {}).items()]
    return {"table": table(["measurement", "unit", *[BACKEND_NAMES[b] for b in present]], rows),
            "notices": notices, "measured": [BACKEND_NAMES[b] for b in c5.get("backends_measured", [])],
            "missing": c5.get("status") != "measured",
            "missing_text": "C5 not run: " + (c5.get("note") or "fewer than two backends ran") + "."}


BEYOND_KINDS = ("softmax", "softmax-fused", "softmax-chunked", "linear")  # the columns of the memory table


def beyond_section(summary):
    val = [[BACKEND_NAMES.get(r["backend"], r["backend"]), r.get("model", DASH), r.get("steps", DASH),
            fmt(r.get("extrapolated_seconds_per_image"), " s"), fmt(r.get("measured_seconds_per_image"), " s"),
            f"{r['relative_error']:+.1%}" if r.get("relative_error") is not None else f"not run: {r.get('reason')}"]
           for r in summary["uncached_validation"]]
    ok = [r for r in summary["scaling"] if usable(r)]
    chunk = []
    for backend in BACKENDS:
        rs = [r for r in ok if r["backend"] == backend]
        common = sorted({r["T"] for r in rs if r["attention"] == "softmax"} & {r["T"] for r in rs if r["attention"] == "softmax-chunked"})
        for T in common[-2:]:
            by = {r["attention"]: r for r in rs if r["T"] == T}
            chunk.append([BACKEND_NAMES[backend], f"{T:,}", *[memory(by[a]["memory_per_sequence_bytes"]) if a in by else DASH
                                                            for a in BEYOND_KINDS],
                          *[fmt(by[a]["seconds_per_sequence"], " s") if a in by else DASH for a in BEYOND_KINDS]])
    return {"validation": table(["backend", "model", "steps", "extrapolated s/image", "measured s/image", "error"], val),
            "validation_missing": not val,
            "chunked": table(["backend", "T", *[f"{a} mem." for a in BEYOND_KINDS], *[f"{a} time" for a in BEYOND_KINDS]],
                             chunk),
            "chunked_missing": not chunk}


def notices(summary, sections):
    """Every explicit 'not run' statement of the report, in one list (also embedded as metadata)."""
    out = list(sections["implementation"]["notices"]) + list(sections["languages"]["notices"])
    for c in summary["claims"]:
        if c["status"] != "measured":
            out.append(f"{c['id']} not run: {c.get('note') or 'no measurement'}")
    return list(dict.fromkeys(out))


def report_data(folder: Path, summary: dict, figures: dict) -> dict:
    """The whole of report-data.json."""
    paper = load_claims()
    prov = summary["run"].get("provenance") or {}
    sections = {
        "claims_table": claims_table(summary),
        "rules": rules_table(summary),
        "hygiene": hygiene_section(summary),
        "models": models_section(summary),
        "data": data_section(summary),
        "hyperparameters": hyperparameter_section(summary),
        "implementation": implementation_section(summary),
        "setup": setup_section(summary),
        "compute": compute_section(summary),
        "throughput": throughput_section(summary, paper),
        "latency": latency_section(summary, paper),
        "quality": quality_section(summary, paper, folder),
        "scaling": scaling_section(summary, paper),
        "languages": languages_section(summary),
        "beyond": beyond_section(summary),
    }
    return {
        "meta": {"title": "Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention",
                 "authors": "the transformers-are-rnns replication project",
                 "date": (summary["run"].get("finished") or summary["run"].get("started") or "")[:10] or DASH,
                 "profile": summary["run"].get("profile") or DASH, "folder": summary.get("folder") or folder.name,
                 "commit": ((prov.get("git") or {}).get("commit") or "unknown")[:12]},
        "paper": paper_numbers(paper)["text"],
        "claims": summary["claims"],
        "scope": [{"id": c["id"], "title": c["title"], "source": c["source"], "status": c["status"],
                   "note": c.get("note") or ""} for c in summary["claims"]],
        **sections,
        "notices": notices(summary, sections),
        "figures": figures,
        "discussion": discussion(summary, paper_numbers(paper)["values"]),
    }
