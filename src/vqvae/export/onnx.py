"""``export_onnx``: a run's encoder and decoder as ONNX files that run without PyTorch, with a
``manifest.json`` saying what goes in and comes out (docs/export.md).

The graphs are traced by ``torch.export`` (``torch.onnx.export(dynamo=True)``): with a
``Dim`` for the batch (and for an audio run's length) they take any batch and length. The
TorchScript-based exporter (``dynamo=False``) writes a ``Transpose`` with a negative axis for
the channels-last input's ``movedim``, which ONNX Runtime refuses to load, and is deprecated
in torch 2.9 and later. Every file is checked by ``onnx.checker`` before the folder is
written; the folder appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vqvae import __version__
from vqvae._io import atomic_write
from vqvae.errors import RunError, VQVAEError
from vqvae.export import graphs
from vqvae.models import VQVAE, AudioVQVAE
from vqvae.runs import RunDir, load_run_model, refuse_overwrite

FORMATS = ("onnx",)
MANIFEST = "manifest.json"
OPSET = 18


@dataclass(frozen=True)
class Graph:
    """One file to export: the module, example inputs, names, and the manifest's notes."""

    file: str
    module: nn.Module
    example: tuple[torch.Tensor, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, Any]]  # input name -> {axis: torch.export.Dim}
    # output name -> {axis: name}: the exporter names a derived axis by a symbol ("s76")
    output_axes: dict[str, dict[int, str]]
    notes: dict[str, dict[str, Any]]  # tensor name -> range and meaning, for the manifest


@dataclass(frozen=True)
class Exported:
    folder: Path
    files: tuple[str, ...]  # the .onnx files written, then manifest.json
    manifest: dict[str, Any]


def export_onnx(
    run: str | Path, out: str | Path, *, encoder_only: bool = False, force: bool = False
) -> Exported:
    """Export the run in ``run`` to ``out``: ``encoder.onnx``, ``decoder.onnx`` (unless
    ``encoder_only``), ``vocoder.onnx`` for a mel run with its own trained vocoder, and
    ``manifest.json``. An existing ``out`` is replaced only with ``force``."""
    onnx = _onnx()
    out, folder = Path(out), RunDir(run)
    if out.resolve() in (folder.path.resolve(), *folder.path.resolve().parents):
        raise RunError(f"{out}: is the run or holds it; export into another folder")
    refuse_overwrite(out, force)
    model = load_run_model(folder)
    plan = graphs_of(model, folder.path, encoder_only)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        entries = {}
        for g in plan:
            path = tmp / g.file
            _export(g, path)
            proto = _name_axes(onnx.load(str(path)), g.output_axes)
            onnx.save(proto, str(path))
            onnx.checker.check_model(proto, full_check=True)
            entries[g.file.removesuffix(".onnx")] = _describe(proto, g)
        manifest = _manifest(model, folder.path, entries)
        text = json.dumps(manifest, indent=2) + "\n"
        atomic_write(tmp / MANIFEST, lambda p: Path(p).write_text(text))
        if out.exists():  # refuse_overwrite let it through: --force
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Exported(out, (*(g.file for g in plan), MANIFEST), manifest)


def _onnx():
    try:
        import onnx
        import onnxscript  # noqa: F401 (torch.onnx's exporter needs it)
    except ImportError:
        raise VQVAEError(
            "ONNX export needs the onnx packages: pip install 'vqvae[export]'"
        ) from None
    return onnx


def graphs_of(model: nn.Module, run: Path, encoder_only: bool) -> list[Graph]:
    """What to export for ``model``; one line for a model that cannot be exported."""
    if isinstance(model, AudioVQVAE):
        return _speech_graphs(model, run, encoder_only)
    if type(model) is VQVAE:
        return [_image_encoder(model)] + ([] if encoder_only else [_image_decoder(model)])
    raise RunError(
        f"{run}: a {type(model).__name__} run cannot be exported; `vqvae export` takes a "
        f"VQ-VAE run of images or speech"
    )


def _codes_note(model: nn.Module) -> dict[str, Any]:
    k = model.num_codes
    note = {"range": [0, k - 1], "about": f"code indices, K = {k}"}
    if model.num_levels > 1:
        note["about"] += f", {model.num_levels} residual levels coarse to fine on axis 1"
    return note


def _image_encoder(model: VQVAE) -> Graph:
    c = model.config
    data = torch.zeros(2, *c.input_size, c.in_channels, dtype=torch.uint8)
    return Graph(
        "encoder.onnx", graphs.ImageEncoder(model), (data,), ("data",), ("codes",),
        {"data": {0: torch.export.Dim("batch")}}, {"codes": {0: "batch"}},
        {"data": {"range": [0, 255], "about": "the data as stored: uint8, channels last"},
         "codes": _codes_note(model)},
    )  # fmt: skip


def _image_decoder(model: VQVAE) -> Graph:
    codes = torch.zeros(2, *model.code_shape, dtype=torch.long)
    return Graph(
        "decoder.onnx", graphs.ImageDecoder(model), (codes,), ("codes",), ("x", "data"),
        {"codes": {0: torch.export.Dim("batch")}}, {"x": {0: "batch"}, "data": {0: "batch"}},
        {"codes": _codes_note(model),
         "x": {"range": [-1, 1], "about": "decode_codes: the model's scale, channels first, "
               "not clamped; data = round((clip(x, -1, 1) + 1) * 127.5)"},
         "data": {"range": [0, 255], "about": "x as stored: uint8, channels last"}},
    )  # fmt: skip


def _speech_graphs(model: AudioVQVAE, run: Path, encoder_only: bool) -> list[Graph]:
    c = model.config
    frames = torch.export.Dim("frames", min=2, max=2**20)
    batch = torch.export.Dim("batch")
    audio = torch.zeros(2, 16 * model.hop)
    encoder = Graph(
        "encoder.onnx", graphs.AudioEncoder(model), (audio,), ("audio",), ("codes",),
        {"audio": {0: batch, 1: model.hop * frames}},
        {"codes": {0: "batch", (2 if model.num_levels > 1 else 1): "frames"}},
        {"audio": {"range": [-1, 1], "about": f"float32 samples at {c.sample_rate} Hz; the "
                   f"length a multiple of {model.hop} (pad with zeros, as vqvae encode does)"},
         "codes": _codes_note(model) | {"about": _codes_note(model)["about"] +
                                        f", one per {model.hop} samples"}},
    )  # fmt: skip
    if encoder_only:
        return [encoder]
    if c.decoder != "mel":
        raise RunError(
            f"{run}: its {c.decoder} decoder draws audio one sample at a time, a loop an ONNX "
            f"graph cannot hold; export the encoder alone with --encoder-only"
        )
    codes = torch.zeros(2, *((model.num_levels,) if model.num_levels > 1 else ()), 16,
                        dtype=torch.long)  # fmt: skip
    inputs, example = ("codes",), (codes,)
    dynamic: dict[str, dict[int, Any]] = {"codes": {0: batch, codes.dim() - 1: frames}}
    notes = {"codes": _codes_note(model),
             "log_mel": {"about": f"decode_mel: natural-log mel power, {c.n_mels} bands, one "
                         f"frame per code ({c.mel_settings.describe()})"}}  # fmt: skip
    if model.speakers:
        inputs, example = ("codes", "speaker"), (codes, torch.zeros(2, dtype=torch.long))
        dynamic["speaker"] = {0: batch}
        notes["speaker"] = {"range": [0, len(model.speakers) - 1],
                            "about": "speaker ids, as manifest speakers lists them"}  # fmt: skip
    decoder = Graph("decoder.onnx", graphs.MelDecoder(model), example, inputs, ("log_mel",),
                    dynamic, {"log_mel": {0: "batch", 2: "frames"}}, notes)  # fmt: skip
    vocoder = model.vocoder
    if not isinstance(vocoder, nn.Module):  # Griffin-Lim: random phases, no network
        return [encoder, decoder]
    log_mel = torch.zeros(2, c.n_mels, 16)
    voc = Graph(
        "vocoder.onnx", graphs.Vocoder(vocoder), (log_mel,), ("log_mel",), ("audio",),
        {"log_mel": {0: batch, 2: frames}}, {"audio": {0: "batch", 1: f"{model.hop}*frames"}},
        {"log_mel": notes["log_mel"] | {"about": "the decoder's log_mel"},
         "audio": {"range": [-1, 1], "about": f"float32 samples at {c.sample_rate} Hz, "
                   f"{model.hop} per frame"}},
    )  # fmt: skip
    return [encoder, decoder, voc]


def _export(g: Graph, path: Path) -> None:
    """``torch.onnx.export`` of ``g`` to ``path``, quietly (its progress lines and warnings
    are for the developers of the exporter)."""
    names = dict(zip(g.inputs, range(len(g.inputs)), strict=True))
    shapes = {k: g.dynamic.get(k) for k in names}
    quiet = io.StringIO()
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(quiet),
            contextlib.redirect_stderr(quiet),
            torch.no_grad(),
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                g.module.eval(), g.example, str(path), input_names=list(g.inputs),
                output_names=list(g.outputs), dynamic_shapes=_by_argument(g.module, shapes),
                dynamo=True, opset_version=OPSET, external_data=False, verbose=False,
            )  # fmt: skip
    finally:
        logger.setLevel(level)


def _name_axes(proto: Any, axes: dict[str, dict[int, str]]) -> Any:
    for value in proto.graph.output:
        for axis, name in axes.get(value.name, {}).items():
            value.type.tensor_type.shape.dim[axis].dim_param = name
    return proto


def _by_argument(module: nn.Module, shapes: dict[str, Any]) -> dict[str, Any]:
    """Dynamic shapes keyed by ``forward``'s argument names, in the inputs' order."""
    import inspect

    params = list(inspect.signature(module.forward).parameters)
    return {p: s for p, s in zip(params, shapes.values(), strict=False)}


_DTYPES = {1: "float32", 2: "uint8", 7: "int64", 11: "float64"}


def _describe(proto: Any, g: Graph) -> dict[str, Any]:
    """A file's inputs and outputs as its graph declares them (names, dtypes, shapes with
    the dynamic axes named), with ``g``'s notes."""

    def tensor(value: Any) -> dict[str, Any]:
        t = value.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in t.shape.dim]
        return {"name": value.name, "dtype": _DTYPES.get(t.elem_type, str(t.elem_type)),
                "shape": shape, **g.notes.get(value.name, {})}  # fmt: skip

    return {
        "file": g.file,
        "inputs": [tensor(v) for v in proto.graph.input],
        "outputs": [tensor(v) for v in proto.graph.output],
    }


def _manifest(model: nn.Module, run: Path, entries: dict[str, Any]) -> dict[str, Any]:
    c = model.config
    about: dict[str, Any] = {
        "format": "onnx",
        "opset": OPSET,
        "vqvae": __version__,
        "run": str(run),
        "model": type(model).__name__,
        "num_codes": model.num_codes,
        "levels": model.num_levels,
        "code_shape": list(model.code_shape),
    }
    if isinstance(model, AudioVQVAE):
        about |= {"modality": "speech", "sample_rate": c.sample_rate, "hop": model.hop,
                  "n_mels": c.n_mels, "decoder": c.decoder,
                  "speakers": list(model.speakers)}  # fmt: skip
        about["code_shape"] = [*(["levels"] if model.num_levels > 1 else []), "frames"]
        if c.decoder == "mel" and "vocoder" not in entries and "decoder" in entries:
            about["vocoder"] = (
                "none exported: the run makes audio with Griffin-Lim (random initial phases, "
                "no network); train one with `vqvae vocoder train` and `vqvae train --vocoder`"
            )
    else:
        about |= {"modality": "images", "image_size": list(c.input_size),
                  "channels": c.in_channels}  # fmt: skip
    return about | {"files": entries}
