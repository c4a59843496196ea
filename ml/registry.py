"""A small registry of named backends, so choosing one is a lookup, not an if-chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ml.errors import InvalidInput

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a backend name to a factory that builds it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise RuntimeError(f"{self.kind} backend {name!r} registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def create(self, name: str, **kwargs: object) -> T:
        try:
            factory = self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise InvalidInput(f"unknown {self.kind} backend {name!r}; known: {known}") from None
        return factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._factories)
