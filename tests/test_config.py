"""Tests of kdrepro.config: schema validation, defaults and the checks the schema cannot make."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kdrepro.config import ConfigError, validate_config
from kdrepro.plan import merge_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def paper_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("profile", ["config.yaml", "quick.yaml"])
def test_committed_profiles_are_valid(profile):
    path = ROOT / "config" / profile
    overlay = yaml.safe_load(path.read_text(encoding="utf-8"))
    validate_config(merge_config(paper_config(), overlay), SCHEMA)


def test_missing_keys_get_the_schemas_defaults():
    config = validate_config({}, SCHEMA)
    assert config["keep"]["sweep"] == {"start": -15.0, "stop": 2.0, "step": 0.25}
    assert config["omit"]["paper_shift"] == 3.5


@pytest.mark.parametrize("kind,sweep,needle", [
    ("omit", {"start": 10, "stop": -2, "step": 0.25}, "expected start < stop"),
    ("keep", {"start": 1, "stop": 1, "step": 0.25}, "expected start < stop"),
    ("omit", {"start": 0, "stop": 1, "step": 2}, "expected 0 < step <= stop - start (1)"),
    ("keep", {"start": -2, "stop": 1, "step": 0}, "step"),
    ("omit", {"start": -2, "stop": 1, "step": -0.5}, "step"),
], ids=["inverted", "empty", "step-past-range", "zero-step", "negative-step"])
def test_inverted_or_empty_bias_sweep_is_one_line_naming_the_key(kind, sweep, needle):
    config = paper_config()
    config[kind]["sweep"] = sweep
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    message = str(info.value)
    assert f"'{kind}.sweep" in message and needle in message and "\n" not in message


def test_a_sweep_of_exactly_two_shifts_is_accepted():
    config = paper_config()
    config["omit"]["sweep"] = {"start": 0, "stop": 1, "step": 1}
    assert validate_config(config, SCHEMA)["omit"]["sweep"]["step"] == 1


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown config key 'mnist_folder'"):
        validate_config({"mnist_folder": "/tmp"}, SCHEMA)
