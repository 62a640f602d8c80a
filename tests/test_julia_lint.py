"""fatou (a Julia linter that never runs Julia) over julia/, with the semantic rules of
julia/fatou.toml: undefined names, call arities, imports that are not dependencies, and more.

fatou resolves names across the package's included files, but skips undefined-name in
test/runtests.jl (it cannot resolve `using Test`); tests/test_julia_static.py covers that file.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as vendored by pip
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
JULIA = ROOT / "julia"
CONFIG = JULIA / "fatou.toml"
SEMANTIC_RULES = {
    "undefined-name", "call-arity", "unresolved-import", "function-has-no-methods", "non-public-access",
    "invalid-type-declaration", "type-piracy", "unresolved-docstring-reference", "test-bare-expression",
}


def fatou_exe() -> str:
    exe = Path(sys.executable).with_name("fatou")
    found = str(exe) if exe.is_file() else shutil.which("fatou")
    assert found, "fatou is not installed: pip install -r requirements.txt"
    return found


def lint(folder: Path, config: Path = CONFIG):
    """fatou's findings on `folder` as (rule, path relative to folder) pairs, and its stderr."""
    proc = subprocess.run([fatou_exe(), "lint", "--config", str(config), "--output", "json", "--color", "never",
                           str(folder)], capture_output=True, text=True, timeout=300)
    findings = json.loads(proc.stdout)
    assert (proc.returncode != 0) == bool(findings), proc.stderr
    return [(f["rule"], Path(f["path"]).relative_to(folder).as_posix()) for f in findings], proc.stderr


def test_config_turns_on_the_semantic_rules():
    config = tomllib.loads(CONFIG.read_text())
    assert config["julia"]["version"] == "1.10"
    assert set(config["lint"]["extend-select"]) == SEMANTIC_RULES


def test_julia_package_is_clean():
    findings, stderr = lint(JULIA)
    assert findings == []
    assert "unknown rule" not in stderr  # fatou only warns about a misspelt rule name


@pytest.fixture()
def planted(tmp_path):
    """A copy of julia/ with an undefined name and a wrong arity in src/, a syntax error in test/."""
    copy = tmp_path / "julia"
    shutil.copytree(JULIA, copy)
    with open(copy / "src" / "attention.jl", "a") as f:
        f.write("\nplanted_undefined(x) = x + not_defined_anywhere\nplanted_arity(x) = heads_to_batch(x, 2)\n")
    with open(copy / "test" / "runtests.jl", "a") as f:
        f.write("\nplanted_unclosed = (1 +\n")
    return copy


def test_lint_catches_planted_faults(planted):
    findings, _ = lint(planted, planted / "fatou.toml")
    assert ("undefined-name", "src/attention.jl") in findings
    assert ("call-arity", "src/attention.jl") in findings
    assert ("parse-error", "test/runtests.jl") in findings
    assert {rule for rule, _ in findings} == {"undefined-name", "call-arity", "parse-error"}


def test_lint_without_the_config_misses_them(planted):
    """The rules that catch the faults are the config's, not fatou's defaults."""
    proc = subprocess.run([fatou_exe(), "lint", "--no-config", "--output", "json", str(planted / "src")],
                          capture_output=True, text=True, timeout=300)
    findings = [f["rule"] for f in json.loads(proc.stdout)]
    assert "undefined-name" not in findings and "call-arity" not in findings
