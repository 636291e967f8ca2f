"""How a data set is split, and folders of images split by sub-folders named after the splits.

Three kinds of layout (``SplitLayout.kind``):

- ``files``: the data set has its own splits (MNIST's ``train-``/``t10k-`` files, CIFAR's
  batches);
- ``folders``: a folder of images whose sub-folders are split names, as ImageNet and
  torchvision lay them out: ``train/``, ``val/`` (or ``valid/``, ``validation/``),
  ``test/``, with classes (or loose images) below each;
- ``seeded``: no split of its own, so a fixed seeded share is held out as ``test``; a folder
  with a ``train/`` split folder and no ``val/`` or ``test/`` is split this way too.

Evaluation uses ``test`` where there is one, else ``val`` (``SplitLayout.held_out``). The
classes of split folders are the union of the class folders over the splits, sorted, so a
label means the same class in every split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqvae.errors import DataError

from .base import SPLITS
from .images import class_folders, has_images

# Folder names (compared without case) -> the canonical split name.
SPLIT_FOLDER_NAMES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
FILES, FOLDERS, SEEDED = "files", "folders", "seeded"


@dataclass(frozen=True)
class SplitLayout:
    kind: str  # FILES, FOLDERS or SEEDED
    splits: tuple[str, ...]  # what load_dataset gives, in SPLITS order
    folders: dict[str, str] = field(default_factory=dict)  # split -> its folder's name on disk
    test_fraction: float | None = None  # for SEEDED: the share held out as test

    @property
    def held_out(self) -> str:
        """The split evaluation uses: ``test`` where there is one, else ``val``."""
        return "test" if "test" in self.splits else "val"

    def to_dict(self) -> dict[str, Any]:
        """As ``config.json`` records it."""
        out: dict[str, Any] = {"kind": self.kind, "splits": list(self.splits)}
        if self.folders:
            out["folders"] = [self.folders[s] for s in SPLITS if s in self.folders]
        if self.test_fraction is not None:
            out["test_fraction"] = self.test_fraction
        return out


def check_has_split(layout: SplitLayout, split: str, name: str) -> None:
    if split not in layout.splits:
        raise DataError(f"{name}: has no {split} split (its splits: {', '.join(layout.splits)})")


def find_split_folders(folder: Path) -> dict[str, Path]:
    """The split sub-folders of ``folder`` (canonical name -> folder), or ``{}`` when its
    sub-folders are classes. Folders without images and hidden ones do not count.

    Split folders beside class-like folders, two folders for one split (``val/`` and
    ``validation/``) or split folders without ``train/`` are ambiguous: a ``DataError``."""
    subs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    subs = [d for d in subs if has_images(d)]
    found: dict[str, list[Path]] = {}
    for d in subs:
        canonical = SPLIT_FOLDER_NAMES.get(d.name.lower())
        if canonical is not None:
            found.setdefault(canonical, []).append(d)
    if not found:
        return {}
    others = [d.name for d in subs if d.name.lower() not in SPLIT_FOLDER_NAMES]
    splits = ", ".join(f"{d.name}/" for s in SPLITS for d in found.get(s, []))
    if others:
        shown = ", ".join(f"{n}/" for n in others[:3]) + (", ..." if len(others) > 3 else "")
        raise DataError(
            f"{folder}: ambiguous layout: {splits} look like split folders but {shown} "
            f"like classes; put the classes inside the split folders, or rename the folders"
        )
    for canonical, ds in found.items():
        if len(ds) > 1:
            both = " and ".join(f"{d.name}/" for d in ds)
            raise DataError(
                f"{folder}: ambiguous layout: {both} are both the {canonical} split; keep one"
            )
    if "train" not in found:
        raise DataError(f"{folder}: has split folders {splits} but no train/ to train on")
    return {s: found[s][0] for s in SPLITS if s in found}


def folder_layout(folders: dict[str, Path], test_fraction: float) -> SplitLayout:
    """The layout of split folders: theirs, or with only ``train/``, a seeded split of it."""
    names = {s: d.name for s, d in folders.items()}
    if set(folders) == {"train"}:
        return SplitLayout(SEEDED, ("train", "test"), names, test_fraction)
    return SplitLayout(FOLDERS, tuple(folders), names)


def union_of_classes(folders: dict[str, Path]) -> tuple[str, ...] | None:
    """The class folder names over all split folders, sorted; None when every split folder
    holds loose images (unlabelled data)."""
    per_split = {s: {d.name for d in class_folders(f)} for s, f in folders.items()}
    if not any(per_split.values()):
        return None
    unlabelled = [f"{folders[s].name}/" for s, names in per_split.items() if not names]
    if unlabelled:
        labelled = next(f"{folders[s].name}/" for s, names in per_split.items() if names)
        raise DataError(
            f"{folders['train'].parent}: {labelled} holds class folders but "
            f"{', '.join(unlabelled)} only loose images; use class folders in every split"
        )
    return tuple(sorted(set().union(*per_split.values())))
