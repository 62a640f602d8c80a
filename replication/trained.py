"""The trained models that ship with the repository (trained/<dataset>/<attention>/): a checkpoint
in the shared weights format (config.json, weights.npz) and provenance.json (the command, commit,
profile, data checksum, steps, learning curve and the test bits/dim it reached), so that the
notebooks and the report's samples show a trained model without training first.

`replication eval --checkpoint trained/<dataset>/<attention> --dataset <dataset>` on the whole test
set reproduces the recorded bits/dim (tests/test_trained.py, where the data set is present).
`ship(run_folder, dataset, attention, command)` makes one from a finished `replication train` run.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from linattn.weights import atomic_write, load_checkpoint

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


def ship(run: Path, command: str, root: Path = TRAINED, profile: str = "quality") -> Path:
    """Copy a finished training run (checkpoint and result.json) into trained/<dataset>/<attention>/
    with its provenance; refuses a run without a result (unfinished) or weights over MAX_BYTES."""
    run = Path(run)
    result = json.loads((run / "result.json").read_text())
    config, _ = load_checkpoint(run)  # refuses a malformed checkpoint
    size = (run / "weights.npz").stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{run}/weights.npz is {size / 2**20:.1f} MiB, more than the {MAX_BYTES / 2**20:.0f} MiB a "
                         "shipped checkpoint may take")
    from .data import dataset_checksum

    out = folder(result["dataset"], config.attention, root)
    out.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "weights.npz"):
        shutil.copyfile(run / f, out / f)
    record = {"profile": profile, "command": command, "shipped": time.strftime("%Y-%m-%d"),
              "dataset_checksum": dataset_checksum(result["dataset"]), **{k: result.get(k) for k in RECORDED},
              "provenance": provenance()}
    atomic_write(out / "provenance.json", lambda f: f.write(json.dumps(record, indent=1).encode()))
    return out
