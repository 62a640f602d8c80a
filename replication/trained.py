"""The trained models that ship with the repository (trained/<dataset>/<attention>/): a checkpoint
in the shared weights format (config.json, weights.npz) and provenance.json (the command, commit,
profile, data checksum, steps, learning curve and the test bits/dim it reached), so that the
notebooks and the report's samples show a trained model without training first.

`replication eval --checkpoint trained/<dataset>/<attention> --dataset <dataset>` on the whole test
set reproduces the recorded bits/dim (tests/test_trained.py, where the data set is present).
`ship(run_folder, command)` makes one from a finished `replication train` run; `ship_runs(folders,
command)` records every run of the profile (all seeds, both attentions) in trained/<dataset>/runs.json,
from which the report shows the profile's C3 beside the run's own.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from linattn.weights import atomic_write, load_checkpoint

from . import data
from .provenance import ROOT, provenance

TRAINED = ROOT / "trained"
FILES = ("config.json", "weights.npz", "provenance.json")
MAX_BYTES = 10 * 2**20  # a shipped checkpoint stays small enough for git (weights.npz at most 10 MiB)
RECORDED = ("attention", "dataset", "steps", "wall_seconds", "seconds_per_step", "test_bits_per_dim",
            "n_test_images", "curve", "config", "training")


def folder(dataset: str, attention: str, root: Path = TRAINED) -> Path:
    return Path(root) / dataset / attention


def shipped(root: Path = TRAINED) -> dict:
    """{attention: {"path", "dataset", "provenance"}} of the shipped models (the first data set
    in name order that has one of each attention wins, so the pair compares like with like)."""
    root = Path(root)
    for d in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        found = {}
        for a in sorted(p for p in d.iterdir() if p.is_dir()):
            if all((a / f).is_file() for f in FILES):
                found[a.name] = {"path": a, "dataset": d.name, "provenance": read_provenance(a)}
        if found:
            return found
    return {}


def read_provenance(path) -> dict:
    with open(Path(path) / "provenance.json", encoding="utf-8") as f:
        return json.load(f)


def ship(run: Path, command: str, root: Path = TRAINED, profile: str = "quality", trained_at_commit=None) -> Path:
    """Copy a finished training run (checkpoint and result.json) into trained/<dataset>/<attention>/
    with its provenance (the commit it was trained at, where that is not the one it is shipped
    from); refuses a run without a result (unfinished) or weights over MAX_BYTES."""
    run = Path(run)
    result = json.loads((run / "result.json").read_text())
    config, _ = load_checkpoint(run)  # refuses a malformed checkpoint
    size = (run / "weights.npz").stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{run}/weights.npz is {size / 2**20:.1f} MiB, more than the {MAX_BYTES / 2**20:.0f} MiB a "
                         "shipped checkpoint may take")
    out = folder(result["dataset"], config.attention, root)
    out.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "weights.npz"):
        shutil.copyfile(run / f, out / f)
    record = {**_made(profile, command, result["dataset"], trained_at_commit), **{k: result.get(k) for k in RECORDED},
              "provenance": provenance()}
    atomic_write(out / "provenance.json", lambda f: f.write(json.dumps(record, indent=1).encode()))
    return out


def _made(profile, command, dataset, trained_at_commit) -> dict:
    """How a shipped record was made: profile, command, date shipped, the commit it was trained at
    (default: this one) and the checksum of its data set."""
    return {"profile": profile, "command": command, "shipped": time.strftime("%Y-%m-%d"),
            "trained_at_commit": trained_at_commit or provenance()["git"]["commit"],
            "dataset_checksum": data.dataset_checksum(dataset)}


RUNS = "runs.json"  # trained/<dataset>/runs.json: every training run of the shipped models' profile


def ship_runs(runs, command: str, root: Path = TRAINED, profile: str = "quality", timing=None,
              trained_at_commit=None) -> Path:
    """Record finished training runs (folders with result.json, any seeds, both attentions, one
    data set) in trained/<dataset>/runs.json: their curves, test bits/dim and seconds per step.
    `timing` ({"seconds_per_step": {attention: s}, "how": ...}) gives seconds per step measured
    apart, for runs that shared the machine while they trained."""
    results = [json.loads((Path(r) / "result.json").read_text()) for r in runs]
    datasets = {r["dataset"] for r in results}
    if len(datasets) != 1:
        raise ValueError(f"the runs are of several data sets {sorted(datasets)}; record one data set at a time")
    dataset = datasets.pop()
    by = {}
    for run, r in zip(runs, results):
        seed = r["seed"] if "seed" in r else _seed(run)
        by.setdefault(r["attention"], []).append({"status": "ok", "seed": seed, "dataset": dataset,
                                                  **{k: r.get(k) for k in RECORDED if k not in ("attention", "dataset")}})
    for rs in by.values():
        rs.sort(key=lambda r: r["seed"])
    out = Path(root) / dataset / RUNS
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {**_made(profile, command, dataset, trained_at_commit), "dataset": dataset, "runs": by, "timing": timing,
              "provenance": provenance()}
    atomic_write(out, lambda f: f.write(json.dumps(record, indent=1).encode()))
    return out


def _seed(run) -> int:
    """The seed of a training run whose result.json predates its "seed" field: the folder name
    (<attention>-seed<N>, as `replication train --seed N --out ...-seedN`)."""
    name = Path(run).name
    if "-seed" not in name:
        raise ValueError(f"{run}: name the folder <attention>-seed<N> so that its seed is recorded")
    return int(name.rsplit("-seed", 1)[1])


def shipped_runs(root: Path = TRAINED) -> dict | None:
    """The runs.json of the shipped models' data set, or None."""
    models = shipped(root)
    if not models:
        return None
    path = Path(root) / next(iter(models.values()))["dataset"] / RUNS
    return json.loads(path.read_text()) if path.is_file() else None
