"""One list of every kind: quantizers, networks, models, priors, likelihoods, presets and
data sets (the idea of timm's ``@register_model``).

Each kind registers itself where it is defined, so adding one is a new file and one
``register`` line (docs/extending.md); the command line's choices, ``--set`` validation,
the config loader, ``vqvae list`` and the report all read their lists from here. This
module imports nothing from the package, so anything may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    about: str  # one line for `vqvae list`


def _first_line(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


class Registry(Generic[T]):
    """Names -> objects of one kind, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # for messages: "quantizer kind", "preset", ...
        self._entries: dict[str, Entry[T]] = {}
        self._retired: dict[str, str] = {}  # name -> why it left, and where it can be found

    def register(self, name: str, obj: T | None = None, *, about: str = "") -> Any:
        """``register("name", obj)``, or ``@register("name")`` as a decorator. A name is
        registered once: a second registration under it is a ``ValueError``."""

        def add(target: T) -> T:
            if name in self._entries and self._entries[name].obj is not target:
                raise ValueError(f"{self.kind} {name!r} is registered already")
            self._entries[name] = Entry(name, target, about or _first_line(target))
            self._retired.pop(name, None)
            return target

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def retire(self, name: str, why: str) -> None:
        """A kind that left the registry (docs/extending.md, "Removing a kind"): a config or a
        run that names it fails with ``why`` in one line rather than a list of the others."""
        self._entries.pop(name, None)
        self._retired[name] = why

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        if name in self._retired:
            raise ValueError(f"{self.kind} {name!r} was removed: {self._retired[name]}")
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; expected one of {self.names()}")
        return self._entries[name]

    def find(self, predicate: Callable[[T], bool]) -> Entry[T] | None:
        """The first entry whose object satisfies ``predicate``, or None."""
        return next((e for e in self._entries.values() if predicate(e.obj)), None)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        """The registered names, as a dict iterates its keys."""
        return iter(list(self._entries))

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())


QUANTIZERS: Registry[Any] = Registry("quantizer kind")  # classes with from_config(QuantizerConfig)
NETS: Registry[Any] = Registry("network kind")  # NetKind: encoder and decoder builders
LIKELIHOODS: Registry[Any] = Registry("likelihood")  # Likelihood classes
MODELS: Registry[Any] = Registry("model")  # model classes, by the name config.json records
PRIORS: Registry[Any] = Registry("prior kind")  # Prior classes
VIDEO_PRIORS: Registry[Any] = Registry("video prior kind")  # FrameKind: one frame's network
PRESETS: Registry[Any] = Registry("preset")  # () -> Preset
SPEECH_DECODERS: Registry[Any] = Registry("speech decoder kind")  # AudioVQVAEConfig -> Module
VOCODERS: Registry[Any] = Registry("vocoder kind")  # Vocoder classes: log-mel frames -> audio
DATASETS: Registry[Any] = Registry("data set")  # (split, root, download) -> Image/AudioDataset
