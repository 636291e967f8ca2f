"""What limits the digit kept in voice conversions: three conversions that cheat in known
ways, judged as ``speech_quality.py`` judges a mel run's conversions.

    python benchmarks/speech_conversion_limits.py RUN [--data-root R] [--parts P,...]

Every test recording of speaker A saying digit d is converted to each other speaker B (1,500
conversions), and the judge (``vqvae.experiments.judge``) says whether d is still heard and
whether B is. Each conversion keeps A's timing, as the VQ-VAE's does:

- ``frames``: B's own *real* log-mel frames of d (one of B's test recordings of d, drawn at
  random), aligned to A's frames by dynamic time warping on the log-mel, through
  Griffin-Lim. What a converter that renders B perfectly, frame by frame, would give: the
  ceiling of any conversion that keeps the source's timing, under this judge.
- ``codes``: B's own *codes* of that recording, warped the same way, through the run's
  decoder with B's id: what the decoder makes of codes that are exactly B's for what was said.
- ``knn``: each of A's frames replaced by the mean of the 4 of B's *training* frames whose
  encoder outputs z_e are nearest in cosine (kNN-VC, Baas et al. 2023, with the run's
  encoder as the feature space), B's real log-mels through Griffin-Lim: whether the
  encoder's space matches what is said across voices.

Prints digit kept and judged as the target, overall and per target; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vqvae.data import load_audio, pad_to_hop
from vqvae.experiments.judge import SpeechJudge, score
from vqvae.inference.audio import encode_audio, generate_audio
from vqvae.runs import RunDir, load_run_model
from vqvae.spectral import dtw_path, log_mel_frames

NEIGHBOURS = 4


def frames_of(model, wave: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One recording -> its log-mel frames (T', M) and its encoder outputs z_e (T', D)."""
    c = model.config
    x = torch.from_numpy(pad_to_hop(wave, model.hop))[None]  # (1, T)
    mel = log_mel_frames(x, model.hop, c.sample_rate, c.n_mels)[0].T
    with torch.inference_mode():
        z_e = model.encoder(x[:, None])[0].T
    return mel, z_e


def warp(source: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """For each of the source's frames, the index of the target frame DTW pairs it with."""
    ia, ib = dtw_path(source.numpy(), target.numpy())
    index = np.zeros(len(source), dtype=np.int64)
    index[ia] = ib  # the last target frame paired with each source frame
    return index


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--data", default="fsdd")
    p.add_argument("--data-root", default=os.environ.get("VQVAE_DATA"))
    p.add_argument("--parts", default="frames,codes,knn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args()
    parts = args.parts.split(",")
    model = load_run_model(RunDir(args.run)).eval()
    rate = model.config.sample_rate
    train = load_audio(args.data, "train", args.data_root, sample_rate=rate)
    test = load_audio(args.data, "test", args.data_root, sample_rate=rate)
    judge = SpeechJudge.fit(train)
    vocoder = model.vocoder
    own = [test.speaker_names[i] for i in test.speakers]
    mine = [frames_of(model, w) for w in test.waveforms]
    codes = encode_audio(model, test).codes
    rng = np.random.default_rng(args.seed)
    figures: dict[str, float] = {}
    for part in parts:
        kept = heard = count = 0
        for target in model.speakers:
            idx = [i for i, who in enumerate(own) if who != target]
            theirs = [i for i, who in enumerate(own) if who == target]
            if part == "knn":
                who = [train.speaker_names[s] for s in train.speakers]
                bank = [frames_of(model, train.waveforms[k]) for k in range(len(train))
                        if who[k] == target]  # fmt: skip
                bank_mel = torch.cat([m for m, _ in bank])  # (N, M)
                bank_z = F.normalize(torch.cat([z for _, z in bank]), dim=1)  # (N, D)
            waves = []
            for i in idx:
                same = [j for j in theirs if test.labels[j] == test.labels[i]]
                j = same[rng.integers(len(same))]
                if part == "codes":  # B's codes at A's pace, through the decoder as B
                    seq = codes[j][warp(mine[i][0], mine[j][0])][None]  # (1, T')
                    spk = np.array([model.speakers.index(target)])
                    wave = generate_audio(model, seq, [seq.shape[1]], spk, progress=False)[0]
                else:  # B's real log-mel frames, through the run's vocoder
                    if part == "knn":
                        z = F.normalize(mine[i][1], dim=1)  # (T', D)
                        mel = bank_mel[(z @ bank_z.T).topk(NEIGHBOURS).indices].mean(1)
                    else:
                        mel = mine[j][0][warp(mine[i][0], mine[j][0])]  # (T', M)
                    wave = vocoder.vocode(mel.T[None])[0].numpy()
                waves.append(wave[: len(test.waveforms[i])])
            s = score(judge, waves, rate, test.labels[idx], [target] * len(idx))
            figures[f"{part}: to {target}: digit kept"] = s.digit_accuracy
            figures[f"{part}: to {target}: judged {target}"] = s.speaker_accuracy
            kept, heard = kept + s.digit_accuracy * s.count, heard + s.speaker_accuracy * s.count
            count += s.count
            print(f"{part}: to {target}: digit kept {s.digit_accuracy:.1%}, judged {target} "
                  f"{s.speaker_accuracy:.1%}", flush=True)  # fmt: skip
        figures[f"{part}: digit kept"] = kept / count
        figures[f"{part}: judged as the target"] = heard / count
        print(f"{part}: digit kept {kept / count:.1%}, judged as the target {heard / count:.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
