"""Tests of kdrepro.training.spec: run specs are validated, one clear line per mistake."""

from __future__ import annotations

import dataclasses
import json

import pytest

from kdrepro.training.engine import TrainConfig
from kdrepro.training.spec import (
    ROLES,
    RunSpec,
    SpecError,
    fingerprint,
    parse_spec,
    spec_from_dict,
)

BASELINE = {"role": "baseline", "hidden": [800, 800]}
DISTILLED = {"role": "distilled", "hidden": [800, 800], "temperature": 20}
TEACHER = {"role": "teacher", "hidden": [1200, 1200], "input_dropout": 0.2,
           "hidden_dropout": 0.5, "max_norm": 3.5, "jitter": 2, "epochs": 60, "lr": 0.02,
           "lr_decay": 0.96, "momentum_start": 0.5, "momentum_end": 0.95,
           "momentum_ramp_epochs": 15, "seed": 1, "device": "cpu"}


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message
    return message


# ---------------------------------------------------------------- valid specs


def test_teacher_spec_round_trips():
    spec = spec_from_dict(TEACHER)
    assert isinstance(spec, RunSpec)
    assert spec.hidden == (1200, 1200) and spec.max_norm == 3.5 and not spec.distilled
    assert spec_from_dict(spec.to_dict()) == spec
    data = spec.to_dict()
    assert data["hidden"] == [1200, 1200] and data["omit"] == [] and data["keep"] == []
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {f.name for f in dataclasses.fields(RunSpec)}


@pytest.mark.parametrize("role", ["distilled", "omit", "keep"])
def test_distilled_roles(role):
    extra = {"omit": [3]} if role == "omit" else {"keep": [7, 8]} if role == "keep" else {}
    spec = spec_from_dict({**DISTILLED, "role": role, **extra})
    assert spec.distilled and spec.temperature == 20
    assert spec.omit == tuple(extra.get("omit", ())) and spec.keep == tuple(extra.get("keep", ()))


def test_train_config_carries_the_optimiser_settings():
    spec = spec_from_dict(TEACHER)
    cfg = spec.train_config()
    assert isinstance(cfg, TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        assert getattr(cfg, f.name) == getattr(spec, f.name), f.name
    assert cfg.jitter == 2 and cfg.epochs == 60 and cfg.momentum_ramp_epochs == 15


def test_defaults():
    spec = spec_from_dict(BASELINE)
    assert spec.seed == 1 and spec.device == "cpu" and spec.temperature is None
    assert spec.omit == () and spec.keep == () and spec.validation_fraction == 0.0


# ---------------------------------------------------------------- invalid specs


def test_unknown_key_is_named():
    with pytest.raises(SpecError) as info:
        spec_from_dict({**BASELINE, "temprature": 20})
    assert "'temprature'" in one_line(info.value)


@pytest.mark.parametrize("missing", ["role", "hidden"])
def test_required_keys(missing):
    data = {k: v for k, v in BASELINE.items() if k != missing}
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    assert f"'{missing}'" in one_line(info.value)


BAD_VALUES = [
    # (base, key, value)
    (DISTILLED, "temperature", 0),
    (DISTILLED, "temperature", -1),
    (DISTILLED, "temperature", "hot"),
    (BASELINE, "epochs", 0),
    (BASELINE, "epochs", 2.5),
    (BASELINE, "lr", -1),
    (BASELINE, "lr", 0),
    (BASELINE, "lr", "fast"),
    (BASELINE, "device", "gpu"),
    (BASELINE, "role", "student"),
    (BASELINE, "hidden", []),
    (BASELINE, "hidden", [800, 0]),
    (BASELINE, "hidden", [800.5]),
    (BASELINE, "hidden", 800),
    (BASELINE, "input_dropout", 1.0),
    (BASELINE, "hidden_dropout", -0.1),
    (BASELINE, "max_norm", 0),
    (BASELINE, "jitter", 9),
    (BASELINE, "jitter", 1.5),
    (BASELINE, "jitter", -1),
    (BASELINE, "batch_size", 0),
    (BASELINE, "lr_decay", 0),
    (BASELINE, "lr_decay", 1.5),
    (BASELINE, "lr_schedule", "linear"),
    (BASELINE, "momentum_start", 1.0),
    (BASELINE, "momentum_end", -0.5),
    (BASELINE, "momentum_ramp_epochs", -1),
    (BASELINE, "weight_decay", -1e-4),
    (BASELINE, "seed", -1),
    (BASELINE, "seed", "one"),
    (DISTILLED, "hard_weight", -1),
    (DISTILLED, "omit", [10]),
    (DISTILLED, "keep", [-1]),
    (DISTILLED, "omit", list(range(10))),
    (BASELINE, "validation_fraction", 1.0),
    (BASELINE, "validation_fraction", -0.1),
    (BASELINE, "validation_seed", -3),
    (BASELINE, "temperature", 20),  # a hard-label role with a temperature
    ({**BASELINE, "role": "teacher"}, "temperature", 4),
]


@pytest.mark.parametrize("base,key,value", BAD_VALUES,
                         ids=[f"{b['role']}-{k}={v!r}" for b, k, v in BAD_VALUES])
def test_out_of_range_value_names_the_key(base, key, value):
    with pytest.raises(SpecError) as info:
        spec_from_dict({**base, key: value})
    assert f"'{key}'" in one_line(info.value)


@pytest.mark.parametrize("role", ["distilled", "omit", "keep"])
def test_distilled_role_without_temperature(role):
    with pytest.raises(SpecError) as info:
        spec_from_dict({"role": role, "hidden": [30, 30]})
    message = one_line(info.value)
    assert "'temperature'" in message and role in message


def test_omit_and_keep_together():
    with pytest.raises(SpecError) as info:
        spec_from_dict({**DISTILLED, "omit": [3], "keep": [7]})
    message = one_line(info.value)
    assert "'omit'" in message and "'keep'" in message


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


def test_roles_are_the_papers():
    assert set(ROLES) == {"teacher", "baseline", "distilled", "omit", "keep"}


# ---------------------------------------------------------------- parse_spec


def test_parse_json_text():
    spec = parse_spec(json.dumps(TEACHER))
    assert spec == spec_from_dict(TEACHER)


def test_parse_json_file(tmp_path):
    path = tmp_path / "teacher.json"
    path.write_text(json.dumps(TEACHER, indent=2))
    assert parse_spec(f"@{path}") == spec_from_dict(TEACHER)


def test_parse_yaml_file(tmp_path):
    path = tmp_path / "distilled.yaml"
    path.write_text("role: distilled\nhidden: [300, 300]\ntemperature: 2.5\n"
                    "omit:\n  - 3\nvalidation_fraction: 0.1\n")
    spec = parse_spec(f"@{path}")
    assert spec.role == "distilled" and spec.hidden == (300, 300)
    assert spec.temperature == 2.5 and spec.omit == (3,) and spec.validation_fraction == 0.1


def test_parse_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        parse_spec(f"@{path}")
    assert str(path) in one_line(info.value)


@pytest.mark.parametrize("text", ['{"role": "teacher", "hidden": [1200', "role: [unclosed",
                                  "a: b: c", "\t{"])
def test_parse_invalid_syntax(text):
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert "JSON/YAML" in one_line(info.value)


@pytest.mark.parametrize("text,kind", [("[1, 2]", "list"), ("42", "int"), ("", "NoneType"),
                                       ('"teacher"', "str")])
def test_parse_non_mapping(text, kind):
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert kind in one_line(info.value)


def test_parse_reports_bad_values_too():
    with pytest.raises(SpecError, match="'epochs'"):
        parse_spec(json.dumps({**BASELINE, "epochs": 0}))


@pytest.mark.parametrize("key, literal", [
    ("weight_decay", "1e-05"), ("weight_decay", "5e-06"), ("weight_decay", "1e-3"),
    ("max_norm", "1.5e3"), ("max_norm", "2E4"), ("max_norm", "1e+5")])
def test_parse_json_numbers_in_exponent_notation(key, literal):
    text = '{"role": "baseline", "hidden": [800, 800], "%s": %s}' % (key, literal)
    assert json.loads(text)[key] == float(literal)  # valid JSON
    assert getattr(parse_spec(text), key) == float(literal)


def test_json_dumps_writes_small_floats_in_exponent_notation():
    # Why the bug above matters: this is how workflow/rules/common.smk writes specs.
    assert json.dumps({"weight_decay": 0.00001}) == '{"weight_decay": 1e-05}'


# ---------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_order_independent():
    a = spec_from_dict(TEACHER)
    b = spec_from_dict(dict(reversed(list(TEACHER.items()))))
    assert fingerprint(a, "sha") == fingerprint(b, "sha")
    assert fingerprint(a, "sha") == fingerprint(spec_from_dict(a.to_dict()), "sha")
    # settings added later (LATER_FIELDS) are left out at their defaults: older checkpoints resume
    later = {"soft_weight", "teacher_inputs", "input_scaling", "input_dropout_space",
             "jitter_axes", "lr_step_size", "lr_gamma"}
    assert json.loads(fingerprint(a, "sha")) == [
        {k: v for k, v in a.to_dict().items() if k not in later}, "sha"]


def test_fingerprint_changes_with_config_and_extras():
    a = spec_from_dict(TEACHER)
    assert fingerprint(a) != fingerprint(spec_from_dict({**TEACHER, "seed": 2}))
    assert fingerprint(a) != fingerprint(spec_from_dict({**TEACHER, "epochs": 61}))
    assert fingerprint(a, "data-1") != fingerprint(a, "data-2")
