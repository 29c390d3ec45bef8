"""Validation of the workflow configuration against its JSON schema.

Snakemake's own `validate` reports a multi-line dump of the schema; this
reports one line naming the key, the bad value and what was expected, and
fills in the schema's defaults, so a bad config stops the workflow before any
job runs.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration value is unknown or invalid (one line)."""


def _with_defaults(validator_class):
    """A validator class that fills in `default` of missing properties first."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = yaml.safe_load(yaml.safe_dump(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = f" in '{key}'" if error.absolute_path else ""
        return f"unknown config key '{unknown[0]}'{where} (expected one of: {allowed})"
    expected = error.schema.get("description", "")
    hint = f" [{expected.rstrip('.')}]" if expected else ""
    return f"config key '{key}' = {error.instance!r} is invalid: {error.message}{hint}"


def validate_config(config: dict, schema_path: Path) -> dict:
    """Check `config` in place against the schema, adding defaults; ConfigError if bad."""
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    base = jsonschema.validators.validator_for(schema)
    validator = _with_defaults(base)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(_describe(errors[0]))
    _check_grid_widths(config.get("temperature_grid", {}))
    for kind in ("omit", "keep"):
        _check_sweep(f"{kind}.sweep", config.get(kind, {}).get("sweep"))
    return config


def _check_sweep(key: str, sweep: dict | None) -> None:
    """A bias sweep must run upwards and hold at least two shifts: start < stop, and
    0 < step <= stop - start. An inverted or empty sweep would otherwise fail only in
    `bias_sweep`, after the students have trained."""
    if not sweep:
        return
    start, stop, step = sweep["start"], sweep["stop"], sweep["step"]
    shown = f"{{start: {start}, stop: {stop}, step: {step}}}"
    if start >= stop:
        raise ConfigError(f"config key '{key}' = {shown} is invalid: expected start < stop")
    if step <= 0 or step > stop - start:
        raise ConfigError(f"config key '{key}' = {shown} is invalid: expected "
                          f"0 < step <= stop - start ({stop - start:g})")


def _check_grid_widths(grid: dict) -> None:
    """A `per_width` entry must name a width the grid trains (a typo would be ignored)."""
    widths = grid.get("widths", [])
    for i, entry in enumerate(grid.get("per_width", [])):
        if entry["width"] not in widths:
            raise ConfigError(f"config key 'temperature_grid.per_width.{i}.width' = {entry['width']!r}"
                              f" is invalid: expected one of temperature_grid.widths {widths}")
