"""Vocoders: log-mel frames (``vqvae.spectral.MelSettings``) -> audio, each a registered kind
(``vqvae.registry.VOCODERS``) in its own file. A vocoder knows nothing of codes or speakers,
so one serves every mel run whose log-mel it reads: ``griffin-lim`` needs no training,
``vocos`` is trained on real audio (``vqvae vocoder train``) and saved as a folder."""

from __future__ import annotations

from pathlib import Path

from vqvae._io import read_json
from vqvae.errors import RunError
from vqvae.registry import VOCODERS
from vqvae.vocoders.griffin_lim import GriffinLim
from vqvae.vocoders.vocos import Vocos, VocosConfig


def load_vocoder(path: str | Path):
    """A trained vocoder's folder (``vqvae vocoder train --out``) -> the vocoder, in eval
    mode; anything else is a one-line ``RunError``."""
    path = Path(path)
    config = path / "config.json"
    if not config.is_file() or not (path / "model.safetensors").is_file():
        raise RunError(f"{path}: not a trained vocoder (no config.json and model.safetensors)")
    name = read_json(config).get("class")
    entry = VOCODERS.find(lambda cls: getattr(cls, "__name__", None) == name)
    if entry is None or not hasattr(entry.obj, "from_pretrained"):
        raise RunError(f"{path}: holds a {name!r}, not a trained vocoder")
    return entry.obj.from_pretrained(path).eval()


__all__ = ["GriffinLim", "Vocos", "VocosConfig", "load_vocoder"]
