"""The trained models that ship in trained/: complete, small, with provenance, loadable by every
backend's format reader; `replication eval` on the whole test set reproduces the recorded bits/dim
(where the data set is here); `trained.ship` makes one from a finished training run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from linattn.config import ModelConfig
from linattn.weights import load_checkpoint
from replication import data, trained
from replication.cli import main
from replication.claims.quality import ATTENTIONS
from replication.train import train

SHIPPED = trained.shipped()


def test_a_trained_model_of_each_attention_ships():
    assert set(SHIPPED) == set(ATTENTIONS), f"trained/ should hold one model per attention, found {sorted(SHIPPED)}"
    assert len({m["dataset"] for m in SHIPPED.values()}) == 1


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_a_shipped_model_is_small_and_says_how_it_was_made(attention):
    m = SHIPPED[attention]
    assert (m["path"] / "weights.npz").stat().st_size <= trained.MAX_BYTES
    config, params = load_checkpoint(m["path"])
    p = m["provenance"]
    assert config.attention == attention and ModelConfig.from_dict(p["config"]) == config
    for key in ("profile", "command", "dataset_checksum", "steps", "test_bits_per_dim", "n_test_images", "curve",
                "trained_at_commit"):
        assert p.get(key) not in (None, ""), f"{m['path']}/provenance.json lacks {key}"
    assert p["trained_at_commit"] and p["provenance"]["git"]["commit"], "the commits it was trained at and shipped from"
    assert p["curve"][-1]["step"] == p["steps"]
    assert all(np.isfinite(v).all() for v in params.values())


@pytest.mark.slow
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_eval_on_the_test_set_reproduces_the_recorded_bits_per_dim(attention, capsys):
    m = SHIPPED[attention]
    if not data.available(m["dataset"]):
        pytest.skip(f"{m['dataset']} is not here (replication data fetch --dataset {m['dataset']}, or Debian's "
                    "dataset-fashion-mnist)")
    assert data.dataset_checksum(m["dataset"]) == m["provenance"]["dataset_checksum"], "the same data as in training"
    assert main(["eval", "--checkpoint", str(m["path"]), "--dataset", m["dataset"], "--batch-size", "64"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_images"] == m["provenance"]["n_test_images"]
    assert out["bits_per_dim"] == pytest.approx(m["provenance"]["test_bits_per_dim"], abs=1e-4)


def test_ship_copies_a_finished_run_with_its_provenance(tmp_path, monkeypatch):
    run = tmp_path / "linear-seed3"
    task = {"dataset": "synthetic", "batch_size": 2, "steps": 2, "learning_rate": 1e-3, "weight_decay": 0.0,
            "eval_every": 1, "eval_images": 2, "test_images": 2, "attention": "linear", "seed": 3, "checkpoint_dir": str(run),
            "threads": 1, "model": {"n_layers": 1, "n_heads": 1, "d_model": 8, "n_mixtures": 2,
                                    "image_shape": [4, 4, 1], "dropout": 0.0}}
    result = train(task)
    monkeypatch.setattr("replication.data.dataset_checksum", lambda name: "sha256:synthetic")
    out = trained.ship(run, "replication train ...", root=tmp_path / "trained", profile="test")
    assert out == tmp_path / "trained" / "synthetic" / "linear"
    found = trained.shipped(tmp_path / "trained")
    assert set(found) == {"linear"}
    p = found["linear"]["provenance"]
    assert p["test_bits_per_dim"] == result["test_bits_per_dim"] and p["steps"] == 2 and p["profile"] == "test"
    assert result["seed"] == 3 and p["trained_at_commit"]
    record = json.loads(trained.ship_runs([run], "replication train ...", root=tmp_path / "trained",
                                          timing={"seconds_per_step": {"linear": 0.5}}).read_text())
    assert [r["seed"] for r in record["runs"]["linear"]] == [3]
    assert record["runs"]["linear"][0]["test_bits_per_dim"] == result["test_bits_per_dim"]
    assert trained.shipped_runs(tmp_path / "trained")["timing"]["seconds_per_step"] == {"linear": 0.5}
    monkeypatch.setattr(trained, "MAX_BYTES", 10)
    with pytest.raises(ValueError, match="MiB"):
        trained.ship(run, "replication train ...", root=tmp_path / "again")
