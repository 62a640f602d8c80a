"""How data files are judged: the error type, how a fault is worded, checksums, and the report.

Every fault is one sentence that names the file, what was expected, what was found and what to do,
so that a user who never reads the code can repair it. A check raises `DataError` before any data
is used or anything is written to the cache.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 1 << 20


class DataError(ValueError):
    """A data set that cannot be used as it is. `faults` holds one sentence per bad file."""

    def __init__(self, faults):
        self.faults = [faults] if isinstance(faults, str) else list(faults)
        super().__init__("; ".join(self.faults))


def fault(where, expected: str, found: str, fix: str) -> str:
    """One fault sentence: `where: expected X, found Y. Fix.`"""
    return f"{where}: expected {expected}, found {found}. {fix}."


def describe_start(head: bytes) -> str:
    """What a file's first bytes look like, in words: empty, an HTML page, text, or hex bytes."""
    if not head:
        return "an empty file"
    text = head.lstrip()[:48]
    if text[:1] == b"<" or text[:9].lower() == b"<!doctype":
        return f"an HTML/XML page starting {text.decode('latin-1')!r} (an error page saved under this name?)"
    if all(32 <= b < 127 or b in b"\r\n\t" for b in text):
        return f"text starting {text.decode('ascii')!r}"
    return f"a file starting with bytes {head[:8].hex(' ')}"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) of a file, read in blocks."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            md5.update(block)
            sha.update(block)
    return md5.hexdigest(), sha.hexdigest()


def read_head(path: Path, n: int = 64) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


@dataclass(frozen=True)
class FileCheck:
    """One verified file of a data set."""

    name: str  # its published name: "train-images-idx3-ubyte.gz", or the member "data_batch_1"
    shown: str  # where it was read, as the user knows it (a path, or "archive:member")
    path: Path  # the file on disk (the archive, for a member)
    count: int  # images or labels in it (0 for metadata)
    sha256: str  # of its content: the decompressed IDX bytes, or the archive member's bytes
    official: bool  # the bytes on disk are exactly the published file (its published checksum matched)
    store_as: str  # where `data fetch --path` keeps it, relative to the data set's cache folder


@dataclass(frozen=True)
class Report:
    """The result of verifying a data set's archive or folder."""

    dataset: str
    path: Path  # what was verified
    layout: str  # "IDX folder", "IDX file", "archive", "unpacked folder"
    files: tuple  # FileCheck, in the source's order
    counts: dict  # images per official split: {"train": 60000, "test": 10000}
    complete: bool  # every file of the data set is present and good (not so for a single IDX file)

    @property
    def checksum(self) -> str:
        """The dataset checksum: sha256 of the lines "<published name> <content sha256>\\n", one per
        file in the source's order. It identifies the data, not its packaging: the official archive,
        its unpacked folder and Debian's re-gzipped files give the same value. Empty if incomplete."""
        if not self.complete:
            return ""
        manifest = "".join(f"{f.name} {f.sha256}\n" for f in self.files)
        return sha256_hex(manifest.encode())

    def lines(self) -> list[str]:
        """A human-readable summary, one line per file."""
        counts = ", ".join(f"{n:,} {split}" for split, n in self.counts.items())
        out = [f"{self.dataset}: OK, {self.layout} {self.path} ({counts} images)"]
        for f in self.files:
            origin = "published file" if f.official else "content matches the published file"
            out.append(f"  {f.shown}: {f.count:,} items, content sha256 {f.sha256} ({origin})")
        if self.complete:
            out.append(f"  dataset checksum (sha256): {self.checksum}")
        else:
            out.append("  (a single file: the data set is incomplete here, so there is no dataset checksum)")
        return out
