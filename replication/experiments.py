"""An experiment of the study as data: a small frozen record, planned by a claim module
(replication/claims/), run by a worker, recorded in run.json under its id. The summary groups
experiments by their fields (claim, kind, task), never by parsing the id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .formatting import read_json


@dataclass(frozen=True)
class Experiment:
    id: str  # unique in a run, the name of its files: experiments/<id>.json
    claim: str  # the claim it serves ("C1" .. "C5"), as the report groups compute time
    kind: str  # what it measures: the kind of task the worker runs ("speed", "attention", ...)
    task: dict  # the worker's input; kind "skip" (with status and reason) where it is not run
    estimate: dict  # seconds and memory_bytes expected, written before it runs


@dataclass(frozen=True)
class Context:
    """What a claim module plans from: the profile, the run folder, the backends that work here,
    the machine measured once per run, and what the study found about data and memory."""

    profile: dict
    folder: Path
    backends: tuple
    machine: dict
    threads: int
    device: str = "cpu"
    data: dict = field(default_factory=dict)  # {"dataset": name or None, "reason", "fix"}
    data_dir: str | None = None
    memory_available_bytes: float = 8 * 2**30


@dataclass(frozen=True)
class Outcome:
    """An experiment after the run: its record in run.json and the result its worker wrote."""

    experiment: Experiment
    record: dict
    result: dict

    @property
    def task(self) -> dict:
        return self.experiment.task

    @property
    def ok(self) -> bool:
        return self.result.get("status") == "ok"

    def row(self) -> dict:
        """The fields every summary row starts with."""
        return {"backend": self.task.get("backend"), "status": self.result.get("status"),
                "reason": self.result.get("reason"), "flag": self.record.get("flag"),
                "contention": self.result.get("contention")}


def outcomes(folder, run) -> list[Outcome]:
    """Every experiment recorded in run.json with the result file its worker (or the driver, for a
    skipped one) wrote."""
    out = []
    for eid, rec in run["experiments"].items():
        path = Path(folder) / rec["result_file"] if rec.get("result_file") else None
        result = read_json(path) if path and path.is_file() else {"status": rec.get("status"), "reason": rec.get("reason")}
        task = rec["task"]
        exp = Experiment(eid, rec["claim"], rec.get("kind") or task["kind"], task, rec["estimate"])
        out.append(Outcome(exp, rec, result))
    return out


def select(outcomes, claim=None, kind=None) -> list[Outcome]:
    return [o for o in outcomes if (claim is None or o.experiment.claim == claim)
            and (kind is None or o.experiment.kind == kind)]
