"""``--compile``: the training step's networks through ``torch.compile`` (inductor).

What is compiled is every largest part of the model that holds no codebook quantizer: the
encoder and decoder of a VQ-VAE, a whole prior. A codebook quantizer's training call is
data-dependent Python (its k-means initialization, restarts and EMA statistics, in float32)
that would break the graph at every step, so it runs eagerly between compiled networks.

The compiled callables are switched on only inside a training step (``Compiled.active``):
evaluation, sampling and saving see the plain modules, so checkpoints and weights have the
same names either way and evaluation never waits for a compilation of its own shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from vqvae.quantizers import Quantizer


@dataclass(frozen=True)
class Compiled:
    modules: tuple[tuple[nn.Module, Callable], ...] = ()  # (module, its compiled call)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Calls of the modules go through their compiled versions inside the block."""
        for module, call in self.modules:
            module._compiled_call_impl = call  # what nn.Module.compile() sets
        try:
            yield
        finally:
            for module, _ in self.modules:
                module._compiled_call_impl = None


def networks(model: nn.Module) -> list[nn.Module]:
    """The largest submodules of ``model`` (itself included) holding no codebook quantizer."""
    if not any(isinstance(m, Quantizer) for m in model.modules()):
        return [model]
    if isinstance(model, Quantizer):
        return []
    return [n for child in model.children() for n in networks(child)]


def compile_networks(model: nn.Module, device: torch.device) -> Compiled:
    """The model's networks compiled; ``CompileUnavailable`` (with the reason) where
    compilation fails on this platform (no C compiler, no Triton for the GPU, ...), and the
    caller trains eagerly."""
    try:  # a one-line function finds a broken toolchain in seconds, before any real step
        torch.compile(_probe)(torch.ones(2, device=device))
    except Exception as e:  # noqa: BLE001 - any failure means: train eagerly
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CompileUnavailable(reason) from None
    # A network's input checks (``int(codes.max())`` against K) split its graph in two, by
    # design: dynamo's multi-line warning about each such break is not for the user.
    torch._logging.set_logs(dynamo=logging.ERROR)
    return Compiled(tuple((m, torch.compile(m._call_impl)) for m in networks(model)))


class CompileUnavailable(RuntimeError):
    pass


def _probe(x: torch.Tensor) -> torch.Tensor:
    return x * 2 + 1
