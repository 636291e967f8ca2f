"""Speaker ids, checked once for every decoder that takes a speaker (a global condition,
WaveNet section 2.5)."""

from __future__ import annotations

import torch


def check_speaker_ids(
    speaker: torch.Tensor | int | None, num_speakers: int, batch: int, device, who: str
) -> torch.Tensor | None:
    """None without speakers, else ``(batch,)`` int64 ids in ``[0, num_speakers)`` on
    ``device`` (an int stands for every row); ``who`` names the network in messages."""
    n = num_speakers
    if n == 0:
        if speaker is not None:
            raise ValueError(f"speaker: this {who} has no speakers (num_speakers=0), got one")
        return None
    if speaker is None:
        raise ValueError(f"speaker: expected ({batch},) ids in [0, {n}) or an int, got None")
    if isinstance(speaker, bool) or not isinstance(speaker, (int, torch.Tensor)):
        got = type(speaker).__name__
        raise ValueError(f"speaker: expected an int or a ({batch},) tensor, got {got}")
    if isinstance(speaker, int):
        speaker = torch.full((batch,), speaker, dtype=torch.long)
    if speaker.is_floating_point() or speaker.is_complex() or speaker.dtype == torch.bool:
        raise ValueError(f"speaker: expected an integer tensor, got dtype {speaker.dtype}")
    if tuple(speaker.shape) != (batch,):
        raise ValueError(f"speaker: expected shape ({batch},), got {tuple(speaker.shape)}")
    lo, hi = int(speaker.min()), int(speaker.max())
    if lo < 0 or hi >= n:
        raise ValueError(f"speaker: expected ids in [0, {n}), got ids in [{lo}, {hi}]")
    return speaker.to(device=device, dtype=torch.long)
