"""A count-bounded, least-recently-used store kept in the session state: the session's maps
(`results.store()`) and its evaluations (`cards.store()`) each live in one."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

import streamlit as st

V = TypeVar("V")


class SessionStore(Generic[V]):
    """Values by tuple key, at most `limit` of them: the least recently used is dropped first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple, V] = OrderedDict()

    def get(self, key: tuple) -> V | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: tuple, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def matching(self, prefix: tuple) -> list[tuple[tuple, V]]:
        """(key, value) of the entries whose key starts with `prefix`, least recently used first."""
        return [(k, v) for k, v in self._items.items() if k[: len(prefix)] == prefix]

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def nbytes(self) -> int:
        """Bytes held by the values that say (an `nbytes` attribute, as arrays and results have)."""
        return sum(int(getattr(v, "nbytes", 0)) for v in self._items.values())


def session_store(key: str, limit: int) -> SessionStore:
    """The session's store under `key`, created (empty) on first use."""
    found = st.session_state.get(key)
    if not isinstance(found, SessionStore):
        found = st.session_state[key] = SessionStore(limit)
    return found
