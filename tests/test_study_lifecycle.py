"""A study's life as a user meets it: no data and no network, a second run on the same folder, the
driver killed with kill -9 in the middle, and the README's resume command."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replication.cli import main
from replication.experiments import Experiment
from replication.profiles import load_profile
from replication.run import Study

from test_driver import TINY

ROOT = Path(__file__).resolve().parents[1]


def workers_of(folder) -> list[int]:
    """Pids of live worker processes of the run in `folder`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
                state = (proc / "stat").read_text().split()[2]
            except OSError:
                continue
            if b"replication.worker" in cmd and any(str(folder).encode() in c for c in cmd) and state != "Z":
                pids.append(int(proc.name))
    return pids


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


@pytest.fixture(scope="module")
def offline_profile(tmp_path_factory):
    """The tiny profile, but needing MNIST, which cannot be had here (REPLICATION_OFFLINE)."""
    text = TINY.read_text()
    start = text.index("[quality]")
    line = next(x for x in text[start:].splitlines() if x.startswith("dataset"))
    path = tmp_path_factory.mktemp("profiles") / "offline.toml"
    path.write_text(text.replace(line, 'dataset = ["mnist"]', 1))
    return path


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    env = {"REPLICATION_OFFLINE": "1", "REPLICATION_DATA_DIR": str(tmp_path / "empty-cache")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return {**os.environ, **env}


@pytest.mark.slow
def test_kill_concurrent_run_and_resume_without_data(tmp_path, offline_profile, offline_env, capsys):
    folder = tmp_path / "run"
    driver = subprocess.Popen([sys.executable, "-m", "replication", "run", "--profile", str(offline_profile),
                               "--results", str(folder), "--no-report"], cwd=ROOT, env=offline_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: workers_of(folder) and (folder / "run.json").is_file(), 120, "the first worker")
        # a second run on the same folder is refused in one line naming the holder, before any work
        before = (folder / "run.json").read_bytes()
        assert main(["run", "--results", str(folder), "--no-report"]) == 2
        refusal = capsys.readouterr().err.strip()
        assert len(refusal.splitlines()) == 1 and f"in use by pid {driver.pid}" in refusal, refusal
        assert (folder / "run.json").read_bytes() == before
        # kill -9 of the driver takes its workers with it
        workers = workers_of(folder)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        wait_for(lambda: not workers_of(folder), 10, f"workers {workers} to die with their driver")
        with capsys.disabled():
            print(f"\nkill -9 of driver {driver.pid} while workers {workers} ran: all gone; no orphan left")
    finally:
        driver.kill()
        driver.wait()
    # the README's resume command: the profile comes from the folder
    assert main(["run", "--results", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "taking over the stale lock" in err and "no data set could be had" in err
    run = json.loads((folder / "run.json").read_text())
    assert run["profile"] == "offline" and run["resumed"] == 1 and run["finished"]
    assert (folder / "report.pdf").is_file()  # the rest of the study ran, report included
    summary = json.loads((folder / "summary.json").read_text())
    c3 = next(c for c in summary["claims"] if c["id"] == "C3")
    assert c3["status"] == "not run" and "REPLICATION_OFFLINE" in c3["note"] and "replication data fetch" in c3["note"]
    samples = [e for e in run["experiments"] if e.startswith("S-")]  # one per attention and backend
    assert samples and {run["experiments"][e]["status"] for e in ("C3-linear", "C3-softmax", *samples)} == {"not run"}
    assert all(r["status"] == "ok" for r in summary["throughput"])  # everything else ran
    with capsys.disabled():
        print(f"concurrent run refused: {refusal}\nresumed after the kill: C3 {c3['status']}: {c3['note'][:160]}...")


def test_a_different_profile_on_a_run_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "r"
    study = Study(load_profile(TINY), folder, backends=["torch"])
    study._start()
    assert main(["run", "--profile", "smoke", "--results", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "holds a run of profile 'tiny_profile', not 'smoke'" in err and "leave out --profile" in err


def test_a_finished_workers_result_survives_its_drivers_death(tmp_path):
    study = Study(load_profile(TINY), tmp_path / "r", backends=["torch"])
    study._start()
    eid = "C1-torch-mnist-linear-recurrent-b1"
    task = {"kind": "speed", "backend": "torch", "model": "mnist", "mode": "no-such-mode", "batch": 1, "repeats": 1,
            "threads": 1}  # would fail if it ran again
    exp = Experiment(eid, "C1", "speed", task, {"seconds": 1.0, "memory_bytes": 1.0})
    study.state["experiments"][eid] = {"claim": "C1", "kind": "speed", "task": task, "estimate": exp.estimate,
                                       "status": "running"}
    out = study._paths(eid)[1]
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps({"status": "ok", "seconds_per_image": 1.5, "worker_seconds": 3.0, "peak_rss_bytes": 9}))
    result = study.experiment(exp)
    assert result["seconds_per_image"] == 1.5
    rec = study.state["experiments"][eid]
    assert rec["status"] == "ok" and rec["kept_from_interrupted_run"] and rec["actual"]["seconds"] == 3.0
    assert json.loads((tmp_path / "r" / rec["result_file"]).read_text())["seconds_per_image"] == 1.5


def test_a_report_waits_for_no_one_but_refuses_a_busy_folder(tmp_path, capsys):
    from replication import locks

    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "summary.json").write_text("{}")
    with locks.hold(folder, "replication run"):
        assert main(["report", "--results", str(folder)]) == 2
    assert f"in use by pid {os.getpid()}" in capsys.readouterr().err
