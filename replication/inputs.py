"""Checks of the command line's arguments and input files, run before any work.

Every check either returns the checked value or raises `UsageError` with one line that names the
argument, what was found and what to do; `replication.cli.main` prints it and exits with status 2.
So a traceback from the command means a bug, never a bad input.

Arguments: `positive_int` and `device_name` are argparse `type=` converters (the parser reports
their refusals in one line too). Paths: `input_file`, `input_folder`, `output_file`,
`output_folder`. Arrays: `load_npy`, `check_array`. Devices: `check_device` (after the command's
backend is imported: torch, juliacall and jax must not share a process, so a check never imports one
the command would not use). Whole commands: `check_run`, `check_report`.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

import numpy as np


class UsageError(Exception):
    """Bad input found before any work; printed as one line, exit status 2."""


DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (batch sizes, step counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def device_name(text: str) -> str:
    """argparse type: cpu, cuda or cuda:N."""
    if not DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N (N a GPU index), got {text!r}")
    return text


def check_device(device: str, backend) -> None:
    """Refuse a device the backend cannot use here: a GPU that torch or JAX does not see, or any GPU
    for Julia. `backend` is the imported backend module, so this imports nothing new."""
    if device == "cpu":
        return
    index = int(device.split(":")[1]) if ":" in device else 0
    if backend.NAME == "julia":
        raise UsageError(f"--device {device}: the Julia backend runs on the CPU only; use --device cpu "
                         "or --backend torch/jax")
    if backend.NAME == "torch":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        found = f"torch {torch.__version__} sees {count} CUDA device(s)"
    else:
        import jax

        try:
            count = len(jax.devices("gpu"))
        except RuntimeError:
            count = 0
        found = f"JAX sees {count} GPU(s)"
    if index >= count:
        raise UsageError(f"--device {device}: {found}; use --device cpu"
                         + (f" or cuda:0..cuda:{count - 1}" if count else " (or install a CUDA build)"))


def input_file(path, flag: str) -> Path:
    """An existing, non-empty file."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file")
    if not path.is_file():
        raise UsageError(f"{flag} {path}: no such file")
    if path.stat().st_size == 0:
        raise UsageError(f"{flag} {path} is empty (0 bytes; a full disk or an interrupted copy?); write it again")
    return path


def input_folder(path, flag: str) -> Path:
    """An existing folder."""
    path = Path(path)
    if path.is_file():
        raise UsageError(f"{flag} {path} is a file; give a folder")
    if not path.is_dir():
        raise UsageError(f"{flag} {path} is not a folder: nothing exists at that path")
    return path


def _writable(folder: Path) -> bool:
    """Whether a file can be created in `folder` (tried, so read-only mounts and root count right)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test.")
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def output_folder(path, flag: str) -> Path:
    """A folder that exists and is writable, or can be created (its nearest existing ancestor is a
    writable folder)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; give a folder (new or existing)")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise UsageError(f"{flag} {path}: {base} is a file, so the folder cannot be created; choose another path")
    if not _writable(base):
        where = "" if base == path.absolute() else f" (cannot create it in {base})"
        raise UsageError(f"{flag} {path} is not writable{where}; choose a folder you can write to")
    return path


def output_file(path, flag: str, create_parent=False) -> Path:
    """A file to (over)write: not a folder, in a writable folder that exists (or, with
    `create_parent`, can be created)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name, e.g. {path / 'out.npy'}")
    parent = path.absolute().parent
    if not create_parent and not parent.is_dir():
        raise UsageError(f"{flag} {path}: folder {parent} does not exist; create it first")
    base = _nearest_existing(parent)
    if not base.is_dir():
        raise UsageError(f"{flag} {path}: {base} is a file, so the folder cannot be created; choose another path")
    if not _writable(base):
        raise UsageError(f"{flag} {path}: folder {base} is not writable; choose a folder you can write to")
    return path


def load_npy(path, flag: str) -> np.ndarray:
    """An array from a .npy file (numpy.save format, no pickled objects)."""
    path = input_file(path, flag)
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError):
        pass
    else:
        if isinstance(a, np.ndarray):
            return a
        a.close()  # an NpzFile
    with open(path, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        what = "a damaged .npy file (truncated, or an array of Python objects)"
    elif head.startswith(b"PK"):
        what = "a .npz archive, not a single array"
    else:
        what = "not a .npy file (no numpy header)"
    raise UsageError(f"{flag} {path} is {what}; save the array with numpy.save")


def check_array(a: np.ndarray, flag: str, path, kind: str, shape: tuple, low=None, high=None, why="") -> np.ndarray:
    """Refuse an array of the wrong dtype kind ("uint8" exactly, or "float"), shape (None: any
    size, the first axis >= 1; `why` says where the shape comes from), non-finite values or values
    outside [low, high]."""
    if kind == "uint8" and a.dtype != np.uint8:
        raise UsageError(f"{flag} {path} has dtype {a.dtype}; it must be uint8 (0..255)")
    if kind == "float" and not np.issubdtype(a.dtype, np.floating):
        raise UsageError(f"{flag} {path} has dtype {a.dtype}; it must hold floats")
    want = "(" + ", ".join("N" if n is None else str(n) for n in shape) + ")"
    if a.ndim != len(shape) or any(n is not None and n != m for n, m in zip(shape, a.shape)) or a.size == 0:
        raise UsageError(f"{flag} {path} has shape {a.shape}; it must be {want} with N >= 1{why}")
    if kind == "float":
        bad = ~np.isfinite(a)
        if bad.any():
            raise UsageError(f"{flag} {path} holds {int(bad.sum())} NaN or infinite value(s), the first at "
                             f"index {tuple(int(i) for i in np.argwhere(bad)[0])}; it must be finite")
    if (low is not None and a.min() < low) or (high is not None and a.max() > high):
        raise UsageError(f"{flag} {path} holds values in [{a.min()}, {a.max()}]; they must lie in [{low}, {high}]")
    return a


def check_run(args, default_results: Path) -> None:
    """`replication run`: the device's name and a results folder that can be written."""
    if args.device is not None:  # None: the profile's study.device
        device_name_or_refuse(args.device)
    output_folder(args.results if args.results else default_results, "--results")


def check_report(args) -> None:
    """`replication report`: an existing results folder (report-build/ is written into it) and a
    writable place for the PDF."""
    folder = input_folder(args.results, "--results")
    output_folder(folder, "--results")
    output_file(args.out or folder / "report.pdf", "--out", create_parent=True)


def device_name_or_refuse(text: str) -> str:
    """`device_name` for a value the parser did not check."""
    try:
        return device_name(text)
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"--device: {e}") from None
