"""Where a training step's time goes: train_epoch's loop body with a clock per phase.

Diagnostic only: the epoch figures come from kdrepro.training.engine.train_epoch
itself. Keep the phases below in step with that loop's body.
"""

from __future__ import annotations

import time

import torch

PHASES = ("batch", "forward", "loss", "backward", "optimizer", "max_norm")


def step_phases(model, optimizer, batches, targets, loss_fn, batch_size: int,
                generator: torch.Generator) -> dict:
    """Mean milliseconds per step of each phase over one pass of `targets`' rows."""
    n = len(targets[0])
    spent = dict.fromkeys(PHASES, 0.0)
    order = torch.randperm(n, generator=generator, device=generator.device)
    total = torch.zeros((), device=generator.device)
    for index in order.split(batch_size):
        clock = [time.perf_counter()]
        inputs = batches(index, generator)
        clock.append(time.perf_counter())
        logits = model(inputs)
        clock.append(time.perf_counter())
        loss = loss_fn(logits, *(t[index] for t in targets))
        optimizer.zero_grad(set_to_none=True)
        clock.append(time.perf_counter())
        loss.backward()
        clock.append(time.perf_counter())
        optimizer.step()
        clock.append(time.perf_counter())
        model.apply_max_norm()
        total += loss.detach() * len(index)
        clock.append(time.perf_counter())
        for name, start, stop in zip(PHASES, clock, clock[1:]):
            spent[name] += stop - start
    steps = -(-n // batch_size)
    return {name: seconds / steps * 1e3 for name, seconds in spent.items()}
