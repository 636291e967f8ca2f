"""``save_pretrained`` / ``from_pretrained`` for every model and prior.

A module is rebuilt from two files, as in diffusers: ``config.json`` (its frozen dataclass
config, tagged with the class name) and ``model.safetensors`` (its state dict). No pickle.
The folder's ``manifest.json`` holds the weights' size and SHA-256, checked on loading
(``write_weights``, ``read_weights``; docs/run-folders.md).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

from vqvae._io import (
    manifest_entry,
    read_checked,
    read_json,
    read_safetensors,
    safetensors_bytes,
    set_manifest_entry,
    write_bytes,
    write_json,
)

C = TypeVar("C")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain JSON types (tuples become lists)."""
    return dataclasses.asdict(config)


def _convert(tp: Any, value: Any) -> Any:
    """Turn a JSON value back into the annotated type: nested dataclasses, tuples, Optionals."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"expected a section ({tp.__name__}), got {value!r}")
        return config_from_dict(tp, value)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value) if len(args) == 1 else value
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v) for v in value)
        return tuple(_convert(a, v) for a, v in zip(args, value, strict=False))
    # A wrong scalar type is refused here, not found later as a crash deep in a model.
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (bool, str) and isinstance(value, tp):
        return value
    if tp in (int, float, bool, str):
        raise ValueError(f"expected {tp.__name__}, got {value!r}")
    return value


def renamed_keys(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the keys an older release named otherwise under today's names: a config
    class lists them as ``RENAMED = {old: new}`` (a ``ClassVar``; subclasses inherit it)."""
    out = dict(data)
    for old, new in getattr(cls, "RENAMED", {}).items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    return out


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild a (nested) frozen dataclass config; unknown keys are a ``ValueError``."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    data = renamed_keys(cls, data)  # configs written by older releases
    # fields an older release did not have: the value that rebuilds what it built
    data = getattr(cls, "ABSENT", {}) | data
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {unknown}")
    kwargs = {}
    for k, v in data.items():
        try:
            kwargs[k] = _convert(hints[k], v)
        except ValueError as e:
            raise ValueError(f"{cls.__name__}.{k}: {e}") from None
    return cls(**kwargs)


def config_file_dict(class_name: str, config: Any, **extra: Any) -> dict[str, Any]:
    """What every ``config.json`` holds: the class to rebuild, its config, and ``extra``
    top-level keys (a run adds its training config, data spec, preset and overrides)."""
    return {"class": class_name, "config": config_to_dict(config), **extra}


def write_config_file(path: str | os.PathLike, class_name: str, config: Any, **extra: Any) -> Path:
    """The one writer of ``config.json`` files (atomically)."""
    return write_json(path, config_file_dict(class_name, config, **extra))


def write_weights(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> Path:
    """Weights as safetensors, with their size and SHA-256 in the folder's manifest. The old
    entry goes first: a process killed between the two writes leaves weights with no entry
    (read unchecked, as a run written before manifests), never ones that fail their own."""
    data = safetensors_bytes(tensors)
    set_manifest_entry(path, None)
    write_bytes(path, data)
    set_manifest_entry(path, manifest_entry(data))
    return Path(path)


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, checked against its folder's manifest where listed."""
    return read_safetensors(path, read_checked(path))


class PretrainedMixin:
    """Mix into an ``nn.Module`` whose ``__init__`` takes one ``config`` dataclass."""

    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        assert isinstance(self, torch.nn.Module)
        write_weights(directory / WEIGHTS_FILE, self.state_dict())
        write_config_file(directory / CONFIG_FILE, type(self).__name__, self.config)
        return directory

    @classmethod
    def read_config(cls, directory: str | os.PathLike) -> Any:
        path = Path(directory) / CONFIG_FILE
        meta = read_json(path)
        if not isinstance(meta, dict) or "config" not in meta:
            raise ValueError(f"{path}: not a vqvae config (no 'config' key)")
        if meta.get("class") != cls.__name__:
            raise ValueError(f"{path}: holds a {meta.get('class')!r}, not a {cls.__name__}")
        try:
            return config_from_dict(cls.config_class, meta["config"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str = "cpu"):
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory}: no such folder")
        model = cls(cls.read_config(directory))
        state = cls.migrate_state_dict(read_weights(directory / WEIGHTS_FILE))
        load_state_checked(model, state, directory / WEIGHTS_FILE)
        return model.to(map_location)

    @classmethod
    def migrate_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weights saved by an older release under other names -> today's names."""
        return state


def load_state_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], where: Any) -> None:
    """``load_state_dict`` that names a mismatch in one line instead of a wall of text."""
    state = dict(state)
    for name, sub in module.named_modules():  # entries that older weights lack, filled in
        if hasattr(sub, "upgrade_state_dict"):
            sub.upgrade_state_dict(state, f"{name}." if name else "")
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise ValueError(
            f"{where}: weights are from another model "
            f"(missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for name, tensor in state.items():
        if own[name].shape != tensor.shape:
            raise ValueError(
                f"{where}: weights are from another model config ({name} has shape "
                f"{tuple(tensor.shape)}, this config expects {tuple(own[name].shape)})"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{where}: weights hold NaN or infinite values ({name})")
    module.load_state_dict(state)
