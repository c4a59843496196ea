"""A small registry of named backends, so choosing one is a lookup, not an if-chain.

Backends are declared by dotted path (`"name": "package.module:factory"`, as healthchecks declares its
TRANSPORTS) and imported on first use, so the registry is the one map from a name to its code and declaring
a heavy backend (torch, onnxruntime, llama.cpp) costs nothing until something asks for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar, cast

from ml.errors import InvalidInput

T = TypeVar("T")


def import_path(path: str) -> object:
    """The object a `package.module:attribute[.attribute]` path names; a bad path raises ImportError."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ImportError(f"{path!r} is not a 'package.module:attribute' path")
    target: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportError(f"{path!r}: {module_name} has no attribute {attribute!r}") from None
    return target


class Registry(Generic[T]):
    """Maps a backend name to a factory that builds it: a callable, or a dotted path imported on first use."""

    def __init__(self, kind: str, entries: Mapping[str, str | Callable[..., T]] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, str | Callable[..., T]] = {}
        for name, entry in (entries or {}).items():
            self._add(name, entry)

    def _add(self, name: str, entry: str | Callable[..., T]) -> None:
        if name in self._entries:
            raise RuntimeError(f"{self.kind} backend {name!r} registered twice")
        self._entries[name] = entry

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator form, for a factory defined where the registry is (tests, plug-ins)."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self._add(name, factory)
            return factory

        return decorator

    def resolve(self, name: str) -> Callable[..., T]:
        """The factory registered as `name`, importing its module the first time; unknown names are InvalidInput."""
        try:
            entry = self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise InvalidInput(f"unknown {self.kind} backend {name!r}; known: {known}") from None
        if isinstance(entry, str):
            target = import_path(entry)
            if not callable(target):
                raise ImportError(f"{self.kind} backend {name!r}: {entry!r} is not callable")
            entry = cast("Callable[..., T]", target)
            self._entries[name] = entry
        return entry

    def create(self, name: str, **kwargs: object) -> T:
        """Build the backend `name` with `kwargs` (a lazy path is imported first)."""
        return self.resolve(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
