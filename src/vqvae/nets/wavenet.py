"""WaveNet: the VQ-VAE's speech decoder, with fast cached generation.

van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio" (arXiv:1609.03499):

- section 2.1: ``p(x) = prod_t p(x_t | x_1 .. x_{t-1})``, a softmax over mu-law values
  (section 2.2, ``vqvae.mulaw``) computed by a stack of dilated causal convolutions whose
  dilation doubles each layer, ``1, 2, ..., 2^(layers-1)``, repeated ``stacks`` times;
- section 2.3, eq. 2: gated activation units ``z = tanh(W_f * x) . sigmoid(W_g * x)``;
- section 2.4: residual and parameterised skip connections; the skips are summed and go
  through ReLU, 1x1, ReLU, 1x1, softmax;
- section 2.5, eq. 3: global conditioning ``+ V h`` on a learned speaker embedding h, and
  local conditioning ``+ V * y`` on a sequence y upsampled to the audio rate.

van den Oord et al. 2017, "Neural Discrete Representation Learning" (arXiv:1711.00937),
section 4.3, uses it as the decoder: conditioned on the VQ latents (one per 64 samples) and
on a speaker id.

Choices made here:

- **Input and its shift.** ``forward(samples, local, speaker)`` takes the audio itself,
  ``(B, T)`` mu-law integers, and shifts it right by one inside: position t sees
  ``samples[:t]`` and the first position sees "silence" (``num_classes // 2``, which is
  ``mulaw_encode(0)``). So ``logits[:, :, t]`` is ``p(samples[t] | samples[<t])`` and the
  teacher-forcing loss is ``F.cross_entropy(logits, samples)``. Inputs are embedded with
  ``nn.Embedding``, the same as a one-hot vector through a 1x1 convolution.
- **Upsampling the latents.** One transposed convolution, window ``2f``, stride ``f``
  (``f = upsample_factor``), cropped by ``f // 2`` at the front to exactly ``T' * f``
  samples: each audio sample gets a learned blend of the two latents whose centres are
  nearest to it, like a learned linear interpolation. Every output receives exactly two
  kernel taps, so there is no checkerboard pattern, and it costs two small matrix products
  per sample. It looks one latent ahead, which is allowed: the latents are all known
  before any audio is generated.
- **Conditioning.** Each layer adds ``V_l * y`` (a 1x1 convolution of the upsampled
  latents) and ``V'_l h`` (a linear map of the speaker embedding) to the pre-activations
  of both halves of its gate, as in eq. 3.

Generation, ``generate(local, speaker, method=...)``:

- ``"naive"``: for every new sample, a full forward pass over the last ``receptive_field``
  inputs (the whole prefix while it is shorter). Exact, and the reference.
- ``"cached"``: the Fast WaveNet Generation Algorithm (Paine et al. 2016, arXiv:1611.09482).
  Layer l's output at time t needs its input at times t and t - d_l only, so each layer
  keeps a queue of its last ``(kernel_size - 1) * d_l + 1`` inputs (a ring buffer, see
  ``FastWaveNetGenerator``) and a new sample costs one step per layer, batched over clips:
  a few matrix products with the convolution weights reshaped to matrices. The latents
  are upsampled once for the whole clip, and every layer's conditioning projection is
  computed in large blocks of steps ahead of the steps that use them.

Both draw with ``vqvae.priors.base.draw_codes`` (one uniform number per clip and sample)
and draw the same samples from the same generator seed (``tests/test_wavenet.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.nets.speakers import check_speaker_ids
from vqvae.pretrained import PretrainedMixin
from vqvae.sampling import Draw, draw_codes

# Conditioning projections are computed in blocks of at most this many floats (64 MiB).
_COND_BLOCK_FLOATS = 2**24


@dataclass(frozen=True)
class WaveNetConfig:
    num_classes: int = 256  # softmax over mu-law values (section 2.2)
    residual_channels: int = 64  # width of the residual stream between layers
    gate_channels: int = 64  # width of z = tanh(W_f * x) . sigmoid(W_g * x); the conv gives 2x
    skip_channels: int = 128  # width of the skip connections and of the output head
    kernel_size: int = 2  # taps of each dilated causal convolution
    layers: int = 10  # per stack: dilations 1, 2, 4, ..., 2^(layers - 1)
    stacks: int = 2
    local_channels: int = 64  # D of the conditioning latents (B, D, T')
    upsample_factor: int = 64  # audio samples per latent (the encoder's 2^6)
    num_speakers: int = 0  # 0 = no global conditioning; else speaker ids in [0, num_speakers)
    speaker_dim: int = 16  # width of the learned speaker embedding

    def __post_init__(self) -> None:
        positive = (
            "num_classes", "residual_channels", "gate_channels", "skip_channels",
            "layers", "stacks", "local_channels", "upsample_factor", "speaker_dim",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes: expected at least 2, got {self.num_classes}")
        if self.kernel_size < 2:
            raise ValueError(f"kernel_size: expected an int >= 2, got {self.kernel_size}")
        if self.num_speakers < 0:
            raise ValueError(f"num_speakers: expected >= 0 (0 = none), got {self.num_speakers}")

    @property
    def dilations(self) -> tuple[int, ...]:
        return tuple(2**i for i in range(self.layers)) * self.stacks

    @property
    def receptive_field(self) -> int:
        """How many past samples one output sees: ``(kernel_size - 1) * sum(dilations) + 1``."""
        return (self.kernel_size - 1) * sum(self.dilations) + 1

    @property
    def silence(self) -> int:
        """The mu-law value of 0.0 (``mulaw_encode(0)``): the input before the first sample."""
        return self.num_classes // 2


class GatedLayer(nn.Module):
    """One dilated causal layer: gate (eq. 2) with conditioning (eq. 3), residual, skip."""

    def __init__(self, config: WaveNetConfig, dilation: int, last: bool) -> None:
        super().__init__()
        r, g = config.residual_channels, config.gate_channels
        self.dilation = dilation
        self.pad = (config.kernel_size - 1) * dilation  # left zeros: causal
        self.conv = nn.Conv1d(r, 2 * g, config.kernel_size, dilation=dilation)  # W_f, W_g
        self.local = nn.Conv1d(config.local_channels, 2 * g, 1, bias=False)  # V_f, V_g * y
        self.speaker = (
            nn.Linear(config.speaker_dim, 2 * g, bias=False) if config.num_speakers else None
        )
        self.skip = nn.Conv1d(g, config.skip_channels, 1)
        # the last layer's residual output would feed nothing
        self.residual = None if last else nn.Conv1d(g, r, 1)

    def forward(
        self, h: torch.Tensor, cond: torch.Tensor, speaker: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h (B, R, T), cond (B, C_l, T), speaker (B, E) -> next h (B, R, T), skip (B, S, T)."""
        z = self.conv(F.pad(h, (self.pad, 0))) + self.local(cond)  # (B, 2G, T)
        if self.speaker is not None:
            z = z + self.speaker(speaker).unsqueeze(-1)  # (B, 2G) -> (B, 2G, 1)
        filt, gate = z.chunk(2, dim=1)  # (B, G, T) each
        out = torch.tanh(filt) * torch.sigmoid(gate)
        if self.residual is not None:
            h = h + self.residual(out)
        return h, self.skip(out)


class WaveNet(nn.Module, PretrainedMixin):
    """``forward(samples (B, T), local (B, C_l, T / f), speaker (B,)) -> logits (B, 256, T)``."""

    config_class = WaveNetConfig

    def __init__(self, config: WaveNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or WaveNetConfig()
        f = c.upsample_factor
        self.embed = nn.Embedding(c.num_classes, c.residual_channels)  # one-hot -> 1x1 conv
        self.upsample = nn.ConvTranspose1d(c.local_channels, c.local_channels, 2 * f, stride=f)
        self.speakers = nn.Embedding(c.num_speakers, c.speaker_dim) if c.num_speakers else None
        n = len(c.dilations)
        self.layers = nn.ModuleList(
            GatedLayer(c, d, last=i == n - 1) for i, d in enumerate(c.dilations)
        )
        self.head = nn.Sequential(  # section 2.4: ReLU, 1x1, ReLU, 1x1 (softmax in the loss)
            nn.ReLU(),
            nn.Conv1d(c.skip_channels, c.skip_channels, 1),
            nn.ReLU(),
            nn.Conv1d(c.skip_channels, c.num_classes, 1),
        )

    # -- the network ----------------------------------------------------------------------

    def upsample_local(self, local: torch.Tensor) -> torch.Tensor:
        """Latents (B, C_l, T') -> conditioning at the audio rate (B, C_l, T' * f)."""
        f = self.config.upsample_factor
        y = self.upsample(local)  # (B, C_l, (T' + 1) * f)
        return y[:, :, f // 2 : f // 2 + local.shape[2] * f]

    def speaker_embedding(self, speaker: torch.Tensor | None) -> torch.Tensor | None:
        """Checked speaker ids (B,) -> (B, speaker_dim), or None without speakers."""
        return None if self.speakers is None else self.speakers(speaker)

    def _logits(
        self, x_prev: torch.Tensor, cond: torch.Tensor, speaker: torch.Tensor | None
    ) -> torch.Tensor:
        """Shifted inputs (B, T), conditioning (B, C_l, T), speaker (B, E) -> (B, K, T)."""
        h = self.embed(x_prev).transpose(1, 2)  # (B, T, R) -> (B, R, T)
        skips = 0.0
        for layer in self.layers:
            h, skip = layer(h, cond, speaker)
            skips = skips + skip  # (B, S, T)
        return self.head(skips)

    def forward(
        self,
        samples: torch.Tensor,
        local: torch.Tensor,
        speaker: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """Teacher forcing: ``logits[:, :, t]`` scores ``samples[:, t]`` given ``samples[:, :t]``.

        ``samples`` (B, T) mu-law ints, ``local`` (B, local_channels, T / upsample_factor),
        ``speaker`` (B,) ids or an int when ``num_speakers > 0``. Returns (B, num_classes, T).
        """
        samples = self.check_samples(samples)
        batch, length = samples.shape
        local = self.check_local(local, batch, length)
        speaker = self.check_speaker(speaker, batch)
        # shift right by one: the input at t is the sample at t - 1, silence before the first
        x_prev = F.pad(samples[:, :-1], (1, 0), value=self.config.silence)  # (B, T)
        cond = self.upsample_local(local)
        return self._logits(x_prev, cond, self.speaker_embedding(speaker))

    # -- generation ------------------------------------------------------------------------

    def generate(
        self,
        local: torch.Tensor,
        speaker: torch.Tensor | int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        method: str = "cached",
    ) -> torch.Tensor:
        """Draw audio (B, T' * f) mu-law ints given latents (B, C_l, T'), sample by sample.

        ``method``: "cached" (Paine et al. 2016, the default) or "naive" (a full pass over
        the receptive field per sample). Both draw the same samples from the same seed.
        """
        samplers = {"cached": self._generate_cached, "naive": self._generate_naive}
        if method not in samplers:
            raise ValueError(f"method: expected one of {sorted(samplers)}, got {method!r}")
        if not temperature > 0:
            raise ValueError(f"temperature: expected a number > 0, got {temperature!r}")
        local = self.check_local(local)
        speaker = self.check_speaker(speaker, local.shape[0])

        def draw(logits: torch.Tensor) -> torch.Tensor:
            return draw_codes(logits, temperature, None, generator)

        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                cond = self.upsample_local(local)  # (B, C_l, T)
                return samplers[method](cond, self.speaker_embedding(speaker), draw)
        finally:
            self.train(was_training)

    def _generate_naive(
        self, cond: torch.Tensor, speaker: torch.Tensor | None, draw: Draw
    ) -> torch.Tensor:
        """For each t, the full network over inputs ``max(0, t + 1 - RF) .. t``.

        Cutting the window at the receptive field changes nothing at its last position:
        layer l there reads layer l - 1 no further back than the dilations of layers >= l
        add up to, so the zero padding at the window's left edge only reaches positions
        whose values never get to the output at t.
        """
        batch, _, length = cond.shape
        rf = self.config.receptive_field
        # x_prev[:, t] is the input at t, the sample at t - 1; silence before the first
        x_prev = torch.full((batch, length + 1), self.config.silence, device=cond.device)
        for t in range(length):
            lo = max(0, t + 1 - rf)
            logits = self._logits(x_prev[:, lo : t + 1], cond[:, :, lo : t + 1], speaker)
            x_prev[:, t + 1] = draw(logits[:, :, -1])  # (B, K, window) -> (B, K) -> (B,)
        return x_prev[:, 1:]

    def _generate_cached(
        self, cond: torch.Tensor, speaker: torch.Tensor | None, draw: Draw
    ) -> torch.Tensor:
        """One step per layer and sample with ``FastWaveNetGenerator``."""
        batch, _, length = cond.shape
        fast = FastWaveNetGenerator(self, cond, speaker)
        x = torch.full((batch,), self.config.silence, device=cond.device)
        samples = []
        for _ in range(length):
            x = draw(fast.step(x))  # (B, K) -> (B,)
            samples.append(x)
        return torch.stack(samples, dim=1)  # T x (B,) -> (B, T)

    def fast_generator(
        self, local: torch.Tensor, speaker: torch.Tensor | int | None = None
    ) -> FastWaveNetGenerator:
        """A ``FastWaveNetGenerator`` for checked latents (B, C_l, T') and speakers."""
        local = self.check_local(local)
        speaker = self.check_speaker(speaker, local.shape[0])
        with torch.no_grad():
            cond = self.upsample_local(local)
            return FastWaveNetGenerator(self, cond, self.speaker_embedding(speaker))

    # -- input checks: one clear line saying what was expected and what came -------------

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    def check_samples(self, samples: torch.Tensor) -> torch.Tensor:
        """Validate ``(B, T)`` mu-law integers in ``[0, num_classes)``; return them as int64."""
        k = self.config.num_classes
        if not isinstance(samples, torch.Tensor):
            raise ValueError(f"samples: expected a (B, T) tensor, got {type(samples).__name__}")
        if samples.is_floating_point() or samples.is_complex() or samples.dtype == torch.bool:
            raise ValueError(
                f"samples: expected mu-law integers (int64), got dtype {samples.dtype}"
            )
        if samples.dim() != 2 or samples.shape[1] == 0:
            shape = tuple(samples.shape)
            raise ValueError(f"samples: expected shape (B, T) with T >= 1, got {shape}")
        lo, hi = int(samples.min()), int(samples.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"samples: expected values in [0, {k}), got values in [{lo}, {hi}]")
        return samples.to(device=self.device, dtype=torch.long)

    def check_local(
        self, local: torch.Tensor, batch: int | None = None, length: int | None = None
    ) -> torch.Tensor:
        """Validate latents ``(B, local_channels, T')``, with ``T' * f == length`` if given."""
        c, f = self.config.local_channels, self.config.upsample_factor
        if not isinstance(local, torch.Tensor) or not local.is_floating_point():
            got = local.dtype if isinstance(local, torch.Tensor) else type(local).__name__
            raise ValueError(f"local: expected a floating tensor (B, {c}, T'), got {got}")
        b = "B" if batch is None else batch
        if local.dim() != 3 or local.shape[1] != c or local.shape[2] == 0:
            raise ValueError(f"local: expected shape ({b}, {c}, T'), got {tuple(local.shape)}")
        if batch is not None and local.shape[0] != batch:
            raise ValueError(f"local: expected batch size {batch}, got {tuple(local.shape)}")
        if length is not None and local.shape[2] * f != length:
            raise ValueError(
                f"local: expected T / {f} = {length / f:g} positions for T={length} samples "
                f"(one latent per {f}), got {local.shape[2]}"
            )
        return local.to(device=self.device, dtype=self.embed.weight.dtype)

    def check_speaker(self, speaker: torch.Tensor | int | None, batch: int) -> torch.Tensor | None:
        """Validate speaker ids: None without speakers, else ``(batch,)`` int64 (an int too)."""
        return check_speaker_ids(speaker, self.config.num_speakers, batch, self.device, "WaveNet")


def _conv_matrix(conv: nn.Conv1d) -> torch.Tensor:
    """A 1x1 convolution's weight (out, in, 1) as the right-hand matrix (in, out) of x @ W."""
    return conv.weight.detach()[:, :, 0].t().contiguous()


class FastWaveNetGenerator:
    """The Fast WaveNet Generation Algorithm (Paine et al. 2016), one sample per ``step``.

    Queues: layer l (dilation d, kernel k) needs its input at t, t - d, ..., t - (k - 1) d.
    Its queue is a ring buffer of ``size = (k - 1) d + 1`` slots ``(B, R)``; the input at
    time t lives in slot ``t % size``, so the input at ``t - j d`` is slot
    ``(t - j d) % size``, written fewer than ``size`` steps ago. Each layer writes its
    output, the next layer's input, straight into the next queue's slot: no copies.

    Two rewrites of the same arithmetic save an operation per layer and step:

    - ``tanh(a) = 1 - 2 sigmoid(-2 a)``: the filter half's weights and biases are scaled by
      -2 here, one ``sigmoid`` covers both halves, and ``z = s_g - 2 s_f s_g`` is one
      ``addcmul``.
    - residual biases: the queues hold ``h_l - c_l`` with ``c_l`` the sum of the residual
      biases below layer l, so ``h_{l+1} - c_{l+1} = (h_l - c_l) + z W_res`` needs no bias
      add; layer l's conv bias absorbs ``sum_j c_l W_j``, and its queue starts filled with
      ``-c_l``, which is what the full pass's zero padding becomes under the same shift.

    Per step and layer this leaves: ``k`` products ``(B, R) @ (R, 2G)`` added in place onto
    the precomputed conditioning, one ``sigmoid``, one ``addcmul`` into a ``(B, L, G)``
    block, one residual product ``(B, G) @ (G, R)``; then all skip connections at once,
    ``(B, L * G) @ (L * G, S)``, and the head. Rows are clips (batch first): on a CPU,
    MKL multiplies a few rows by a weight matrix several times faster than a weight matrix
    by a few columns. Workspaces and their views are made once, in ``__init__``; the inner
    loop indexes Python lists.
    """

    @torch.no_grad()
    def __init__(self, net: WaveNet, cond: torch.Tensor, speaker: torch.Tensor | None) -> None:
        """``cond`` (B, C_l, T): upsampled latents; ``speaker`` (B, E) embeddings or None."""
        c = net.config
        self.batch, _, self.length = cond.shape
        b, g, n, k = self.batch, c.gate_channels, len(net.layers), c.kernel_size
        self.embed = net.embed.weight.detach()  # (K, R): a row per mu-law value
        kw = {"dtype": self.embed.dtype, "device": self.embed.device}
        self.t = 0
        # the filter half times -2 (tanh through sigmoid, see the class docstring)
        scale = torch.cat([torch.full((g,), -2.0, **kw), torch.ones(g, **kw)])  # (2G,)
        # -- residual biases folded into the queues -------------------------------------
        shifts = [torch.zeros(c.residual_channels, **kw)]  # c_l: (R,) per layer
        for layer in net.layers[:-1]:
            shifts.append(shifts[-1] + layer.residual.bias.detach())
        # -- weights as right-hand matrices: (R, 2G) per tap, (G, R), (L * G, S), head ----
        self.taps, conv_b = [], []
        for layer, shift in zip(net.layers, shifts, strict=True):
            w = layer.conv.weight.detach() * scale[:, None, None]  # (2G, R, k)
            self.taps.append([w[:, :, j].t().contiguous() for j in range(k)])
            conv_b.append(layer.conv.bias.detach() * scale + w.sum(dim=2) @ shift)
        self.res_w = [_conv_matrix(layer.residual) for layer in net.layers[:-1]]
        self.skip_w = torch.cat([_conv_matrix(layer.skip) for layer in net.layers])  # (L * G, S)
        self.skip_b = sum(layer.skip.bias.detach() for layer in net.layers)  # (S,)
        self.head = [(_conv_matrix(m), m.bias.detach()) for m in (net.head[1], net.head[3])]
        # -- conditioning: y V_l for all layers at once; conv biases and h V'_l -----------
        self.cond = cond.detach()
        self.local_w = torch.cat([_conv_matrix(layer.local) * scale for layer in net.layers], 1)
        cond_b = torch.stack(conv_b)[:, None, :].expand(n, b, 2 * g)  # (L, B, 2G)
        if speaker is not None:
            spk_w = [layer.speaker.weight.detach().t() * scale for layer in net.layers]
            cond_b = cond_b + torch.stack([speaker @ w for w in spk_w])  # L x (B, E) @ (E, 2G)
        self.cond_b = cond_b.contiguous()
        self.block = max(1, min(self.length, _COND_BLOCK_FLOATS // (b * n * 2 * g)))
        self.block_start = 0
        self.block_cond = torch.empty(0, b, n, 2 * g, **kw)
        # -- queues, one per layer, filled with -c_l, and their slots as views ------------
        self.slots = [
            list((-shift).expand((k - 1) * d + 1, b, -1).clone().unbind(0))
            for d, shift in zip(c.dilations, shifts, strict=True)
        ]  # L x size x (B, R)
        self.offsets = [[(k - 1 - j) * d for j in range(k)] for d in c.dilations]
        # -- workspaces ------------------------------------------------------------------
        self.z = torch.empty(n, b, 2 * g, **kw)  # pre-activations of every layer
        self.z_layer = list(self.z.unbind(0))  # L x (B, 2G), contiguous
        self.filt = [z[:, :g] for z in self.z_layer]  # sigmoid(-2 a_f) after the sigmoid
        self.gate = [z[:, g:] for z in self.z_layer]
        self.gated = torch.empty(b, n, g, **kw)  # every layer's z, side by side for the skips
        self.gated_layer = list(self.gated.unbind(1))  # L x (B, G)
        self.skip = torch.empty(b, c.skip_channels, **kw)
        self.hidden = torch.empty(b, c.skip_channels, **kw)
        self.logits = torch.empty(b, c.num_classes, **kw)

    def _next_block(self) -> None:
        """Conditioning projections ``y V_l`` for the next ``block`` steps: (n, B, L, 2G)."""
        start, stop = self.t, min(self.t + self.block, self.length)
        y = self.cond[:, :, start:stop].permute(2, 0, 1)  # (B, C_l, n) -> (n, B, C_l)
        proj = y.reshape(-1, y.shape[2]) @ self.local_w  # (n * B, C_l) @ (C_l, L * 2G)
        self.block_cond = proj.view(stop - start, self.batch, *self.cond_b.shape[::2])
        self.block_start = start

    def step(self, x_prev: torch.Tensor) -> torch.Tensor:
        """Previous samples (B,) int64 -> logits (B, num_classes) for the sample at time t.

        The logits are a workspace, overwritten by the next step: use or copy them first.
        """
        t = self.t
        if t >= self.length:
            raise ValueError(f"step: all {self.length} samples have been generated")
        if t - self.block_start >= len(self.block_cond):
            self._next_block()
        # pre-activations start as conditioning + biases: (B, L, 2G) -> (L, B, 2G)
        torch.add(self.block_cond[t - self.block_start].transpose(0, 1), self.cond_b, out=self.z)
        slots, filt, gate = self.slots, self.filt, self.gate
        torch.index_select(self.embed, 0, x_prev, out=slots[0][t % len(slots[0])])
        last = len(slots) - 1
        for l, queue in enumerate(slots):
            size, z = len(queue), self.z_layer[l]
            for w, offset in zip(self.taps[l], self.offsets[l], strict=True):
                z.addmm_(queue[(t - offset) % size], w)  # += h(t - offset) W_j
            z.sigmoid_()  # (B, 2G): sigmoid(-2 a_f), sigmoid(a_g)
            gated = torch.addcmul(gate[l], filt[l], gate[l], value=-2, out=self.gated_layer[l])
            if l < last:  # the next layer's input, written straight into its queue
                nxt = slots[l + 1]
                torch.addmm(queue[t % size], gated, self.res_w[l], out=nxt[t % len(nxt)])
        skip = torch.addmm(self.skip_b, self.gated.view(self.batch, -1), self.skip_w, out=self.skip)
        (w1, b1), (w2, b2) = self.head
        torch.addmm(b1, skip.relu_(), w1, out=self.hidden)  # (B, S)
        torch.addmm(b2, self.hidden.relu_(), w2, out=self.logits)  # (B, K)
        self.t = t + 1
        return self.logits
