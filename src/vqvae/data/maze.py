"""Recording a DeepMind-style 3-D maze: first-person frames and the actions between them.

The paper's sections 4.2 and 4.4 used DeepMind Lab, which cannot be installed here. Its
closest installable relative is memory-maze (Pasukonis, Lillicrap, Hafner 2022, "Evaluating
Long-Term Memory in 3D Mazes", arXiv:2210.13383): DeepMind Lab's ``explore_goal_locations``
mazes rebuilt on MuJoCo (dm_control), rendered headless, with the same kind of discrete
first-person actions. Each episode is a new random maze. A random exploring policy (mostly
forward, turns that last a few steps, a turn whenever a wall stops it) moves through it, so
that recorded episodes hold both what "forward" and what "turn" do to a view.

memory-maze is an optional extra (``pip install 'vqvae[maze]'``); nothing else needs it.
``docs/maze.md`` has the measurements.
"""

from __future__ import annotations

import contextlib
import io
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
from tqdm.auto import tqdm

from vqvae.errors import VQVAEError

from .episodes import Episodes

# memory-maze's discrete action set, in its order (memory_maze.tasks._memory_maze)
ACTIONS = ("noop", "forward", "left", "right", "forward_left", "forward_right")
MAZES = ("9x9", "11x11", "13x13", "15x15")  # walkable cells per side
# memory-maze's episode limits, in steps at its 4 Hz control (250, 500, 750, 1000 s)
STEP_LIMITS = {"9x9": 1000, "11x11": 2000, "13x13": 3000, "15x15": 4000}
EXTRA = "pip install 'vqvae[maze]'"

# How long each kind of move lasts once chosen (steps, inclusive) and how often it is chosen.
MOVES = {
    "forward": ((3, 8), 0.55),
    "left": ((1, 4), 0.1),
    "right": ((1, 4), 0.1),
    "forward_left": ((2, 4), 0.1),
    "forward_right": ((2, 4), 0.1),
    "noop": ((1, 1), 0.05),
}
MOVE_NAMES = tuple(MOVES)
MOVE_WEIGHTS = np.array([MOVES[n][1] for n in MOVE_NAMES])
STUCK = 1.0  # mean absolute change of a frame (0..255) under which a forward step hit a wall
SKY_ROWS = 1 / 16  # the top of the view: the sky (blue) unless a wall is right ahead


@dataclass
class ExploringPolicy:
    """Mostly forward, with turns that persist a few steps; a wall right ahead (no sky at the
    top of the view, or a forward step that did not change it) starts a turn of 2 to 5 steps
    that goes on while the wall fills the view. Deterministic for its generator."""

    rng: np.random.Generator
    _action: int = 0
    _left: int = 0  # steps the current move still lasts

    def __call__(self, blocked: bool) -> int:
        turning = ACTIONS[self._action] in ("left", "right")
        if blocked and not (turning and self._left > 0):
            # keep turning the same way while the wall is still ahead
            side = ACTIONS.index("left") + int(self.rng.integers(2))  # left or right
            self._action = self._action if turning else side
            self._left = int(self.rng.integers(2, 6))
        elif self._left == 0:
            name = MOVE_NAMES[int(self.rng.choice(len(MOVE_NAMES), p=MOVE_WEIGHTS))]
            lo, hi = MOVES[name][0]
            self._action, self._left = ACTIONS.index(name), int(self.rng.integers(lo, hi + 1))
        self._left -= 1
        return self._action


def record_maze(
    episodes: int,
    steps: int,
    size: int = 64,
    maze: str = "9x9",
    seed: int = 0,
    progress: bool = True,
    jobs: int = 1,
) -> Episodes:
    """``episodes`` episodes of ``steps`` first-person frames (``size`` x ``size`` RGB) each,
    in new random ``maze`` layouts, with the exploring policy's actions; deterministic for
    ``seed`` and ``jobs``. With ``jobs`` > 1 the episodes are recorded in that many processes,
    each its own share of the episodes and its own seed stream (``job_seeds``)."""
    if episodes < 1 or steps < 2 or size < 8:
        raise VQVAEError(
            f"expected episodes >= 1, steps >= 2 and size >= 8, got {episodes}, {steps}, {size}"
        )
    if maze not in MAZES:
        raise VQVAEError(f"unknown maze {maze!r}: expected one of {', '.join(MAZES)}")
    if steps > STEP_LIMITS[maze]:
        raise VQVAEError(f"a {maze} maze episode lasts at most {STEP_LIMITS[maze]} steps")
    if jobs < 1:
        raise VQVAEError(f"--jobs {jobs}: expected at least 1 process")
    plan = job_plan(episodes, jobs, seed)
    if len(plan) == 1:
        return _record(episodes, steps, size, maze, seed, progress)
    # spawn, not fork: each process starts its own renderer (an OpenGL context is not shared)
    pool = ProcessPoolExecutor(len(plan), mp_context=get_context("spawn"))
    bar = tqdm(total=episodes * steps, desc="record maze", unit="frame", disable=not progress)
    with pool, bar:
        futures = [pool.submit(_record, n, steps, size, maze, s, False) for n, s in plan]
        parts = []
        for future in futures:  # in the plan's order, whichever finishes first
            parts.append(future.result())
            bar.update(parts[-1].num_episodes * steps)
    frames = np.concatenate([p.frames for p in parts])  # jobs x (n_i, T, ...) -> (N, T, ...)
    actions = np.concatenate([p.actions for p in parts])
    return Episodes(frames, actions, ACTIONS, name=parts[0].name)


def job_plan(episodes: int, jobs: int, seed: int) -> list[tuple[int, int]]:
    """(episodes, seed) of each recording process: the episodes shared as evenly as they go
    (the first processes take one more), a single process keeps ``seed`` itself (the file of
    one process), several get independent seed streams spawned from it."""
    jobs = min(jobs, episodes)
    if jobs == 1:
        return [(episodes, seed)]
    counts = [episodes // jobs + (i < episodes % jobs) for i in range(jobs)]
    streams = np.random.SeedSequence(seed).spawn(jobs)
    return [(n, int(s.generate_state(1)[0])) for n, s in zip(counts, streams, strict=True)]


def _record(episodes: int, steps: int, size: int, maze: str, seed: int, progress: bool) -> Episodes:
    """One process's episodes, one after another in one environment."""
    env, obs = start_env(maze, size, seed)
    policy = ExploringPolicy(np.random.default_rng(seed))
    frames = np.zeros((episodes, steps, size, size, 3), np.uint8)
    actions = np.zeros((episodes, steps), np.int64)
    bar = tqdm(total=episodes * steps, desc="record maze", unit="frame", disable=not progress)
    with bar:
        for n in range(episodes):
            if n:
                obs = env.reset().observation["image"]
            stuck = False
            for t in range(steps):
                frames[n, t] = obs
                actions[n, t] = policy(stuck or wall_ahead(obs))
                if t + 1 < steps:  # the last action leads to a frame nobody records
                    obs = env.step(int(actions[n, t])).observation["image"]
                    moved = np.abs(obs.astype(np.int16) - frames[n, t]).mean()
                    stuck = ACTIONS[actions[n, t]].startswith("forward") and moved < STUCK
                bar.update(1)
    env.close()
    return Episodes(frames, actions, ACTIONS, name=f"memory-maze {maze}")


def wall_ahead(image: np.ndarray) -> bool:
    """Whether a wall fills the top of the view (H, W, 3): no blue sky above it."""
    top = image[: max(1, round(len(image) * SKY_ROWS))].astype(np.float32).mean(axis=(0, 1))
    return bool(top[2] - top[0] < 20)  # blue minus red: ~70 for the sky, below 0 on a wall


def start_env(maze: str, size: int, seed: int):
    """memory-maze's dm_env environment, reset, and its first image (H, W, 3): images only,
    without the target-colour border (which changes with the task, not the view), rendered
    by MuJoCo headless."""
    # MuJoCo picks its OpenGL backend when first imported: EGL renders without a display
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        # memory_maze imports gym, which prints a deprecation notice on import
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            from memory_maze import tasks
    except ImportError as e:
        raise VQVAEError(f"the maze recorder needs the optional extra ({e}): {EXTRA}") from None
    task = getattr(tasks, f"memory_maze_{maze}")
    try:
        env = task(camera_resolution=size, target_color_in_image=False, seed=seed)
        return env, env.reset().observation["image"]
    except Exception as e:  # the renderer's own errors (no EGL, no OSMesa) vary by backend
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        backend = os.environ["MUJOCO_GL"]
        raise VQVAEError(
            f"the maze renderer failed with MUJOCO_GL={backend} ({first}); install the GL "
            "libraries (apt-get install libegl1 libgl1, or libosmesa6 with MUJOCO_GL=osmesa)"
        ) from None
