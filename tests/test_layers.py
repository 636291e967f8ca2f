"""The package's layers only point down (docs/design-notes.md): checked on the import
statements of every module, so a sideways import fails here, not in review."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import vqvae

PACKAGE = Path(vqvae.__file__).parent

# A module's layer may import from its own layer and the layers below it, never above.
LAYERS = [
    {
        "registry",
        "errors",
        "console",
        "_io",
        "metrics",
        "torch_utils",
        "pretrained",
        "mulaw",
        "sampling",
        "spectral",
        "threads",
    },
    {"quantizers", "nets", "vocoders", "likelihoods", "data", "codefile"},
    {"models", "priors"},
    {"config", "bits", "runs", "inference"},
    {"train", "report", "serve", "export"},  # serve and export stand beside report
    {"experiments"},
    {"cli"},
    {"__init__", "__main__"},
]


def _layer(top: str) -> int:
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"vqvae.{top} is in no layer of {__file__}; add it to LAYERS")


def _imports(path: Path) -> list[str]:
    """The vqvae modules imported by a file, anywhere in it (lazy imports included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            package = path.parent.relative_to(PACKAGE.parent).parts
            found.append(".".join(package[: len(package) - node.level + 1]))
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return [m for m in found if m == "vqvae" or m.startswith("vqvae.")]


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    for module in _imports(path):
        parts = module.split(".")
        if len(parts) == 1:  # `from vqvae import x`: x names a module
            continue
        target = parts[1]
        assert _layer(target) <= _layer(top), f"vqvae.{top} imports {module}, a layer above it"


def test_report_never_sees_training_and_only_cli_sees_argparse() -> None:
    for path in MODULES:
        text = path.read_text()
        where = path.relative_to(PACKAGE)
        if where.parts[0] == "report":
            assert "vqvae.train" not in text, where
        if where.parts[0] != "cli":
            assert "import argparse" not in text, where


def test_no_comment_cites_an_issue_or_a_file_outside_the_repository() -> None:
    for path in MODULES:
        text = path.read_text()
        assert not re.search(r"\bissue \d", text, re.IGNORECASE), path
        assert "DESIGN.md" not in text, path
