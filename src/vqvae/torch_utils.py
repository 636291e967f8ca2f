"""Small PyTorch helpers with one home each."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch import nn

T = TypeVar("T")


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block, then restore the mode it had (even when the
    block raises): encoding, evaluation and sampling never change a model's training state."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for an empty module)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def float32(method: Callable[..., T]) -> Callable[..., T]:
    """Run ``method`` in float32 whatever autocast surrounds it: half-precision tensor
    arguments are cast to float32 (float64 stays float64) and autocast is off inside.

    The precision rule (docs/design-notes.md, "Precision"): under ``--precision bf16`` or
    ``16`` only the networks run in half precision; the quantizers (distances, codebooks,
    EMA statistics, k-means, restarts), the likelihoods' log-probabilities and every loss
    are float32. Tests: tests/test_precision.py, for every quantizer kind and likelihood.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        device = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return method(self, *map(_widened, args), **kwargs)

    return wrapper


def _widened(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x
