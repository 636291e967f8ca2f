"""An upper bound for the speech VQ-VAE's decoder: the preset's WaveNet given the *true* log-mel.

The speech VQ-VAE's reconstructions are judged far below the quality bar (BENCHMARKS.md
section 9). Is that the codes' fault, or can a WaveNet of the preset's size not learn to
speak in the preset's budget at all? Here the same WaveNet (same layers, channels, speaker
embedding, upsampling by 64), trained the same way (random windows of 2,048 samples, batch
16, Adam at 1e-3, the same number of steps), is conditioned not on codes but on the log-mel
spectrum of the very audio it is to produce, one 40-band frame per 64 samples: everything
the codes could at best carry, at the same rate. Its reconstructions of the test recordings
are then judged by the same judge. If even these fall short of the bar, no choice of codes
can meet it with this decoder in this budget.

    python benchmarks/speech_oracle.py --data-root $VQVAE_DATA --out /tmp/oracle
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vqvae.config import get_full_preset
from vqvae.data import load_audio, pad_to_hop
from vqvae.experiments.judge import SpeechJudge, score
from vqvae.mulaw import mulaw_decode, mulaw_encode
from vqvae.nets.wavenet import WaveNet
from vqvae.spectral import log_mel_frames
from vqvae.train.audio import random_windows


def conditioning(x: torch.Tensor, hop: int, rate: int, n_mels: int) -> torch.Tensor:
    """Audio (B, T) -> standardised log-mel frames (B, n_mels, T / hop)."""
    mel = log_mel_frames(x, hop, rate, n_mels)
    return (mel - mel.mean(dim=(1, 2), keepdim=True)) / 4.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fsdd")
    p.add_argument("--data-root", default=os.environ.get("VQVAE_DATA"))
    p.add_argument("--steps", type=int, default=None, help="default: the preset's")
    p.add_argument("--limit", type=int, default=60, help="test recordings to reconstruct")
    p.add_argument("--out", type=Path, required=True, help="folder for weights and metrics")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    preset = get_full_preset("speech8k-wavenet")
    model_config, train_config = preset.model, preset.train
    steps = args.steps or train_config.steps
    train = load_audio(args.data, "train", args.data_root)
    test = load_audio(args.data, "test", args.data_root)
    names = train.speaker_names  # speaker ids index these, in both splits
    hop, rate, n_mels = model_config.hop, train.sample_rate, model_config.n_mels
    config = replace(model_config.wavenet, local_channels=n_mels, num_speakers=len(names))
    net = WaveNet(config)
    opt = torch.optim.Adam(net.parameters(), lr=train_config.lr)
    ids = torch.from_numpy(train.speakers)
    window, batch = model_config.input_size[0], train_config.batch_size
    args.out.mkdir(parents=True, exist_ok=True)
    log = (args.out / "metrics.jsonl").open("w")
    start = time.perf_counter()
    print(f"oracle WaveNet: {steps} steps of {batch} x {window} samples, {n_mels} mel bands")
    for step in range(1, steps + 1):
        idx = torch.randint(len(train), (batch,))
        x = random_windows(train.waveforms, idx, window)[:, 0]  # (B, window)
        samples = mulaw_encode(x.clamp(-1, 1), config.num_classes)
        logits = net(samples, conditioning(x, hop, rate, n_mels), ids[idx])
        loss = F.cross_entropy(logits, samples)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            row = {"step": step, "bits_per_sample": loss.item() / np.log(2),
                   "seconds": time.perf_counter() - start}  # fmt: skip
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(row, flush=True)
    train_seconds = time.perf_counter() - start
    torch.save(net.state_dict(), args.out / "oracle.pt")

    chosen = np.linspace(0, len(test) - 1, min(args.limit, len(test))).round().astype(int)
    waves = [pad_to_hop(test.waveforms[i], hop) for i in chosen]
    order = np.argsort([len(w) for w in waves])
    out: list[np.ndarray] = [np.zeros(0)] * len(waves)
    gen = torch.Generator().manual_seed(args.seed)
    for lo in range(0, len(order), 16):  # clips of similar length together
        group = order[lo : lo + 16]
        longest = max(len(waves[i]) for i in group)
        x = torch.zeros(len(group), longest)
        for row, i in enumerate(group):
            x[row, : len(waves[i])] = torch.from_numpy(waves[i])
        spk = torch.from_numpy(test.speakers[chosen[group]])
        drawn = net.generate(conditioning(x, hop, rate, n_mels), spk, generator=gen)
        audio = mulaw_decode(drawn, config.num_classes).numpy()
        for row, i in enumerate(group):
            out[i] = audio[row, : len(test.waveforms[chosen[i]])]
    judge = SpeechJudge.fit(train)
    s = score(judge, out, rate, test.labels[chosen], [names[test.speakers[i]] for i in chosen])
    figures = {
        "steps": steps,
        "train seconds": round(train_seconds),
        "recordings": len(chosen),
        "oracle reconstruction digit": s.digit_accuracy,
        "oracle reconstruction speaker": s.speaker_accuracy,
    }
    (args.out / "figures.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
