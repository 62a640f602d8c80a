"""The report: the Typst template compiles from a small results fixture, the numbers it embeds equal
the results', missing results produce explicit "not run" texts, and `replication report` works from
the command line (and refuses a folder without results in one line).

tests/data/results-small/ is a smoke-profile run's summary.json and sample grids (Julia unavailable
there, as on any machine without Julia).
"""

import json
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("typst")
pytest.importorskip("matplotlib")

import typst

from replication.claims import beyond, generation, languages, quality, scaling
from replication.cli import main
from replication.formatting import fmt
from replication.paper import load_paper
from replication.report import BUILD, DATA, ReportError, build_report, make_figures
from replication.report_data import count_lines

from test_beyond import speed_outcome, train_outcome

SMALL = Path(__file__).resolve().parent / "data" / "results-small"


def copy_results(tmp_path, name="run", edit=None):
    """A copy of the fixture run folder, its summary changed by `edit(summary)` if given."""
    folder = tmp_path / name
    shutil.copytree(SMALL, folder)
    if edit:
        summary = json.loads((folder / "summary.json").read_text())
        edit(summary)
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def query(folder, label):
    """What the compiled template embeds (or shows) under a label, as Python data."""
    build = folder / BUILD
    out = typst.query(str(build / "report.typ"), label, root=str(build), sys_inputs={"data": f"/{DATA}"},
                      ignore_system_fonts=True)
    return json.loads(out)


def texts(node):
    """Every piece of text inside a queried element, in order."""
    if isinstance(node, dict):
        return ([node["text"]] if isinstance(node.get("text"), str) else []) + [t for v in node.values() for t in texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in texts(v)]
    return []


def assert_same(embedded, expected, path="claims"):
    """Equal structure, strings and integers; floats to 1e-14 relative: Typst's JSON reader (serde_json
    without float_roundtrip) may land one unit in the last place away from Python's."""
    if isinstance(expected, dict):
        assert isinstance(embedded, dict) and embedded.keys() == expected.keys(), path
        for k in expected:
            assert_same(embedded[k], expected[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(embedded, list) and len(embedded) == len(expected), path
        for i, (a, b) in enumerate(zip(embedded, expected)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert embedded == pytest.approx(expected, rel=1e-14), path
    else:
        assert embedded == expected and type(embedded) is type(expected), path


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The fixture run folder with its report built once: (folder, pdf bytes)."""
    folder = copy_results(tmp_path_factory.mktemp("report"))
    out = build_report(folder, folder / "report.pdf")
    return folder, out.read_bytes()


def test_the_template_compiles_to_a_multi_page_pdf(built):
    folder, pdf = built
    assert pdf.startswith(b"%PDF")
    assert page_count(pdf) >= 8
    assert not list(folder.glob(".report.pdf.*.tmp")), "the PDF is written atomically, leaving no temporary file"
    for name in ("throughput", "latency", "curves", "scaling", "compute", "roofline"):
        assert (folder / BUILD / "figures" / f"{name}.svg").is_file(), name


def test_the_embedded_claims_equal_summary_json(built):
    folder, _ = built
    summary = json.loads((folder / "summary.json").read_text())
    embedded = query(folder, "<claims>")
    assert len(embedded) == 1
    assert_same(embedded[0]["value"], summary["claims"])
    c1 = next(c for c in embedded[0]["value"] if c["id"] == "C1")
    assert c1["rows"] and all(r["ratio"] == pytest.approx(r["ours"] / r["paper"]) for r in c1["rows"] if r["ratio"])


def test_the_claims_table_shows_the_summary_numbers(built):
    folder, _ = built
    summary = json.loads((folder / "summary.json").read_text())
    data = json.loads((folder / BUILD / DATA).read_text())
    rows = data["claims_table"]["rows"]
    expected = [(c["id"], r["paper_text"], r["ours_text"], r["verdict"]) for c in summary["claims"] for r in c["rows"]]
    shown = [(r[0], r[2], r[3], r[5]) for r in rows if r[5] != "not run" or r[2] != "–"]
    assert shown == expected


def test_a_missing_backend_is_reported_with_its_recorded_reason(built):
    folder, _ = built
    summary = json.loads((folder / "summary.json").read_text())
    reason = summary["backends"]["julia"]["reason"]
    assert summary["backends"]["julia"]["status"] != "ok"
    notices = query(folder, "<notices>")[0]["value"]
    assert f"Julia backend not run: {reason}" in notices
    shown = " ".join(texts(query(folder, "<notice>")))
    assert "Julia backend not run: " + reason.split("; ")[0] in shown


def test_the_shipped_models_say_how_each_was_made_and_what_is_published_for_their_dataset(built):
    """Each shipped model's own command is shown. Fashion-MNIST is not the paper's dataset: the
    trained-models section quotes claims.toml's
    published reference numbers for it, with their source; a dataset without any quotes none."""
    folder, _ = built
    summary = json.loads((folder / "summary.json").read_text())
    dataset = next(iter(summary["quality"]["shipped"].values()))["dataset"]
    ref = load_paper()["C3"]["reference"][dataset]
    trained = json.loads((folder / BUILD / DATA).read_text())["trained"]
    assert trained["commands"] == {a: m["command"] for a, m in summary["quality"]["shipped"].items()}
    shown = trained["reference"]
    assert ref["source"] in shown
    assert all(f"{name} {v:.2f}" in shown for name, v in ref["bits_per_dim"].items())
    assert quality.reference_text(load_paper(), "mnist") == ""


def test_the_shipped_pair_is_compared_only_at_equal_steps(built):
    """The trained-models section gives the gap linear - softmax of the shipped models where both
    trained the same number of steps, as one seed without a verdict; otherwise it says they do not
    compare."""
    folder, _ = built
    summary = json.loads((folder / "summary.json").read_text())
    shipped = summary["quality"]["shipped"]
    shown = json.loads((folder / BUILD / DATA).read_text())["trained"]["pair"]
    assert shown == quality.pair_text(shipped) and shown
    same = {a: {**m, "steps": 6000} for a, m in shipped.items()}
    gap = same["linear"]["test_bits_per_dim"] - same["softmax"]["test_bits_per_dim"]
    assert f"{gap:+.3f} test bits/dim" in quality.pair_text(same) and "no verdict" in quality.pair_text(same)
    apart = {**same, "softmax": {**same["softmax"], "steps": 1200}}
    assert "do not compare" in quality.pair_text(apart) and "softmax 1,200" in quality.pair_text(apart)
    assert quality.pair_text({"linear": same["linear"]}) == ""


def without_training(summary):
    """The summary of a run whose C3 training failed (claims recomputed by the quality claim's rule)."""
    for attention in ("linear", "softmax"):
        summary["quality"]["runs"][attention] = [{"backend": "torch", "status": "failed", "seed": 0,
                                                  "reason": "worker exited with 1: boom", "dataset": summary["quality"]["dataset"]}]
        summary["quality"]["aggregate"][attention] = quality.aggregate(summary["quality"]["runs"][attention])
        summary["samples"][attention] = {"backends": {"torch": {"backend": "torch", "status": "failed", "reason": "no checkpoint"}},
                                         "parity": []}
    summary["quality"]["equal_time"] = None
    summary["claims"] = [quality.judge(load_paper(), summary)[0] if c["id"] == "C3" else c for c in summary["claims"]]


def test_missing_training_yields_explicit_not_run_texts(tmp_path):
    folder = copy_results(tmp_path, edit=without_training)
    pdf = build_report(folder, tmp_path / "out" / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    c3 = next(c for c in query(folder, "<claims>")[0]["value"] if c["id"] == "C3")
    assert c3["status"] == "not run" and "boom" in c3["note"]
    assert any(n.startswith("C3 not run:") and "boom" in n for n in query(folder, "<notices>")[0]["value"])
    shown = " ".join(texts(query(folder, "<notice>")))
    assert "C3 not run: linear and softmax: worker exited with 1: boom" in shown
    data = json.loads((folder / BUILD / DATA).read_text())
    assert ["C3", f"{c3['title']} (not run: {c3['note']})", "–", "–", "–", "not run"] in data["claims_table"]["rows"]
    assert data["figures"]["curves"] is None


def nothing_measured(summary):
    """A run in which every experiment failed or was skipped: every section must still say so."""
    for key in ("throughput", "latency", "uncached_validation", "scaling", "compute", "languages", "scaling_fit"):
        summary[key] = []
    summary["decomposition"] = {}
    summary.pop("beyond", None)  # nothing beyond the paper either
    for key in ("shipped", "shipped_runs"):  # and a copy of the repository without trained/
        summary["quality"].pop(key, None)
    summary["backends"] = {b: {"status": "unavailable", "reason": f"{b} missing here", "info": None} for b in ("torch", "jax", "julia")}
    without_training(summary)
    summary["claims"] = [{"id": c["id"], "title": c["title"], "source": c["source"], "rows": [], "status": "not run",
                          "note": c.get("note") or "no measurement succeeded"} for c in summary["claims"]]
    summary["claims"][4] = languages.judge(load_paper(), summary)[0]


def test_a_run_with_no_results_still_makes_a_report_that_says_so(tmp_path):
    folder = copy_results(tmp_path, edit=nothing_measured)
    pdf = build_report(folder, folder / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    notices = query(folder, "<notices>")[0]["value"]
    for cid in ("C1", "C2", "C3", "C4", "C5"):
        assert any(n.startswith(f"{cid} not run:") for n in notices), cid
    assert "Julia backend not run: julia missing here" in notices
    data = json.loads((folder / BUILD / DATA).read_text())
    assert all(v is None for v in data["figures"].values())


def failed_beyond(summary):
    """A run whose beyond-the-paper runs failed, or were left out as contended, or never planned."""
    outcomes = [speed_outcome("f", "torch", "mnist", "linear-recurrent", "favor", None, None, status="failed",
                              feature_map="favor"),
                speed_outcome("p", "torch", "mnist", "softmax-cached", "par", 1.0, 0.1, layer_pattern="afafafff",
                              flag="contended in all 3 attempts (1.5 cores)"),
                train_outcome("linear-favor", "linear", 0, None, status="failed")]
    beyond.summarise(summary, outcomes, None)


def with_beyond(summary):
    """A run with every beyond-the-paper result: FAVOR+ and PAR timed beside C2's rows, the variants
    trained beside C3's seed 0."""
    outcomes = [speed_outcome("f", "torch", "mnist", "linear-recurrent", "favor", 16.0, 0.5, feature_map="favor"),
                speed_outcome("p1", "torch", "mnist", "softmax-cached", "par", 20.0, 0.4, layer_pattern="afafafff"),
                speed_outcome("p2", "torch", "mnist", "linear-recurrent", "par", 10.0, 0.3, layer_pattern="afafafff"),
                train_outcome("linear-favor", "linear", 0, 5.4), train_outcome("softmax-par", "softmax", 0, 5.5, pattern="af")]
    beyond.summarise(summary, outcomes, None)


def test_beyond_results_are_shown_in_three_tables(tmp_path):
    folder = copy_results(tmp_path, edit=with_beyond)
    build_report(folder, folder / "report.pdf")
    for label in ("<favor>", "<par>", "<variants>"):
        assert len(query(folder, label)) == 1, label
    data = json.loads((folder / BUILD / DATA).read_text())
    summary = json.loads((folder / "summary.json").read_text())
    lin = next(r for r in summary["latency"] if r["backend"] == "torch" and r["mode"] == "linear-recurrent")
    assert data["beyond"]["favor"]["rows"][0][3:6] == [fmt(lin["seconds_per_image"], " s"), "16 s",
                                                      fmt(16.0 / lin["seconds_per_image"], "×")]
    assert [r[3] for r in data["beyond"]["par"]["rows"]] == ["afafafff (3 of 8 attend)"] * 2
    assert [r[0] for r in data["beyond"]["variants"]["rows"]] == ["linear-favor", "softmax-par"]
    assert not any(n.startswith(("FAVOR+", "PAR", "Quality of the variants")) for n in query(folder, "<notices>")[0]["value"])
    assert data["discussion"]["beyond_favor"].startswith("With PyTorch at batch 1, linear-recurrent generation with FAVOR+")


def test_failed_beyond_runs_yield_explicit_not_run_texts(tmp_path):
    folder = copy_results(tmp_path, edit=failed_beyond)
    build_report(folder, folder / "report.pdf")
    notices = [n for n in query(folder, "<notices>")[0]["value"] if " not run: " in n]
    why = {n.split(" not run: ")[0]: n.split(" not run: ")[1] for n in notices}
    favor, par = why["FAVOR+ generation speed"], why["PAR generation speed"]
    assert favor.startswith("PyTorch mnist: ") and favor.endswith("FAVOR+: failed (boom).")
    assert "PyTorch mnist softmax-cached: PAR: measured but left out (contended in all 3 attempts (1.5 cores))" in par
    assert why["Quality of the variants"] == "linear-favor: failed (worker exited with 1: boom)."
    shown = " ".join(texts(query(folder, "<notice>")))
    for part in ("FAVOR+ generation speed", "PAR generation speed", "Quality of the variants"):
        assert f"{part} not run: {why[part]}" in shown, part


def test_a_run_without_beyond_results_says_so(tmp_path):
    folder = copy_results(tmp_path, edit=lambda s: s.pop("beyond", None))
    build_report(folder, folder / "report.pdf")
    notices = query(folder, "<notices>")[0]["value"]
    for part in ("FAVOR+ generation speed", "PAR generation speed", "Quality of the variants"):
        assert f"{part} not run: {beyond.NO_SUMMARY}." in notices, part


def test_the_report_command_rebuilds_the_pdf(tmp_path, capsys):
    folder = copy_results(tmp_path, edit=nothing_measured)  # no figures to draw: quick
    out = tmp_path / "x.pdf"
    assert main(["report", "--results", str(folder), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"report": str(out)}
    assert out.read_bytes().startswith(b"%PDF")


def test_the_report_command_refuses_a_folder_without_results_in_one_line(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "x.pdf")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "summary.json" in err
    assert not (tmp_path / "x.pdf").exists()
    with pytest.raises(ReportError, match="no summary.json"):
        build_report(tmp_path, tmp_path / "x.pdf")


def test_figures_are_deterministic_and_absent_without_data(tmp_path):
    summary = json.loads((SMALL / "summary.json").read_text())
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for draw in (generation.throughput_figure, scaling.scaling_figure):
        name = draw(summary, a)
        assert draw(summary, b) == name and (a / name).read_bytes() == (b / name).read_bytes(), name
    empty = {"throughput": [], "latency": [], "quality": {"runs": {}}, "scaling": [], "compute": []}
    assert set(make_figures(empty, load_paper(), a).values()) == {None}


def test_lines_of_code_are_counted_without_blank_and_comment_lines(tmp_path):
    (tmp_path / "a.py").write_text("# comment\n\nx = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jl").write_text("f(x) = x\n    # indented comment\n")
    (tmp_path / "notes.txt").write_text("not code\n")
    assert count_lines(tmp_path) == (2, 5, 2)
