"""mu-law companding: audio in [-1, 1] <-> integers in [0, channels).

van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio" (arXiv:1609.03499),
section 2.2: "we first apply a mu-law companding transformation (ITU-T, 1988) to the data,
and then quantize it to 256 possible values"::

    f(x) = sign(x) * ln(1 + mu |x|) / ln(1 + mu),    mu = channels - 1 = 255

``f`` maps [-1, 1] onto [-1, 1] with fine steps near silence and coarse ones near full
scale; the integers are ``round((f(x) + 1) / 2 * mu)``. The round trip
``mulaw_decode(mulaw_encode(x))`` is off by at most half a step, largest at full scale:
``max_roundtrip_error(channels)`` (about 0.0216 for 256 channels; tested in
``tests/test_wavenet.py``). With an even number of channels no integer decodes to exactly
0; silence encodes to ``channels // 2``.
"""

from __future__ import annotations

import math

import torch


def _check_channels(channels: int) -> int:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 2:
        raise ValueError(f"channels: expected an int >= 2, got {channels!r}")
    return channels - 1  # mu


def mulaw_encode(x: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """Audio in [-1, 1] (any shape, floating) -> int64 in [0, channels), same shape."""
    mu = _check_channels(channels)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected a floating tensor of audio in [-1, 1], got {got}")
    if x.numel() and not bool(((x >= -1) & (x <= 1)).all()):  # NaN fails both comparisons
        raise ValueError(
            f"x: expected audio in [-1, 1], got values in [{float(x.min()):.4g}, "
            f"{float(x.max()):.4g}] (or NaN)"
        )
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    f = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)  # [-1, 1]
    return torch.floor((f + 1) / 2 * mu + 0.5).long()  # round half up: [0, mu]


def mulaw_decode(q: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """Integers in [0, channels) (any shape) -> float32 audio in [-1, 1], same shape."""
    mu = _check_channels(channels)
    if not isinstance(q, torch.Tensor) or q.is_floating_point() or q.dtype == torch.bool:
        got = q.dtype if isinstance(q, torch.Tensor) else type(q).__name__
        raise ValueError(f"q: expected an integer tensor of mu-law values, got {got}")
    if q.numel() and (int(q.min()) < 0 or int(q.max()) > mu):
        raise ValueError(
            f"q: expected values in [0, {channels}), got values in [{int(q.min())}, {int(q.max())}]"
        )
    f = 2 * q.to(torch.float64) / mu - 1  # [-1, 1]; float64 so that encode(decode(q)) == q
    x = torch.sign(f) * torch.expm1(f.abs() * math.log1p(mu)) / mu
    return x.float()


def max_roundtrip_error(channels: int = 256) -> float:
    """The largest ``|decode(encode(x)) - x|``: half of the top step, at full scale."""
    mu = _check_channels(channels)
    # the top two levels sit at f = 1 - 2/mu and f = 1; x rounds up to x = 1 from
    # f(x) = 1 - 1/mu, and as the steps widen with |x| that is the largest error
    return 1 - math.expm1((1 - 1 / mu) * math.log1p(mu)) / mu
