"""Downloading one published file: its mirrors in turn, a progress bar, the published checksum.

The bytes go to a temporary file (`.NAME.XXXX.part`) in the destination folder, never under the
final name; the caller verifies the content and renames it into place (os.replace, atomic on one
file system) or deletes it. A mirror that fails or delivers other bytes (an HTML error page, a
truncated transfer) is recorded and the next one tried. With REPLICATION_OFFLINE=1 in the
environment nothing is downloaded: every fetch fails at once, as on a machine without a network.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .checks import DataError, describe_start

TIMEOUT_S = 60  # per network operation, not for the whole file
OFFLINE_VAR = "REPLICATION_OFFLINE"
_BLOCK = 1 << 20
_USER_AGENT = "transformers-are-rnns-replication (dataset download; urllib)"


def download(urls, folder: Path, name: str, md5: str, dataset: str, size: int | None = None,
             sha256: str | None = None) -> tuple[Path, str]:
    """Fetch the first of `urls` that delivers the published bytes (md5, and size and sha256 where
    given) into a temporary file in `folder`, and return its path. Raise DataError naming what each
    URL gave if none did; nothing is left behind then. Returns (temporary file, the URL used)."""
    if os.environ.get(OFFLINE_VAR, "") not in ("", "0"):
        raise DataError(f"{name}: not downloaded, because {OFFLINE_VAR} is set (offline use). Unset it to download, or "
                        f"get the file by other means and run `replication data fetch --dataset {dataset} --path FILE`")
    failures = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
        tmp = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                got_md5, got_sha256, n, head = _copy(url, out, name)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            tmp.unlink(missing_ok=True)
            failures.append(f"{url} failed ({getattr(e, 'reason', None) or e})")
            continue
        except BaseException:  # interrupted: leave nothing behind
            tmp.unlink(missing_ok=True)
            raise
        problem = None
        if size is not None and n != size:
            problem = f"{n:,} bytes, not {size:,}"
        elif got_md5 != md5:
            problem = f"md5 {got_md5}, not {md5}"
        elif sha256 and got_sha256 != sha256:
            problem = f"sha256 {got_sha256}, not {sha256}"
        if problem is None:
            tmp.chmod(0o644)  # mkstemp makes it private; a cache may be shared
            return tmp, url
        tmp.unlink(missing_ok=True)
        failures.append(f"{url} gave {problem}: {describe_start(head)}")
    raise DataError(f"{name}: expected the published file (md5 {md5}) from {' or '.join(urls)}, found: "
                    f"{'; '.join(failures)}. Nothing was kept in {folder}. Check the network and try again, or "
                    f"get the file by other means and run `replication data fetch --dataset {dataset} --path FILE`")


def _copy(url: str, out, name: str):
    """Stream `url` into the open file `out`; return (md5, sha256, bytes, first bytes)."""
    from tqdm.auto import tqdm  # imported here: nothing else in the data module needs it

    md5, sha256, n, head = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0, b""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        total = response.headers.get("Content-Length")
        with tqdm(total=int(total) if total and total.isdigit() else None, unit="B", unit_scale=True,
                  unit_divisor=1024, desc=name, leave=False) as bar:
            while block := response.read(_BLOCK):
                out.write(block)
                md5.update(block)
                sha256.update(block)
                if len(head) < 64:
                    head += block[: 64 - len(head)]
                n += len(block)
                bar.update(len(block))
        out.flush()
        os.fsync(out.fileno())
    return md5.hexdigest(), sha256.hexdigest(), n, head
