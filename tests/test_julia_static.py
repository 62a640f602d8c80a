"""Checks of the Julia side that need no Julia and that fatou (tests/test_julia_lint.py) does not
make, so they run everywhere (CI included):

- test/runtests.jl, where fatou skips undefined names (it cannot resolve `using Test`): every
  package it loads is declared, every name it takes from LinAttn exists there;
- every dependency is used, registered under its uuid and has a [compat] entry;
- the uuid of julia/Project.toml is the one in python/linattn/juliapkg.json, whose path the Julia
  backend resolves at run time (refusing in one line outside a source checkout);
- the Julia functions of DESIGN section 3 exist under the names of their Python twins (a trailing
  `!` allowed: Julia's mark of a function that updates its arguments, here the recurrent state),
  and no file mixes look-alike letters (φ/ϕ, ε/ϵ);
- linattn.julia_backend offers the backend API, calls only Julia functions that exist, and says
  "Julia not found" before importing juliacall.

tree-sitter-julia gives the syntax trees; fatou checks parsing, undefined names, arities and the
imports of julia/src.
"""

import ast
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import tree_sitter_julia

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as vendored by pip
    from pip._vendor import tomli as tomllib
from tree_sitter import Language, Parser

ROOT = Path(__file__).resolve().parents[1]
needs_posix = pytest.mark.skipif(os.name == "nt", reason="fake julia executables are shell scripts")
JULIA = ROOT / "julia"
PYTHON = ROOT / "python" / "linattn"
JL_FILES = sorted(JULIA.rglob("*.jl"))
SRC_FILES = sorted((JULIA / "src").glob("*.jl"))
PROJECT = tomllib.loads((JULIA / "Project.toml").read_text())
PARSER = Parser(Language(tree_sitter_julia.language()))

# Julia's standard libraries (1.10): no registry needed, yet a package must still declare them.
STDLIBS = {
    "ArgTools", "Artifacts", "Base64", "CRC32c", "Dates", "DelimitedFiles", "Distributed", "Downloads",
    "FileWatching", "Future", "InteractiveUtils", "LazyArtifacts", "LibCURL", "LibGit2", "Libdl",
    "LinearAlgebra", "Logging", "Markdown", "Mmap", "NetworkOptions", "Pkg", "Printf", "Profile", "REPL",
    "Random", "SHA", "Serialization", "SharedArrays", "Sockets", "SparseArrays", "Statistics",
    "SuiteSparse", "TOML", "Tar", "Test", "UUIDs", "Unicode",
}
BUILTIN_MODULES = {"Base", "Core", "Main"}

# uuids from each package's own Project.toml (Flux v0.16.11, NNlib v0.9.36, Optimisers v0.4.8,
# Zygote v0.7.12, NPZ v0.4.3, JSON v1.7.0) and Julia's stdlibs.
REGISTERED = {
    "ChainRulesCore": "d360d2e6-b24c-11e9-a2a3-2a2ae2dbcce4",
    "Flux": "587475ba-b771-5e3f-ad9e-33799f191a9c",
    "JSON": "682c06a0-de6a-54ab-a142-c8b1cf79cde6",
    "LinearAlgebra": "37e2e46d-f89d-539d-b4ee-838fcccc9c8e",
    "NNlib": "872c559c-99b0-510c-b3b7-b6c96a88d5cd",
    "NPZ": "15e1cf62-19b3-5cfa-8e77-841668bca605",
    "Optimisers": "3bd65402-5787-11e9-1adc-39752487f4e2",
    "Random": "9a3f8284-a2c9-5f02-9a11-845980a1fd5c",
    "Statistics": "10745b16-79ce-11e8-11f9-7d13ad32a3b2",
    "Test": "8dfed614-e22c-5e08-85e1-65c5234f0b40",
    "Zygote": "e88e6eb3-aa80-5325-afca-941959d7151f",
}

# Julia twin -> the Python file that defines the same name (DESIGN sections 3 and 4).
TWINS = {
    "elu_feature_map": "torch_backend/attention.py",
    "favor_feature_map": "torch_backend/attention.py",
    "favor_projection": "weights.py",
    "softmax_attention": "torch_backend/attention.py",
    "softmax_attention_chunked": "torch_backend/attention.py",
    "softmax_attention_recurrent": "torch_backend/attention.py",
    "linear_attention": "torch_backend/attention.py",
    "linear_attention_recurrent": "torch_backend/attention.py",
    "input_tokens": "reference.py",
    "position_code": "reference.py",
    "forward": "reference.py",
    "forward_step": "reference.py",
    "empty_state": "reference.py",
    "split_mixture": "reference.py",
    "log_prob": "reference.py",
    "bits_per_dim": "reference.py",
    "sample_from_head": "reference.py",
    "generate": "reference.py",
    "nats_per_dim": "torch_backend/loss.py",
    "make_optimizer": "torch_backend/train.py",
    "train_step": "torch_backend/train.py",
    "param_shapes": "weights.py",
    "check_params": "weights.py",
    "load_checkpoint": "weights.py",
    "save_checkpoint": "weights.py",
}


# --- helpers on the syntax tree --------------------------------------------------------------------


def walk(node):
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def _package(node) -> str | None:
    """The top-level module named by one item of a using/import statement (None: a relative one)."""
    if node.type in ("selected_import", "import_alias"):
        return _package(node.named_children[0])
    text = node.text.decode()
    return None if text.startswith(".") else text.split(".")[0]


def imported_packages(source: bytes) -> set[str]:
    """Top-level modules of every `using` and `import` statement."""
    names = set()
    for node in walk(PARSER.parse(source).root_node):
        if node.type in ("using_statement", "import_statement"):
            names |= {_package(c) for c in node.named_children} - {None}
    return names


def _callee_name(node) -> str | None:
    """The function name of a definition's left-hand side: f(x), f(x)::T, f(x) where T, M.f(x)."""
    while node.type in ("where_expression", "typed_expression", "signature"):
        node = node.named_children[0]
    if node.type != "call_expression":
        return None
    callee = node.named_children[0]
    if callee.type == "field_expression":  # Optimisers.apply!(...) extends another module's function
        callee = callee.named_children[-1]
    return callee.text.decode() if callee.type == "identifier" else None


def top_level_definitions(source: bytes) -> set[str]:
    """Names of functions, structs, abstract types and consts defined at the top of a file or of its
    module (not local helpers inside functions)."""
    root = PARSER.parse(source).root_node
    items = []
    for node in root.named_children:
        items += node.named_children if node.type == "module_definition" else [node]
    names = set()
    for node in items:
        if node.type == "macrocall_expression":  # Base.@kwdef struct ...
            items += [c for c in node.named_children if c.type == "macro_argument_list"]
            continue
        if node.type == "macro_argument_list":
            items += node.named_children
            continue
        if node.type == "function_definition":
            name = _callee_name(node.named_children[0])
        elif node.type == "assignment":
            name = _callee_name(node.named_children[0])
        elif node.type in ("struct_definition", "abstract_definition"):
            head = node.named_children[0] if node.named_children[0].type == "type_head" else node.named_children[1]
            name = head.text.decode().split("{")[0].split("<:")[0].strip()
        elif node.type == "const_statement":
            name = node.named_children[0].named_children[0].text.decode()
        else:
            continue
        if name:
            names.add(name)
    return names


def exported_names(source: bytes) -> set[str]:
    return {
        c.text.decode()
        for n in walk(PARSER.parse(source).root_node)
        if n.type == "export_statement"
        for c in n.named_children
    }


def julia_definitions() -> set[str]:
    return set().union(*(top_level_definitions(f.read_bytes()) for f in SRC_FILES))


def python_functions(path: Path) -> set[str]:
    return {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}


# --- files and letters ----------------------------------------------------------------------------------


def test_there_are_julia_files():
    names = {f.relative_to(JULIA).as_posix() for f in JL_FILES}
    assert {"src/LinAttn.jl", "test/runtests.jl"} <= names


LOOK_ALIKES = [("φ", "ϕ"), ("ε", "ϵ")]  # distinct identifiers in Julia (notes/julia.md)


@pytest.mark.parametrize("path", JL_FILES, ids=lambda p: p.relative_to(JULIA).as_posix())
def test_no_look_alike_identifiers_mixed(path):
    names = {n.text.decode() for n in walk(PARSER.parse(path.read_bytes()).root_node) if n.type == "identifier"}
    for a, b in LOOK_ALIKES:
        both = sorted(n for n in names if a in n or b in n)
        assert not (any(a in n for n in names) and any(b in n for n in names)), f"{a} and {b} both used: {both}"


# --- dependencies --------------------------------------------------------------------------------------


def test_test_imports_are_declared():
    """fatou checks the imports of julia/src; those of julia/test must be deps, test extras or LinAttn."""
    allowed = set(PROJECT["deps"]) | set(PROJECT.get("extras", {})) | BUILTIN_MODULES | {PROJECT["name"]}
    for path in JL_FILES:
        if path.is_relative_to(JULIA / "test"):
            undeclared = imported_packages(path.read_bytes()) - allowed
            assert not undeclared, f"{path.relative_to(ROOT)} loads {sorted(undeclared)}, not in julia/Project.toml"


def test_import_check_sees_imports():
    found = imported_packages(b"using A\nusing B: c, @d\nimport C.D\nimport E as F\nusing ..Local\n")
    assert found == {"A", "B", "C", "E"}


def test_every_dependency_is_used_and_registered():
    used = set().union(*(imported_packages(f.read_bytes()) for f in SRC_FILES))
    assert set(PROJECT["deps"]) <= used, f"declared but never loaded: {sorted(set(PROJECT['deps']) - used)}"
    test_used = imported_packages((JULIA / "test" / "runtests.jl").read_bytes())
    assert set(PROJECT.get("extras", {})) <= test_used
    assert set(PROJECT["targets"]["test"]) == set(PROJECT.get("extras", {}))
    for name, id_ in {**PROJECT["deps"], **PROJECT.get("extras", {})}.items():
        assert REGISTERED.get(name) == id_, f"{name}: uuid {id_} is not the registered one"


def test_every_dependency_has_compat():
    compat = PROJECT["compat"]
    assert "julia" in compat
    packages = (set(PROJECT["deps"]) | set(PROJECT.get("extras", {}))) - STDLIBS
    assert packages <= set(compat), f"no [compat] entry for {sorted(packages - set(compat))}"
    assert set(compat) - {"julia"} <= set(PROJECT["deps"]) | set(PROJECT.get("extras", {}))


@needs_posix
def test_julia_package_outside_a_checkout_is_refused_in_one_line(tmp_path):
    """Installed without the repository (a plain `pip install .`), juliapkg.json's relative path
    leads nowhere: the backend says so in one line before starting Julia."""
    (tmp_path / "juliapkg.json").write_text((PYTHON / "juliapkg.json").read_text())
    exe = tmp_path / "julia"
    exe.write_text("#!/bin/sh\necho 'julia version 1.10.4'\n")
    exe.chmod(0o755)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import linattn.julia_backend as jb\n"
        "print(jb.julia_package_dir())\n"
        "try:\n    jb.julia_package_dir(Path(sys.argv[1]) / 'juliapkg.json')\n"
        "except jb.BackendUnavailable as e:\n    print('REFUSED:', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON_JULIA")}
    env["PYTHON_JULIAPKG_EXE"] = str(exe)
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    found, refused = proc.stdout.splitlines()
    assert Path(found) == JULIA.resolve()
    assert refused.startswith("REFUSED: the Julia package LinAttn is not at") and "pip install -e ." in refused


def test_juliapkg_json_develops_this_package():
    spec = json.loads((PYTHON / "juliapkg.json").read_text())
    pkg = spec["packages"][PROJECT["name"]]
    assert pkg["uuid"] == PROJECT["uuid"]
    assert uuid.UUID(PROJECT["uuid"]).version == 4
    assert pkg["dev"] is True and "version" not in pkg
    assert (PYTHON / pkg["path"]).resolve() == JULIA.resolve()
    assert PROJECT["name"] == "LinAttn" and (JULIA / "src" / "LinAttn.jl").is_file()


# --- names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TWINS))
def test_julia_twin_exists_with_the_python_name(name):
    assert name in python_functions(PYTHON / TWINS[name]), f"{name} is not defined in python/linattn/{TWINS[name]}"
    defined = julia_definitions()
    assert name in defined or f"{name}!" in defined, f"no Julia function {name} (or {name}!) in julia/src"


def test_definition_finder_sees_definitions():
    code = b"""
    module M
    f(x) = x
    g(x)::Int = 1
    h(x::T) where {T} = x
    function k!(x) end
    M2.apply!(x) = x
    struct S{T} <: Any
        a::T
    end
    Base.@kwdef struct K
        a::Int = 1
    end
    abstract type A{T} <: Any end
    const C = 1
    function outer()
        inner(y) = y
    end
    end
    """
    assert top_level_definitions(code) == {"f", "g", "h", "k!", "apply!", "S", "K", "A", "C", "outer"}


def linattn_names_used(source: bytes) -> set[str]:
    """Names a file takes from LinAttn: `using LinAttn: a, b` and qualified `LinAttn.c`."""
    names = set()
    for node in walk(PARSER.parse(source).root_node):
        if node.type == "selected_import" and node.named_children[0].text == b"LinAttn":
            names |= {c.text.decode() for c in node.named_children[1:]}
        elif node.type == "field_expression" and node.named_children[0].text == b"LinAttn":
            names.add(node.named_children[-1].text.decode())
    return names


def test_runtests_takes_only_names_that_exist():
    """fatou skips undefined names in test/runtests.jl: the names it takes from LinAttn, by import or
    qualified, and the exported functions it calls must be defined in julia/src."""
    source = (JULIA / "test" / "runtests.jl").read_bytes()
    used = linattn_names_used(source)
    assert {"KVCache", "TorchRAdam"} <= used
    assert used <= julia_definitions(), f"not defined in julia/src: {sorted(used - julia_definitions())}"
    exported = exported_names((JULIA / "src" / "LinAttn.jl").read_bytes())
    called = {_callee_name(n) for n in walk(PARSER.parse(source).root_node) if n.type == "call_expression"}
    assert {"time_window", "time_attention_peak", "load_checkpoint"} <= called & exported


def test_linattn_name_finder_sees_names():
    code = b"using LinAttn: A, b!\nx = LinAttn.c(1)\nusing Other: d\ny = Other.e\n"
    assert linattn_names_used(code) == {"A", "b!", "c"}


def test_exports_are_defined():
    exported = exported_names((JULIA / "src" / "LinAttn.jl").read_bytes())
    assert exported and exported <= julia_definitions(), f"exported but undefined: {sorted(exported - julia_definitions())}"


def test_julia_kinds_offer_what_the_scaling_study_plans():
    """The Julia twin of tests/test_backends.py's check: the names of julia/src's KINDS table (read
    from the source) include every kind the scaling study plans for the Julia backend, which its
    `time_attention` accepts by that list."""
    source = (JULIA / "src" / "attention.jl").read_text()
    table = re.search(r"^const KINDS = Dict\{String,AttentionKind\}\((.*?)\)$", source, re.M | re.S)
    assert table, "no `const KINDS = Dict{String,AttentionKind}(...)` in julia/src/attention.jl"
    names = set(re.findall(r'"([\w-]+)" =>', table.group(1)))
    from linattn.backends import TIME_ATTENTION_KINDS

    assert {"softmax", "linear"} <= names
    assert set(TIME_ATTENTION_KINDS["julia"]) <= names, f"planned for julia but not in its KINDS: {sorted(set(TIME_ATTENTION_KINDS['julia']) - names)}"
    assert "TIME_ATTENTION_KINDS[NAME]" in (PYTHON / "julia_backend.py").read_text()


def test_backend_module_offers_the_backend_api():
    """Every method of the protocol linattn.backends.Backend, with the same parameters (read from
    the source: importing julia_backend would look for Julia)."""
    protocol = next(n for n in ast.parse((PYTHON / "backends.py").read_text()).body
                    if isinstance(n, ast.ClassDef) and n.name == "Backend")
    api = {f.name: [a.arg for a in f.args.args[1:]] for f in protocol.body if isinstance(f, ast.FunctionDef)}
    assert {"prepare", "generate", "timed_generate", "time_window", "time_attention", "set_threads"} <= set(api)
    tree = ast.parse((PYTHON / "julia_backend.py").read_text())
    defined = {n.name: [a.arg for a in n.args.args] for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert set(api) <= set(defined), f"missing: {sorted(set(api) - set(defined))}"
    for name, params in api.items():
        assert defined[name] == params, f"julia_backend.{name}{tuple(defined[name])} != Backend.{name}{tuple(params)}"
    assigned = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert "NAME" in assigned


def test_backend_module_calls_only_julia_functions_that_exist():
    source = (PYTHON / "julia_backend.py").read_text()
    called = set(re.findall(r"\bL\.(\w+)\(", source))
    assert {"model_from_params", "generate", "timed_generate", "time_window", "time_attention_peak"} <= called
    assert called <= julia_definitions() | {"info"}, f"not defined in julia/src: {sorted(called - julia_definitions())}"


def test_only_the_julia_backend_imports_juliacall():
    importers = [
        p.relative_to(ROOT).as_posix()
        for base in (ROOT / "python", ROOT / "replication", ROOT / "tests")
        for p in base.rglob("*.py")
        if re.search(r"^\s*(import juliacall|from juliacall)", p.read_text(), re.M)
    ]
    assert importers == ["python/linattn/julia_backend.py"]


# --- finding Julia, without Julia ---------------------------------------------------------------------

def fake_julia(tmp_path, version):
    exe = tmp_path / "julia"
    exe.write_text(f"#!/bin/sh\necho 'julia version {version}'\n")
    exe.chmod(0o755)
    return exe


def run_python(code, **env):
    """Run `code` in a fresh interpreter (the backend module looks for Julia when imported)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON_JULIA")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=120)


def test_missing_julia_is_reported_before_juliacall_is_imported(tmp_path):
    code = (
        "import sys\n"
        "from linattn.backends import BackendUnavailable, get_backend\n"
        "try:\n    get_backend('julia')\nexcept BackendUnavailable as e:\n    print('UNAVAILABLE:', e)\n"
        "print('juliacall imported:', 'juliacall' in sys.modules)\n"
    )
    proc = run_python(code, PYTHON_JULIAPKG_EXE=str(tmp_path / "no-such-julia"))
    assert proc.returncode == 0, proc.stderr
    assert "UNAVAILABLE: Julia not found" in proc.stdout
    assert "conda env create -f environment.yml" in proc.stdout and "juliaup" in proc.stdout
    assert "juliacall imported: False" in proc.stdout
    assert proc.stdout.count("\n") == 2  # one line each: the CLI prints errors as one line


@needs_posix
def test_old_julia_is_refused(tmp_path):
    exe = fake_julia(tmp_path, "1.9.4")
    proc = run_python("import linattn.julia_backend", PYTHON_JULIAPKG_EXE=str(exe))
    assert proc.returncode != 0 and "Julia 1.9.4" in proc.stderr and "too old" in proc.stderr


@needs_posix
def test_julia_found_and_refused_beside_torch(tmp_path):
    """With a (fake) Julia the module imports without starting it; its first Julia call refuses a
    process that already holds torch, before juliacall is imported."""
    exe = fake_julia(tmp_path, "1.10.4")
    code = (
        "import sys, types\n"
        "import linattn.julia_backend as jb\n"
        "print('exe:', jb.JULIA_EXE)\n"
        "sys.modules['torch'] = types.ModuleType('torch')\n"
        "try:\n    jb.info()\nexcept jb.BackendUnavailable as e:\n    print('REFUSED:', e)\n"
        "print('juliacall imported:', 'juliacall' in sys.modules)\n"
    )
    proc = run_python(code, PYTHON_JULIAPKG_EXE=str(exe))
    assert proc.returncode == 0, proc.stderr
    assert f"exe: {exe}" in proc.stdout
    assert "REFUSED: the Julia backend must run in its own process" in proc.stdout
    assert "juliacall imported: False" in proc.stdout


@needs_posix
def test_find_julia_looks_on_path_and_in_juliaup(tmp_path):
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "import linattn.julia_backend as jb\n"
        "home, bin_ = Path(sys.argv[1]), sys.argv[2]\n"
        "print(json.dumps([jb.find_julia({'PATH': bin_}, prefix=str(home), home=home)[0],\n"
        "                  jb.find_julia({'PATH': str(home)}, prefix=str(home), home=home)[0],\n"
        "                  jb.julia_version(bin_ + '/julia')]))\n"
    )
    on_path = fake_julia(tmp_path, "1.10.4")
    home = tmp_path / "home"
    juliaup = home / ".juliaup" / "bin"
    juliaup.mkdir(parents=True)
    fake_julia(juliaup, "1.11.2")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON_JULIA")}
    full_env["PYTHON_JULIAPKG_EXE"] = str(on_path)  # lets the module import; find_julia gets its own env
    proc = subprocess.run([sys.executable, "-c", code, str(home), str(tmp_path)], env=full_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [str(on_path), str(juliaup / "julia"), [1, 10, 4]]


# --- make julia-check --------------------------------------------------------------------------------


def test_julia_check_without_julia_says_so_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON_JULIA")}
    env["PYTHON_JULIAPKG_EXE"] = str(tmp_path / "no-such-julia")
    proc = subprocess.run([sys.executable, "-m", "replication.julia_check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("julia-check: Julia not found") and proc.stderr.count("\n") == 1
    assert "juliaup" in proc.stderr and "environment.yml" in proc.stderr


def test_julia_check_table_shows_batch_one_and_the_best_batch():
    from replication.julia_check import table

    def r(batch, ips):
        return {"batch": batch, "images_per_second": ips}

    text = table({("julia", "linear-recurrent"): [r(1, 2.0), r(16, 9.5), r(64, 7.0)],
                  ("torch", "linear-recurrent"): [r(1, 3.0), None]}, "mnist")
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in text.splitlines()[2:]}
    assert rows["julia", "linear-recurrent"] == ["2", "9.5", "(b16)"]
    assert rows["torch", "linear-recurrent"] == ["3", "3", "(b1)"]
    assert rows["jax", "softmax-cached"] == ["-", "-"]


# --- constants defined once: Julia's twins carry Python's values -------------------------------

TWIN_CONSTANTS = ("NORM_EPS", "LINEAR_EPS", "LOG_SCALE_MIN", "SOFTMAX_CHUNK", "START_TOKEN", "VOCAB", "N_FEATURES")
TWIN_NAME_TUPLES = ("ATTENTIONS", "FEATURE_MAPS", "LAYER_LETTERS")


@pytest.mark.parametrize("name", TWIN_CONSTANTS)
def test_julia_constants_equal_the_python_ones(name):
    """linattn.config defines each constant once for Python; the Julia package's `const` of the
    same name must hold the same value (Julia cannot import it)."""
    from linattn import config

    found = [float(m.group(1)) for f in SRC_FILES
             for m in re.finditer(rf"^const {name} = ([-0-9.eE+]+)", f.read_text(), re.M)]
    assert len(found) == 1, f"{name}: expected one `const {name} = <number>` in julia/src, found {found}"
    assert found[0] == float(getattr(config, name)), f"{name}: Julia {found[0]} vs Python {getattr(config, name)}"


@pytest.mark.parametrize("name", TWIN_NAME_TUPLES)
def test_julia_name_tuples_equal_the_python_ones(name):
    """The allowed values of a config field: Julia's `const NAME = ("a", "b")` holds Python's tuple."""
    from linattn import config

    found = [m.group(1) for f in SRC_FILES for m in re.finditer(rf"^const {name} = \(([^)]*)\)", f.read_text(), re.M)]
    assert len(found) == 1, f"{name}: expected one `const {name} = (...)` in julia/src, found {found}"
    assert tuple(re.findall(r'"([^"]*)"', found[0])) == getattr(config, name)
