"""Recorded episodes: the file format, the episode-wise split, and episodes as an image set."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TOY_ACTIONS, toy_episodes
from vqvae.data import DataError, load_dataset
from vqvae.data.episodes import Episodes, read_episodes


def test_round_trip(tmp_path):
    ep = toy_episodes(episodes=3, steps=5, size=16)
    path = ep.write(tmp_path / "m.npz")
    back = read_episodes(path)
    assert np.array_equal(back.frames, ep.frames) and np.array_equal(back.actions, ep.actions)
    assert back.action_names == TOY_ACTIONS and back.steps == 5 and back.frame_size == (16, 16)
    assert back.action_id("right") == 3


def test_actions_move_the_toy_view():
    ep = toy_episodes(episodes=1, steps=30)
    f, a = ep.frames[0].astype(int), ep.actions[0]
    walls = [np.abs(f[t + 1, :8] - f[t, :8]).sum() for t in range(29)]
    floor = [np.abs(f[t + 1, 8:] - f[t, 8:]).sum() for t in range(29)]
    for t in range(29):
        name = TOY_ACTIONS[a[t]]
        assert (walls[t] > 0) == (name in ("left", "right", "forward_left", "forward_right"))
        assert (floor[t] > 0) == name.startswith("forward")


def test_split_is_by_whole_episodes(toy_maze):
    ep = read_episodes(toy_maze)
    train, test = ep.split("train"), ep.split("test")
    assert train.num_episodes + test.num_episodes == ep.num_episodes and test.num_episodes >= 1
    seen = {f.tobytes() for f in train.frames}
    assert all(f.tobytes() not in seen for f in test.frames)
    ds = load_dataset(str(toy_maze), "test")
    assert np.array_equal(ds.images, test.flat_frames()) and ds.labels is None
    assert len(load_dataset(str(toy_maze), "train")) == train.num_episodes * ep.steps


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("actions"), "missing actions"),
        (lambda d: d.update(frames=d["frames"][..., :1]), "frames must be uint8 (N, T, H, W, 3)"),
        (lambda d: d.update(actions=d["actions"] + 6), "actions must be in 0..5"),
        (lambda d: d.update(actions=d["actions"][:, :3]), "actions must be integers"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path, change, message):
    ep = toy_episodes(episodes=2, steps=4)
    arrays = {"frames": ep.frames, "actions": ep.actions, "action_names": np.array(TOY_ACTIONS)}
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_episodes(path)


def test_unknown_action_names_the_known_ones():
    with pytest.raises(DataError, match="expected one of noop, forward"):
        toy_episodes(episodes=1, steps=2).action_id("jump")
    with pytest.raises(DataError, match="no such episodes file"):
        read_episodes("/nonexistent/maze.npz")
    with pytest.raises(DataError, match="frames must be uint8"):
        Episodes(np.zeros((1, 2, 4, 4, 3), np.float32), np.zeros((1, 2), int), ("a",))
