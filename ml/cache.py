"""Per-process model cache: each model version is loaded once per worker, least recently used evicted."""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class ModelCache:
    """A bounded LRU of loaded models. A new version has a new key, so it is picked up without a restart."""

    def __init__(self, max_items: int = 4) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.max_items = max_items
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, key: Hashable, loader: Callable[[], Any]) -> Any:
        """Return the model under `key`, calling `loader` only when it is not loaded yet."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = loader()
            self.loads += 1
            self._items[key] = value
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
                gc.collect()
            return value

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# One cache per worker process; workers are separate processes, so nothing is shared by accident.
MODELS = ModelCache()
# Loaded search indexes, apart from the models so that an index never evicts the embedder it searches with.
INDEXES = ModelCache(max_items=8)
