"""MNIST-style IDX files (MNIST, Fashion-MNIST): find them in a folder, check them, read them.

The IDX format (http://yann.lecun.com/exdb/mnist/): a big-endian 32-bit magic number whose third
byte is the value type (0x08: uint8) and fourth the number of dimensions, then one 32-bit size per
dimension, then the values in C order. Images are magic 2051 (0x00000803: N x 28 x 28 uint8), labels
magic 2049 (0x00000801: N uint8). Files are published gzipped; a gunzipped copy (same name without
`.gz`) is accepted too.

Each file is checked in this order, so that the message names the most specific fault: readable,
gzip magic (an HTML error page is named as such), a complete gzip stream, magic number and value
type, dimensions, exact length, label range, and last the sha256 of the decompressed content.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np

from .checks import GZIP_MAGIC, DataError, FileCheck, Report, describe_start, fault, md5_hex, sha256_hex
from .download import download
from .sources import Source, SourceFile

MAGIC = {"images": 2051, "labels": 2049}
VALUE_TYPES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
MAX_CONTENT = 64 << 20  # refuse to decompress more than this (the largest real file is 47,040,016 bytes)


def names(file: SourceFile) -> tuple[str, str]:
    """The names a file may have on disk: as published (.gz), and gunzipped."""
    return file.name, file.name.removesuffix(".gz")


def find(folder: Path, source: Source) -> Path | None:
    """The folder that holds this data set's files: `folder` itself or one of the source's known
    subfolders (torchvision's `MNIST/raw`, for example); None if none holds any of them."""
    for sub in ("",) + tuple(source.subdirs):
        d = folder / sub if sub else folder
        if d.is_dir() and any((d / n).is_file() for f in source.files for n in names(f)):
            return d
    return None


def locate_file(folder: Path, file: SourceFile) -> Path | None:
    for n in names(file):
        if (folder / n).is_file():
            return folder / n
    return None


def check(path: Path, source: Source) -> Report:
    """Verify a folder of IDX files (all four must be there and good) or a single IDX file."""
    path = Path(path)
    if path.is_file():
        file = next((f for f in source.files if path.name in names(f)), None)
        if file is None:
            wanted = ", ".join(f.name for f in source.files)
            raise DataError(fault(path, f"one of the {source.name} files ({wanted}) or a folder holding them",
                                  f"a file named {path.name!r}", source.fix))
        _, result = read_file(path, file, source)
        return Report(source.name, path, "IDX file", (result,), {file.split: result.count}, complete=False)
    folder = find(path, source) or path
    if not folder.is_dir():
        raise DataError(fault(path, f"a folder holding the {source.name} IDX files", "no such folder", source.fix))
    results, faults = [], []
    for file in source.files:
        found = locate_file(folder, file)
        if found is None:
            faults.append(fault(folder, f"the file {file.name} (or {names(file)[1]})", "no such file", source.fix))
            continue
        try:
            results.append(read_file(found, file, source)[1])
        except DataError as e:
            faults.extend(e.faults)
    if faults:
        raise DataError(faults)
    counts = {s: sum(r.count for r, f in zip(results, source.files) if f.split == s and f.role == "images")
              for s in ("train", "test")}
    return Report(source.name, folder, "IDX folder", tuple(results), counts, complete=True)


def read(folder: Path, source: Source, split: str) -> np.ndarray:
    """The images of an official split ("train" or "test"), uint8 (N, H, W, C), checked as they are read."""
    parts = []
    for file in source.split_files(split, "images"):
        found = locate_file(folder, file)
        if found is None:
            raise DataError(fault(folder, f"the file {file.name}", "no such file", source.fix))
        parts.append(read_file(found, file, source)[0])
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def read_file(path: Path, file: SourceFile, source: Source, gz: bool | None = None, shown=None):
    """Check one IDX file against `file` and return (array, FileCheck); raise DataError on any fault.

    Images come back as (N, H, W, C) uint8, labels as (N,). `gz` says whether the file is gzipped
    (by default: its name ends in .gz); `shown` is how messages name it (a URL, for a download)."""
    shown = shown or path
    gz = path.name.endswith(".gz") if gz is None else gz
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(fault(shown, "a readable file", f"an error reading it ({e.strerror})", source.fix)) from None
    content = _gunzip(raw, shown, source) if gz else raw
    array = _parse(content, file, source, shown)
    digest = sha256_hex(content)
    if digest != file.content_sha256:
        raise DataError(fault(shown, f"decompressed content with sha256 {file.content_sha256} "
                                     f"(the published {file.name})",
                              f"sha256 {digest}: the data differ", source.fix))
    official = gz and md5_hex(raw) == file.md5
    return array, FileCheck(file.name, str(shown), Path(path), int(array.shape[0]), digest, official, Path(path).name)


def _gunzip(raw: bytes, shown, source: Source) -> bytes:
    if not raw.startswith(GZIP_MAGIC):
        raise DataError(fault(shown, "a gzip file (starting with bytes 1f 8b)", describe_start(raw[:64]), source.fix))
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            content = f.read(MAX_CONTENT + 1)
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(fault(shown, "a complete gzip stream", f"{len(raw):,} bytes, truncated or damaged ({e})",
                              source.fix)) from None
    if len(content) > MAX_CONTENT:
        raise DataError(fault(shown, f"at most {MAX_CONTENT:,} bytes once decompressed", "more", source.fix))
    return content


def _parse(content: bytes, file: SourceFile, source: Source, shown) -> np.ndarray:
    """Header, dimensions and length of IDX bytes; the values as an array."""
    height, width, channels = source.image_shape
    want_magic = MAGIC[file.role]
    want_dims = (file.count, height, width) if file.role == "images" else (file.count,)
    if len(content) < 4:
        raise DataError(fault(shown, "an IDX header", f"only {len(content)} bytes", source.fix))
    magic = int.from_bytes(content[:4], "big")
    if magic != want_magic:
        raise DataError(fault(shown, f"IDX magic number {want_magic} (uint8 {file.role}, {len(want_dims)} dimensions)",
                              f"{magic} ({_describe_magic(content[:4])})", source.fix))
    header = 4 + 4 * len(want_dims)
    if len(content) < header:
        raise DataError(fault(shown, f"a {header}-byte IDX header", f"{len(content)} bytes", source.fix))
    dims = struct.unpack(f">{len(want_dims)}I", content[4:header])
    if dims != want_dims:
        raise DataError(fault(shown, f"dimensions {' x '.join(map(str, want_dims))} ({file.role})",
                              f"{' x '.join(map(str, dims))}", source.fix))
    size = header + int(np.prod(dims))
    if len(content) != size:
        what = "truncated" if len(content) < size else "extra bytes at the end"
        raise DataError(fault(shown, f"{size:,} bytes (header and values)", f"{len(content):,} bytes ({what})",
                              source.fix))
    array = np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)
    if file.role == "labels" and array.size and array.max() > 9:
        raise DataError(fault(shown, "labels 0..9", f"a label {int(array.max())}", source.fix))
    return array.reshape(dims + (channels,)) if file.role == "images" else array


def _describe_magic(head: bytes) -> str:
    if head[:2] != b"\x00\x00":
        return "not an IDX file: " + describe_start(head)
    value_type = VALUE_TYPES.get(head[2], f"unknown value type 0x{head[2]:02x}")
    return f"{value_type}, {head[3]} dimensions"


def download_into(folder: Path, source: Source) -> list[tuple[Path, Path]]:
    """Download each file that `folder` lacks (or holds in a bad state) to a temporary file there,
    checked in full; return (temporary, final) pairs for the caller to rename into place. On any
    fault, the temporary files are removed and DataError raised."""
    pairs = []
    try:
        for file in source.files:
            have = locate_file(folder, file)
            if have is not None and _is_good(have, file, source):
                continue
            tmp, url = download([m + file.name for m in source.mirrors], folder, file.name, file.md5, source.name)
            pairs.append((tmp, folder / file.name))
            read_file(tmp, file, source, gz=True, shown=url)
    except BaseException:
        for tmp, _ in pairs:
            tmp.unlink(missing_ok=True)
        raise
    return pairs


def _is_good(path: Path, file: SourceFile, source: Source) -> bool:
    try:
        read_file(path, file, source)
    except DataError:
        return False
    return True
