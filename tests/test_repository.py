"""The repository itself: no tracked text file keeps a merge's conflict markers (one did, in the
README, after a hand merge)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)
TEXT = (".py", ".md", ".toml", ".typ", ".jl", ".json", ".yml", ".txt", ".cfg", "Makefile")


def test_no_conflict_markers_in_tracked_files():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found = [f for f in files if f.endswith(TEXT) and (ROOT / f).is_file()
             and MARKER.search((ROOT / f).read_text(errors="replace"))]
    assert not found, f"merge conflict markers in {found}"
