"""Epoch-boundary checkpoints so a killed run resumes bit-identically.

A checkpoint lives outside the rule's declared outputs (Snakemake deletes
those of an incomplete job) and is removed once the run has finished.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from kdrepro.io import torch_save_atomic

log = logging.getLogger(__name__)


class FileCheckpoint:
    """A checkpoint file tied to one run by a fingerprint of its configuration."""

    def __init__(self, path: Path, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint

    def load(self) -> dict | None:
        """The saved state, or None when absent, unreadable or from another config."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file: start over, say why
            log.warning("ignoring unreadable checkpoint %s (%s)", self.path, exc)
            return None
        if state.get("fingerprint") != self.fingerprint:
            log.warning("ignoring checkpoint %s: it belongs to another configuration", self.path)
            return None
        log.info("resuming from %s after epoch %d", self.path, state["epoch"])
        return state

    def save(self, state: dict) -> None:
        """Write `state` atomically, so a kill mid-write keeps the previous one."""
        torch_save_atomic(self.path, {**state, "fingerprint": self.fingerprint})

    def remove(self) -> None:
        """Delete the checkpoint once the run's outputs are written."""
        self.path.unlink(missing_ok=True)
