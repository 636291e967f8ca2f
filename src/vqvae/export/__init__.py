"""A run's encoder and decoder as files that run without PyTorch (ONNX), beside ``report/``:
it uses ``runs`` and the models, and nothing below imports it (docs/export.md)."""

from vqvae.export.onnx import FORMATS, MANIFEST, Exported, export_onnx
from vqvae.export.search import TIE_RTOL, CodeLookup, CodeSearch

__all__ = ["FORMATS", "MANIFEST", "TIE_RTOL", "CodeLookup", "CodeSearch", "Exported", "export_onnx"]
