"""`replication run`: every claim on every backend, into one results folder, then the report.

A run folder holds run.json (profile, hyperparameters with sources, machine, backends, and for
every experiment its estimate before and its measurement after), experiments/<id>.json (each
worker's raw result), checkpoints/, samples/, summary.json (what the report reads) and report.pdf.
results/index.json lists the runs. Nothing is overwritten: a new run gets a new folder, and
`--results DIR` on an interrupted run resumes it, skipping the experiments already done.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from linattn.backends import BACKENDS
from linattn.weights import atomic_write
from tqdm.auto import tqdm

from . import estimates, roofline
from .presets import config_for_mode
from .profiles import hyperparameter_table, load_profile
from .provenance import ROOT, provenance

RESULTS = ROOT / "results"


def add_parsers(sub):
    s = sub.add_parser("run", help="run the whole study into a results folder, then write the report")
    s.add_argument("--profile", default="cpu", help="smoke (seconds), cpu (default, < 30 min on 2 cores), paper (GPU)")
    s.add_argument("--results", default=None, help="results folder (default: a new one under results/); an "
                   "interrupted run in it is resumed")
    s.add_argument("--backend", action="append", choices=BACKENDS, help="only these backends (repeatable; default: all)")
    s.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU is present")
    s.add_argument("--data-dir", default=None, help="folder with dataset files (offline use)")
    s.add_argument("--no-report", action="store_true", help="skip the PDF")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("report", help="rebuild the report PDF from an existing results folder")
    s.add_argument("--results", required=True)
    s.add_argument("--out", default=None, help="PDF path (default: RESULTS/report.pdf)")
    s.set_defaults(func=cmd_report)


def cmd_run(args):
    from .inputs import check_run
    from .profiles import ProfileError

    check_run(args, RESULTS)  # device name, results folder writable: before any work

    try:
        profile = load_profile(args.profile)
    except ProfileError as e:
        from .cli import UsageError

        raise UsageError(str(e)) from None
    folder = Path(args.results) if args.results else new_run_folder(profile["name"])
    study = Study(profile, folder, backends=args.backend or profile["study"]["backends"], device=args.device,
                  data_dir=args.data_dir)
    study.run()
    if not args.no_report:
        write_report(folder, folder / "report.pdf")
    print(study.screen_summary())


def cmd_report(args):
    from .cli import UsageError
    from .inputs import check_report

    check_report(args)  # results folder and --out writable: before any work
    folder = Path(args.results)
    if not (folder / "summary.json").is_file():
        raise UsageError(f"{folder} holds no summary.json; run `replication run --results {folder}` first")
    out = Path(args.out) if args.out else folder / "report.pdf"
    write_report(folder, out)
    print(json.dumps({"report": str(out)}))


def write_report(folder, out):
    from .report import build_report

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


def read_json(path):
    with open(path) as f:
        return json.load(f)


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


class Study:
    def __init__(self, profile, folder, backends, device="cpu", data_dir=None):
        self.profile, self.folder, self.device, self.data_dir = profile, Path(folder).resolve(), device, data_dir
        self.backends = list(dict.fromkeys(backends))
        self.threads = profile["study"].get("threads") or os.cpu_count()
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
            raise ValueError(f"{self.folder} holds a run of profile {self.state['profile']!r}, not {self.profile['name']!r}")
        self.state["resumed"] = self.state.get("resumed", -1) + 1
        self._save()
        _index(self.folder, self.state)

    def experiment(self, eid, claim, task, estimate, timeout=None):
        """Run one task in a worker unless it is already done; record estimate and actual."""
        done = self.state["experiments"].get(eid)
        if done and done.get("status") == "ok":
            return read_json(self.folder / done["result_file"])
        rec = {"claim": claim, "task": task, "estimate": estimate, "status": "running"}
        self.state["experiments"][eid] = rec
        if task["kind"] == "skip":  # decided from the estimate, before any work
            result = {"status": "skipped", "reason": task["reason"]}
            rec.update(status="skipped", reason=task["reason"], actual=None, result_file=f"experiments/{eid}.json")
            write_json(self.folder / rec["result_file"], result)
            self._save()
            return result
        self._save()
        result, seconds = self._worker(eid, task, timeout or max(300.0, 20 * estimate["seconds"]))
        rec.update(status=result.get("status", "failed"), reason=result.get("reason"),
                   actual={"seconds": seconds, "memory_bytes": result.get("peak_rss_bytes")},
                   result_file=f"experiments/{eid}.json")
        write_json(self.folder / rec["result_file"], result)
        self._save()
        return result

    def _worker(self, eid, task, timeout):
        tasks = self.folder / "experiments"
        tasks.mkdir(parents=True, exist_ok=True)
        task_file, out_file, log_file = (tasks / f"{eid}.{s}" for s in ("task.json", "out.json", "log"))
        write_json(task_file, task)
        out_file.unlink(missing_ok=True)
        env = {**os.environ, "TQDM_DISABLE": "1"}
        t = time.perf_counter()
        with open(log_file, "w") as log:
            try:
                proc = subprocess.run([sys.executable, "-m", "replication.worker", str(task_file), str(out_file)],
                                      stdout=log, stderr=subprocess.STDOUT, timeout=timeout, env=env)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        seconds = time.perf_counter() - t
        if out_file.is_file():
            result = read_json(out_file)
            out_file.unlink()
            return result, seconds
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
        self.state["backends"] = {b: self._probe(b) for b in self.backends}
        self._save()
        ready = [b for b, info in self.state["backends"].items() if info["status"] == "ok"]
        plan = self._plan(ready, machine)
        for eid, claim, task, est in tqdm(plan, desc="study", unit="experiment"):
            self.experiment(eid, claim, task, est)
        self.state["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._save()
        _index(self.folder, self.state)
        from .summary import build_summary

        write_json(self.folder / "summary.json", build_summary(self.folder))

    def _probe(self, backend):
        """Whether a backend runs here: a tiny worker that imports it and reports its versions."""
        result, _ = self._worker(f"probe-{backend}", {"kind": "probe", "backend": backend}, timeout=600)
        return {"status": result.get("status", "failed"), "reason": result.get("reason"), "info": result.get("info")}

    def _plan(self, ready, machine):
        """(id, claim, task, estimate) for every experiment of the profile, in run order."""
        p, plan, threads = self.profile, [], self.threads
        budget = p["study"]["memory_budget_fraction"] * self.state["memory_available_bytes"]
        tp = p["throughput"]
        for backend in ready:
            for model in tp["models"]:
                for mode in tp["modes"]:
                    config = config_for_mode(model, mode)
                    largest = estimates.largest_batch(config, mode, budget, tp["max_batch"])
                    batches = sorted({b for b in tp["batches"] if b <= largest} | {largest})
                    if mode == "softmax-uncached" and "uncached_batches" in tp:
                        batches = tp["uncached_batches"]
                    for batch in batches:
                        task = dict(kind="speed", backend=backend, model=model, mode=mode, batch=batch, repeats=tp["repeats"],
                                    steps=None if mode == "softmax-uncached" else tp["steps"], threads=threads,
                                    device=self.device, machine=machine)
                        plan.append((f"C1-{backend}-{model}-{mode}-b{batch}", "C1", task, estimates.speed(task, config, machine)))
            lt = p["latency"]
            for model in lt["models"]:
                for mode in lt["modes"]:
                    config = config_for_mode(model, mode)
                    whole = model in lt["whole_image_models"]
                    task = dict(kind="speed", backend=backend, model=model, mode=mode, batch=1, repeats=lt["repeats"],
                                steps=None if whole else lt["steps"], threads=threads, device=self.device, machine=machine)
                    plan.append((f"C2-{backend}-{model}-{mode}", "C2", task, estimates.speed(task, config, machine)))
            uv = p["uncached_validation"]
            task = dict(kind="uncached_validation", backend=backend, model=uv["model"], steps=uv["steps"], threads=threads)
            plan.append((f"V-{backend}-uncached", "C1", task, estimates.uncached_validation(task, machine)))
            sc = p["scaling"]
            for attention in sc["attentions"]:
                for T in sc["lengths"]:
                    batch = max(1, sc["tokens_per_batch"] // T)
                    task = dict(kind="attention", backend=backend, attention=attention, T=T, batch=batch,
                                n_heads=sc["n_heads"], d_head=sc["d_head"], repeats=sc["repeats"], threads=threads, device=self.device)
                    est = estimates.attention(task, machine)
                    if est["memory_bytes"] > budget or est["seconds"] > sc["time_cap_seconds"] * (sc["repeats"] + 1):
                        plan.append((f"C4-{backend}-{attention}-T{T}", "C4", {**task, "kind": "skip",
                                     "reason": _skip_reason(est, budget, sc["time_cap_seconds"] * (sc["repeats"] + 1))}, est))
                        continue
                    plan.append((f"C4-{backend}-{attention}-T{T}", "C4", task, est))
        q = {k: v for k, v in p["quality"].items() if k != "sources"}
        if q["backend"] in ready:
            from .train import pick_dataset

            dataset = pick_dataset(q["dataset"], self.data_dir)
            for attention in ("linear", "softmax"):
                task = {**q, "kind": "train", "attention": attention, "dataset": dataset, "data_dir": self.data_dir,
                        "checkpoint_dir": str(self.folder / "checkpoints" / attention), "threads": threads}
                plan.append((f"C3-{attention}", "C3", task, estimates.training(task, machine)))
            s = p["samples"]
            for attention in ("linear", "softmax"):
                task = dict(kind="samples", checkpoint=str(self.folder / "checkpoints" / attention), out_dir=str(self.folder / "samples"),
                            images=s["images"], completions=s["completions"], dataset=dataset, data_dir=self.data_dir)
                plan.append((f"S-{attention}", "C3", task, estimates.samples(task, q, machine)))
        return plan

    def screen_summary(self) -> str:
        summary = read_json(self.folder / "summary.json")
        lines = [f"Study '{self.profile['name']}' in {self.folder}", ""]
        for c in summary["claims"]:
            lines.append(f"{c['id']} {c['title']}")
            for row in c["rows"]:
                lines.append(f"    {row['what']}: paper {row['paper_text']}, ours {row['ours_text']} -> {row['verdict']}")
        failed = [e for e, r in self.state["experiments"].items() if r["status"] not in ("ok", "skipped")]
        if failed:
            lines.append(f"\n{len(failed)} experiment(s) did not complete: " + ", ".join(failed[:8]))
        pdf = self.folder / "report.pdf"
        if pdf.is_file():
            lines.append(f"\nReport: {pdf}")
        return "\n".join(lines)


def _skip_reason(est, budget, cap):
    if est["memory_bytes"] > budget:
        return f"does not fit: estimated {est['memory_bytes'] / 2**30:.1f} GiB > budget {budget / 2**30:.1f} GiB"
    return f"exceeds the time cap: estimated {est['seconds']:.0f} s > {cap:.0f} s"


def _index(folder, state):
    """results/index.json: one entry per run folder."""
    index_file = folder.parent / "index.json"
    index = read_json(index_file) if index_file.is_file() else {"runs": []}
    entry = {"folder": folder.name, "profile": state["profile"], "started": state["started"], "finished": state["finished"],
             "commit": state["provenance"]["git"]["commit"]}
    index["runs"] = [r for r in index["runs"] if r["folder"] != folder.name] + [entry]
    write_json(index_file, index)
