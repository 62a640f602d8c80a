"""Model presets of the paper's sizes, read from configs/models.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from linattn.config import MODES, ModelConfig

CONFIGS = Path(__file__).resolve().parent / "configs"


def model_presets() -> dict:
    with open(CONFIGS / "models.toml", "rb") as f:
        return tomllib.load(f)


MODELS = tuple(model_presets())  # ("mnist", "cifar"): the paper's two image models, in this order


def preset_config(name: str, attention: str, feature_map: str = "elu", layer_pattern: str = "") -> ModelConfig:
    """The paper's `name` ("mnist" or "cifar") model with the given attention kind (and linear
    attention's feature map: "favor" replaces elu + 1 by FAVOR+, with the default n_features; a PAR
    `layer_pattern` of n_layers letters "a"/"f" makes the "f" layers feed-forward only)."""
    presets = model_presets()
    if name not in presets:
        raise KeyError(f"unknown model {name!r}; choose one of {sorted(presets)}")
    fields = {k: v for k, v in presets[name].items() if k != "source"}
    return ModelConfig(attention=attention, feature_map=feature_map, layer_pattern=layer_pattern, **fields)


def config_for_mode(name: str, mode: str, feature_map: str = "elu", layer_pattern: str = "") -> ModelConfig:
    return preset_config(name, MODES[mode], feature_map, layer_pattern)
