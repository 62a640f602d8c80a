"""summary.json: what the report and notebooks read. Built from a run folder's run.json and
experiments/*.json: the run's own sections here, each claim's sections and verdicts by its module
(replication/claims/), every number next to the paper's number, the ratio and a verdict computed
by the rules of replication/verdicts.py (printed in the report). Timings flagged by the
measurement-hygiene checks (contended, outliers) are listed with their flag and never enter a verdict.
"""

from __future__ import annotations

from pathlib import Path

from . import verdicts
from .claims import CLAIMS
from .experiments import outcomes
from .formatting import read_json
from .paper import load_paper


def load_summary(folder) -> dict:
    """A run folder's summary.json, or built from its experiments if the run did not finish."""
    folder = Path(folder)
    return read_json(folder / "summary.json") if (folder / "summary.json").is_file() else build_summary(folder)


def build_summary(folder) -> dict:
    folder = Path(folder)
    run = read_json(folder / "run.json")
    done = outcomes(folder, run)
    compute = [{"id": o.experiment.id, "claim": o.experiment.claim, "status": o.result.get("status"),
                "reason": o.result.get("reason"), "flag": o.record.get("flag"),
                "attempts": len(o.record.get("attempts") or []) or None,
                "estimate_seconds": o.experiment.estimate["seconds"], "estimate_memory_bytes": o.experiment.estimate["memory_bytes"],
                "actual_seconds": (o.record.get("actual") or {}).get("seconds"),
                "actual_memory_bytes": (o.record.get("actual") or {}).get("memory_bytes")} for o in done]
    summary = {
        "run": {k: run.get(k) for k in ("profile", "description", "started", "finished", "device", "threads",
                                         "provenance", "machine", "memory_available_bytes")},
        "folder": folder.name,
        "backends": run.get("backends", {}),
        "hyperparameters": run.get("hyperparameters", []),
        "compute": compute,
        "data": run.get("data"), "scaling_budget": run.get("scaling_budget"),
        "flagged": [{"id": c["id"], "flag": c["flag"]} for c in compute if c.get("flag")],
        "rules": verdicts.RULES,
    }
    for claim in CLAIMS:
        claim.summarise(summary, done, folder)
    paper = load_paper()
    summary["claims"] = [c for claim in CLAIMS for c in claim.judge(paper, summary)]
    study = (run.get("settings") or {}).get("study", {})
    if study.get("judged") is False:  # a pipeline test (verdicts.RULES)
        summary["claims"] = verdicts.unjudged(summary["claims"], f"the {run.get('profile')} profile tests the pipeline "
                                              "and judges nothing")
    return summary
