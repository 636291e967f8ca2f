"""The training loop every model and prior shares.

Exact resumption: the batch of step s is a pure function of (seed, s), the
random-number state is saved in every checkpoint, and evaluation draws no random numbers;
so a run resumed from its last checkpoint takes the very same steps as one never stopped.
Ctrl-C is caught between steps (never inside an optimizer update), saved, and reported.

A step is one optimizer update, whatever runs inside it: ``--accumulate N`` micro-batches
(``accumulate.py``), each forward pass under ``--precision``'s autocast with a loss scaler
for float16 (``precision.py``), the networks compiled by ``--compile`` (``compiled.py``).

In several processes every stop is agreed: a batch that could not be read, a non-finite
loss and a Ctrl-C seen by any one process stop them all at the same step (a one-number
all-reduce at each of those points), so none is left waiting for the others in a collective.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from vqvae import threads
from vqvae._io import WriteError
from vqvae.config import TrainConfig
from vqvae.console import say
from vqvae.errors import RunError
from vqvae.runs import RunDir
from vqvae.torch_utils import module_device
from vqvae.train import distributed
from vqvae.train.accumulate import micro_batches, no_sync, quantizers, step_mode
from vqvae.train.checkpoint import (
    clean_partial,
    last_good_note,
    list_checkpoints,
    load_checkpoint,
    newest_good,
    save_checkpoint,
    set_aside,
)
from vqvae.train.compiled import Compiled, CompileUnavailable, compile_networks
from vqvae.train.precision import autocast, grad_scaler
from vqvae.train.schedule import set_lr


class NonFiniteLoss(RuntimeError):
    pass


class StoppedByPeer(RuntimeError):
    """Another process of the run failed; this one stopped with it, at the same step."""


class Interrupted(RuntimeError):
    def __init__(self, step: int) -> None:
        super().__init__(f"interrupted; saved a checkpoint at step {step}")
        self.step = step


@dataclass(frozen=True)
class StepOutput:
    loss: torch.Tensor  # scalar to minimise
    logs: dict[str, float] = field(default_factory=dict)  # shown and written to metrics


@dataclass(frozen=True)
class FitResult:
    start_step: int  # 0 for a fresh run, the checkpoint's step when resumed
    steps: int


def batch_indices(step: int, num_examples: int, batch_size: int, seed: int) -> torch.Tensor:
    """The examples of global step ``step``: a seeded permutation per epoch, last partial
    batch dropped. A function of its arguments only, so resuming needs no data state."""
    batch_size = min(batch_size, num_examples)
    per_epoch = num_examples // batch_size
    epoch, k = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(num_examples, generator=generator)
    return perm[k * batch_size : (k + 1) * batch_size]


class _StopRequest:
    """SIGINT sets a flag that the loop reads between steps; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopRequest:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not in the main thread: leave Ctrl-C alone
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    *,
    num_examples: int,
    step_fn: Callable[[Any], StepOutput],
    run: RunDir,
    evaluate: Callable[[int], dict[str, Any]] | None = None,
    resume: bool = False,
    progress: bool = True,
    desc: str = "train",
    fetch: Callable[[Iterator[torch.Tensor]], Iterator[Any]] | None = None,
    trained: nn.Module | None = None,
) -> FitResult:
    """Train ``model`` for ``config.steps`` steps of ``step_fn``, checkpointing into
    ``run.checkpoints`` and logging to ``run.metrics_file`` (rank 0 only).

    ``step_fn`` receives this process's share of each step's ``batch_indices``, or with
    ``fetch``, what ``fetch`` makes of the stream of those index tensors, one item per step
    from the first step run (e.g. the images, read ahead by worker processes); under
    ``config.accumulate`` it receives the micro-batches of either, in turn. ``trained``:
    the DistributedDataParallel wrapper ``step_fn`` runs, if any (its all-reduce waits for
    a step's last micro-batch)."""
    world = distributed.current()
    device = module_device(model)
    scaler = grad_scaler(config.precision, device)
    start = _start_step(model, optimizer, config, run, resume, scaler)
    if start >= config.steps:
        return FitResult(start, config.steps)
    indices = (
        world.shard(batch_indices(step, num_examples, config.batch_size, config.seed))
        for step in range(start, config.steps)
    )
    inputs = fetch(indices) if fetch is not None else indices

    def checkpoint(step: int) -> None:
        if world.is_main:
            save_checkpoint(run.checkpoints, step, model, optimizer, scaler)
        world.barrier()

    def due(step: int, every: int) -> bool:
        return step % every == 0 or step == config.steps

    if world.is_main:
        threads.announce()
    step = _Step(model, trained, step_fn, config, scaler, _compiled(model, config, device))

    # disable=None: shown on a terminal, silent in a log file (CI)
    bar = tqdm(total=config.steps, initial=start, desc=desc, dynamic_ncols=True,
               disable=None if progress and world.is_main else True)  # fmt: skip
    t0 = time.perf_counter()
    with _StopRequest() as stop, bar, _closed_at_exit(inputs), _last_good_named(run):
        for index in range(start, config.steps):
            if config.scheduled:
                set_lr(optimizer, config, index)
            optimizer.zero_grad(set_to_none=True)
            out = step(_next_agreed(inputs, index), partial(_check_finite, step=index, run=run))
            scaler.step(optimizer)  # skipped, with the scale lowered, if float16 overflowed
            scaler.update()
            done = index + 1
            bar.update(1)
            if due(done, config.log_every):
                logs = {"loss": out.loss.item(), **out.logs}
                if scaler.is_enabled():
                    logs["loss_scale"] = scaler.get_scale()
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k in _SHOWN})
                seconds = round(time.perf_counter() - t0, 3)
                if world.is_main:
                    run.log({"step": done, "split": "train", **logs, "seconds": seconds})
            if evaluate is not None and due(done, config.eval_every):
                record = evaluate(done)
                if world.is_main:
                    run.log({"step": done, "split": "test", **record})
            if due(done, config.checkpoint_every):
                checkpoint(done)
            if world.any(stop.requested):
                if not due(done, config.checkpoint_every):
                    checkpoint(done)
                raise Interrupted(done)
    return FitResult(start, config.steps)


@dataclass(frozen=True)
class _Step:
    """One optimizer step's forward and backward passes, up to the optimizer's update."""

    model: nn.Module
    trained: nn.Module | None
    step_fn: Callable[[Any], StepOutput]
    config: TrainConfig
    scaler: torch.amp.GradScaler
    compiled: Compiled

    def _forward(self, batch: Any, compiled: bool = True) -> StepOutput:
        networks = self.compiled.active() if compiled else nullcontext()
        with autocast(self.config.precision, module_device(self.model)), networks:
            out = self.step_fn(batch)
        if out.loss.dtype in (torch.float16, torch.bfloat16):
            raise TypeError(
                f"the step's loss is {out.loss.dtype}; losses are computed in float32 "
                f'(docs/design-notes.md, "Precision")'
            )
        return out

    def __call__(self, batch: Any, check: Callable[[torch.Tensor], None]) -> StepOutput:
        parts = self.config.accumulate
        if parts == 1:
            out = self._forward(batch)
            check(out.loss)
            self.scaler.scale(out.loss).backward()
            return out
        found = quantizers(self.model)
        if any(q.initializing for q in found):  # fit the codebooks to the whole batch first
            # (eagerly: compiled, a pass without gradients would be compiled once more)
            with torch.no_grad(), step_mode(found, "init"):
                self._forward(batch, compiled=False)
        pieces = micro_batches(batch, parts)
        weights = [len(p) / len(batch) for p in pieces]  # the mean over the batch, in parts
        outs = []
        with step_mode(found, "defer"):
            for i, piece in enumerate(pieces):
                with no_sync(self.trained, last=i == len(pieces) - 1):
                    out = self._forward(piece)
                    check(out.loss)
                    self.scaler.scale(out.loss * weights[i]).backward()
                outs.append(out)
            restarted = sum(q.finish_step() for q in found)
        shares = list(zip(weights, outs, strict=True))
        logs = {k: sum(w * o.logs[k] for w, o in shares) for k in outs[0].logs}
        if "restarted" in logs:  # counted once per step, in finish_step
            logs["restarted"] = restarted
        loss = sum(w * o.loss.detach() for w, o in shares)
        return StepOutput(loss, logs)


def _compiled(model: nn.Module, config: TrainConfig, device: torch.device) -> Compiled:
    if not config.compile:
        return Compiled()
    try:
        return compile_networks(model, device)
    except CompileUnavailable as e:
        if distributed.current().is_main:
            say(f"vqvae: --compile does not work on this platform ({e}); training eagerly")
        return Compiled()


def _start_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    run: RunDir,
    resume: bool,
    scaler: torch.amp.GradScaler | None = None,
) -> int:
    """The step to start from: the last checkpoint's when resuming (restoring the model, the
    optimizer, the loss scaler and the random-number state), else 0 with the generator
    seeded."""
    world = distributed.current()
    if world.is_main:
        clean_partial(run.checkpoints)
    chosen = _resumable(run) if resume else None
    start = 0
    if chosen is not None:
        start = int(load_checkpoint(chosen, model, optimizer, scaler, checked=True)["step"])
    else:
        torch.manual_seed(config.seed)
    if resume and world.is_main:
        run.truncate_metrics(start)  # what was logged after the checkpoint is done again
    return start


def _resumable(run: RunDir):
    """The newest good checkpoint; newer damaged or incomplete ones are named in one line
    and set aside (``checkpoint.newest_good``), and with none good, a one-line refusal."""
    world = distributed.current()
    choice = newest_good(run.checkpoints)  # every process reads the same files, and agrees
    world.barrier()  # before rank 0 renames any
    if not choice.damaged:
        return choice.checkpoint
    what = "; ".join(problem for _, problem in choice.damaged)
    if choice.checkpoint is None:
        raise RunError(
            f"{run.checkpoints}: every checkpoint is damaged or incomplete ({what}); "
            f"nothing to resume from (start afresh with --force)"
        )
    if world.is_main:
        aside = ", ".join(set_aside(c).name for c, _ in choice.damaged)
        say(
            f"vqvae: {what}; resuming from step {choice.checkpoint.step} instead (the damaged "
            f"one kept as {aside})"
        )
    world.barrier()
    return choice.checkpoint


@contextmanager
def _last_good_named(run: RunDir) -> Iterator[None]:
    """A write the disk refused during training (a log line, a figure) says where the run
    would continue from."""
    try:
        yield
    except WriteError as e:
        raise RunError(f"{e}; {last_good_note(run.checkpoints)}") from None


def _next_agreed(inputs: Iterator[Any], step: int) -> Any:
    """The next step's input, once every process has read its own: a process that could not
    (a corrupt file) raises its error, the others stop with it."""
    try:
        value, failure = next(inputs), None
    except Exception as e:  # noqa: BLE001 - raised again below, after the others know
        value, failure = None, e
    if distributed.current().any(failure is not None):
        if failure is not None:
            raise failure
        raise StoppedByPeer(f"another process failed to read step {step + 1}'s batch; stopped")
    return value


@contextmanager
def _closed_at_exit(inputs: Iterator[Any]) -> Iterator[None]:
    """Close a generator of inputs on the way out (its DataLoader workers stop with it)."""
    try:
        yield
    finally:
        close = getattr(inputs, "close", None)
        if close is not None:
            close()


def _check_finite(loss: torch.Tensor, step: int, run: RunDir) -> None:
    """Stop before a non-finite loss reaches the weights; the checkpoints stay as they were.
    Every process stops when any one sees it (before the gradients are all-reduced)."""
    value = loss.item()
    if not distributed.current().any(not math.isfinite(value)):
        return
    last = list_checkpoints(run.checkpoints)
    kept = f"the last good checkpoint is step {last[-1].step}" if last else "no checkpoint yet"
    seen = value if not math.isfinite(value) else "non-finite in another process"
    raise NonFiniteLoss(f"loss became {seen} at step {step + 1}; {kept} (try a lower --lr)")


_SHOWN = ("loss", "perplexity", "code_usage", "psnr", "bits_per_code", "mel_error")
