"""Study profiles (smoke, cpu, paper) as TOML under configs/profiles/: every setting in one place,
each with its source in a `sources` table beside it."""

from __future__ import annotations

import tomllib
from pathlib import Path

PROFILES = Path(__file__).resolve().parent / "configs" / "profiles"
SECTIONS = ("study", "throughput", "latency", "uncached_validation", "quality", "scaling", "samples", "beyond")


class ProfileError(ValueError):
    pass


def profile_names():
    return sorted(p.stem for p in PROFILES.glob("*.toml"))


def load_profile(name_or_path) -> dict:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES / f"{name_or_path}.toml"
    if not path.is_file():
        raise ProfileError(f"unknown profile {name_or_path!r}; choose one of {profile_names()} or give a .toml path")
    with open(path, "rb") as f:
        try:
            profile = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ProfileError(f"{path}: {e}") from None
    missing = [s for s in SECTIONS if s not in profile]
    if missing:
        raise ProfileError(f"{path} lacks the section(s) {missing}; see configs/profiles/cpu.toml")
    profile["name"] = path.stem
    return profile


def hyperparameter_table(profile) -> list[dict]:
    """Every setting with its value and source, for the report's hyperparameter table."""
    rows = []

    def add(section, values, prefix=""):
        sources = values.get("sources", {})
        for key, value in values.items():
            if isinstance(value, dict) and key != "sources":  # a nested table: [quality.model]
                add(section, value, f"{prefix}{key}.")
            elif key != "sources":
                rows.append({"section": section, "name": prefix + key, "value": value,
                             "source": sources.get(key, "our choice")})

    for section in SECTIONS:
        add(section, profile[section])
    return rows


def settings(profile, section) -> dict:
    """A section's values without its `sources` tables (a nested table, such as [quality.model],
    loses its own too): what the code runs with."""
    return {k: ({kk: vv for kk, vv in v.items() if kk != "sources"} if isinstance(v, dict) else v)
            for k, v in profile[section].items() if k != "sources"}
