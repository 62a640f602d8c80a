"""The paper's numbers the study checks (configs/claims.toml), and the headline ratios computed
from them once for the report's prose."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .formatting import fmt
from .presets import MODELS

CLAIMS_FILE = Path(__file__).resolve().parent / "configs" / "claims.toml"


def load_paper() -> dict:
    """configs/claims.toml: per claim its title, source and the paper's numbers."""
    with open(CLAIMS_FILE, "rb") as f:
        return tomllib.load(f)


def paper_numbers(paper) -> dict:
    """The paper's headline ratios (Tables 1, 2, 4, 5) as values and display texts."""
    ips, cpu, gpu = paper["C1"]["images_per_second"], paper["C2"]["seconds_per_image_cpu"], paper["C2"]["seconds_per_image_gpu"]
    r = {}
    for m in MODELS:
        r[f"{m}_total"] = ips[m]["linear-recurrent"] / ips[m]["softmax-uncached"]
        r[f"{m}_cache"] = ips[m]["softmax-cached"] / ips[m]["softmax-uncached"]
        r[f"{m}_linear_over_cached"] = ips[m]["linear-recurrent"] / ips[m]["softmax-cached"]
        r[f"{m}_latency_cached_gpu"] = gpu[m]["softmax-cached"] / gpu[m]["linear-recurrent"]
        r[f"{m}_latency_cached_cpu"] = cpu[m]["softmax-cached"] / cpu[m]["linear-recurrent"]
        r[f"{m}_latency_uncached_cpu"] = cpu[m]["softmax-uncached"] / cpu[m]["linear-recurrent"]
    bpd = paper["C3"]["bits_per_dim"]
    r["mnist_bpd_gap"] = bpd["mnist"]["linear"] - bpd["mnist"]["softmax"]
    text = {k: fmt(v, "×") for k, v in r.items()}
    text["mnist_bpd_gap"] = f"{r['mnist_bpd_gap']:+.3f}"
    text["cifar_uncached_cpu_seconds"] = fmt(cpu["cifar"]["softmax-uncached"], " s")
    text["cifar_linear_ips"] = f"{ips['cifar']['linear-recurrent']:g} images/s"  # as printed in Table 2
    text["cifar_softmax_ips"] = f"{ips['cifar']['softmax-uncached']:g} images/s"
    return {"values": r, "text": text}


def claim_header(paper, cid) -> dict:
    return {"id": cid, "title": paper[cid]["title"], "source": paper[cid]["source"]}


def row(what, paper, ours, verdict, unit="", paper_text=None, ours_text=None) -> dict:
    """One comparison of a claim: the paper's number, ours, their ratio and the verdict."""
    return {"what": what, "paper": paper, "ours": ours, "ratio": (ours / paper if ours is not None and paper else None),
            "verdict": verdict, "paper_text": paper_text or fmt(paper, unit), "ours_text": ours_text or fmt(ours, unit)}


def not_run(claim, reason) -> dict:
    return {**claim, "rows": [], "status": "not run", "note": reason}
