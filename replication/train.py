"""C3 training: a linear and a softmax model trained with the same budget on the same bytes.

`train(task)` trains one model, evaluates validation bits/dim every `eval_every` steps (the
learning curve), and writes a checkpoint atomically after each evaluation: the model in the shared
format (config.json, weights.npz) and the training state (optimiser, step, curve, RNG):
`train_state.pt` (PyTorch) or `train_state.npz` (JAX). Run again on the same folder, it resumes
where it stopped. The batch sequence depends on the seed alone (`replication.data.batches`), so a
resumed run sees the same batches. One process at a time trains into a folder (`locks`).

Paper-scale training runs on existing engines, with the global batch of the single-process run:
- PyTorch under torchrun (`torchrun --nproc_per_node N -m replication train ...`): one process per
  GPU (or CPU share), torch.distributed (NCCL on GPUs, gloo on the CPU), DistributedDataParallel.
  Rank r trains on rows r::N of each global batch; rank 0 alone evaluates, writes checkpoints and
  holds the folder's lock. A checkpoint resumes under any number of processes.
- JAX (`--backend jax`): one process, a jax.sharding Mesh over the local devices of the platform,
  the batch split across them and the parameters replicated (`jax_backend.train.data_parallel`).
On GPUs, PyTorch runs the forward pass under bf16 autocast (float32 master weights and optimiser
state), JAX in float32; the result records which (`training.precision`).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from linattn.backends import BackendUnavailable, get_backend
from linattn.config import FEATURE_MAPS, ConfigError, ModelConfig
from linattn.weights import atomic_write, init_params, load_checkpoint, save_checkpoint

from . import data, locks
from .datasets.checks import DataError
from .inputs import UsageError, check_device, device_name, device_name_or_refuse, output_folder, positive_int
from .profiles import ProfileError, load_profile, settings

STATE_FILES = {"torch": "train_state.pt", "jax": "train_state.npz"}  # training state, by backend


def world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) as torchrun sets them (RANK, LOCAL_RANK, WORLD_SIZE);
    (0, 0, 1) outside torchrun, where training is the single-process loop."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return 0, 0, 1
    return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"])


def check_world(batch_size: int, n: int, what: str) -> None:
    """Refuse a global batch that `n` processes or devices cannot split evenly: each must take the
    same number of rows, so that the mean of their losses is the global batch's loss."""
    if batch_size % n:
        fits = [k for k in range(1, batch_size + 1) if batch_size % k == 0]
        raise UsageError(f"{what} {n} does not divide the global batch size {batch_size}: every one must take "
                         f"the same number of images; use {', '.join(map(str, fits))} of them, or a profile "
                         f"whose batch_size is a multiple of {n}")


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


def resumable(out, config: ModelConfig, overwrite=False, backend="torch") -> bool:
    """Whether the folder `out` holds an interrupted run of `config` by `backend` to resume.
    Refuses (ConfigError) a folder that holds a run of another config, or of the other backend, or
    a checkpoint without training state (a copy of a fixture, a finished export), unless
    `overwrite`: then training starts afresh and replaces it."""
    out = Path(out)
    if overwrite or not out.is_dir():
        return False
    state_name = STATE_FILES[backend]
    has_state = (out / state_name).is_file()
    others = [b for b, n in STATE_FILES.items() if b != backend and (out / n).is_file()]
    if not has_state and not others and not any((out / n).exists() for n in ("config.json", "weights.npz")):
        return False
    fix = "train into a new folder, or pass --overwrite to replace it"
    if not has_state and others:
        raise ConfigError(f"{out} holds a {others[0]} training run ({STATE_FILES[others[0]]}), not a {backend} one; "
                          f"resume it with --backend {others[0]}, or {fix}")
    if not has_state:
        raise ConfigError(f"{out} holds a checkpoint without training state ({state_name}), which training would "
                          f"overwrite; {fix}")
    if not (out / "config.json").is_file():
        raise ConfigError(f"{out} holds {state_name} but no config.json; {fix}")
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
    unless `task["overwrite"]`. `task["backend"]` ("torch", the default, or "jax") picks the engine,
    `task["device"]` (default "cpu") the device; under torchrun the torch loop is data parallel."""
    if task.get("backend", "torch") == "jax":
        return _train_jax(task)
    return _train_torch(task)


def _datasets(task, config, seed):
    train_data = load_bytes(task["dataset"], "train", task.get("data_dir"), image_shape=config.image_shape, seed=seed)
    valid = load_bytes(task["dataset"], "valid", task.get("data_dir"), n=task["eval_images"], image_shape=config.image_shape)
    test = load_bytes(task["dataset"], "test", task.get("data_dir"), n=task["test_images"], image_shape=config.image_shape)
    return train_data, valid, test


def _take_lock(out: Path, rank: int, world_size: int):
    """Rank 0 creates the folder and locks it for the whole training; under torchrun the other
    ranks learn whether it could, and all refuse together (FolderBusy) if not."""
    lock, busy = None, None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        try:
            lock = locks.acquire(out, "replication train")
        except locks.FolderBusy as e:
            busy = str(e)
    if world_size > 1:
        import torch.distributed as dist

        message = [busy]
        dist.broadcast_object_list(message, src=0)
        busy = message[0]
    if busy:
        raise locks.FolderBusy(busy)
    return lock


def _result(task, config, out, step, wall, curve, test_bpd, n_test, training) -> dict:
    result = {"attention": config.attention, "dataset": task["dataset"], "seed": task.get("seed", 0), "steps": step,
              "wall_seconds": wall,
              "seconds_per_step": wall / max(step, 1), "curve": curve, "test_bits_per_dim": test_bpd,
              "n_test_images": n_test, "config": config.to_dict(), "checkpoint": str(out), "training": training}
    atomic_write(out / "result.json", lambda f: f.write(json.dumps(result, indent=2).encode()))
    return result


def _train_torch(task: dict) -> dict:
    import torch
    import torch.distributed as dist

    rank, local_rank, world_size = world()
    device = task.get("device") or "cpu"
    if world_size > 1 and device.startswith("cuda"):
        device = f"cuda:{local_rank}"  # one GPU per process
    check_world(task["batch_size"], world_size, "WORLD_SIZE (torchrun's processes)")
    torch.set_num_threads(task.get("threads") or torch.get_num_threads())
    out = Path(task["checkpoint_dir"])
    config = model_config(task)
    resume = resumable(out, config, task.get("overwrite", False))  # before any data is read
    cuda = device.startswith("cuda")
    if world_size > 1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if cuda else "gloo")  # env:// from torchrun
    try:
        lock = _take_lock(out, rank, world_size)
        try:
            return _torch_loop(task, out, config, resume, device, rank, world_size)
        finally:
            if lock is not None:
                locks.release(lock)
    finally:
        if world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _rng_state(device) -> dict:
    import torch

    cuda = torch.device(device).type == "cuda"
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if cuda else None}


def _torch_loop(task, out, config, resume, device, rank, world_size) -> dict:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from linattn import torch_backend as tb
    from linattn.torch_backend.train import make_optimizer, train_step

    seed = task.get("seed", 0)
    torch.manual_seed(seed + rank)  # dropout masks differ between ranks, as between a batch's rows
    train_data, valid, test = _datasets(task, config, seed)
    dev = torch.device(device)
    amp = torch.bfloat16 if dev.type == "cuda" else None  # float32 master weights and optimiser state
    segment = {"start_step": 0, "world_size": world_size, "device": tb.info(device)["device"],
               "precision": "bf16 autocast (float32 weights)" if amp else "float32"}

    state_file = out / STATE_FILES["torch"]
    if resume:
        _, params = load_checkpoint(out)
        model = tb.prepare(config, params, device=device)
        saved = torch.load(state_file, weights_only=False, map_location="cpu")
        model.load_state_dict(saved["model"])  # train_state.pt is the one source of truth for resuming
        opt = make_optimizer(model, lr=task["learning_rate"], weight_decay=task["weight_decay"])
        opt.load_state_dict(saved["optimizer"])
        step, curve, wall = saved["step"], saved["curve"], saved["wall_seconds"]
        history = saved.get("history", [])
        if saved.get("world_size", 1) == world_size:
            rng = saved.get("rng_ranks") or [{"cpu": saved["rng"], "cuda": None}]
            torch.set_rng_state(rng[rank]["cpu"])
            if rng[rank]["cuda"] is not None and dev.type == "cuda":
                torch.cuda.set_rng_state(rng[rank]["cuda"], dev)
            segment["rng"] = "restored"
        else:  # dropout streams cannot carry over to another number of processes
            torch.manual_seed(seed + rank + 1_000_003 * step)
            segment["rng"] = f"reseeded (saved under {saved.get('world_size', 1)} process(es))"
        segment["start_step"] = step
    else:
        model = tb.prepare(config, init_params(config, seed), device=device)
        opt = make_optimizer(model, lr=task["learning_rate"], weight_decay=task["weight_decay"])
        step, curve, wall, history = 0, [], 0.0, []
    history = history + [segment]
    net = model
    if world_size > 1:
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    stream = itertools.islice(data.batches(train_data, task["batch_size"], seed), step, None)
    rows = slice(rank, None, world_size)  # this rank's share of each global batch
    bar = tqdm(total=task["steps"], initial=step, desc=f"train {config.attention}", leave=False, disable=rank != 0)
    recent = []
    while step < task["steps"]:
        batch = torch.as_tensor(next(stream)[rows].astype(np.int64)).to(dev)
        t = time.perf_counter()
        recent.append(train_step(net, opt, batch, autocast_dtype=amp))  # .item(): waits for the GPU
        wall += time.perf_counter() - t
        step += 1
        bar.update(1)
        if step % task["eval_every"] == 0 or step == task["steps"]:
            train_loss = float(np.mean(recent))
            rng = [_rng_state(device)]
            if world_size > 1:  # the global batch's loss: the mean of the ranks' (equal-sized) shares
                total = torch.tensor([sum(recent), len(recent)], dtype=torch.float64, device=dev)
                dist.all_reduce(total)
                train_loss = float(total[0] / total[1])
                rng = [None] * world_size
                dist.all_gather_object(rng, _rng_state(device))
            recent = []
            if rank == 0:
                valid_bpd = tb.bits_per_dim(model, valid, batch_size=64)
                curve.append({"step": step, "wall_seconds": wall, "train_bits_per_dim": train_loss / np.log(2),
                              "valid_bits_per_dim": valid_bpd})
                _save(out, config, model, opt, step, curve, wall, rng, world_size, history)
    bar.close()
    training = {"backend": "torch", "world_size": world_size, "device": segment["device"],
                "precision": segment["precision"], "distributed": dist.get_backend() if world_size > 1 else None,
                "history": history, "backend_info": tb.info(device)}
    if rank != 0:
        dist.barrier()  # rank 0 tests and writes the result
        return {"rank": rank, "steps": step, "training": training}
    test_bpd = tb.bits_per_dim(model, test, batch_size=64)
    result = _result(task, config, out, step, wall, curve, test_bpd, len(test), training)
    if world_size > 1:
        dist.barrier()
    return result


def _save(out, config, model, opt, step, curve, wall, rng, world_size, history):
    import torch

    from linattn import torch_backend as tb

    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "curve": curve, "wall_seconds": wall,
                "rng": rng[0]["cpu"], "rng_ranks": rng, "world_size": world_size, "history": history}, buf)
    atomic_write(out / STATE_FILES["torch"], lambda f: f.write(buf.getvalue()))
    save_checkpoint(out, config, tb.params_of(model))


def jax_devices(device: str, count=None):
    """The local JAX devices a run uses: all of the platform's ("cpu" or "cuda"), or the one GPU
    `cuda:N` names; the first `count` of them if given."""
    import jax

    from linattn import jax_backend as jb

    platform = jb.PLATFORMS[device.split(":")[0]]
    devices = jax.local_devices(backend=platform)
    if ":" in device:
        devices = [devices[int(device.split(":")[1])]]
    return devices[:count] if count else devices


def _train_jax(task: dict) -> dict:
    """The JAX loop: `jax_backend.train.train_step` data parallel over the local devices."""
    import jax
    import jax.numpy as jnp

    from linattn import jax_backend as jb
    from linattn.jax_backend import model as jm
    from linattn.jax_backend import train as jt

    device = task.get("device") or "cpu"
    devices = jax_devices(device, task.get("devices"))
    check_world(task["batch_size"], len(devices), "the number of JAX devices")
    out = Path(task["checkpoint_dir"])
    config = model_config(task)
    resume = resumable(out, config, task.get("overwrite", False), backend="jax")  # before any data is read
    lock = _take_lock(out, 0, 1)
    try:
        seed = task.get("seed", 0)
        train_data, valid, test = _datasets(task, config, seed)
        optimizer = jt.make_optimizer(lr=task["learning_rate"], weight_decay=task["weight_decay"])
        state = jt.init_state(config, jm.from_format(init_params(config, seed), jnp.float32), optimizer, seed)
        info = jb.info(device)
        segment = {"start_step": 0, "world_size": len(devices), "device": info["device"], "precision": "float32",
                   "rng": "dropout keys folded from the seed and step: independent of the device count"}
        state_file = out / STATE_FILES["jax"]
        if resume:
            with np.load(state_file, allow_pickle=False) as saved:
                state = jt.restore_state(state, saved)
                step, wall = int(saved["step"]), float(saved["wall_seconds"])
                curve, history = json.loads(str(saved["curve"])), json.loads(str(saved["history"]))
            segment["start_step"] = step
        else:
            step, curve, wall, history = 0, [], 0.0, []
        history = history + [segment]
        step_fn, place_state, place_batch = jt.data_parallel(jt.data_mesh(devices))
        state = place_state(state)

        stream = itertools.islice(data.batches(train_data, task["batch_size"], seed), step, None)
        bar = tqdm(total=task["steps"], initial=step, desc=f"train {config.attention} (jax)", leave=False)
        recent = []
        with jax.default_matmul_precision("float32"):
            while step < task["steps"]:
                batch = place_batch(next(stream).astype(np.int32))
                t = time.perf_counter()
                state, loss = step_fn(state, batch)
                recent.append(float(loss))  # waits for the step
                wall += time.perf_counter() - t
                step += 1
                bar.update(1)
                if step % task["eval_every"] == 0 or step == task["steps"]:
                    model = _jax_model(config, state, devices[0])
                    curve.append({"step": step, "wall_seconds": wall, "train_bits_per_dim": float(np.mean(recent) / np.log(2)),
                                  "valid_bits_per_dim": jb.bits_per_dim(model, valid, batch_size=64)})
                    recent = []
                    arrays = {**jt.state_arrays(state), "wall_seconds": np.asarray(wall),
                              "curve": np.asarray(json.dumps(curve)), "history": np.asarray(json.dumps(history))}
                    atomic_write(state_file, lambda f: np.savez(f, **arrays))
                    save_checkpoint(out, config, jb.params_of(model))
        bar.close()
        test_bpd = jb.bits_per_dim(_jax_model(config, state, devices[0]), test, batch_size=64)
        training = {"backend": "jax", "world_size": len(devices), "device": segment["device"], "precision": "float32",
                    "distributed": f"jax.sharding Mesh over {len(devices)} local device(s)", "history": history,
                    "backend_info": info}
        return _result(task, config, out, step, wall, curve, test_bpd, len(test), training)
    finally:
        locks.release(lock)


def _jax_model(config, state, device):
    """The replicated parameters as a one-device model, for evaluation and saving."""
    import jax

    from linattn import jax_backend as jb

    return jb.Model(config, jax.device_put(jax.device_get(state.params), device))


def add_parser(sub):
    s = sub.add_parser("train", help="train one model of the C3 comparison (resumes an interrupted run); "
                       "data parallel under torchrun (torch) or over the local devices (jax)")
    s.add_argument("--attention", choices=["linear", "softmax"], required=True)
    s.add_argument("--feature-map", choices=list(FEATURE_MAPS), default=None,
                   help="linear attention's feature map: elu (elu + 1, the paper's) or favor (FAVOR+); "
                   "default: the profile's quality.model, else elu")
    s.add_argument("--layer-pattern", default=None,
                   help="PAR: one letter per layer, a (attention + feed-forward) or f (feed-forward only); "
                   "default: the profile's quality.model, else every layer attends")
    s.add_argument("--profile", default="cpu", help="smoke, cpu, gpu or paper (or a .toml): takes its [quality] settings")
    s.add_argument("--out", required=True, help="checkpoint folder; an interrupted run of the same config in it is "
                   "resumed, any other checkpoint refused")
    s.add_argument("--overwrite", action="store_true", help="replace a checkpoint in --out instead of refusing it")
    s.add_argument("--data-dir", default=None, help="folder with the dataset files (offline use)")
    s.add_argument("--steps", type=positive_int, default=None, help="override the profile's step budget (>= 1)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--backend", choices=list(STATE_FILES), default=None,
                   help="torch (under torchrun: DistributedDataParallel) or jax (jax.sharding over the local "
                   "devices); default: the profile's quality.backend")
    s.add_argument("--device", type=device_name, default=None,
                   help="cpu, cuda or cuda:N (under torchrun: cuda, each process taking cuda:LOCAL_RANK); "
                   "default: the profile's study.device, else cpu")
    s.set_defaults(func=cmd_train)


def cmd_train(args):
    """Every check before any work; under torchrun each rank checks alike, and rank 0 alone prints
    a refusal (the others leave with status 2 in silence)."""
    rank = world()[0]
    try:
        task = _checked_task(args)
    except Exception as e:  # noqa: BLE001 - a refusal (cli.main prints it on rank 0) or a bug
        if rank != 0 and isinstance(e, (UsageError, ConfigError, DataError, BackendUnavailable, ProfileError)):
            return 2
        raise
    try:
        r = train(task)
    except locks.FolderBusy as e:
        if rank != 0:
            return 2
        raise UsageError(str(e)) from None
    if rank == 0:
        training = {k: v for k, v in r.get("training", {}).items() if k in ("backend", "world_size", "device", "precision")}
        print(json.dumps({**{k: r[k] for k in ("attention", "dataset", "steps", "wall_seconds", "test_bits_per_dim",
                                                "checkpoint")}, "training": training}))


def _checked_task(args) -> dict:
    """The training task of the command line, checked: folder, profile, world size against the
    batch, backend and device, the folder's checkpoint, the dataset."""
    output_folder(args.out, "--out")
    profile = load_profile(args.profile)
    q = settings(profile, "quality")
    if args.steps is not None:
        q["steps"] = args.steps
    if args.feature_map is not None:
        q["model"] = {**q["model"], "feature_map": args.feature_map}
    if args.layer_pattern is not None:
        q["model"] = {**q["model"], "layer_pattern": args.layer_pattern}
    backend_name = args.backend or q.get("backend", "torch")
    device = args.device or device_name_or_refuse(profile["study"].get("device", "cpu"))
    rank, local_rank, world_size = world()
    if world_size > 1:
        if backend_name != "torch":
            raise UsageError(f"--backend {backend_name} trains in one process, data parallel over the local devices; "
                             "run it without torchrun")
        if ":" in device:
            raise UsageError(f"--device {device}: under torchrun each process takes the GPU cuda:LOCAL_RANK; "
                             "pass --device cuda")
        check_world(q["batch_size"], world_size, "WORLD_SIZE (torchrun's processes)")
    backend = get_backend(backend_name)
    check_device(f"cuda:{local_rank}" if world_size > 1 and device == "cuda" else device, backend)
    if backend_name == "jax":
        check_world(q["batch_size"], len(jax_devices(device)), "the number of JAX devices")
    candidates = q.pop("dataset")
    task = {**q, "attention": args.attention, "data_dir": args.data_dir, "checkpoint_dir": args.out,
            "seed": args.seed, "overwrite": args.overwrite, "backend": backend_name, "device": device}
    resumable(args.out, model_config(task), args.overwrite, backend=backend_name)
    task["dataset"] = pick_dataset(candidates, args.data_dir)
    return task
