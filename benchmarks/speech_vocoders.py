"""The vocoders on the *true* log-mel of FSDD's test recordings, judged, and the speed of
making audio from codes.

    python benchmarks/speech_vocoders.py [--vocoder VOC [--refine N ...]] [--run RUN]
                                         [--wavenet-run RUN2] [--griffin-lim N ...]

1. Every test recording's own log-mel frames (``vqvae.spectral.log_mel_frames``: 40 bands, one
   per 64 samples) through Griffin-Lim (32 and 16 iterations, or ``--griffin-lim N ...``) and,
   with ``--vocoder``, the trained vocoder: the
   fraction judged as the right digit and speaker, and the MCD and log-spectral distance (dB)
   from the recording. This is the ceiling of a mel decoder that uses that vocoder. With
   ``--refine N``, also the trained vocoder followed by N Griffin-Lim iterations that start
   from its phase (``VocosConfig.griffin_lim_iterations``).
2. With ``--run`` (a mel run): decoding speed, as a real-time factor (seconds of audio made
   per second), from codes to audio for 1 clip and for 32 clips of one second, with each
   vocoder; with ``--wavenet-run``, the same for its cached WaveNet.
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

from vqvae.data import load_audio, pad_to_hop
from vqvae.experiments.judge import SpeechJudge, score
from vqvae.runs import RunDir, load_run_model
from vqvae.spectral import (
    MelSettings,
    log_mel_frames,
    log_spectral_distance,
    mel_cepstral_distortion,
)
from vqvae.vocoders import GriffinLim, load_vocoder


def vocode_all(vocoder, waves, settings: MelSettings) -> list[np.ndarray]:
    out = []
    g = torch.Generator().manual_seed(0)
    for wave in waves:  # one at a time: each its own length
        x = torch.from_numpy(pad_to_hop(wave, settings.hop))[None]  # (1, T)
        mel = log_mel_frames(x, settings.hop, settings.sample_rate, settings.n_mels)
        out.append(vocoder.vocode(mel, generator=g)[0].numpy()[: len(wave)])
    return out


def real_time_factor(model, vocoder, clips: int, seconds: float = 1.0, repeats: int = 5) -> float:
    """Seconds of audio made per second of wall time, codes -> audio, ``clips`` at once: the
    median of ``repeats`` timings (one for the slow WaveNet)."""
    if vocoder is not None:
        model.use_vocoder(vocoder)
    n = int(model.codes_per_second * seconds)
    codes = torch.randint(model.num_codes, (clips, n), generator=torch.Generator().manual_seed(0))
    speaker = 0 if model.speakers else None
    model.decode_codes(codes[:1, :8], speaker)  # warm-up
    took = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.decode_codes(codes, speaker)
        took.append(time.perf_counter() - start)
    return clips * seconds / float(np.median(took))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fsdd")
    p.add_argument("--data-root", default=os.environ.get("VQVAE_DATA"))
    p.add_argument("--vocoder", help="a trained vocoder's folder (vqvae vocoder train)")
    p.add_argument("--refine", type=int, nargs="*", default=[], metavar="N",
                   help="also the vocoder + N Griffin-Lim iterations from its phase")  # fmt: skip
    p.add_argument("--griffin-lim", type=int, nargs="+", default=[32, 16], metavar="N",
                   help="Griffin-Lim with each of these iteration counts")  # fmt: skip
    p.add_argument("--run", help="a mel run, for decoding speed")
    p.add_argument("--wavenet-run", help="a WaveNet run, for its decoding speed")
    p.add_argument("--limit", type=int)
    p.add_argument("--no-judge", action="store_true", help="only the decoding speed")
    p.add_argument("--json")
    args = p.parse_args()
    settings = MelSettings()
    train = load_audio(args.data, "train", args.data_root)
    test = load_audio(args.data, "test", args.data_root)
    if args.limit:
        test = test.subset(range(min(args.limit, len(test))))
    rate = test.sample_rate
    own = [test.speaker_names[i] for i in test.speakers]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {len(test)} test "
          f"recordings; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    judge = None if args.no_judge else SpeechJudge.fit(train)
    vocoders = {f"griffin-lim ({n} iterations)": GriffinLim(settings, n) for n in args.griffin_lim}
    if args.vocoder:
        trained = load_vocoder(args.vocoder)
        vocoders["vocos (" + Path(args.vocoder).name + ")"] = trained
        for n in args.refine:
            refined = load_vocoder(args.vocoder)
            refined.config = replace(trained.config, griffin_lim_iterations=n)
            vocoders[f"vocos ({Path(args.vocoder).name}) + {n} Griffin-Lim iterations"] = refined
    figures: dict[str, float] = {}
    rows = ["| vocoder, from the true log-mel | digit | speaker | MCD (dB) | LSD (dB) | s |",
            "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, vocoder in vocoders.items() if judge is not None else ():
        start = time.perf_counter()
        waves = vocode_all(vocoder, test.waveforms, settings)
        took = time.perf_counter() - start
        s = score(judge, waves, rate, test.labels, own)
        pairs = list(zip(waves, test.waveforms, strict=True))
        mcd = float(np.mean([mel_cepstral_distortion(w, x, rate) for w, x in pairs]))
        lsd = float(np.mean([log_spectral_distance(w, x) for w, x in pairs]))
        figures |= {f"{name} digit": s.digit_accuracy, f"{name} speaker": s.speaker_accuracy,
                    f"{name} MCD": mcd, f"{name} LSD": lsd}  # fmt: skip
        rows.append(f"| {name} | {s.digit_accuracy:.1%} | {s.speaker_accuracy:.1%} | "
                    f"{mcd:.2f} | {lsd:.2f} | {took:.0f} |")  # fmt: skip
        print(rows[-1], flush=True)
    if args.run:
        model = load_run_model(RunDir(args.run))
        for name, vocoder in vocoders.items():
            for clips in (1, 32):
                rtf = real_time_factor(model, vocoder, clips)
                figures[f"real-time factor, {name}, {clips} clip(s)"] = rtf
                rows.append(f"| RTF codes -> audio, mel decoder + {name}, {clips} clip(s) | "
                            f"{rtf:.0f}x | | | | |")  # fmt: skip
    if args.wavenet_run:
        wavenet = load_run_model(RunDir(args.wavenet_run))
        for clips in (1, 32):
            rtf = real_time_factor(wavenet, None, clips, seconds=0.25, repeats=1)
            figures[f"real-time factor, cached WaveNet, {clips} clip(s)"] = rtf
            rows.append(f"| RTF codes -> audio, cached WaveNet, {clips} clip(s) | {rtf:.2f}x "
                        f"| | | | |")  # fmt: skip
    print("\n" + "\n".join(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
