"""Configurations and checkpoints that cannot work are refused with a message naming the field."""

import dataclasses
import json

import numpy as np
import pytest

from conftest import FIXTURES
from linattn.config import ConfigError, ModelConfig, check_mode
from linattn.weights import check_params, init_params, is_trained, load_checkpoint, param_shapes, save_checkpoint


@pytest.mark.parametrize(
    "fields, words",
    [
        (dict(n_heads=3), ["n_heads=3", "d_model=256", "allowed"]),
        (dict(n_layers=0), ["n_layers", ">= 1"]),
        (dict(d_model=-4), ["d_model", ">= 1"]),
        (dict(n_mixtures=0), ["n_mixtures"]),
        (dict(head="gaussian"), ["head", "mixture", "categorical"]),
        (dict(attention="sparse"), ["attention", "softmax", "linear"]),
        (dict(image_shape=(28, 28)), ["image_shape"]),
        (dict(image_shape=(28, 0, 1)), ["image_shape width"]),
        (dict(d_model=18, n_heads=2), ["multiple of 4"]),
        (dict(dropout=1.5), ["dropout"]),
        (dict(feature_map="relu"), ["feature_map", "elu", "favor"]),
        (dict(feature_map="favor", n_features=0), ["n_features", ">= 1"]),
        (dict(attention="softmax", feature_map="favor"), ["feature_map='favor'", "attention='linear'", "elu"]),
        (dict(n_layers=3, layer_pattern="af"), ["layer_pattern", "n_layers=3", "'afa'", "got 'af'"]),
        (dict(n_layers=2, layer_pattern="ax"), ["layer_pattern", "'a'", "'f'", "got 'ax'"]),
        (dict(n_layers=2, layer_pattern=["a", "f"]), ["layer_pattern", "got ['a', 'f']"]),
    ],
)
def test_bad_config_is_refused_with_field_and_allowed_values(fields, words):
    with pytest.raises(ConfigError) as e:
        ModelConfig(**fields)
    for w in words:
        assert w in str(e.value)


def test_unknown_field_is_refused():
    with pytest.raises(ConfigError, match="n_layer"):
        ModelConfig.from_dict({"n_layer": 3})


def test_unknown_mode_and_mismatched_mode_are_refused():
    with pytest.raises(ConfigError, match="linear-recurrent"):
        check_mode("fast", ModelConfig())
    with pytest.raises(ConfigError, match="attention='softmax'"):
        check_mode("softmax-cached", ModelConfig(attention="linear"))


def test_a_config_json_without_the_later_fields_loads_with_their_defaults():
    """Checkpoints written before feature_map and n_features existed (as the first fixtures) hold
    the elu model and load as it, unchanged."""
    d = json.loads((FIXTURES / "linear_mixture_gray" / "config.json").read_text())
    assert "feature_map" not in d and "n_features" not in d and "layer_pattern" not in d
    config, params = load_checkpoint(FIXTURES / "linear_mixture_gray")
    assert config.feature_map == "elu" and config.attention_kind == "linear" and config.d_feature == config.d_head
    assert config.layer_pattern == "" and config.n_attention_layers == config.n_layers
    assert not any(n.endswith("feature_projection") for n in params)


def test_favor_weights_have_one_fixed_projection_per_layer():
    config = ModelConfig(n_layers=3, n_heads=4, d_model=32, feature_map="favor", n_features=20)
    shapes = param_shapes(config)
    fixed = [n for n in shapes if not is_trained(n)]
    assert fixed == [f"layers.{i}.attn.feature_projection" for i in range(3)]
    assert {shapes[n] for n in fixed} == {(20, 8)}
    assert config.attention_kind == "linear-favor" and config.d_feature == 20
    assert all(is_trained(n) for n in param_shapes(ModelConfig()))
    with pytest.raises(ConfigError, match="feature_projection"):  # an elu checkpoint read as FAVOR+
        check_params(config, init_params(dataclasses.replace(config, feature_map="elu")))


def test_par_feed_forward_layers_have_no_attention_weights():
    """A layer_pattern's "f" layers hold norm2, ff1 and ff2 alone; "a" layers all of a layer."""
    config = ModelConfig(n_layers=3, n_heads=2, d_model=8, layer_pattern="faa", feature_map="favor", n_features=4)
    shapes = param_shapes(config)
    assert sorted(n for n in shapes if n.startswith("layers.0.")) == [
        f"layers.0.{n}.{w}" for n in ("ff1", "ff2", "norm2") for w in ("bias", "weight")]
    full = {n.removeprefix("layers.1.") for n in shapes if n.startswith("layers.1.")}
    assert full == {n.removeprefix("layers.2.") for n in shapes if n.startswith("layers.2.")}
    assert {"attn.q.weight", "attn.feature_projection", "norm1.weight", "ff1.weight"} <= full
    assert [config.has_attention(i) for i in range(3)] == [False, True, True] and config.n_attention_layers == 2
    assert ModelConfig(n_layers=2).n_attention_layers == 2  # no pattern: every layer attends
    with pytest.raises(ConfigError, match="layers.0.attn"):  # a full model's weights read as PAR
        check_params(config, init_params(dataclasses.replace(config, layer_pattern="")))


def test_checkpoint_round_trip(tmp_path):
    config = ModelConfig(n_layers=1, d_model=8, n_heads=2, image_shape=(2, 2, 3))
    params = init_params(config, 3)
    save_checkpoint(tmp_path / "ck", config, params)
    config2, params2 = load_checkpoint(tmp_path / "ck")
    assert config2 == config
    assert params2.keys() == params.keys()
    for n in params:
        np.testing.assert_array_equal(params[n], params2[n])
    assert not list((tmp_path / "ck").glob(".*tmp"))  # no temporary files left behind


def test_checkpoint_with_wrong_shapes_is_refused(tmp_path):
    config = ModelConfig(n_layers=1, d_model=8, n_heads=2)
    save_checkpoint(tmp_path / "ck", config, init_params(config))
    (tmp_path / "ck" / "config.json").write_text(json.dumps({**config.to_dict(), "n_layers": 2}))
    with pytest.raises(ConfigError, match="missing"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text(json.dumps({**config.to_dict(), "d_model": 16}))
    with pytest.raises(ConfigError, match="shape"):
        load_checkpoint(tmp_path / "ck")


def test_missing_or_corrupt_checkpoint_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text(json.dumps(ModelConfig().to_dict()))
    with pytest.raises(ConfigError, match="no weights.npz"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "weights.npz").write_text("<html>not found</html>")
    with pytest.raises(ConfigError, match="not a readable .npz"):
        load_checkpoint(tmp_path / "ck")
