"""Image data sets as verified byte sequences: MNIST, Fashion-MNIST and CIFAR-10, cached, usable offline.

Public API (the study driver, notebooks and tests use only these):

    load_dataset(name, split, data_dir=None) -> np.ndarray, uint8 (N, height, width, channels)
        name: "mnist", "fashion-mnist" or "cifar10"; split: "train", "valid" or "test".
        "test" is the official test set. "valid" is a fixed 10% of the official training set: the
        last 10% of np.random.RandomState(0).permutation(N) (6,000 MNIST images, 5,000 CIFAR-10),
        in their original order; "train" is the other 90%. See datasets/sequences.py.
    to_bytes(images) -> (N, T) uint8: raster order, channels interleaved (DESIGN section 3)
    from_bytes(sequences, image_shape) -> images, the inverse
    batches(data, batch_size, seed, epochs=None) -> an iterator of shuffled, full batches
    fetch(name, cache_dir=None, path=None) -> Path: download into the cache (or copy `path` there),
        verified; a no-op when a good copy is already cached or installed by a system package
    verify(name, path=None, data_dir=None) -> Report, or DataError naming every fault
    dataset_checksum(name, data_dir=None) -> str: sha256 that identifies the data (for provenance)
    available(name, data_dir=None) -> bool: loadable without a network, verified
    cache_dir(override=None) -> Path: $REPLICATION_DATA_DIR, else ~/.cache/transformers-are-rnns
    DataError: a ValueError; its message names the file, what was expected, what was found, the fix
    add_parser(sub): the `replication data fetch|verify` subcommands

Where a data set is looked for:
    data_dir given (the --data-dir option, or the config): data_dir/<name>/, then data_dir itself
    (a folder, or the CIFAR-10 archive file). Nothing else: a user-supplied location is used as it
    is, after verification.
    otherwise: the cache, <cache>/<name>/, then folders that operating-system packages install
    (Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist).
Nothing is downloaded implicitly; `fetch` (or `replication data fetch`) does that, once.
Every location is verified in full (checksums, structure, shape, dtype) before any image is used.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from .datasets import cifar, idx
from .datasets.checks import DataError, Report, fault
from .datasets.sequences import VALID_FRACTION, VALID_SEED, batches, from_bytes, split_indices, to_bytes
from .datasets.sources import SOURCES, Source

__all__ = ["load_dataset", "to_bytes", "from_bytes", "batches", "fetch", "verify", "dataset_checksum",
           "available", "cache_dir", "DataError", "Report", "SOURCES", "SPLITS", "VALID_FRACTION", "VALID_SEED",
           "add_parser"]

ENV_VAR = "REPLICATION_DATA_DIR"
SPLITS = ("train", "valid", "test")
FORMATS = {"idx": idx, "cifar-python": cifar}  # each: find, check, read, download_into


def cache_dir(override=None) -> Path:
    """The folder data sets are cached in: `override`, else $REPLICATION_DATA_DIR, else
    ~/.cache/transformers-are-rnns. Each data set gets a subfolder named after it."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path.home() / ".cache" / "transformers-are-rnns"


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise DataError(f"dataset {name!r}: expected one of {', '.join(SOURCES)}, found {name!r}. "
                        f"Use one of those names")
    return SOURCES[name]


def load_dataset(name: str, split: str, data_dir=None) -> np.ndarray:
    """The images of one split, uint8 (N, height, width, channels), from a verified location."""
    source = get_source(name)
    if split not in SPLITS:
        raise DataError(f"split {split!r}: expected one of {', '.join(SPLITS)}, found {split!r}. Use one of those")
    path = locate(source, data_dir)
    report = _verify_cached(source, path)  # every fault is reported before any image is used
    if not report.complete:
        raise DataError(fault(path, f"a folder holding all {name} files", "a single file", "Give its folder instead"))
    images = FORMATS[source.format].read(path, source, "test" if split == "test" else "train")
    if split == "test":
        return images
    train, valid = split_indices(len(images))
    return images[valid if split == "valid" else train]


def locate(source: Source, data_dir=None) -> Path:
    """The archive or folder a data set would be loaded from (see the module docstring)."""
    fmt = FORMATS[source.format]
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        if data_dir.is_file():
            return data_dir
        places = [data_dir / source.name, data_dir]
    else:
        places = [cache_dir() / source.name] + [Path(p) for p in source.system_dirs]
    for place in places:
        found = fmt.find(place, source) if place.is_dir() else None
        if found is not None:
            return found
    wanted = source.archive.name if source.archive else ", ".join(f.name for f in source.files)
    raise DataError(fault(" or ".join(map(str, places)), f"the {source.name} data ({wanted})", "none of it",
                          f"Run `replication data fetch --dataset {source.name}` to download it (needs the network), "
                          f"or give a folder or archive that holds it with --data-dir (docs/data.md)"))


def verify(name: str, path=None, data_dir=None) -> Report:
    """Check an archive, folder or single IDX file (`path`; by default the location `load_dataset`
    would use) in full, and return the report; raise DataError listing every fault found."""
    source = get_source(name)
    if path is None:
        path = locate(source, data_dir)
    else:
        path = Path(path).expanduser()
        if not path.exists():
            raise DataError(fault(path, f"an archive or folder with the {name} data", "no such file or folder",
                                  f"Check the path, or run `replication data fetch --dataset {name}`"))
        if path.is_dir():
            path = locate(source, path)
    report = FORMATS[source.format].check(path, source)
    _remember(source, path, report)
    return report


def available(name: str, data_dir=None) -> bool:
    """Whether `load_dataset(name, ..., data_dir)` would work without a network (verified)."""
    source = get_source(name)
    try:
        return _verify_cached(source, locate(source, data_dir)).complete
    except DataError:
        return False


def dataset_checksum(name: str, data_dir=None) -> str:
    """sha256 identifying the verified data (not its packaging: see checks.Report.checksum), for the
    provenance of results."""
    source = get_source(name)
    path = locate(source, data_dir)
    report = _verify_cached(source, path)
    if not report.complete:
        raise DataError(fault(path, f"a folder holding all {name} files", "a single file", "Give its folder instead"))
    return report.checksum


def fetch(name: str, cache_dir=None, path=None) -> Path:
    """Make a data set available offline and return where it is. With `path`, verify that local
    archive/folder/file and copy it into the cache; otherwise download what the cache lacks, unless
    a good copy is cached or installed by a system package. Downloads go to temporary files that are
    verified before being renamed into place: on any failure the cache is left as it was."""
    source = get_source(name)
    fmt = FORMATS[source.format]
    root = _cache_root(cache_dir) / source.name
    if path is not None:
        report = verify(name, path)  # refused here, before anything is written
        return _import(source, report, root)
    for place in [root] + [Path(p) for p in source.system_dirs]:
        found = fmt.find(place, source) if place.is_dir() else None
        if found is not None and _is_good(source, found):
            return found
    created = _make_folder(root)
    pairs = []
    try:
        pairs = fmt.download_into(root, source)
        for tmp, final in pairs:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in pairs:
            tmp.unlink(missing_ok=True)
        _remove_if_empty(created)
        raise
    return _final_check(source, root)


_cache_root = cache_dir  # `fetch` takes an argument named cache_dir


def _import(source: Source, report: Report, root: Path) -> Path:
    """Copy the verified files of `report` into `root` (temporary names, then renamed)."""
    created = _make_folder(root)
    pairs = []
    try:
        for path, store_as in dict.fromkeys((f.path, f.store_as) for f in report.files):
            final = root / store_as
            if final.exists() and final.resolve() == Path(path).resolve():
                continue  # it is the cached copy already
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
            pairs.append((Path(tmp), final))
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            Path(tmp).chmod(0o644)  # mkstemp makes it private; a cache may be shared
        for tmp, final in pairs:
            os.replace(tmp, final)
    except BaseException as e:
        for tmp, _ in pairs:
            tmp.unlink(missing_ok=True)
        _remove_if_empty(created)
        if not isinstance(e, OSError):
            raise
        raise DataError(fault(root, "a writable cache folder", f"an error writing it ({e.strerror})",
                              f"Free space, or choose another folder with --data-dir or ${ENV_VAR}")) from None
    if not report.complete:  # a single IDX file: the rest of the data set may come later
        return root
    return _final_check(source, root)


def _final_check(source: Source, root: Path) -> Path:
    found = FORMATS[source.format].find(root, source)
    if found is None:
        raise DataError(fault(root, f"the {source.name} data after fetching", "none", "Run the fetch again"))
    try:
        _verify_cached(source, found)
    except DataError as e:
        raise DataError([*e.faults, f"the cache {root} holds the bad file named above beside the new copy: "
                                    f"delete that file and fetch again"]) from None
    return found


def _make_folder(root: Path) -> Path | None:
    """Create `root` and any missing parents; return the topmost folder created (None if none was)."""
    top = None
    for folder in [root, *root.parents]:
        if folder.exists():
            break
        top = folder
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(fault(root, "a folder the cache can be written to", f"an error creating it ({e.strerror})",
                              f"Choose another folder with --data-dir or ${ENV_VAR}")) from None
    return top


def _remove_if_empty(top: Path | None) -> None:
    """Remove a folder this module created, if no file was left in it (after a failed fetch)."""
    if top is not None and top.is_dir() and not any(p.is_file() for p in top.rglob("*")):
        shutil.rmtree(top, ignore_errors=True)


# Verified locations, so that loading several splits verifies once. A location counts as verified
# while every file of its report has the size and modification time it had then.
_VERIFIED: dict = {}


def _verify_cached(source: Source, path: Path) -> Report:
    hit = _VERIFIED.get((source, str(Path(path).resolve())))
    if hit is not None and hit[1] == _stamp(hit[0]):
        return hit[0]
    report = FORMATS[source.format].check(path, source)
    _remember(source, path, report)
    return report


def _remember(source: Source, path: Path, report: Report) -> None:
    _VERIFIED[(source, str(Path(path).resolve()))] = (report, _stamp(report))


def _stamp(report: Report):
    try:
        return tuple((str(f.path), s.st_size, s.st_mtime_ns) for f in report.files for s in [f.path.stat()])
    except OSError:
        return None


def _is_good(source: Source, path: Path) -> bool:
    try:
        return _verify_cached(source, path).complete
    except DataError:
        return False


# The command line: `replication data fetch|verify` (added to replication/cli.py by add_parser).


def add_parser(sub) -> None:
    """Add the `data` command, with `fetch` and `verify`, to the CLI's subparsers `sub`."""
    names = list(SOURCES)
    p = sub.add_parser("data", help="download, import and verify the image data sets",
                       description="Download, import and verify MNIST, Fashion-MNIST and CIFAR-10 (docs/data.md).")
    actions = p.add_subparsers(dest="data_command", required=True)
    s = actions.add_parser("fetch", help="download a data set into the cache, or copy a local one there (--path)")
    s.add_argument("--dataset", required=True, choices=names)
    s.add_argument("--path", help="a local archive, folder or IDX file to verify and copy into the cache, "
                                  "instead of downloading")
    s.add_argument("--data-dir", help=f"the cache folder (default: ${ENV_VAR}, else ~/.cache/transformers-are-rnns)")
    s.set_defaults(func=cmd_fetch)
    s = actions.add_parser("verify", help="check an archive or folder and say what is wrong (exit status 2)")
    s.add_argument("--dataset", required=True, choices=names)
    s.add_argument("--path", help="the archive, folder or IDX file to check (default: the one the study would use)")
    s.add_argument("--data-dir", help="where to look for the data set (default: the cache, then system folders)")
    s.set_defaults(func=cmd_verify)


def cmd_fetch(args) -> int:
    try:
        where = fetch(args.dataset, cache_dir=args.data_dir, path=args.path)
        checksum = dataset_checksum(args.dataset, data_dir=where)
    except DataError as e:
        print(f"replication data fetch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("replication data fetch: interrupted; nothing partial was kept", file=sys.stderr)
        return 130
    print(f"{args.dataset}: ready at {where}")
    print(f"  dataset checksum (sha256): {checksum}")
    return 0


def cmd_verify(args) -> int:
    try:
        report = verify(args.dataset, path=args.path, data_dir=args.data_dir)
    except DataError as e:
        print(f"replication data verify: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0
