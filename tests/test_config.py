"""Configurations and checkpoints that cannot work are refused with a message naming the field."""

import json

import numpy as np
import pytest

from linattn.config import ConfigError, ModelConfig, check_mode
from linattn.weights import init_params, load_checkpoint, save_checkpoint


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
