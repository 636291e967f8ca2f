"""Threads and the command line's face: ``--threads`` on every command with a default chosen
from the load, ``vqvae --version``, and a bare ``vqvae`` listing the commands."""

from __future__ import annotations

import argparse

import pytest
import torch

from vqvae.cli import main
from vqvae.cli.parser import build_parser
from vqvae.threads import choose_threads


@pytest.fixture
def no_omp(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


@pytest.mark.parametrize(
    "cores, load, expected",
    [
        (2, 0.1, 2),  # idle: one thread per core
        (2, 1.0, 1),  # one core taken
        (2, 2.3, 1),  # both taken (two other CPU-bound jobs): never two
        (8, 3.0, 5),
        (8, 40.0, 1),  # at least one
    ],
)
def test_the_default_is_the_cores_the_load_leaves_free(no_omp, cores, load, expected):
    choice = choose_threads(cores=cores, load=load)
    assert choice.threads == expected
    assert f"load average {load:.1f} on {cores} cores" in choice.reason


def test_asked_and_environment_win_over_the_load(monkeypatch):
    asked = choose_threads(3, cores=2, load=5.0)
    assert asked.threads == 3 and not asked.chosen  # the user's choice is not announced
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    from_env = choose_threads(cores=8, load=0.0)
    assert from_env.threads == 2 and not from_env.chosen
    with pytest.raises(ValueError, match="--threads"):
        choose_threads(0)


def test_every_command_takes_threads():
    parser = build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    checked = 0
    stack = [p for a in subs for p in a.choices.values()]
    while stack:
        p = stack.pop()
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            stack += [q for a in nested for q in a.choices.values()]
        else:
            assert "--threads" in p._option_string_actions, p.prog
            checked += 1
    assert checked > 15


def test_threads_are_applied(capsys):
    before = torch.get_num_threads()
    try:
        assert main(["list", "presets", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_version_names_the_package_torch_and_the_device(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("vqvae 0.") and f"torch {torch.__version__}" in out
    assert out.endswith("device cpu)") or "cuda" in out or "mps" in out


def test_a_bare_vqvae_lists_the_commands(capsys):
    assert main([]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for command in ("train", "prior", "sample", "demo"):
        assert command in out


def test_only_a_choice_made_from_the_load_is_announced(no_omp, capsys, monkeypatch):
    from vqvae import threads

    before = torch.get_num_threads()
    try:
        choose_threads(1).apply()
        threads.announce()
        assert capsys.readouterr().err == ""  # asked for: nothing to say
        choose_threads(cores=2, load=2.0).apply()
        threads.announce()
        threads.announce()  # once
        assert (
            capsys.readouterr().err == "vqvae: 1 thread(s): load average 2.0 on 2 cores "
            "(choose with --threads N)\n"
        )
    finally:
        torch.set_num_threads(before)
