"""One writer per folder: a results folder (a study run, a report) or a training output folder.

`hold(folder, what)` takes an exclusive `flock` on `folder/.lock` for the life of the process
(or of the `with` block) and writes the holder's pid, command and start time into it. The kernel
drops the lock when its holder dies, kill -9 included, so a lock left by a killed run is stale
by construction: the next run takes it over and says so. A second live holder is refused with
`FolderBusy`, whose one-line message names the holder.

Workers never inherit the lock (subprocesses close inherited descriptors), so a worker that is
still running cannot keep a folder locked after its driver is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path

LOCK = ".lock"


class FolderBusy(RuntimeError):
    """Another live process writes to the folder; the message names it."""


def _holder_text(info: dict) -> str:
    return f"pid {info.get('pid', '?')} ({info.get('command', '?')}, since {info.get('started', '?')})"


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def acquire(folder, what: str):
    """Lock `folder` for this process; return the open lock file (keep it open to keep the lock).
    Raise FolderBusy if a live process holds it. Prints one line when taking over a stale lock."""
    folder = Path(folder)
    path = folder / LOCK
    previous = _read(path) if path.is_file() else {}
    f = open(path, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        holder = _read(path)
        raise FolderBusy(f"{folder} is in use by {_holder_text(holder)}; wait for it to finish, "
                         f"or give another folder") from None
    if previous.get("pid") and previous.get("pid") != os.getpid():
        print(f"{what}: taking over the stale lock of {_holder_text(previous)}, which is no longer running",
              file=sys.stderr)
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "command": what, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    f.flush()
    return f


def release(f) -> None:
    """Release a lock taken by `acquire` and clear the holder's name."""
    with contextlib.suppress(OSError, ValueError):
        f.seek(0)
        f.truncate()
        f.flush()
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()


@contextlib.contextmanager
def hold(folder, what: str):
    """`with hold(folder, "replication run"):` - the folder is this process's until the block ends."""
    f = acquire(folder, what)
    try:
        yield
    finally:
        release(f)
