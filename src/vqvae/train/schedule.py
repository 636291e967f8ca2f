"""Learning-rate schedules: a linear warm-up, then constant, cosine or step decay.

The rate of step s is a pure function of (config, s), set on the optimizer before each step,
so a resumed run takes the very rates of one never stopped (``tests/test_train.py``). The
decay's horizon is ``steps``; ``--resume`` therefore refuses another ``--steps`` for a
decaying schedule (``vqvae.runs.resume_differences``).

- ``constant``: ``lr`` after the warm-up (the default: the loop as it always was);
- ``cosine``: from ``lr`` down to ``lr_final * lr`` along half a cosine (Loshchilov and
  Hutter 2017, SGDR without restarts);
- ``step``: ``lr``, halved at half the steps and again at three quarters.
"""

from __future__ import annotations

import math

from vqvae.config import SCHEDULES


def lr_factor(step: int, steps: int, schedule: str, warmup_steps: int, lr_final: float) -> float:
    """The multiple of the base rate for 0-based step ``step`` of ``steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps  # linear from lr / warmup_steps up to lr
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)  # 0 -> 1 after warm-up
    if schedule == "cosine":
        return lr_final + (1 - lr_final) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    if schedule == "step":
        return 0.5 ** ((progress >= 0.5) + (progress >= 0.75))
    raise ValueError(f"unknown lr_schedule {schedule!r}; expected one of {SCHEDULES}")


def set_lr(optimizer, config, step: int) -> None:
    """Set every parameter group's rate for ``step``: its own base rate (``initial_lr``, kept
    in the optimizer's state and so in every checkpoint) times the schedule's factor."""
    factor = lr_factor(step, config.steps, config.lr_schedule, config.warmup_steps,
                       config.lr_final)  # fmt: skip
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * factor
