"""Find a backend by name. Each is imported only when asked for, and only one per process
(juliacall, torch and jax in one process are a known source of crashes: notes/julia.md section 3)."""

from __future__ import annotations

import importlib

BACKENDS = ("torch", "jax", "julia")


class BackendUnavailable(RuntimeError):
    """The backend cannot run here; the message says why and how to make it available."""


def get_backend(name: str):
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
    try:
        return importlib.import_module(f"linattn.{name}_backend")
    except ModuleNotFoundError as e:
        raise BackendUnavailable(
            f"backend {name!r} needs the Python package {e.name!r}, which is not installed; "
            "run `make setup` (or `pip install -r requirements.txt`)"
        ) from None
