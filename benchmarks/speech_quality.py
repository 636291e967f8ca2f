"""The speech VQ-VAE against its quality bar on FSDD's test split, judged independently.

    python benchmarks/speech_quality.py RUN [--vocoder VOC] [--data-root R] [--limit N]
        [--json OUT]

1. The judge (``vqvae.experiments.judge``): digit and speaker classifiers on MFCC summaries,
   trained on the real training recordings; its accuracy on the real test recordings (as
   recorded, and through 8-bit mu-law) is printed first: it is the ceiling of what follows.
2. Reconstructions: every test recording encoded and decoded with its own speaker; the
   fraction judged as the right digit, and as the right speaker; their mel-cepstral
   distortion (MCD) and log-spectral distance (LSD) from the recording, in dB.
3. Voice conversions: every test recording decoded with each of the other speakers' ids;
   the fraction whose digit is kept, and the fraction judged as the *target* speaker, per
   target; their MCD from the target speaker's own recording of the same digit (the first in
   the test split), frames paired by dynamic time warping as the voice-conversion
   literature does.
4. The probe (``vqvae.experiments.probe``): digit and speaker from code histograms.
5. With a trained prior in RUN/prior: ``--samples`` utterances per digit drawn for each
   digit (speakers in turn) and the fraction judged as the digit they were drawn for
   (a maskgit prior at its own passes and guidance, or ``--steps`` / ``--guidance``).

Prints a table of each figure against its bar, with timings; ``--json`` writes them too.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vqvae.data import load_audio, pad_to_hop
from vqvae.experiments.judge import SpeechJudge, mulaw_roundtrip, score
from vqvae.experiments.probe import probe
from vqvae.inference.audio import convert, encode_audio, sample_speech, speaker_ids
from vqvae.mulaw import mulaw_encode
from vqvae.runs import RunDir, load_prior, load_run_model
from vqvae.spectral import log_spectral_distance, mel_cepstral_distortion

BARS = {
    "reconstruction digit": 0.90,
    "reconstruction speaker": 0.90,
    "conversion digit kept": 0.80,
    "conversion target speaker": 0.75,
    "probe digit": 0.80,
    "prior samples digit": 0.50,
}


@torch.inference_mode()
def decoder_reliance(model, data) -> tuple[float, float]:
    """Teacher-forced bits per sample of the WaveNet given each utterance's own codes, and
    given the same codes rolled by half the utterance (the same codes, out of place): how
    much the decoder's predictions lean on *when* each code comes."""
    hop, k = model.hop, model.config.wavenet.num_classes
    speakers = speaker_ids(model, data)
    totals = [0.0, 0.0]
    count = 0
    for i, wave in enumerate(data.waveforms):  # one utterance at a time: no padding to mask
        x = torch.from_numpy(pad_to_hop(wave, hop))[None, None]  # (1, 1, T)
        z_q = model.quantizer(model.encoder(x)).z_q  # (1, D, T')
        samples = mulaw_encode(x[:, 0], k)  # (1, T)
        spk = None if speakers is None else torch.tensor([speakers[i]])
        for j, z in enumerate((z_q, z_q.roll(z_q.shape[2] // 2, dims=2))):
            logits = model.decoder(samples, z, spk)
            totals[j] += float(F.cross_entropy(logits, samples, reduction="sum"))
        count += samples.numel()
    return totals[0] / count / np.log(2), totals[1] / count / np.log(2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--vocoder", help="a mel run: make audio with this trained vocoder")
    p.add_argument("--data", default="fsdd")
    p.add_argument("--data-root", default=os.environ.get("VQVAE_DATA"))
    p.add_argument("--limit", type=int, help="only the first N test recordings")
    p.add_argument("--samples", type=int, default=10, help="prior samples per digit")
    p.add_argument(
        "--parts", default="reconstruct,convert,probe,samples",
        help="which measurements, comma-separated (default: all)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="a maskgit prior's passes (default: its own)")
    p.add_argument("--guidance", type=float, help="a maskgit prior's guidance (default: its own)")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    figures: dict[str, float] = {}
    seconds: dict[str, float] = {}

    run = RunDir(args.run)
    model = load_run_model(run, args.vocoder)
    rate = model.config.sample_rate
    train = load_audio(args.data, "train", args.data_root, sample_rate=rate)
    test = load_audio(args.data, "test", args.data_root, sample_rate=rate)
    if args.limit:
        test = test.subset(range(min(args.limit, len(test))))
    own = [test.speaker_names[i] for i in test.speakers]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {len(test)} test "
          f"recordings; load average {os.getloadavg()[0]:.1f}")  # fmt: skip

    judge = SpeechJudge.fit(train)
    real = score(judge, test.waveforms, rate, test.labels, own)
    mulaw = score(judge, [mulaw_roundtrip(w) for w in test.waveforms], rate, test.labels, own)
    figures |= {"judge digit (real test)": real.digit_accuracy,
                "judge speaker (real test)": real.speaker_accuracy,
                "judge digit (mu-law test)": mulaw.digit_accuracy,
                "judge speaker (mu-law test)": mulaw.speaker_accuracy}  # fmt: skip
    print(f"judge on real test recordings: digit {real.digit_accuracy:.1%}, speaker "
          f"{real.speaker_accuracy:.1%}", flush=True)  # fmt: skip

    if "reconstruct" in parts:
        start = time.perf_counter()
        _, waves = convert(model, test, None, seed=args.seed)
        seconds["reconstruct"] = time.perf_counter() - start
        s = score(judge, waves, rate, test.labels, own)
        figures |= {"reconstruction digit": s.digit_accuracy,
                    "reconstruction speaker": s.speaker_accuracy}  # fmt: skip
        pairs = list(zip(waves, test.waveforms, strict=True))
        figures["reconstruction MCD (dB)"] = float(
            np.mean([mel_cepstral_distortion(w, x, rate) for w, x in pairs])
        )
        figures["reconstruction LSD (dB)"] = float(
            np.mean([log_spectral_distance(w, x) for w, x in pairs])
        )
        print(f"reconstructions: digit {s.digit_accuracy:.1%}, speaker "
              f"{s.speaker_accuracy:.1%} ({seconds['reconstruct']:.0f} s)", flush=True)  # fmt: skip

    if "convert" in parts:
        kept, target, count, mcds = 0.0, 0.0, 0, []
        start = time.perf_counter()
        for name in model.speakers:
            idx = [i for i, who in enumerate(own) if who != name]
            part = test.subset(idx)
            _, waves = convert(model, part, name, seed=args.seed)
            s = score(judge, waves, rate, part.labels, [name] * len(idx))
            kept += s.digit_accuracy * s.count
            target += s.speaker_accuracy * s.count
            count += s.count
            theirs = {}  # digit -> the target speaker's first test recording of it
            for i, who in enumerate(own):
                if who == name:
                    theirs.setdefault(int(test.labels[i]), test.waveforms[i])
            mcd = [
                mel_cepstral_distortion(w, theirs[int(d)], rate, align=True)
                for w, d in zip(waves, part.labels, strict=True)
                if int(d) in theirs
            ]
            mcds += mcd
            figures[f"conversion to {name}: digit kept"] = s.digit_accuracy
            figures[f"conversion to {name}: judged {name}"] = s.speaker_accuracy
            print(f"  to {name}: digit kept {s.digit_accuracy:.1%}, judged {name} "
                  f"{s.speaker_accuracy:.1%}, MCD {np.mean(mcd):.2f} dB", flush=True)  # fmt: skip
        seconds["convert (all)"] = time.perf_counter() - start
        seconds["convert (per 300 recordings)"] = seconds["convert (all)"] * 300 / count
        figures |= {"conversion digit kept": kept / count,
                    "conversion target speaker": target / count,
                    "conversion MCD (dB, DTW)": float(np.mean(mcds))}  # fmt: skip

    found = None
    if "probe" in parts:
        found = probe(encode_audio(model, train), encode_audio(model, test), model.num_codes)
        figures["probe digit"] = found.digit.accuracy
        figures["probe digit baseline"] = found.digit.baseline
        figures["probe speaker"] = found.speaker.accuracy
        figures["probe speaker baseline"] = found.speaker.baseline

    if "reliance" in parts and model.config.decoder == "wavenet":
        model.eval()
        own_bits, rolled_bits = decoder_reliance(model, test)
        figures["bits per sample, own codes"] = own_bits
        figures["bits per sample, codes rolled by half"] = rolled_bits
        print(f"teacher-forced bits/sample: {own_bits:.3f} with the codes in place, "
              f"{rolled_bits:.3f} rolled by half", flush=True)  # fmt: skip

    if "samples" in parts and run.prior.weights_file.is_file():
        prior = load_prior(run)
        passes = {k: v for k, v in (("steps", args.steps), ("guidance", args.guidance))
                  if v is not None}  # fmt: skip
        waves, digits = [], []
        start = time.perf_counter()
        for digit in range(10):
            speaker = model.speakers[digit % len(model.speakers)]
            got = sample_speech(model, prior, args.samples, digit, speaker,
                                seed=args.seed + digit, **passes)  # fmt: skip
            waves += got.waveforms
            digits += [digit] * args.samples
        seconds["prior samples"] = time.perf_counter() - start
        said = judge.digits(waves, rate)
        figures["prior samples digit"] = float(np.mean(said == np.array(digits)))

    rows = ["| figure | measured | bar |", "|---|---:|---:|"]
    for name, value in figures.items():
        bar = BARS.get(name)
        mark = "" if bar is None else f">= {bar:.0%} {'met' if value >= bar else 'NOT met'}"
        shown = f"{value:.3f}" if name.startswith("bits") or "(dB" in name else f"{value:.1%}"
        rows.append(f"| {name} | {shown} | {mark} |")
    rows += [f"| seconds: {k} | {v:.0f} | |" for k, v in seconds.items()]
    mulaw = f"against {rate * 8:,} for 8-bit mu-law"
    rows.append(f"| bit rate (bit/s) | {model.bit_rate:.0f} | {mulaw} |")
    print("\n" + "\n".join(rows))
    if found is not None:
        print("\n" + found.table())
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures, "seconds": seconds}, indent=1))


if __name__ == "__main__":
    main()
