"""A thread-safe LRU cache bounded by bytes, with hit/miss statistics."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch


def nbytes(value: Any) -> int:
    """Approximate memory held by tensors inside a value (tensors, containers, dataclasses)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return sum(nbytes(getattr(value, f)) for f in value.__dataclass_fields__)
    return 0


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int


class LRUCache:
    """Least-recently-used eviction once the total size passes `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return item[0]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def put(self, key: Hashable, value: Any, size: int | None = None) -> None:
        size = nbytes(value) if size is None else size
        with self._lock:
            if key in self._data:
                self._bytes -= self._data.pop(key)[1]
            if size > self.max_bytes:
                return
            self._data[key] = (value, size)
            self._bytes += size
            self._evict()

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def drop(self, predicate: Callable[[Hashable], bool]) -> int:
        """Remove every entry whose key satisfies `predicate`; return how many."""
        with self._lock:
            doomed = [k for k in self._data if predicate(k)]
            for key in doomed:
                self._bytes -= self._data.pop(key)[1]
            return len(doomed)

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = int(max_bytes)
            self._evict()

    def _evict(self) -> None:
        """Drop least-recently-used entries until the total fits (caller holds the lock)."""
        while self._bytes > self.max_bytes and self._data:
            _, (_, old) = self._data.popitem(last=False)
            self._bytes -= old
            self.evictions += 1

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                len(self._data), self._bytes, self.max_bytes, self.hits, self.misses, self.evictions
            )
