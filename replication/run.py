"""`replication run`: every claim on every backend, into one results folder, then the report.

A run folder holds run.json (profile, hyperparameters with sources, the machine measured once,
backends, and for every experiment its claim, kind, task, estimate before and measurement after),
experiments/<id>.json (each worker's own result file), checkpoints/, samples/, summary.json (what
the report reads) and report.pdf. The experiments are planned by the claim modules
(replication/claims/), in the order of claims.CLAIMS.
results/index.json lists the runs. Nothing is overwritten: a new run gets a new folder, and
`--results DIR` on an interrupted run resumes it, skipping the experiments already done.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from linattn.backends import BACKENDS
from linattn.weights import atomic_write
from tqdm.auto import tqdm

from . import data, hygiene, locks, roofline, verdicts
from .claims import CLAIMS
from .experiments import Context, Experiment
from .formatting import read_json
from .inputs import UsageError, check_report, check_run, device_name_or_refuse
from .profiles import ProfileError, hyperparameter_table, load_profile
from .provenance import ROOT, provenance
from .report import build_report
from .summary import build_summary
from .worker import DRIVER_PID

RESULTS = ROOT / "results"


def add_parsers(sub):
    s = sub.add_parser("run", help="run the whole study into a results folder, then write the report")
    s.add_argument("--profile", default=None, help="smoke (about 2 min), cpu (the default for a new run, < 30 min on "
                   "2 cores), paper (GPU); a resumed run keeps the profile it was started with")
    s.add_argument("--results", default=None, help="results folder (default: a new one under results/); an "
                   "interrupted run in it is resumed with its own profile")
    s.add_argument("--backend", action="append", choices=BACKENDS, help="only these backends (repeatable; default: all)")
    s.add_argument("--device", default=None, help="cpu, or cuda where a GPU is present (default: the profile's "
                   "study.device, else cpu)")
    s.add_argument("--data-dir", default=None, help="folder with dataset files (offline use)")
    s.add_argument("--no-report", action="store_true", help="skip the PDF")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("report", help="rebuild the report PDF from an existing results folder")
    s.add_argument("--results", required=True)
    s.add_argument("--out", default=None, help="PDF path (default: RESULTS/report.pdf)")
    s.set_defaults(func=cmd_report)


def profile_for(results, name):
    """The profile of a run: the one stored in RESULTS/run.json when resuming (a different
    --profile is refused), else the named one (default "cpu")."""
    run_file = Path(results) / "run.json" if results else None
    if run_file is not None and run_file.is_file():
        try:
            state = read_json(run_file)
            stored = {**state["settings"], "name": state["profile"]}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{run_file} is not a run record this version can resume ({e}); "
                             "start a new run in another folder") from None
        if name is not None and Path(name).stem != stored["name"]:
            raise UsageError(f"{results} holds a run of profile {stored['name']!r}, not {name!r}; leave out --profile "
                             "to resume it, or give another --results folder for a new run")
        return stored
    try:
        return load_profile(name or "cpu")
    except ProfileError as e:
        raise UsageError(str(e)) from None


def cmd_run(args):
    check_run(args, RESULTS)  # device name, results folder writable: before any work
    profile = profile_for(args.results, args.profile)
    folder = Path(args.results) if args.results else new_run_folder(profile["name"])
    folder.mkdir(parents=True, exist_ok=True)
    with _lock(folder, "replication run"):
        device = args.device or device_name_or_refuse(profile["study"].get("device", "cpu"))
        study = Study(profile, folder, backends=args.backend or profile["study"]["backends"], device=device,
                      data_dir=args.data_dir)
        study.run()
        if not args.no_report:
            write_report(folder, folder / "report.pdf")
    print(study.screen_summary())


def cmd_report(args):
    check_report(args)  # results folder and --out writable: before any work
    folder = Path(args.results)
    if not (folder / "summary.json").is_file():
        raise UsageError(f"{folder} holds no summary.json; run `replication run --results {folder}` first")
    out = Path(args.out) if args.out else folder / "report.pdf"
    with _lock(folder, "replication report"):
        write_report(folder, out)
    print(json.dumps({"report": str(out)}))


@contextlib.contextmanager
def _lock(folder, what):
    try:
        lock = locks.acquire(folder, what)
    except locks.FolderBusy as e:
        raise UsageError(str(e)) from None
    try:
        yield
    finally:
        locks.release(lock)


def write_report(folder, out):
    build_report(Path(folder), Path(out))


def new_run_folder(profile_name) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = RESULTS / f"{stamp}-{profile_name}"
    n = 1
    while folder.exists():
        n += 1
        folder = RESULTS / f"{stamp}-{profile_name}-{n}"
    return folder


def write_json(path, obj):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=str).encode()))


def newest_results(results=RESULTS) -> Path:
    """The most recently started finished run folder listed in results/index.json."""
    index = read_json(results / "index.json")["runs"] if (results / "index.json").is_file() else []
    finished = [r for r in index if r.get("finished")]
    if not finished:
        raise FileNotFoundError(f"no finished study in {results}: run `make study` (or name a results folder)")
    return results / max(finished, key=lambda r: r["started"])["folder"]


def available_memory_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


TIMED = ("speed", "uncached_validation", "attention")  # task kinds whose result is a timing
DATA_FIX = ("to run them: `replication data fetch --dataset mnist` where the network reaches the official "
            "mirrors, or --data-dir FOLDER with the files, or `apt-get install dataset-fashion-mnist`; then "
            "`replication run --results {folder}` runs only what is missing")


class Study:
    def __init__(self, profile, folder, backends, device="cpu", data_dir=None):
        self.profile, self.folder, self.device, self.data_dir = profile, Path(folder).resolve(), device, data_dir
        self.backends = list(dict.fromkeys(backends))
        study = profile["study"]
        self.threads = study.get("threads") or os.cpu_count()
        self.remeasure = study.get("remeasure_attempts", verdicts.REMEASURE_ATTEMPTS)
        self.quiet_wait = study.get("quiet_wait_seconds", verdicts.QUIET_WAIT_SECONDS)
        self.run_file = self.folder / "run.json"
        self.state = read_json(self.run_file) if self.run_file.is_file() else None

    # --- bookkeeping ----------------------------------------------------------------------------

    def _save(self):
        write_json(self.run_file, self.state)

    def _start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.state is None:
            self.state = {
                "profile": self.profile["name"], "description": self.profile["study"].get("description", ""),
                "settings": {k: v for k, v in self.profile.items() if k != "name"},
                "hyperparameters": hyperparameter_table(self.profile),
                "device": self.device, "threads": self.threads, "provenance": provenance(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "finished": None, "experiments": {},
            }
        elif self.state["profile"] != self.profile["name"]:
            raise UsageError(f"{self.folder} holds a run of profile {self.state['profile']!r}, not {self.profile['name']!r}")
        self.state["resumed"] = self.state.get("resumed", -1) + 1
        self._save()
        _index(self.folder, self.state)

    def experiment(self, exp: Experiment, timeout=None, again=False):
        """Run one experiment in a worker unless it is already done; record estimate and actual. A
        timing taken while other processes used the cores is re-measured, and flagged if it stays
        contended (verdicts.RULES). `again`: measure even if done (the outlier check). Returns the
        worker's result with the driver's flag, if any."""
        eid, task = exp.id, exp.task
        result_file = f"experiments/{eid}.json"
        done = self.state["experiments"].get(eid)
        if done and done.get("status") == "ok" and not again:
            return self._result(done)
        if done and done.get("status") == "running" and task["kind"] != "skip":
            kept = self._finished_worker(eid)  # the driver died after its worker had finished
            if kept is not None:
                done.update(status=kept.get("status", "failed"), reason=kept.get("reason"), result_file=result_file,
                            actual={"seconds": kept.get("worker_seconds"), "memory_bytes": kept.get("peak_rss_bytes")},
                            kept_from_interrupted_run=True)
                self._save()
                return kept
        rec = {"claim": exp.claim, "kind": exp.kind, "task": task, "estimate": exp.estimate, "status": "running"}
        if again and done:
            rec["earlier"] = {k: done.get(k) for k in ("status", "actual", "attempts", "flag")}
        self.state["experiments"][eid] = rec
        if task["kind"] == "skip":  # decided before any work: does not fit, or no data
            result = {"status": task.get("status", "skipped"), "reason": task["reason"]}
            rec.update(status=result["status"], reason=task["reason"], actual=None, result_file=result_file)
            write_json(self.folder / result_file, result)
            self._save()
            return result
        self._save()
        timed = task["kind"] in TIMED
        attempts = 1 + (self.remeasure if timed else 0)
        rec["attempts"] = []
        for attempt in range(attempts):
            if attempt:
                hygiene.wait_for_quiet(self.quiet_wait)
            result, seconds = self._worker(eid, task, timeout or max(300.0, 20 * exp.estimate["seconds"]))
            contention = result.get("contention") or {}
            rec["attempts"].append({"seconds": seconds, "status": result.get("status"), "contention": contention})
            if not (result.get("status") == "ok" and contention.get("contended")):
                break
        flag = None
        if result.get("status") == "ok" and contention.get("contended") and timed:
            flag = f"contended in all {len(rec['attempts'])} attempts ({contention['why']})"
        rec.update(status=result.get("status", "failed"), reason=result.get("reason"), flag=flag,
                   actual={"seconds": seconds, "memory_bytes": result.get("peak_rss_bytes")}, result_file=result_file)
        if not (self.folder / result_file).is_file():  # the worker left none: the driver records why
            write_json(self.folder / result_file, result)
        self._save()
        return {**result, "flag": flag} if flag else result

    def _result(self, rec):
        result = read_json(self.folder / rec["result_file"])
        return {**result, "flag": rec["flag"]} if rec.get("flag") else result

    def _paths(self, eid):
        """The task file, the result file the worker writes, and its log."""
        tasks = self.folder / "experiments"
        return tasks / f"{eid}.task.json", tasks / f"{eid}.json", tasks / f"{eid}.log"

    def _finished_worker(self, eid):
        """The complete result a worker wrote before its driver was killed, if any (the result file
        is removed before every worker starts, so one that is there is that worker's)."""
        try:
            result = read_json(self._paths(eid)[1])
        except (OSError, ValueError):
            return None
        return result if isinstance(result, dict) and "status" in result else None

    def _worker(self, eid, task, timeout):
        task_file, out_file, log_file = self._paths(eid)
        task_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(task_file, task)
        out_file.unlink(missing_ok=True)
        env = {**os.environ, "TQDM_DISABLE": "1", DRIVER_PID: str(os.getpid())}  # the worker dies with us
        run_file = [str(self.run_file)] if self.run_file.is_file() else []  # the machine, measured once
        t = time.perf_counter()
        with open(log_file, "w") as log:
            try:
                proc = subprocess.run([sys.executable, "-m", "replication.worker", str(task_file), str(out_file), *run_file],
                                      stdout=log, stderr=subprocess.STDOUT, timeout=timeout, env=env)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        seconds = time.perf_counter() - t
        if out_file.is_file():
            return read_json(out_file), seconds
        if code == "timeout":
            return {"status": "timeout", "reason": f"exceeded {timeout:.0f} s"}, seconds
        if isinstance(code, int) and code < 0 and -code == signal.SIGKILL:
            return {"status": "out of memory", "reason": "worker killed (SIGKILL), most likely out of memory"}, seconds
        tail = log_file.read_text().strip().splitlines()[-1:] or ["no output"]
        return {"status": "failed", "reason": f"worker exited with {code}: {tail[0]}"}, seconds

    # --- the study ------------------------------------------------------------------------------

    def run(self):
        self._start()
        if "machine" not in self.state:
            self.state["machine"] = roofline.machine_in_subprocess(self.threads)
            self.state["memory_available_bytes"] = available_memory_bytes()
            self._save()
        machine = self.state["machine"]
        self.state["data"] = self._data()
        self.state["backends"] = {b: self._probe(b) for b in self.backends}
        self._save()
        ready = tuple(b for b, info in self.state["backends"].items() if info["status"] == "ok")
        plan = self._plan(ready, machine)
        bar = tqdm(plan, desc="study", unit="experiment")
        for exp in bar:
            bar.set_postfix_str(f"{exp.id} (estimate {_duration(exp.estimate['seconds'])})", refresh=True)
            self.experiment(exp)
        bar.close()
        self._outliers()
        self.state["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._save()
        _index(self.folder, self.state)
        write_json(self.folder / "summary.json", build_summary(self.folder))

    def _data(self):
        """The data set C3 and the samples use: the first of the profile's list that is here, else
        the first that can be fetched (verified, cached, with progress). None, with the reason and
        the fix, when none can be had: those experiments are then recorded as not run."""
        candidates = self.profile["quality"]["dataset"]
        for name in candidates:
            if name == "synthetic" or data.available(name, data_dir=self.data_dir):
                return {"dataset": name, "fetched": False}
        errors = []
        for name in candidates:
            try:
                print(f"study: fetching {name} for C3 (once; verified, then cached)", file=sys.stderr)
                data.fetch(name, cache_dir=self.data_dir)
                return {"dataset": name, "fetched": True}
            except data.DataError as e:
                errors.append(f"{name}: {_cause(str(e))}")
        reason = "no data set could be had (" + "; ".join(errors) + ")"
        fix = DATA_FIX.format(folder=self.folder)
        print(f"study: C3 and the samples will be recorded as not run: {reason}; {fix}", file=sys.stderr)
        return {"dataset": None, "reason": reason, "fix": fix}

    def _probe(self, backend):
        """Whether a backend runs here: a tiny worker that imports it and reports its versions."""
        result, _ = self._worker(f"probe-{backend}", {"kind": "probe", "backend": backend}, timeout=600)
        return {"status": result.get("status", "failed"), "reason": result.get("reason"), "info": result.get("info")}

    def _plan(self, ready, machine) -> list[Experiment]:
        """Every claim's experiments, in the order of claims.CLAIMS; what a claim records once (the
        scaling study's memory budget) goes into run.json."""
        ctx = Context(profile=self.profile, folder=self.folder, backends=ready, machine=machine, threads=self.threads,
                      device=self.device, data=self.state["data"], data_dir=self.data_dir,
                      memory_available_bytes=self.state["memory_available_bytes"])
        plan = []
        for claim in CLAIMS:
            experiments, recorded = claim.plan(ctx)
            plan += experiments
            self.state.update(recorded)
        self._save()
        return plan

    def _outliers(self):
        """Re-measure once every generation timing far above its roofline floor compared with the same
        backend and mode at other model sizes (batch 1, or batches above 1, apart: a batch-1 step is
        further from its floor) (verdicts.OUTLIER_FACTOR); flag it if it stays an outlier."""
        def multiples():
            out = {}
            for eid, rec in self.state["experiments"].items():
                if rec.get("kind") != "speed" or rec["status"] != "ok" or rec.get("flag"):
                    continue
                r = read_json(self.folder / rec["result_file"])
                out[eid] = ((rec["task"]["backend"], rec["task"]["mode"], rec["task"]["batch"] == 1),
                            r["seconds_per_image"] / r["roofline_seconds_per_image"])
            return out

        def outlier(eid, table):
            group, m = table[eid]
            others = [x for e, (g, x) in table.items() if g == group and e != eid]
            typical = float(np.median(others)) if others else None
            return typical if typical and m > verdicts.OUTLIER_FACTOR * typical else None

        table = multiples()
        for eid in [e for e in table if outlier(e, table)]:
            rec = self.state["experiments"][eid]
            print(f"study: {eid} took {table[eid][1]:.1f}x its roofline floor, far more than the same mode at other "
                  "sizes: measuring it again", file=sys.stderr)
            hygiene.wait_for_quiet(self.quiet_wait)
            self.experiment(Experiment(eid, rec["claim"], rec["kind"], rec["task"], rec["estimate"]), again=True)
            now = multiples()
            if eid in now and (typical := outlier(eid, now)):
                self.state["experiments"][eid]["flag"] = (f"outlier: {now[eid][1]:.1f}x its roofline floor, the same "
                                                          f"mode elsewhere {typical:.1f}x, in two measurements")
                self._save()

    def screen_summary(self) -> str:
        summary = read_json(self.folder / "summary.json")
        lines = [f"Study '{self.profile['name']}' in {self.folder}", ""]
        for c in summary["claims"]:
            lines.append(f"{c['id']} {c['title']}")
            if not c["rows"]:
                lines.append(f"    not run: {c.get('note') or 'no measurement'}")
            for row in c["rows"]:
                lines.append(f"    {row['what']}: paper {row['paper_text']}, ours {row['ours_text']} -> {row['verdict']}")
        failed = [e for e, r in self.state["experiments"].items() if r["status"] not in ("ok", "skipped", "not run")]
        if failed:
            lines.append(f"\n{len(failed)} experiment(s) did not complete: " + ", ".join(failed[:8]))
        not_run = [e for e, r in self.state["experiments"].items() if r["status"] == "not run"]
        if not_run:
            lines.append(f"{len(not_run)} experiment(s) not run (see above): " + ", ".join(not_run[:8]))
        flagged = [e for e, r in self.state["experiments"].items() if r.get("flag")]
        if flagged:
            lines.append(f"{len(flagged)} timing(s) flagged and left out of the verdicts: " + ", ".join(flagged[:8]))
        pdf = self.folder / "report.pdf"
        if pdf.is_file():
            lines.append(f"\nReport: {pdf}")
        return "\n".join(lines)


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _cause(text):
    """The gist of a data error for the report: why the download failed, else its first words
    (the full message, with every URL tried, is in `replication data fetch`)."""
    offline = re.search(r"because (\w+) is set", text)
    if offline:
        return f"not downloaded ({offline.group(1)} is set)"
    failed = re.findall(r"failed \(([^)]*)\)", text)
    if failed:
        return f"download failed ({failed[-1].removeprefix('[Errno -2] ').removeprefix('[Errno -3] ')})"
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 120 else line[:117] + "..."


def _index(folder, state):
    """results/index.json: one entry per run folder."""
    index_file = folder.parent / "index.json"
    index = read_json(index_file) if index_file.is_file() else {"runs": []}
    entry = {"folder": folder.name, "profile": state["profile"], "started": state["started"], "finished": state["finished"],
             "commit": state["provenance"]["git"]["commit"]}
    index["runs"] = [r for r in index["runs"] if r["folder"] != folder.name] + [entry]
    write_json(index_file, index)
