"""The `replication` command (also `python -m replication`).

Subcommands: run, report, train, eval, sample, speed, data (fetch, verify);
see `replication SUBCOMMAND --help`.
Every fault in the user's input ends in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from linattn.backends import BACKENDS, BackendUnavailable, get_backend
from linattn.config import MODES, ConfigError, check_mode
from linattn.weights import atomic_write, load_checkpoint
from replication.data import DataError
from replication.errors import UsageError
from replication.report import ReportError


def _load_images(path, config):
    """Read uint8 images (N, height, width, channels) that fit the config; return (N, T) bytes."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--images {path}: no such file")
    try:
        images = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise UsageError(f"--images {path} is not a .npy array file: {e}") from None
    if images.dtype != np.uint8:
        raise UsageError(f"--images {path} has dtype {images.dtype}; images must be uint8 (0..255)")
    want = tuple(config.image_shape)
    if images.ndim == 3 and want[2] == 1:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != want or len(images) == 0:
        raise UsageError(
            f"--images {path} has shape {images.shape}; the model needs (N, {', '.join(map(str, want))}) "
            f"with N >= 1 (image_shape in its config.json)"
        )
    return images.reshape(len(images), -1)


def _load_noise(path, config):
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--noise {path}: no such file")
    noise = np.load(path, allow_pickle=False)
    T = config.seq_len
    if noise.ndim != 3 or noise.shape[1:] != (T, 2) or len(noise) == 0:
        raise UsageError(f"--noise {path} has shape {noise.shape}; it must be (N, {T}, 2) for this model")
    if not np.issubdtype(noise.dtype, np.floating) or noise.min() < 0 or noise.max() > 1:
        raise UsageError(f"--noise {path} must hold floats in [0, 1] (uniform noise)")
    return noise


def _backend(name):
    try:
        return get_backend(name)
    except BackendUnavailable as e:
        raise UsageError(str(e)) from None


def cmd_eval(args):
    config, params = load_checkpoint(args.checkpoint)
    data = _load_images(args.images, config)
    backend = _backend(args.backend)
    model = backend.prepare(config, params, device=args.device)
    bpd = backend.bits_per_dim(model, data, batch_size=args.batch_size)
    print(json.dumps({"bits_per_dim": bpd, "n_images": len(data), "backend": args.backend, "checkpoint": str(args.checkpoint)}))


def cmd_sample(args):
    config, params = load_checkpoint(args.checkpoint)
    check_mode(args.mode, config)
    noise = _load_noise(args.noise, config)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")
    backend = _backend(args.backend)
    model = backend.prepare(config, params, device=args.device)
    data = backend.generate(model, args.mode, noise)
    images = np.asarray(data, dtype=np.uint8).reshape((len(noise),) + tuple(config.image_shape))
    atomic_write(out, lambda f: np.save(f, images))
    print(json.dumps({"out": str(out), "n_images": len(images), "mode": args.mode, "backend": args.backend}))


def build_parser():
    p = argparse.ArgumentParser(prog="replication", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(s):
        s.add_argument("--backend", choices=BACKENDS, default="torch")
        s.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU is present (torch, jax)")

    s = sub.add_parser("eval", help="bits/dim of images under a checkpoint")
    s.add_argument("--checkpoint", required=True, help="folder with config.json and weights.npz")
    s.add_argument("--images", required=True, help=".npy of uint8 images (N, height, width, channels)")
    s.add_argument("--batch-size", type=int, default=32)
    common(s)
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("sample", help="generate images from given uniform noise")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--mode", required=True, choices=list(MODES))
    s.add_argument("--noise", required=True, help=".npy of uniforms in [0, 1], shape (N, T, 2)")
    s.add_argument("--out", required=True, help=".npy to write: uint8 (N, height, width, channels)")
    common(s)
    s.set_defaults(func=cmd_sample)

    from . import data, run, speed, train

    speed.add_parser(sub, common)
    train.add_parser(sub)
    run.add_parsers(sub)
    data.add_parser(sub)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (UsageError, ConfigError, BackendUnavailable, DataError, ReportError) as e:
        print(f"replication {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
