"""``vqvae vocoder train``: a vocoder for mel runs, trained on a data set's real audio.

    vqvae vocoder train --data fsdd --out VOC     # then: vqvae reconstruct RUN --vocoder VOC

The vocoder reads log-mel frames of one setting (sample rate, hop, mels); a run whose mel
decoder predicts another is refused with both named."""

from __future__ import annotations

import argparse
from typing import Any

from vqvae.cli.common import add_data_options, writes_into
from vqvae.console import say
from vqvae.data import load_audio
from vqvae.pretrained import config_from_dict
from vqvae.runs import RunDir
from vqvae.train.vocoder import VOCODER_TRAIN, train_vocoder, vocoder_train_config
from vqvae.vocoders import VocosConfig
from vqvae.vocoders.vocos import LOSSES


def add_parser(sub: Any) -> None:
    p = sub.add_parser("vocoder", help="vocoders for mel runs: log-mel frames -> audio")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = actions.add_parser("train", help="train a Vocos vocoder on real audio")
    add_data_options(t, split="train")
    t.add_argument("--out", required=True, help="the vocoder's folder")
    t.add_argument("--hop", type=int, default=64, help="samples per frame (a run's hop: 64)")
    t.add_argument("--n-mels", type=int, default=40, help="mel bands (a run's n_mels: 40)")
    t.add_argument("--losses", choices=LOSSES, default=VocosConfig.losses,
                   help="vocos: the log-mel and multi-resolution STFT losses on the audio; "
                   "apnet: also the magnitude and phase of the predicted spectrum "
                   f"(default {VocosConfig.losses})")  # fmt: skip
    t.add_argument("--pinv-residual", action=argparse.BooleanOptionalAction,
                   default=VocosConfig.pinv_residual,
                   help="the log-magnitude as a correction to the mel pseudo-inverse's "
                   "(default: on)")  # fmt: skip
    t.add_argument("--griffin-lim-iterations", type=int, metavar="N",
                   default=VocosConfig.griffin_lim_iterations,
                   help="at inference, N Griffin-Lim iterations from the network's phase; 0: "
                   "the network's own, fastest (default: %(default)s)")  # fmt: skip
    t.add_argument("--steps", type=int, default=VOCODER_TRAIN.steps)
    t.add_argument("--batch-size", type=int, default=VOCODER_TRAIN.batch_size)
    t.add_argument("--lr", type=float, default=VOCODER_TRAIN.lr)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", help="cpu or cuda (default: cuda when there is one)")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    t.add_argument("--force", action="store_true", help="replace an existing folder")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=run_train)
    writes_into(t, "out", create=True)


def run_train(args: argparse.Namespace) -> int:
    folder = RunDir(args.out, kind="vocoder")
    folder.check(resume=args.resume, force=args.force)
    saved = config_from_dict(VocosConfig, folder.read_config()["config"]) if args.resume else None
    rate = saved.sample_rate if saved is not None else None  # resuming: the vocoder's own rate
    train_set = load_audio(args.data, "train", args.data_root, sample_rate=rate)
    test_set = load_audio(args.data, "test", args.data_root, sample_rate=train_set.sample_rate)
    config = saved or VocosConfig(
        sample_rate=train_set.sample_rate,
        hop=args.hop,
        n_mels=args.n_mels,
        losses=args.losses,
        pinv_residual=args.pinv_residual,
        griffin_lim_iterations=args.griffin_lim_iterations,
    )
    train = vocoder_train_config(args.steps, args.seed, batch_size=args.batch_size, lr=args.lr)
    folder.prepare(resume=args.resume, force=args.force)
    result = train_vocoder(folder, train_set, test_set, config, train, meta={"data": args.data},
                           resume=args.resume, progress=not args.no_progress,
                           device=args.device)  # fmt: skip
    e = result.evaluation
    if e is not None:
        n = e.num_utterances
        say(f"{folder.path}: held-out log-mel error {e.mel_error:.3f} ({n} utterances)")
    print(f"vocoder: {folder.path} ({config.settings.describe()})")
    return 0
