"""C3 training: a linear and a softmax model trained with the same budget on the same bytes.

`train(task)` trains one model with the PyTorch backend, evaluates validation bits/dim every
`eval_every` steps (the learning curve), and writes a checkpoint atomically after each evaluation:
the model in the shared format (config.json, weights.npz) and `train_state.pt` (optimiser, step,
curve, RNG). Run again on the same folder, it resumes where it stopped. The batch sequence depends
on the seed alone (`replication.data.batches`), so a resumed run sees the same batches.
"""

from __future__ import annotations

import io
import itertools
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from linattn.config import ConfigError, ModelConfig
from linattn.weights import atomic_write, init_params, load_checkpoint, save_checkpoint

from . import data
from .datasets.checks import DataError
from .inputs import output_folder, positive_int
from .profiles import load_profile


def load_bytes(dataset: str, split: str, data_dir=None, n=None, image_shape=(28, 28, 1), seed=0):
    """(N, T) uint8 bytes of a dataset split. "synthetic" (smoke tests only) draws smooth random
    images so that the pipeline runs where no real data is present; it is labelled as such."""
    if dataset == "synthetic":
        rng = np.random.default_rng({"train": 0, "valid": 1, "test": 2}[split] + seed)
        h, w, c = image_shape
        count = n or 256
        yy, xx = np.mgrid[0:h, 0:w]
        phase = rng.uniform(0, 2 * np.pi, (count, 1, 1, c))
        img = 127.5 + 127.5 * np.sin(xx[None, :, :, None] / 3.0 + yy[None, :, :, None] / 5.0 + phase)
        return img.astype(np.uint8).reshape(count, -1)
    images = data.load_dataset(dataset, split, data_dir=data_dir)
    return data.to_bytes(images[:n] if n else images)


def pick_dataset(candidates, data_dir=None) -> str:
    """The first dataset of the list that can be loaded without a network ("synthetic" always can)."""
    for name in candidates:
        if name == "synthetic" or data.available(name, data_dir=data_dir):
            return name
    raise DataError(
        f"none of the datasets {list(candidates)} is available offline; run `replication data fetch --dataset mnist`, "
        "pass --data-dir, or install Debian's dataset-fashion-mnist"
    )


def model_config(task) -> ModelConfig:
    """The trained model: the profile's [quality.model] fields with the task's attention."""
    return ModelConfig(attention=task["attention"], head="mixture", **task["model"])


def resumable(out, config: ModelConfig, overwrite=False) -> bool:
    """Whether the folder `out` holds an interrupted run of `config` to resume. Refuses (ConfigError)
    a folder that holds a run of another config, or a checkpoint without training state (a copy of a
    fixture, a finished export), unless `overwrite`: then training starts afresh and replaces it."""
    out = Path(out)
    if overwrite or not out.is_dir():
        return False
    has_state = (out / "train_state.pt").is_file()
    if not has_state and not any((out / n).exists() for n in ("config.json", "weights.npz")):
        return False
    fix = "train into a new folder, or pass --overwrite to replace it"
    if not has_state:
        raise ConfigError(f"{out} holds a checkpoint without training state (train_state.pt), which training would "
                          f"overwrite; {fix}")
    if not (out / "config.json").is_file():
        raise ConfigError(f"{out} holds train_state.pt but no config.json; {fix}")
    saved = ModelConfig.from_json(out / "config.json")
    if saved != config:
        new = config.to_dict()
        diff = ", ".join(f"{k} {v!r} (asked {new[k]!r})" for k, v in saved.to_dict().items() if v != new[k])
        raise ConfigError(f"{out} holds a training run of another config: {diff}; {fix}")
    return True


def train(task: dict) -> dict:
    """Train one model as `task` says (see replication/configs/profiles/*.toml [quality]); returns
    the learning curve, test bits/dim, steps and wall-clock seconds. A run of the same config in
    `task["checkpoint_dir"]` is resumed; any other checkpoint there is refused (see `resumable`)
    unless `task["overwrite"]`."""
    import torch

    from linattn import torch_backend as tb
    from linattn.torch_backend.train import make_optimizer, train_step

    torch.set_num_threads(task.get("threads") or torch.get_num_threads())
    out = Path(task["checkpoint_dir"])
    config = model_config(task)
    resume = resumable(out, config, task.get("overwrite", False))  # before any data is read
    out.mkdir(parents=True, exist_ok=True)
    seed = task.get("seed", 0)
    torch.manual_seed(seed)
    train_data = load_bytes(task["dataset"], "train", task.get("data_dir"), image_shape=config.image_shape, seed=seed)
    valid = load_bytes(task["dataset"], "valid", task.get("data_dir"), n=task["eval_images"], image_shape=config.image_shape)
    test = load_bytes(task["dataset"], "test", task.get("data_dir"), n=task["test_images"], image_shape=config.image_shape)

    state_file = out / "train_state.pt"
    if resume:
        _, params = load_checkpoint(out)
        model = tb.prepare(config, params)
        opt = make_optimizer(model, lr=task["learning_rate"], weight_decay=task["weight_decay"])
        saved = torch.load(state_file, weights_only=False)
        model.load_state_dict(saved["model"])  # train_state.pt is the one source of truth for resuming
        opt.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        step, curve, wall = saved["step"], saved["curve"], saved["wall_seconds"]
    else:
        model = tb.prepare(config, init_params(config, seed))
        opt = make_optimizer(model, lr=task["learning_rate"], weight_decay=task["weight_decay"])
        step, curve, wall = 0, [], 0.0

    stream = itertools.islice(data.batches(train_data, task["batch_size"], seed), step, None)
    bar = tqdm(total=task["steps"], initial=step, desc=f"train {config.attention}", leave=False)
    recent = []
    while step < task["steps"]:
        batch = torch.as_tensor(next(stream).astype(np.int64))
        t = time.perf_counter()
        recent.append(train_step(model, opt, batch))
        wall += time.perf_counter() - t
        step += 1
        bar.update(1)
        if step % task["eval_every"] == 0 or step == task["steps"]:
            valid_bpd = tb.bits_per_dim(model, valid, batch_size=64)
            curve.append({"step": step, "wall_seconds": wall, "train_bits_per_dim": float(np.mean(recent) / np.log(2)),
                          "valid_bits_per_dim": valid_bpd})
            recent = []
            _save(out, config, model, opt, step, curve, wall)
    bar.close()
    test_bpd = tb.bits_per_dim(model, test, batch_size=64)
    result = {"attention": config.attention, "dataset": task["dataset"], "steps": step, "wall_seconds": wall,
              "seconds_per_step": wall / max(step, 1), "curve": curve, "test_bits_per_dim": test_bpd,
              "n_test_images": len(test), "config": config.to_dict(), "checkpoint": str(out)}
    atomic_write(out / "result.json", lambda f: f.write(json.dumps(result, indent=2).encode()))
    return result


def _save(out, config, model, opt, step, curve, wall):
    import torch

    from linattn import torch_backend as tb

    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "curve": curve, "wall_seconds": wall,
                "rng": torch.get_rng_state()}, buf)
    atomic_write(out / "train_state.pt", lambda f: f.write(buf.getvalue()))
    save_checkpoint(out, config, tb.params_of(model))


def add_parser(sub):
    s = sub.add_parser("train", help="train one model of the C3 comparison (resumes an interrupted run)")
    s.add_argument("--attention", choices=["linear", "softmax"], required=True)
    s.add_argument("--profile", default="cpu", help="smoke, cpu or paper: takes its [quality] settings")
    s.add_argument("--out", required=True, help="checkpoint folder; an interrupted run of the same config in it is "
                   "resumed, any other checkpoint refused")
    s.add_argument("--overwrite", action="store_true", help="replace a checkpoint in --out instead of refusing it")
    s.add_argument("--data-dir", default=None, help="folder with the dataset files (offline use)")
    s.add_argument("--steps", type=positive_int, default=None, help="override the profile's step budget (>= 1)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_train)


def cmd_train(args):
    output_folder(args.out, "--out")
    q = dict(load_profile(args.profile)["quality"])
    q.pop("sources", None)
    q["model"] = {k: v for k, v in q["model"].items() if k != "sources"}
    if args.steps is not None:
        q["steps"] = args.steps
    candidates = q.pop("dataset")
    task = {**q, "attention": args.attention, "data_dir": args.data_dir, "checkpoint_dir": args.out,
            "seed": args.seed, "overwrite": args.overwrite}
    resumable(args.out, model_config(task), args.overwrite)
    task["dataset"] = pick_dataset(candidates, args.data_dir)
    r = train(task)
    print(json.dumps({k: r[k] for k in ("attention", "dataset", "steps", "wall_seconds", "test_bits_per_dim", "checkpoint")}))
