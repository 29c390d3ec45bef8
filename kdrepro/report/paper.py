"""The paper's published values (paper.yaml), read without the report's heavier modules.

The `bias` command takes its default `--paper-shift` from here: section 3 raises the
omitted 3s' bias by 3.5 and lowers the kept 7s' and 8s' biases by 7.6.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources

import yaml


@cache
def published() -> dict:
    """paper.yaml: published values, sources and the assumption register."""
    text = resources.files("kdrepro.report").joinpath("paper.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def paper_bias_shift(kind: str, classes: Sequence[int]) -> float:
    """The paper's bias shift for an omit/keep run of ``classes`` (section 3).

    ValueError when the paper gives none (it reports omit 3 and keep 7, 8 only).
    """
    key = f"{kind}{''.join(str(c) for c in sorted(classes))}_bias_shift"
    values = published()["values"]
    if key not in values:
        known = ", ".join(f"{k.removesuffix('_bias_shift')} ({v['value']:+g})"
                          for k, v in values.items() if k.endswith("_bias_shift"))
        raise ValueError(f"the paper gives no bias shift for {kind} {list(classes)} (only for "
                         f"{known}); pass --paper-shift")
    return float(values[key]["value"])
