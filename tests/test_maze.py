"""The 3-D maze recorder: its exploring policy, and memory-maze episodes where it is installed
(CI installs it: there, a missing renderer fails the tests instead of skipping them)."""

from __future__ import annotations

import builtins
import importlib.util
import os

import numpy as np
import pytest

from vqvae.cli import main
from vqvae.data.episodes import read_episodes
from vqvae.data.maze import ACTIONS, ExploringPolicy, job_plan, record_maze, wall_ahead
from vqvae.errors import VQVAEError


@pytest.fixture(scope="module")
def renderer() -> None:
    if importlib.util.find_spec("memory_maze") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("memory-maze is missing, but CI=true: the CI script installs it")
        pytest.skip("memory-maze is not installed (pip install 'vqvae[maze]')")


def test_policy_is_mostly_forward_and_turns_at_walls():
    policy = ExploringPolicy(np.random.default_rng(0))
    free = [ACTIONS[policy(False)] for _ in range(2000)]
    forward = np.mean([a.startswith("forward") for a in free])
    assert 0.6 < forward < 0.85 and {"left", "right", "noop"} <= set(free)
    runs = sum(a != b for a, b in zip(free[:-1], free[1:], strict=True))
    assert runs < len(free) / 2  # moves persist for several steps
    blocked = [ACTIONS[policy(True)] for _ in range(20)]
    assert len(set(blocked)) == 1 and blocked[0] in ("left", "right")  # one way round a wall
    again = ExploringPolicy(np.random.default_rng(0))
    assert [ACTIONS[again(False)] for _ in range(2000)] == free


def test_wall_ahead_sees_the_sky():
    sky = np.zeros((16, 16, 3), np.uint8)
    sky[..., 2] = 200  # blue above
    wall = np.full((16, 16, 3), (200, 90, 70), np.uint8)  # a red wall fills the view
    assert not wall_ahead(sky) and wall_ahead(wall)


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(VQVAEError, match="unknown maze '7x7'"):
        record_maze(1, 2, maze="7x7")
    with pytest.raises(VQVAEError, match="steps >= 2"):
        record_maze(1, 1)
    with pytest.raises(VQVAEError, match="at most 1000 steps"):
        record_maze(1, 5000)
    with pytest.raises(VQVAEError, match="--jobs 0: expected at least 1"):
        record_maze(1, 2, jobs=0)


def test_jobs_share_the_episodes_with_their_own_seed_streams():
    assert job_plan(7, 1, seed=5) == [(7, 5)]  # one process: the seed itself
    plan = job_plan(7, 3, seed=5)
    assert [n for n, _ in plan] == [3, 2, 2] and len({s for _, s in plan}) == 3
    assert job_plan(7, 3, seed=5) == plan and job_plan(7, 3, seed=6) != plan
    assert job_plan(2, 8, seed=0) == job_plan(2, 2, seed=0)  # never a process without episodes


def test_missing_extra_names_the_install_command(monkeypatch, capsys, tmp_path):
    real_import = builtins.__import__

    def no_maze(name, *args, **kwargs):
        if name.startswith("memory_maze"):
            raise ImportError("No module named 'memory_maze'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_maze)
    out = tmp_path / "m.npz"
    argv = ["data", "maze", "--episodes", "1", "--steps", "2", "--out", str(out)]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'vqvae[maze]'" in err[0] and not out.exists()


def test_records_episodes(renderer, tmp_path, capsys):
    out = tmp_path / "maze.npz"
    argv = ["data", "maze", "--episodes", "2", "--steps", "4", "--size", "16"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert "2 episodes x 4 frames of 16x16" in capsys.readouterr().out
    episodes = read_episodes(out)
    assert episodes.frames.shape == (2, 4, 16, 16, 3) and episodes.action_names == ACTIONS
    assert episodes.frames.std() > 5  # a rendered view, not a blank image
    # each episode is a new maze: the first views differ
    assert not np.array_equal(episodes.frames[0, 0], episodes.frames[1, 0])
    again = record_maze(2, 4, size=16, progress=False)
    assert np.array_equal(again.frames, episodes.frames)  # the same seed, the same episodes
    assert np.array_equal(again.actions, episodes.actions)
    before = out.read_bytes()
    assert main([*argv, "--out", str(out)]) != 0  # refuses to overwrite without --force
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before


def test_several_processes_record_each_share_as_one_process_would(renderer, tmp_path):
    argv = ["data", "maze", "--episodes", "3", "--steps", "3", "--size", "16", "--no-progress"]
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for path in paths:
        assert main([*argv, "--jobs", "2", "--out", str(path)]) == 0
    first, second = (read_episodes(p) for p in paths)
    assert np.array_equal(first.frames, second.frames)  # the same seed and jobs, the same file
    assert np.array_equal(first.actions, second.actions)
    parts = [record_maze(n, 3, size=16, seed=s, progress=False) for n, s in job_plan(3, 2, 0)]
    assert np.array_equal(first.frames, np.concatenate([p.frames for p in parts]))
    single = record_maze(3, 3, size=16, progress=False)
    assert not np.array_equal(single.frames, first.frames)  # other seed streams, other mazes
