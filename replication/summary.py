"""summary.json: what the report and notebooks read. Built from a run folder's run.json and
experiments/*.json; every number in the report comes from here, next to the paper's number, the
ratio and a verdict computed by the rules of replication/verdicts.py (printed in the report).
Timings flagged by the measurement-hygiene checks (contended, outliers) are listed with their flag
and never enter a verdict.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np

from . import verdicts

CLAIMS = Path(__file__).resolve().parent / "configs" / "claims.toml"
MODES = ("softmax-uncached", "softmax-cached", "linear-recurrent")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def load_claims():
    with open(CLAIMS, "rb") as f:
        return tomllib.load(f)


def fmt(x, unit=""):
    """A display string for a number: 3 significant digits, thousands separated."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    ax = abs(x)
    s = f"{x:,.0f}" if ax >= 1000 else f"{x:.3g}" if ax >= 0.01 else f"{x:.2e}"
    return f"{s}{unit}"


def _experiments(folder, run):
    """(id, record, result) of every experiment in the run."""
    for eid, rec in run["experiments"].items():
        path = folder / rec["result_file"] if rec.get("result_file") else None
        result = read_json(path) if path and path.is_file() else {"status": rec.get("status"), "reason": rec.get("reason")}
        yield eid, rec, result


def load_summary(folder) -> dict:
    """A run folder's summary.json, or built from its experiments if the run did not finish."""
    folder = Path(folder)
    return read_json(folder / "summary.json") if (folder / "summary.json").is_file() else build_summary(folder)


def build_summary(folder) -> dict:
    folder = Path(folder)
    run = read_json(folder / "run.json")
    claims = load_claims()
    throughput, latency, validation, scaling, quality, samples, compute = [], [], [], [], {}, {}, []
    for eid, rec, res in _experiments(folder, run):
        task, ok = rec["task"], res.get("status") == "ok"
        compute.append({"id": eid, "claim": rec["claim"], "status": res.get("status"), "reason": res.get("reason"),
                        "flag": res.get("flag"), "attempts": len(rec.get("attempts") or []) or None,
                        "estimate_seconds": rec["estimate"]["seconds"], "estimate_memory_bytes": rec["estimate"]["memory_bytes"],
                        "actual_seconds": (rec.get("actual") or {}).get("seconds"),
                        "actual_memory_bytes": (rec.get("actual") or {}).get("memory_bytes")})
        base = {"backend": task.get("backend"), "status": res.get("status"), "reason": res.get("reason"),
                "flag": res.get("flag"), "contention": res.get("contention")}
        if eid.startswith(("C1-", "C2-")):
            row = {**base, "model": task["model"], "mode": task["mode"], "batch": task["batch"]}
            if ok:
                row.update({k: res[k] for k in ("seconds_per_image", "images_per_second", "extrapolated", "method",
                                                "roofline_seconds_per_image", "bound", "iqr", "warmup_seconds", "compile_seconds")})
            (throughput if eid.startswith("C1-") else latency).append(row)
        elif eid.startswith("V-"):
            validation.append({**base, **({k: res[k] for k in ("model", "steps", "extrapolated_seconds_per_image",
                                                                "measured_seconds_per_image", "relative_error")} if ok else {})})
        elif eid.startswith("C4-"):
            row = {**base, "attention": task["attention"], "T": task["T"], "batch": task["batch"]}
            if ok:
                med = float(np.median(res["seconds"]))
                row.update(seconds=med, seconds_per_sequence=med / task["batch"], peak_memory_bytes=res["peak_memory_bytes"],
                           memory_per_sequence_bytes=res["peak_memory_bytes"] / task["batch"])
            scaling.append(row)
        elif eid.startswith("C3-"):
            quality[task["attention"]] = {**base, "dataset": task["dataset"], **({k: res[k] for k in (
                "steps", "wall_seconds", "seconds_per_step", "curve", "test_bits_per_dim", "n_test_images", "config")} if ok else {})}
        elif eid.startswith("S-"):
            samples[task.get("checkpoint", "").rsplit("/", 1)[-1]] = {**base, **({"files": {
                k: str(Path(v).resolve().relative_to(folder.resolve())) for k, v in res["files"].items()}} if ok else {})}
    dataset = next((q["dataset"] for q in quality.values()), None)
    summary = {
        "run": {k: run.get(k) for k in ("profile", "description", "started", "finished", "device", "threads",
                                         "provenance", "machine", "memory_available_bytes")},
        "folder": folder.name,
        "backends": run.get("backends", {}),
        "hyperparameters": run.get("hyperparameters", []),
        "throughput": throughput, "latency": latency, "uncached_validation": validation, "scaling": scaling,
        "quality": {"dataset": dataset, "dataset_checksum": _checksum(dataset, run), "runs": quality},
        "samples": samples, "compute": compute,
        "data": run.get("data"), "scaling_budget": run.get("scaling_budget"),
        "flagged": [{"id": c["id"], "flag": c["flag"]} for c in compute if c.get("flag")],
        "rules": verdicts.RULES,
    }
    summary["decomposition"] = decomposition(throughput)
    summary["languages"] = languages(throughput, latency, scaling)
    summary["scaling_fit"] = scaling_fit(scaling)
    summary["claims"] = [claim_c1(claims, summary), claim_c2(claims, summary), claim_c3(claims, summary),
                         claim_c4(claims, summary), claim_c5(claims, summary)]
    return summary


def _checksum(dataset, run):
    if dataset in (None, "synthetic"):
        return None
    try:
        from .data import dataset_checksum

        return dataset_checksum(dataset, data_dir=run["experiments"].get("C3-linear", {}).get("task", {}).get("data_dir"))
    except Exception as e:  # recorded, not fatal: the summary is still written
        return f"unavailable: {e}"


def usable(r) -> bool:
    """A successful measurement that passed the hygiene checks (no flag): the only kind verdicts use."""
    return r["status"] == "ok" and not r.get("flag")


def best(rows, backend, model, mode, batch=None):
    """The highest-throughput usable record (at `batch` if given)."""
    cands = [r for r in rows if usable(r) and r["backend"] == backend and r["model"] == model and r["mode"] == mode
             and (batch is None or r["batch"] == batch)]
    return max(cands, key=lambda r: r["images_per_second"], default=None)


def flags(rows, backend, model, modes) -> list[str]:
    """The flags of the successful but unusable records of these modes (why a comparison is missing)."""
    return [f"{r['mode']} batch {r['batch']}: {r['flag']}" for r in rows if r["status"] == "ok" and r.get("flag")
            and r["backend"] == backend and r["model"] == model and r["mode"] in modes]


def _backends(rows):
    return sorted({r["backend"] for r in rows if usable(r)}, key=["torch", "jax", "julia"].index)


def decomposition(throughput):
    """How the linear-vs-uncached speed-up splits into the KV cache, the state's constant cost,
    and batch size: total = (cached/uncached) x (linear/cached), each at its best batch, and
    linear at its best batch vs batch 1."""
    out = {}
    for backend in _backends(throughput):
        for model in ("mnist", "cifar"):
            u, c, l = (best(throughput, backend, model, m) for m in MODES)
            l1 = best(throughput, backend, model, "linear-recurrent", 1)
            if not (u and c and l):
                continue
            out[f"{backend}-{model}"] = {
                "backend": backend, "model": model,
                "total": l["images_per_second"] / u["images_per_second"],
                "from_cache": c["images_per_second"] / u["images_per_second"],
                "linear_over_cached": l["images_per_second"] / c["images_per_second"],
                "from_batch": l["images_per_second"] / l1["images_per_second"] if l1 else None,
                "best_batch": {m: r["batch"] for m, r in zip(MODES, (u, c, l))},
            }
    return out


def scaling_fit(scaling):
    """Exponent of time and memory per sequence vs T (least squares on log-log), the lengths it
    used and the largest T measured, per backend and attention. The fit uses the usable lengths
    >= 1024 where those are enough for a verdict (verdicts.MIN_LENGTHS spanning MIN_SPAN), else
    every usable length: below 1024 fixed costs bend the curve."""
    out = []
    for backend in _backends(scaling):
        for attention in sorted({r["attention"] for r in scaling}):
            rows = sorted((r for r in scaling if r["backend"] == backend and r["attention"] == attention and usable(r)),
                          key=lambda r: r["T"])
            if not rows:
                continue
            use = [r for r in rows if r["T"] >= 1024]
            enough = len(use) >= verdicts.MIN_LENGTHS and use[-1]["T"] / use[0]["T"] >= verdicts.MIN_SPAN
            use = use if enough else rows
            fit = {}
            for key in ("seconds_per_sequence", "memory_per_sequence_bytes"):
                pts = [(r["T"], r[key]) for r in use if r[key] and r[key] > 0]
                fit[key] = float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0]) if len(pts) >= 2 else None
            out.append({"backend": backend, "attention": attention, "largest_T": rows[-1]["T"],
                        "lengths": [r["T"] for r in use if r["seconds_per_sequence"] and r["seconds_per_sequence"] > 0],
                        "time_exponent": fit["seconds_per_sequence"], "memory_exponent": fit["memory_per_sequence_bytes"]})
    return out


def languages(throughput, latency, scaling):
    """One row per measurement, one column per backend, each with its ratio to PyTorch."""
    rows = []

    def add(what, values, unit, higher_is_better):
        if not values:
            return
        ref = values.get("torch")
        rows.append({"what": what, "unit": unit, "higher_is_better": higher_is_better, "values": values,
                     "relative_to_torch": {b: (v / ref if ref else None) for b, v in values.items()}})

    for model in ("mnist", "cifar"):
        for mode in MODES:
            vals = {r["backend"]: r["seconds_per_image"] for r in latency
                    if usable(r) and r["model"] == model and r["mode"] == mode}
            add(f"latency {model} {mode}, batch 1", vals, "s/image", False)
            vals = {b: best(throughput, b, model, mode)["images_per_second"] for b in _backends(throughput)
                    if best(throughput, b, model, mode)}
            add(f"throughput {model} {mode}, best batch", vals, "images/s", True)
    for attention in sorted({r["attention"] for r in scaling}):
        Ts = sorted({r["T"] for r in scaling if r["attention"] == attention and usable(r)})
        if Ts:
            T = Ts[-1]
            vals = {r["backend"]: r["seconds_per_sequence"] for r in scaling
                    if r["attention"] == attention and r["T"] == T and usable(r)}
            add(f"{attention} attention fwd+bwd, T={T}", vals, "s/sequence", False)
    return rows


def _row(what, paper, ours, verdict, unit="", paper_text=None, ours_text=None):
    return {"what": what, "paper": paper, "ours": ours, "ratio": (ours / paper if ours is not None and paper else None),
            "verdict": verdict, "paper_text": paper_text or fmt(paper, unit), "ours_text": ours_text or fmt(ours, unit)}


def _not_run(claim, reason):
    return {**claim, "rows": [], "status": "not run", "note": reason}


def claim_c1(claims, s):
    c = claims["C1"]
    claim = {"id": "C1", "title": c["title"], "source": c["source"]}
    if "torch" not in _backends(s["throughput"]):
        return _not_run(claim, "no usable throughput measurement (failed, or flagged by the hygiene checks)")
    rows = []
    for model, paper in c["images_per_second"].items():
        u, cc, l = (best(s["throughput"], "torch", model, m) for m in MODES)
        for other, name in ((u, "softmax-uncached"), (cc, "softmax-cached")):
            p = paper["linear-recurrent"] / paper[name]
            ours = l["images_per_second"] / other["images_per_second"] if (l and other) else None
            flagged = flags(s["throughput"], "torch", model, (name, "linear-recurrent")) if ours is None else []
            verdict = verdicts.inconclusive("; ".join(flagged)) if flagged else verdicts.speedup(ours, p)
            rows.append(_row(f"{model}: linear-recurrent / {name} images/s (torch, best batch each)", p, ours, verdict, "x"))
        if l:
            rows.append(_row(f"{model}: linear-recurrent images/s (torch, batch {l['batch']}; paper: GPU)",
                             paper["linear-recurrent"], l["images_per_second"], "context", " img/s"))
    return {**claim, "rows": rows, "status": "measured"}


def claim_c2(claims, s):
    c = claims["C2"]
    claim = {"id": "C2", "title": c["title"], "source": c["source"]}
    torch_b1 = [r for r in s["latency"] if r["backend"] == "torch"] + [
        r for r in s["throughput"]  # uncached latency comes from the batch-1 throughput run
        if r["backend"] == "torch" and r["batch"] == 1 and r["mode"] == "softmax-uncached"]
    lat = {(r["model"], r["mode"]): r["seconds_per_image"] for r in torch_b1 if usable(r)}
    if not lat:
        return _not_run(claim, "no usable latency measurement (failed, or flagged by the hygiene checks)")
    rows = []
    for model, paper in c["seconds_per_image_cpu"].items():
        lin = lat.get((model, "linear-recurrent"))
        for name in ("softmax-uncached", "softmax-cached"):
            p = paper[name] / paper["linear-recurrent"]
            other = lat.get((model, name))
            ours = other / lin if (other and lin) else None
            flagged = flags(torch_b1, "torch", model, (name, "linear-recurrent")) if ours is None else []
            verdict = verdicts.inconclusive("; ".join(flagged)) if flagged else verdicts.speedup(ours, p)
            rows.append(_row(f"{model}: {name} / linear-recurrent seconds per image, batch 1, CPU", p, ours, verdict, "x"))
        rows.append(_row(f"{model}: linear-recurrent seconds per image, batch 1, CPU", paper["linear-recurrent"], lin,
                         "context", " s"))
    return {**claim, "rows": rows, "status": "measured"}


def claim_c3(claims, s):
    c = claims["C3"]
    claim = {"id": "C3", "title": c["title"], "source": c["source"]}
    runs = s["quality"]["runs"]
    if not all(runs.get(a, {}).get("status") == "ok" for a in ("linear", "softmax")):
        failed = {}
        for a in runs:
            if runs[a].get("status") != "ok":
                failed.setdefault(str(runs[a].get("reason")), []).append(a)
        reasons = "; ".join(f"{' and '.join(names)}: {why}" for why, names in failed.items())
        return _not_run(claim, reasons or "training not run")
    paper = c["bits_per_dim"]["mnist"]
    gap_paper = paper["linear"] - paper["softmax"]
    lin, soft = runs["linear"]["test_bits_per_dim"], runs["softmax"]["test_bits_per_dim"]
    gap = lin - soft
    d = s["quality"]["dataset"]
    verdict, evidence = verdicts.quality(runs, d, paper)
    steps = runs["linear"]["steps"]
    return {**claim, "status": "measured", "evidence": evidence, "rows": [
        _row(f"bits/dim linear - softmax, same {steps} steps ({d}; paper: MNIST, 250 epochs)",
             gap_paper, gap, verdict, paper_text=f"{gap_paper:+.3f}", ours_text=f"{gap:+.3f}"),
        _row(f"linear test bits/dim ({d})", paper["linear"], lin, "context"),
        _row(f"softmax test bits/dim ({d})", paper["softmax"], soft, "context"),
        _row("training seconds per step, linear / softmax", None,
             runs["linear"]["seconds_per_step"] / runs["softmax"]["seconds_per_step"], "context", "x"),
    ]}


def claim_c4(claims, s):
    c = claims["C4"]
    claim = {"id": "C4", "title": c["title"], "source": c["source"]}
    fits = {(f["backend"], f["attention"]): f for f in s["scaling_fit"]}
    if not fits:
        return _not_run(claim, "no usable scaling measurement")
    budget = s.get("scaling_budget") or {}
    rows = []
    for attention in ("softmax", "softmax-fused", "softmax-chunked", "linear"):
        f = fits.get(("torch", attention))
        paper_exp = c["exponent"].get(attention)
        ours = f["time_exponent"] if f else None
        if paper_exp is not None:
            verdict = verdicts.exponent(ours, paper_exp, f["lengths"] if f else [])
            rows.append(_row(f"{attention}: exponent of time per sequence in T (torch, T = "
                             f"{', '.join(map(str, f['lengths'])) if f else '-'})", paper_exp, ours, verdict,
                             paper_text=f"{paper_exp:.1f}", ours_text="n/a" if ours is None else f"{ours:.2f}"))
        if f:
            where = f"budget {budget['why']}" if budget.get("why") else "paper: 11 GB GPU"
            rows.append(_row(f"{attention}: largest T measured (torch; {where})", c["largest_length"].get(attention),
                             f["largest_T"], "context",
                             paper_text=fmt(c["largest_length"].get(attention)) if attention in c["largest_length"] else "-"))
    return {**claim, "rows": rows, "status": "measured"}


def claim_c5(claims, s):
    c = claims["C5"]
    claim = {"id": "C5", "title": c["title"], "source": c["source"]}
    measured = [b for b in ("torch", "jax", "julia") if s["backends"].get(b, {}).get("status") == "ok"]
    missing = {b: s["backends"][b].get("reason") for b in s["backends"] if b not in measured}
    rows = []
    for r in s["languages"]:
        for b, rel in r["relative_to_torch"].items():
            if b != "torch" and rel is not None:
                speed = rel if r["higher_is_better"] else 1 / rel
                rows.append(_row(f"{r['what']}: {b} speed relative to torch", None, speed, "measured", "x", paper_text="-"))
    return {**claim, "rows": rows, "status": "measured" if len(measured) > 1 else "not run",
            "backends_measured": measured, "backends_missing": missing,
            **({"note": ("only one backend ran" if measured else "no backend ran") + ": "
                + "; ".join(f"{b}: {why}" for b, why in missing.items())} if len(measured) <= 1 else {})}
