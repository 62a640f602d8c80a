"""The replication report: a Typst template (report/) filled from a run folder's summary.json.

`build_report(folder, out)`:
1. reads folder/summary.json (a clear error if it is absent or unreadable);
2. copies the template (report/report.typ, report/sections/) and the sample PNGs into a private
   build folder (folder/.report-build-XXXX, this call's own);
3. writes report-data.json there (report_data: formatted numbers, tables, prose from numbers,
   each claim's from its module) and the figures as deterministic SVG;
5. compiles with the typst package (built-in fonts only, fixed timestamp: the same results give
   the same bytes) and writes the PDF atomically to `out`;
6. keeps the build folder as folder/report-build/ for inspection (replacing an older one), or
   removes it if anything failed.
It takes seconds and touches nothing but its build folder, report-build/ and `out`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from linattn.weights import atomic_write

from . import report_figures
from .claims import CLAIMS
from .provenance import ROOT
from .report_data import report_data

TEMPLATE = ROOT / "report"
BUILD = "report-build"
DATA = "report-data.json"


class ReportError(ValueError):
    """The results folder cannot make a report; the message says why and what to do."""


def read_summary(folder: Path) -> dict:
    path = folder / "summary.json"
    if not path.is_file():
        raise ReportError(f"{folder} holds no summary.json; run `replication run --results {folder}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ReportError(f"{path} is not valid JSON ({e}); rebuild it with `replication run --results {folder}`") from None


def prepare_build(folder: Path, summary: dict) -> Path:
    """A fresh private build folder with the template, its sections and the sample PNGs."""
    build = Path(tempfile.mkdtemp(dir=folder, prefix=f".{BUILD}-"))
    build.chmod(0o755)  # mkdtemp makes it private; the kept report-build/ is readable as before
    shutil.copytree(TEMPLATE, build, ignore=shutil.ignore_patterns("build", "*.pdf"), dirs_exist_ok=True)
    for sample in summary.get("samples", {}).values():
        for rel in [v for e in sample.get("backends", {}).values() for v in (e.get("files") or {}).values()]:
            src = folder / rel
            if src.is_file():
                (build / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, build / rel)
    (build / "figures").mkdir(exist_ok=True)
    return build


def compile_pdf(build: Path) -> bytes:
    import typst  # here: the report's own dependency, not needed to run a study with --no-report

    return typst.compile(str(build / "report.typ"), root=str(build), sys_inputs={"data": f"/{DATA}"},
                         ignore_system_fonts=True, timestamp=0)


def make_figures(summary, paper, out_dir) -> dict:
    """Every figure of the report into out_dir; {name: file name, or None where data are missing}."""
    figures = {"compute": report_figures.compute(summary, out_dir)}
    for claim in CLAIMS:
        figures.update(claim.figures(summary, paper, out_dir))
    return figures


def build_report(folder: Path, out: Path) -> Path:
    """Rebuild the report PDF of the run in `folder` at `out`; returns `out`."""
    folder, out = Path(folder), Path(out)
    summary = read_summary(folder)
    build = prepare_build(folder, summary)
    try:
        data = report_data(folder, summary, build / "figures")
        (build / DATA).write_text(json.dumps(data, indent=1, ensure_ascii=False))
        pdf = compile_pdf(build)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, lambda f: f.write(pdf))
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    kept = folder / BUILD
    if kept.exists():
        shutil.rmtree(kept)
    build.rename(kept)
    return out
