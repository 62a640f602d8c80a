"""The CIFAR-10 python archive (cifar-10-python.tar.gz), or the folder it unpacks to.

Layout (shared/notes/tooling.md section 3): `cifar-10-batches-py/` holds data_batch_1 .. data_batch_5,
test_batch and batches.meta. Each batch is a Python 2 pickle of a dict: `data`, a 10000 x 3072 uint8
array with one image per row (the 1024 red values, then the 1024 green, then the 1024 blue, each
plane row-major), and `labels`, 10000 ints 0..9. `batches.meta` holds `label_names`.

Safety: the archive is never extracted; members are read from the tar stream, and an archive with
an absolute or `..` member name, or a link where a batch should be, is refused. Each member's md5 is
checked before it is unpickled, and the unpickler builds nothing but numpy arrays and plain
containers. Keys are normalised to str whether the pickle was written by Python 2 or 3.
"""

from __future__ import annotations

import codecs
import io
import pickle
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from .checks import (GZIP_MAGIC, DataError, FileCheck, Report, describe_start, fault, file_digests, md5_hex,
                     read_head, sha256_hex)
from .download import download
from .sources import Source, SourceFile

MAX_MEMBER = 64 << 20  # a real batch is 31 MB; refuse to read a larger member


def find(folder: Path, source: Source) -> Path | None:
    """The archive or unpacked folder of CIFAR-10 inside `folder`, or None."""
    a = source.archive
    if (folder / a.name).is_file():
        return folder / a.name
    if (folder / a.folder).is_dir():
        return folder / a.folder
    if any((folder / f.name).is_file() for f in source.files):
        return folder
    return None


def check(path: Path, source: Source) -> Report:
    """Verify the archive or unpacked folder: every member present, its md5 as published, its
    content of the right shape and dtype. Faults of several members are reported together."""
    path = Path(path)
    if path.is_dir():
        path = path / source.archive.folder if (path / source.archive.folder).is_dir() else path
        layout, official = "unpacked folder", True  # the files are the published members (md5 checked)
    elif path.is_file():
        try:
            layout, official = "archive", file_digests(path)[1] == source.archive.sha256
        except OSError as e:
            found = f"an error reading it ({e.strerror})"
            raise DataError(fault(path, "a readable file", found, source.fix)) from None
    else:
        raise DataError(fault(path, f"the archive {source.archive.name} or a folder holding its members",
                              "no such file or folder", source.fix))
    results, faults = [], []
    for file, shown, raw in _members(path, source, [f.name for f in source.files]):
        if raw is None:
            faults.append(fault(shown, f"the member {file.name}", "no such member", source.fix))
            continue
        try:
            _batch(raw, file, source, shown)
        except DataError as e:
            faults.extend(e.faults)
            continue
        store_as = source.archive.name if layout == "archive" else f"{source.archive.folder}/{file.name}"
        results.append(FileCheck(file.name, shown, path if layout == "archive" else path / file.name,
                                 file.count, sha256_hex(raw), official, store_as))
    if faults:
        raise DataError(faults)
    counts = {s: sum(f.count for f in source.files if f.split == s) for s in ("train", "test")}
    return Report(source.name, path, layout, tuple(results), counts, complete=True)


def read(path: Path, source: Source, split: str) -> np.ndarray:
    """The images of an official split ("train" or "test"), uint8 (N, 32, 32, 3), each member's md5
    checked before it is unpickled."""
    wanted = [f.name for f in source.split_files(split, "batch")]
    parts = {}
    for file, shown, raw in _members(Path(path), source, wanted):
        if raw is None:
            raise DataError(fault(shown, f"the member {file.name}", "no such member", source.fix))
        parts[file.name] = _batch(raw, file, source, shown)
    return np.concatenate([parts[n] for n in wanted])


def download_into(folder: Path, source: Source) -> list[tuple[Path, Path]]:
    """Download the archive to a temporary file in `folder`, checked in full; return the
    (temporary, final) pair for the caller to rename into place. On any fault, remove it and raise."""
    a = source.archive
    tmp, url = download([m + a.name for m in source.mirrors], folder, a.name, a.md5, source.name, a.size, a.sha256)
    try:
        check(tmp, source)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return [(tmp, folder / a.name)]


def _members(path: Path, source: Source, wanted: list[str]):
    """Yield (SourceFile, shown, bytes) for each wanted member, bytes None for a missing one."""
    if path.is_dir():
        for file in source.files:
            if file.name in wanted:
                p = path / file.name
                try:
                    raw = p.read_bytes() if p.is_file() else None
                except OSError as e:
                    found = f"an error reading it ({e.strerror})"
                    raise DataError(fault(p, "a readable file", found, source.fix)) from None
                yield file, str(p), raw
        return
    yield from _archive_members(path, source, wanted)


def _archive_members(path: Path, source: Source, wanted: list[str]):
    prefix = source.archive.folder + "/"
    files = {f.name: f for f in source.files if f.name in wanted}
    try:
        head = read_head(path, 512)
    except OSError as e:
        raise DataError(fault(path, "a readable file", f"an error reading it ({e.strerror})", source.fix)) from None
    if not head.startswith(GZIP_MAGIC) and head[257:262] != b"ustar":
        raise DataError(fault(path, "a gzip-compressed tar archive (starting with bytes 1f 8b)",
                              describe_start(head), source.fix))
    seen = set()
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
                    raise DataError(fault(path, f"members under {prefix}", f"an unsafe member name {member.name!r}",
                                          "This is not the published archive. " + source.fix))
                file = files.get(name.removeprefix(prefix)) if name.startswith(prefix) else None
                if file is None:
                    continue
                shown = f"{path}:{name}"
                if name in seen:
                    raise DataError(fault(shown, "one member of this name", "two", source.fix))
                seen.add(name)
                if not member.isfile():
                    kind = f"a link to {member.linkname!r}" if member.issym() or member.islnk() else "no regular file"
                    raise DataError(fault(shown, "a regular file", kind, source.fix))
                if member.size > MAX_MEMBER:
                    raise DataError(fault(shown, f"at most {MAX_MEMBER:,} bytes", f"{member.size:,}", source.fix))
                yield file, shown, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(fault(path, f"a complete tar.gz archive (the published one has {source.archive.size:,} bytes)",
                              f"{path.stat().st_size:,} bytes, truncated or damaged ({e})", source.fix)) from None
    for name in wanted:
        if prefix + name not in seen:
            yield files[name], f"{path}:{prefix}{name}", None


def _batch(raw: bytes, file: SourceFile, source: Source, shown) -> np.ndarray | None:
    """Check one member's bytes (md5 first, then the unpickled content); return its images as
    (N, H, W, C) uint8, or None for the metadata member."""
    got = md5_hex(raw)
    if got != file.md5:
        raise DataError(fault(shown, f"md5 {file.md5} (the published {file.name})", f"md5 {got}: the data differ",
                              source.fix))
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # any failure to parse untrusted bytes is a fault of the file
        raise DataError(fault(shown, "a pickled CIFAR batch", f"an unreadable pickle ({e})", source.fix)) from None
    if not isinstance(obj, dict):
        raise DataError(fault(shown, "a pickled dict", f"a pickled {type(obj).__name__}", source.fix))
    obj = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    if file.role == "meta":
        names = obj.get("label_names")
        if not isinstance(names, list) or len(names) != 10:
            raise DataError(fault(shown, "label_names, a list of 10 class names", f"{names!r:.60}", source.fix))
        return None
    return _images(obj, file, source, shown)


def _images(obj: dict, file: SourceFile, source: Source, shown) -> np.ndarray:
    height, width, channels = source.image_shape
    row = height * width * channels
    data, labels = obj.get("data"), obj.get("labels")
    if data is None or labels is None:
        raise DataError(fault(shown, "a dict with keys 'data' and 'labels'", f"keys {sorted(map(str, obj))}",
                              source.fix))
    if not isinstance(data, np.ndarray):
        raise DataError(fault(shown, "data as a numpy array", f"a {type(data).__name__}", source.fix))
    if data.dtype != np.uint8:
        raise DataError(fault(shown, "data of dtype uint8", f"dtype {data.dtype}", source.fix))
    if data.shape != (file.count, row):
        raise DataError(fault(shown, f"data of shape ({file.count}, {row}), one {height}x{width}x{channels} image "
                                     f"a row",
                              f"shape {data.shape}", source.fix))
    labels = np.asarray(labels)
    if labels.shape != (file.count,) or labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 9:
        raise DataError(fault(shown, f"{file.count} labels 0..9", f"{labels.shape[0] if labels.ndim else 0} values "
                              f"of dtype {labels.dtype}", source.fix))
    # one row = channel planes, each row-major: (N, C, H, W); NHWC interleaves channels per pixel.
    return np.ascontiguousarray(data.reshape(file.count, channels, height, width).transpose(0, 2, 3, 1))


class _BatchUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain containers only; any other global refuses the file."""

    def find_class(self, module, name):
        if module.startswith("numpy.core."):  # written by numpy 1.x (the official files); numpy 2 moved it
            module = "numpy._core." + module.removeprefix("numpy.core.")
        allowed = _allowed_globals().get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR batch never does")
        return allowed


def _allowed_globals() -> dict:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return {
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "scalar"): multiarray.scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3 pickles bytes at protocol 2
    }
