"""How many threads torch's CPU operations use: ``--threads N``, or a default chosen from
the machine's load.

torch's own default is one thread per core, which is right on an idle machine and ruinous
on a busy one: a parallel operation waits at its end for every thread, and a thread whose
core another process holds arrives late at every barrier. Measured on a 2-core machine
running two other CPU-bound jobs: ``vqvae demo`` on 2 threads did not finish its first
training in 15 minutes, and took 2 minutes in all on 1 (BENCHMARKS.md section 12). So
the default is the cores that the 1-minute load average leaves free, at least one: all of
them when the machine is idle, one when the others are taken. ``OMP_NUM_THREADS`` set in
the environment is a choice already made and is kept.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from vqvae.console import say


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str  # one line: why this number
    chosen: bool = False  # chosen here from the load (not asked for): said when training starts

    def apply(self) -> ThreadChoice:
        """Set torch's thread count; ``announce`` then says so once, if it was our choice."""
        global _unsaid
        torch.set_num_threads(self.threads)
        _unsaid = self if self.chosen else None
        return self


_unsaid: ThreadChoice | None = None  # applied, and not yet said


def announce() -> None:
    """Say the applied choice in one line, once (the training loop calls it at its start;
    a library user who never applied one hears nothing)."""
    global _unsaid
    if _unsaid is not None:
        say(f"vqvae: {_unsaid.reason}")
        _unsaid = None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not measurable here
        return None


def choose_threads(
    asked: int | None = None, cores: int | None = None, load: float | None = None
) -> ThreadChoice:
    """``asked`` if given, else OMP_NUM_THREADS if set, else the cores the load leaves free
    (the one choice that is announced: the others were the user's)."""
    if asked is not None:
        if asked < 1:
            raise ValueError(f"--threads: expected a number >= 1, got {asked}")
        return ThreadChoice(asked, f"{asked} thread(s), as asked")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return ThreadChoice(int(env), f"{env} thread(s), from OMP_NUM_THREADS")
    cores = cores or available_cores()
    load = load_average() if load is None else load
    if load is None:
        return ThreadChoice(cores, f"{cores} thread(s), one per core (load not measurable)", True)
    free = max(1, min(cores, math.floor(cores - load + 0.5)))
    return ThreadChoice(
        free,
        f"{free} thread(s): load average {load:.1f} on {cores} cores (choose with --threads N)",
        chosen=True,
    )
