"""``vqvae video train|eval``: the prior over frame codes given the previous frames and the
agent's action (paper section 4.4), in ``RUN/video/`` beside an image run."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from vqvae._io import write_json
from vqvae.cli.common import add_step_options, recorded_data, step_options, writes_into
from vqvae.config import TrainConfig, apply_overrides
from vqvae.console import say
from vqvae.data.episodes import Episodes
from vqvae.errors import DataError, RunError
from vqvae.inference.video import (
    CONDITIONS,
    DRAWS,
    Sampling,
    encode_episodes,
    evaluate_video,
    load_episodes,
    load_video_prior,
    split,
)
from vqvae.models import VQVAE
from vqvae.pretrained import config_from_dict
from vqvae.priors.video import VideoPrior, VideoPriorConfig
from vqvae.runs import (
    RunDir,
    load_frame_model,
    refuse_overwrite,
    resume_differences,
    run_config,
)
from vqvae.train.video import VIDEO_TRAIN, train_video

EPISODES_HINT = "pass --data EPISODES.npz"


def add_parser(sub: Any) -> None:
    video = sub.add_parser("video", help="a prior over frame codes given the agent's actions")
    video_sub = video.add_subparsers(dest="video_command", metavar="COMMAND", required=True)
    p = video_sub.add_parser("train", help="fit the video prior in RUN/video/")
    p.add_argument("run", help="an image run whose VQ-VAE encodes the frames")
    add_episodes_option(p)
    p.add_argument("--context-frames", type=int, metavar="K", help="previous frames read (3)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a prior or training setting, e.g. channels=32, train.eval_limit=64",
    )
    add_step_options(p)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_train)
    writes_into(p, "run")
    e = video_sub.add_parser("eval", help="do the actions matter? held-out NLL and rollouts")
    e.add_argument("run")
    add_episodes_option(e)
    e.add_argument("--split", default="test", choices=("train", "test"))
    e.add_argument("--context", type=int, default=6, help="real frames given (default: 6)")
    e.add_argument("--frames", type=int, default=10, help="frames generated (default: 10)")
    e.add_argument("--rollouts", type=int, default=2, help="rollouts per start (default: 2)")
    e.add_argument("--starts", type=int, default=1, help="evenly spaced points of each episode "
                   "that rollouts start from (default: 1, its first frames)")  # fmt: skip
    e.add_argument("--seed", type=int, default=0)
    add_sampling_options(e)
    e.add_argument("--json", metavar="FILE", help="also write the numbers to FILE")
    e.add_argument("--force", action="store_true", help="replace an existing --json FILE")
    e.set_defaults(func=run_eval)
    writes_into(e, "run")  # RUN/video/eval.json, which `vqvae report` shows


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    """--temperature, --top-k, --greedy, --draw, and a maskgit prior's --steps and
    --guidance: how a rollout draws each frame (``Sampling``)."""
    p.add_argument("--temperature", type=float, help="of every draw (default: the prior's own; "
                   "1 when only --top-k is given)")  # fmt: skip
    p.add_argument("--top-k", type=int, metavar="K", help="draw among the K likeliest codes "
                   "(default: the prior's own; all when only --temperature is given)")  # fmt: skip
    p.add_argument("--greedy", action="store_true", help="the likeliest code (argmax) each time")
    p.add_argument("--draw", choices=DRAWS, help="raster: each code of a frame given those "
                   "before it (a PixelCNN's or hybrid's); parallel: all at once from the "
                   "context (a parallel or hybrid prior's); passes: a maskgit prior's. "
                   "Default: the prior's own")  # fmt: skip
    p.add_argument(
        "--steps",
        type=int,
        metavar="S",
        help="maskgit prior: passes per frame (default: the prior's own)",
    )
    p.add_argument("--guidance", type=float, help="maskgit prior: classifier-free guidance "
                   "on the action, 1 = none (default: the prior's own)")  # fmt: skip


def sampling_of(args: argparse.Namespace) -> Sampling:
    return Sampling.choose(
        args.temperature, args.top_k, args.greedy, args.draw, args.steps, args.guidance
    )


def add_episodes_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="an episodes .npz (default: the data the run trained on)")


def image_model(run: RunDir) -> VQVAE:
    """The run's image VQ-VAE that encodes the frames (``runs.load_frame_model``)."""
    return load_frame_model(run, "the video prior")


def _configs(
    args: argparse.Namespace, model: VQVAE, episodes: Episodes, saved: dict[str, Any] | None
) -> tuple[VideoPriorConfig, TrainConfig]:
    """The saved configs when resuming, else the defaults; then --set and the flags."""
    if saved is not None:
        config = config_from_dict(VideoPriorConfig, saved["config"])
        train = config_from_dict(TrainConfig, saved.get("train", {}))
    else:
        config = VideoPriorConfig(
            num_codes=model.num_codes,
            shape=model.latent_shape,
            action_names=episodes.action_names,
        )
        train = VIDEO_TRAIN
    config, train = apply_overrides(config, train, args.set)  # type: ignore[arg-type]
    if args.context_frames is not None:
        config = replace(config, context_frames=args.context_frames)
    flags = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    train = replace(
        train, **{k: v for k, v in flags.items() if v is not None}, **step_options(args)
    )
    return config, train  # type: ignore[return-value]


def run_train(args: argparse.Namespace) -> int:
    run = RunDir(args.run)
    model = image_model(run)
    out = run.video
    out.check(resume=args.resume, force=args.force)
    spec = recorded_data(args, run, EPISODES_HINT)
    episodes = load_episodes(spec, model)
    saved = out.read_config() if args.resume else None
    config, train_config = _configs(args, model, episodes, saved)
    if config.action_names != episodes.action_names:
        raise DataError(
            f"{spec}: its actions {episodes.action_names} are not the video prior's "
            f"{config.action_names}"
        )
    wanted = run_config("VideoPrior", config, train_config, data=spec, overrides=args.set,
                        threads=args.threads)  # fmt: skip
    if saved is not None:
        diffs = resume_differences(saved, wanted, VideoPriorConfig, ("data",))
        if diffs:
            raise RunError(
                f"{out.path}: --resume with settings that differ from the run's "
                f"({', '.join(diffs)})"
            )
    k = config.context_frames
    if k >= episodes.steps:
        raise DataError(
            f"--context-frames {k}: the episodes of {spec} have {episodes.steps} frames, "
            f"which leaves no next frame to predict; use fewer"
        )
    splits = split(episodes, "train"), split(episodes, "test")  # refused before the slow part
    torch.manual_seed(train_config.seed)  # the initial weights come from --seed too
    prior = VideoPrior(config)
    say(f"vqvae: encoding the {episodes.num_episodes * episodes.steps} frames of {spec}")
    train_set, test_set = (encode_episodes(model, s, k) for s in splits)
    out.prepare(resume=args.resume, force=args.force)
    write_json(out.config_file, wanted)
    result = train_video(
        prior, out, train_set, test_set, train_config,
        resume=args.resume, progress=not args.no_progress,
    )  # fmt: skip
    bound = " (upper bounds)" if result.upper_bound else ""
    print(
        f"{out.path}: held-out {result.test_bits_per_frame:.1f} bits/frame under the recorded "
        f"actions, {result.test_bits_per_frame_shuffled:.1f} under shuffled ones "
        f"(uniform {result.uniform_bits_per_frame:.0f}){bound}"
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    run = RunDir(args.run)
    model = image_model(run)
    prior = load_video_prior(run)
    if args.json:
        refuse_overwrite(Path(args.json), args.force)
    sampling = sampling_of(args)
    spec = recorded_data(args, run, EPISODES_HINT)
    episodes = split(load_episodes(spec, model), args.split)
    data = encode_episodes(model, episodes, prior.context_frames)
    result = evaluate_video(
        model, prior, episodes, data, context=args.context, frames=args.frames,
        rollouts=args.rollouts, seed=args.seed, sampling=sampling, starts=args.starts,
    ).to_dict()  # fmt: skip
    write_json(run.video.path / "eval.json", result)  # what `vqvae report` shows
    if args.json:
        write_json(Path(args.json), result)
    print_table(result, f"{spec} [{args.split}]")
    return 0


def print_table(r: dict[str, Any], name: str) -> None:
    draw = "greedy (argmax)" if r["top_k"] == 1 else f"temperature {r['temperature']:g}"
    if r["top_k"] and r["top_k"] > 1:
        draw += f", top-{r['top_k']}"
    draw += {"parallel": ", every code of a frame at once", "fast": ", raster order"}.get(
        r["method"], f", {r.get('steps')} passes, guidance {r.get('guidance')}"
    )
    print(
        f"{name}: {r['num_examples']} next frames scored; {r['num_rollouts']} rollouts of "
        f"{r['context']} real + {r['frames']} generated frames ({draw})"
    )
    bound = "" if r.get("bits_exact", True) else " (bits: upper bounds)"
    print(
        f"  {'':28s} {'bits/frame':>10s} {'PSNR dB':>8s} {'SSIM':>6s} {'codes =':>8s} "
        f"{'detail':>6s}{bound}"
    )
    rows = (
        ("recorded actions", "recorded"),
        ("shuffled actions", "shuffled"),
        ("last real frame held", "held"),
        ("last frame's codes copied", "copy_last"),
    )
    for label, key in rows:
        bits = r.get(f"bits_per_frame_{key}")
        s = r[f"rollout_{key}"]
        b = f"{bits:10.1f}" if bits is not None else f"{'-':>10s}"
        print(
            f"  {label:28s} {b} {s['psnr']:8.2f} {s['ssim']:6.3f} {s['code_match']:8.1%} "
            f"{s['gradient']:6.2f}"
        )
    label = "another example's context"
    print(f"  {label:28s} {r['bits_per_frame_other_context']:10.1f}")
    print(f"  {'real future frames':28s} {'-':>10s} {'':8s} {'':6s} {'':8s} "
          f"{r['gradient_real']:6.2f}")  # fmt: skip
    o = r["one_step"]
    print(
        f"  one step, teacher-forced: {o['persist_fraction']:.1%} of the next codes persist "
        f"from the last frame; argmax right on {o['accuracy_persist']:.1%} of those "
        f"({o['bits_persist']:.2f} bits each) and {o['accuracy_change']:.1%} of the changing "
        f"ones ({o['bits_change']:.2f} bits); {o['argmax_copies']:.1%} of argmax codes copy"
    )
    print(f"  by horizon {'':14s}" + "".join(f"{h:>7d}" for h in r["horizons"]))
    measures = (("psnr", "{:7.2f}"), ("ssim", "{:7.3f}"), ("code_agreement", "{:7.1%}"),
                ("detail", "{:7.2f}"))  # fmt: skip
    for measure, fmt in measures:
        for key in CONDITIONS:
            values = "".join(fmt.format(v) for v in r["by_horizon"][measure][key])
            print(f"  {measure + ' ' + key:25s}{values}")
    print(json.dumps(r))
