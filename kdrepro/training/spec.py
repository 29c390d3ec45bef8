"""The configuration of one training run, validated before any work starts."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from kdrepro.data.jitter import JITTER_AXES
from kdrepro.training.engine import TrainConfig
from kdrepro.training.models import (
    INPUT_DROPOUT_SPACES,
    INPUT_SCALINGS,
    MAX_LAYERS,
    MAX_WEIGHTS,
    MAX_WIDTH,
    hidden_ok,
)
from kdrepro.training.precision import PRECISIONS

ROLES = ("teacher", "baseline", "distilled", "omit", "keep")
DISTILLED_ROLES = ("distilled", "omit", "keep")
LR_SCHEDULES = ("geometric", "cosine", "step")
TEACHER_INPUTS = ("cached", "live")  # soft targets of unjittered images, or of each batch
# Tuning runs score the validation split and never read the test set (docs/tuning.md).
SCORED_ON = ("test", "validation")
# Bounds that keep a run within one machine, checked before anything is allocated
# (network bounds: kdrepro.training.models); the config schema repeats them.
MAX_EPOCHS, MAX_BATCH = 10_000, 60_000  # 60,000 = the whole MNIST training set
MAX_SEED = 2**63 - 1  # torch.manual_seed and torch.Generator take 64-bit seeds
MAX_LR, MAX_WEIGHT_DECAY, MAX_TEMPERATURE, MAX_HARD_WEIGHT, MAX_NORM = 100, 1, 1000, 1000, 1e6


class SpecError(ValueError):
    """A run setting is unknown or out of range (one line, names the key)."""


@dataclass(frozen=True, kw_only=True)
class RunSpec(TrainConfig):
    """One experiment of section 3: network, regularisers, transfer set, and the
    optimiser settings it inherits from TrainConfig (epochs, lr, momentum, ...)."""

    role: str
    hidden: tuple[int, ...]
    input_dropout: float = 0.0
    hidden_dropout: float = 0.0
    max_norm: float | None = None
    seed: int = 1
    temperature: float | None = None
    hard_weight: float | None = None
    soft_weight: float | None = None
    teacher_inputs: str = "cached"
    input_scaling: str = "standardize"
    input_dropout_space: str = "normalized"
    omit: tuple[int, ...] = field(default_factory=tuple)
    keep: tuple[int, ...] = field(default_factory=tuple)
    validation_fraction: float = 0.0
    validation_seed: int = 0
    scored_on: str = "test"
    device: str = "cpu"
    precision: str = "fp32"

    @property
    def distilled(self) -> bool:
        """Trained on the teacher's soft targets."""
        return self.temperature is not None

    def train_config(self) -> TrainConfig:
        """The optimiser part of this spec."""
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        return TrainConfig(**{k: getattr(self, k) for k in names})

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


def _digits(v) -> bool:
    return all(_int(c) and 0 <= c <= 9 for c in v)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# (key, check, expectation) — checked in order; the first failure is reported.
_RULES = [
    ("role", lambda v: v in ROLES, f"one of {', '.join(ROLES)}"),
    ("hidden", hidden_ok, f"a list of 1..{MAX_LAYERS} integer widths in 1..{MAX_WIDTH} "
     f"with at most {MAX_WEIGHTS:,} weights in all"),
    ("input_dropout", lambda v: 0 <= v < 1, "a probability in [0, 1)"),
    ("hidden_dropout", lambda v: 0 <= v < 1, "a probability in [0, 1)"),
    ("max_norm", lambda v: v is None or 0 < v <= MAX_NORM, f"null or a number in (0, {MAX_NORM:g}]"),
    ("jitter", lambda v: _int(v) and 0 <= v <= 8, "an integer 0..8 (pixels)"),
    ("jitter_axes", lambda v: v in JITTER_AXES, f"one of {', '.join(JITTER_AXES)}"),
    ("input_scaling", lambda v: v in INPUT_SCALINGS, f"one of {', '.join(INPUT_SCALINGS)}"),
    ("input_dropout_space", lambda v: v in INPUT_DROPOUT_SPACES,
     f"one of {', '.join(INPUT_DROPOUT_SPACES)}"),
    ("epochs", lambda v: _int(v) and 1 <= v <= MAX_EPOCHS, f"an integer 1..{MAX_EPOCHS}"),
    ("batch_size", lambda v: _int(v) and 1 <= v <= MAX_BATCH, f"an integer 1..{MAX_BATCH}"),
    ("lr", lambda v: 0 < v <= MAX_LR, f"a number in (0, {MAX_LR}]"),
    ("lr_decay", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("lr_schedule", lambda v: v in LR_SCHEDULES, f"one of {', '.join(LR_SCHEDULES)}"),
    ("lr_step_size", lambda v: _int(v) and 1 <= v <= MAX_EPOCHS, f"an integer 1..{MAX_EPOCHS}"),
    ("lr_gamma", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("momentum_start", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("momentum_end", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("momentum_ramp_epochs", lambda v: _int(v) and 0 <= v <= MAX_EPOCHS,
     f"an integer 0..{MAX_EPOCHS}"),
    ("weight_decay", lambda v: 0 <= v <= MAX_WEIGHT_DECAY, f"a number in [0, {MAX_WEIGHT_DECAY}]"),
    ("seed", lambda v: _int(v) and 0 <= v <= MAX_SEED, "an integer in 0..2^63-1"),
    ("temperature", lambda v: v is None or 0 < v <= MAX_TEMPERATURE,
     f"null or a number in (0, {MAX_TEMPERATURE}]"),
    ("hard_weight", lambda v: v is None or 0 <= v <= MAX_HARD_WEIGHT,
     f"null or a number in [0, {MAX_HARD_WEIGHT}]"),
    ("soft_weight", lambda v: v is None or 0 <= v <= MAX_HARD_WEIGHT,
     f"null or a number in [0, {MAX_HARD_WEIGHT}]"),
    ("teacher_inputs", lambda v: v in TEACHER_INPUTS, f"one of {', '.join(TEACHER_INPUTS)}"),
    ("omit", _digits, "a list of digits 0..9"),
    ("keep", _digits, "a list of digits 0..9"),
    ("validation_fraction", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("validation_seed", lambda v: _int(v) and 0 <= v <= MAX_SEED, "an integer in 0..2^63-1"),
    ("scored_on", lambda v: v in SCORED_ON, f"one of {', '.join(SCORED_ON)}"),
    ("device", lambda v: v in ("cpu", "cuda", "auto"), "one of cpu, cuda, auto"),
    ("precision", lambda v: v in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
]


def _number_ok(value) -> bool:
    """No strings where numbers go, no bools, no NaN or infinities (JSON/YAML allow them)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, tuple):
        return all(_number_ok(v) for v in value)
    return True


def _check_values(spec: RunSpec) -> None:
    for key, ok, expected in _RULES:
        value = getattr(spec, key)
        try:  # bool is an int subclass: `epochs: true` must not mean 1
            good = not isinstance(value, bool) and _number_ok(value) and ok(value)
        except TypeError:
            good = False
        if not good:
            raise SpecError(f"run setting '{key}' = {value!r} is invalid: expected {expected}")


def _check_consistency(spec: RunSpec) -> None:
    if spec.role in DISTILLED_ROLES and spec.temperature is None:
        raise SpecError(f"role '{spec.role}' trains on soft targets: set 'temperature' (> 0)")
    if spec.role in ("teacher", "baseline") and spec.temperature is not None:
        raise SpecError(f"role '{spec.role}' trains on hard labels: 'temperature' must be null")
    if spec.teacher_inputs == "live" and spec.role not in DISTILLED_ROLES:
        raise SpecError(f"role '{spec.role}' has no teacher: 'teacher_inputs' must be cached")
    if spec.omit and spec.keep:
        raise SpecError("set at most one of 'omit' and 'keep'")
    if spec.role in ("omit", "keep") and not getattr(spec, spec.role):
        raise SpecError(f"role '{spec.role}' needs a non-empty '{spec.role}' list of digits")
    if spec.scored_on == "validation" and spec.validation_fraction <= 0:
        raise SpecError("'scored_on' = 'validation' needs a held-out split: set "
                        "'validation_fraction' in (0, 1)")
    if spec.omit and len(set(spec.omit)) >= 10:
        raise SpecError(f"'omit' = {list(spec.omit)} leaves an empty transfer set")


def spec_from_dict(data: dict) -> RunSpec:
    """Build and validate a RunSpec; unknown keys and bad values are SpecErrors."""
    known = {f.name for f in dataclasses.fields(RunSpec)}
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise SpecError(f"run setting names must be strings, got {odd[0]!r} "
                        f"({type(odd[0]).__name__})")
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"unknown run setting '{unknown[0]}' (known: {', '.join(sorted(known))})")
    for required in ("role", "hidden"):
        if required not in data:
            raise SpecError(f"run setting '{required}' is required")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    spec = RunSpec(**values)
    _check_values(spec)
    _check_consistency(spec)
    return spec


def parse_spec(text: str) -> RunSpec:
    """A spec from JSON text, or from a JSON/YAML file when `text` starts with '@'."""
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise SpecError(f"spec file {path} does not exist")
        text = path.read_text(encoding="utf-8")
    try:  # JSON first: YAML 1.1 reads JSON's 1e-05 as a string
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml

            data = yaml.safe_load(text)
        except Exception as exc:
            reason = str(exc).splitlines()[0]
            raise SpecError(f"run spec is not valid JSON/YAML: {reason}") from None
    if not isinstance(data, dict):
        raise SpecError(f"run spec must be a mapping of settings, got {type(data).__name__}")
    return spec_from_dict(data)


# Settings added after the first checkpoints were written (issues 15 and 16); at their
# defaults they mean what the code did before, so they stay out of a fingerprint and a
# run interrupted before they existed still resumes from its checkpoint.
LATER_FIELDS = ("soft_weight", "teacher_inputs", "input_scaling", "input_dropout_space",
                "jitter_axes", "lr_step_size", "lr_gamma")


def fingerprint(spec: RunSpec, *extra: str) -> str:
    """A stable string identifying a run's configuration (for checkpoints)."""
    defaults = {f.name: f.default for f in dataclasses.fields(RunSpec)}
    settings = {k: v for k, v in spec.to_dict().items()
                if k not in LATER_FIELDS or v != defaults[k]}
    return json.dumps([settings, *extra], sort_keys=True)
