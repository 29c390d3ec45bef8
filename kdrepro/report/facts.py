"""The published side of the ledger: paper.yaml, one ledger row, and which runs a claim grades.

A claim is graded only on runs of its own network (paper.yaml ``network``: role, hidden
sizes, temperature, transfer set), so a 30-30 run under ``results/teacher/`` is shown as
"not graded" rather than compared with the paper's 1200-1200 teacher (section 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kdrepro.report.collect import RunRecord
from kdrepro.report.paper import published
from kdrepro.report.stats import Measure
from kdrepro.report.verdicts import PENDING


def paper_facts() -> dict:
    """The published values, sources and assumption register (kdrepro/report/paper.yaml),
    read once by :func:`kdrepro.report.paper.published`."""
    return published()


def fact(key: str) -> dict:
    """One published value of paper.yaml (``values``)."""
    return paper_facts()["values"][key]


@dataclass
class LedgerRow:
    """One claim of section 3: the claim in words, the protocols, the evidence, the verdict."""

    id: str
    claim: str
    unit: str  # "errors", "%" or "T"
    paper: float | None
    paper_text: str = ""
    blog: float | None = None
    blog_text: str = ""
    protocol: str = ""  # our protocol, and whether it is the one matching the paper's
    protocol_id: str = ""
    measure: Measure | None = None
    ours_text: str = ""
    seeds: int = 0
    test: str = ""  # the test the verdict rests on
    pvalue: float | None = None
    detail: str = ""
    verdict: str = PENDING
    reason: str = "no finished run yet"
    source: str = ""
    quote: str = ""
    target: float | None = None  # the default profile's acceptance bound on our mean
    target_met: bool | None = None
    target_min: float | None = None  # a band's lower end (None: a bound from above only)
    extra: dict = field(default_factory=dict)


def layers(hidden) -> str:
    """Hidden sizes as the paper writes them: 1200-1200."""
    return "-".join(str(h) for h in hidden or []) or "?"


def transfer_of(record: RunRecord) -> tuple[list[int], list[int]]:
    """(omitted digits, kept digits) of a run's transfer set (metrics.json)."""
    transfer = record.metrics.get("transfer_set") or {}
    return sorted(transfer.get("omit") or []), sorted(transfer.get("keep") or [])


def _digits(digits: list[int]) -> str:
    return " and ".join(str(d) for d in digits)


def mismatch(record: RunRecord, network: dict) -> str | None:
    """Why ``record`` is not the claim's ``network``, or None when it is."""
    hidden = list(record.metrics.get("hidden") or [])
    if hidden != list(network["hidden"]):
        return f"{layers(hidden)}, not the paper's {layers(network['hidden'])}"
    want_t = network.get("temperature")
    got_t = record.metrics.get("temperature")
    if want_t is not None and (got_t is None or float(got_t) != float(want_t)):
        return f"T = {got_t}, not the paper's {want_t:g}"
    omit, keep = transfer_of(record)
    want_omit, want_keep = sorted(network.get("omit", [])), sorted(network.get("keep", []))
    if omit != want_omit:
        return (f"transfer set omits {_digits(omit) or 'nothing'}, "
                f"the paper's omits {_digits(want_omit) or 'nothing'}")
    if keep != want_keep:
        return (f"transfer set keeps {_digits(keep) or 'every digit'}, "
                f"the paper's keeps {_digits(want_keep) or 'every digit'}")
    return None


def role_runs(records: list[RunRecord], role: str) -> list[RunRecord]:
    """Runs of one role, by seed."""
    return sorted((r for r in records if r.role == role), key=lambda r: r.metrics.get("seed") or 0)


def graded_runs(records: list[RunRecord], key: str) -> tuple[list[RunRecord], list[str]]:
    """(runs that are claim ``key``'s network, one note per other run of its role)."""
    network = fact(key)["network"]
    graded, notes = [], []
    for record in role_runs(records, network["role"]):
        why = mismatch(record, network)
        if why is None:
            graded.append(record)
        elif network["role"] in ONE_NETWORK_ROLES:
            notes.append(f"{record.run}: {why}")
    return graded, notes


# Roles with one network in the paper; baseline and distilled runs of other widths or
# temperatures belong to the temperature grid, so they are filtered without a note.
ONE_NETWORK_ROLES = ("teacher", "omit", "keep")


def claim_classes(key: str) -> list[int]:
    """The digits the claim's transfer set omits or keeps (paper.yaml), e.g. [3] or [7, 8]."""
    network = fact(key)["network"]
    return list(network.get("omit") or network.get("keep") or [])


def seed_of(record: RunRecord):
    return record.metrics.get("seed")
