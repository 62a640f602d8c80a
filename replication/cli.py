"""The `replication` command (also `python -m replication`).

Subcommands: run, report, train, eval, sample, speed, data (fetch, verify);
see `replication SUBCOMMAND --help`.
Every fault in the user's input ends in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from linattn.backends import BACKENDS, BackendUnavailable, get_backend
from linattn.config import MODES, ConfigError, check_mode
from linattn.weights import atomic_write, load_checkpoint
from replication import data, run, speed, train
from replication.data import DataError
from replication.inputs import (UsageError, check_array, check_device, device_name, input_file, input_folder,
                                load_npy, output_file, positive_int)
from replication.profiles import ProfileError
from replication.report import ReportError


def _load_images(path, config):
    """Read uint8 images (N, height, width, channels) that fit the config; return (N, T) bytes."""
    images = load_npy(path, "--images")
    want = tuple(config.image_shape)
    if images.ndim == 3 and want[2] == 1:
        images = images[..., None]
    check_array(images, "--images", path, "uint8", (None, *want), why=" (image_shape in the checkpoint's config.json)")
    return images.reshape(len(images), -1)


def _load_noise(path, config):
    """Read uniform noise (N, T, 2) in [0, 1] for the config's T."""
    noise = load_npy(path, "--noise")
    return check_array(noise, "--noise", path, "float", (None, config.seq_len, 2), low=0, high=1,
                       why=" (T = height x width x channels of the checkpoint's image_shape)")


def _backend(name, device):
    """Import the backend and check that it can use the device (before any data is read)."""
    try:
        backend = get_backend(name)
    except BackendUnavailable as e:
        raise UsageError(str(e)) from None
    check_device(device, backend)
    return backend


def cmd_eval(args):
    """Bits/dim of --images (a .npy) or of a whole split of a verified --dataset under a checkpoint."""
    input_folder(args.checkpoint, "--checkpoint")
    if args.images is not None:
        input_file(args.images, "--images")
    backend = _backend(args.backend, args.device)
    config, params = load_checkpoint(args.checkpoint)
    if args.images is not None:
        images = _load_images(args.images, config)
    else:
        images = _dataset_images(args.dataset, args.split, args.data_dir, config)
    model = backend.prepare(config, params, device=args.device)
    bpd = backend.bits_per_dim(model, images, batch_size=args.batch_size)
    what = f"--images {args.images}" if args.images is not None else f"--dataset {args.dataset} ({args.split})"
    if not np.isfinite(bpd):
        raise UsageError(f"bits/dim came out {bpd} for {what}: the checkpoint's weights "
                         "overflow on them; check how the checkpoint was trained")
    print(json.dumps({"bits_per_dim": bpd, "n_images": len(images), "images": what, "backend": args.backend,
                      "checkpoint": str(args.checkpoint)}, allow_nan=False))


def _dataset_images(name, split, data_dir, config):
    """(N, T) bytes of a verified data set's split, refused in one line where it is not here or
    its images do not fit the checkpoint."""
    if not data.available(name, data_dir=data_dir):
        raise UsageError(f"--dataset {name} is not here (verified); run `replication data fetch --dataset {name}`, "
                         "or pass --data-dir")
    images = data.load_dataset(name, split, data_dir=data_dir)
    if tuple(images.shape[1:]) != tuple(config.image_shape):
        raise UsageError(f"--dataset {name} has {'x'.join(map(str, images.shape[1:]))} images, but the checkpoint "
                         f"models {'x'.join(map(str, config.image_shape))}; use a checkpoint of that shape")
    return data.to_bytes(images)


def cmd_sample(args):
    input_folder(args.checkpoint, "--checkpoint")
    input_file(args.noise, "--noise")
    out = output_file(args.out, "--out")
    backend = _backend(args.backend, args.device)
    config, params = load_checkpoint(args.checkpoint)
    check_mode(args.mode, config)
    noise = _load_noise(args.noise, config)
    model = backend.prepare(config, params, device=args.device)
    data = backend.generate(model, args.mode, noise)
    images = np.asarray(data, dtype=np.uint8).reshape((len(noise),) + tuple(config.image_shape))
    atomic_write(out, lambda f: np.save(f, images))
    print(json.dumps({"out": str(out), "n_images": len(images), "mode": args.mode, "backend": args.backend}))


class Parser(argparse.ArgumentParser):
    """argparse, with its refusals in one line (no usage block): `PROG: error: MESSAGE`, exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser():
    p = Parser(prog="replication", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(s):
        s.add_argument("--backend", choices=BACKENDS, default="torch")
        s.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda or cuda:N where a GPU is present (torch, jax)")

    s = sub.add_parser("eval", help="bits/dim of images under a checkpoint")
    s.add_argument("--checkpoint", required=True, help="folder with config.json and weights.npz")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--images", help=".npy of uint8 images (N, height, width, channels)")
    which.add_argument("--dataset", choices=sorted(data.SOURCES), help="a verified data set (see `replication data`)")
    s.add_argument("--split", choices=list(data.SPLITS), default="test", help="with --dataset (default: test)")
    s.add_argument("--data-dir", default=None, help="with --dataset: folder with the data set's files")
    s.add_argument("--batch-size", type=positive_int, default=32)
    common(s)
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("sample", help="generate images from given uniform noise")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--mode", required=True, choices=list(MODES))
    s.add_argument("--noise", required=True, help=".npy of uniforms in [0, 1], shape (N, T, 2)")
    s.add_argument("--out", required=True, help=".npy to write: uint8 (N, height, width, channels)")
    common(s)
    s.set_defaults(func=cmd_sample)

    speed.add_parser(sub, common)
    train.add_parser(sub)
    run.add_parsers(sub)
    data.add_parser(sub)
    return p


def main(argv=None):
    """Run one subcommand; return its exit status (2 for any refusal, printed as one line)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a refused argument (2, already printed)
        return e.code
    try:
        return args.func(args) or 0
    except (UsageError, ConfigError, BackendUnavailable, DataError, ReportError, ProfileError) as e:
        print(f"replication {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
