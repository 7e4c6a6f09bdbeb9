"""A progress bar over images on stderr: tqdm on a terminal, a plain counter line per image otherwise
(logs and CI), so redirected output stays readable."""

from __future__ import annotations

import sys
from typing import IO, Any


class ImageProgress:
    """`update(name)` after each image; `close()` at the end."""

    def __init__(self, total: int, what: str = "images", stream: IO[str] | None = None) -> None:
        self.total, self.done, self.what = total, 0, what
        self.stream = stream if stream is not None else sys.stderr
        self._bar: Any = None
        if getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm is a dev requirement; the counter does without it
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, unit=what.rstrip("s"), file=self.stream)

    def set(self, done: int, name: str = "") -> None:
        """Progress is `done` of the total (e.g. after resuming, images already finished)."""
        if self._bar is not None:
            self._bar.update(done - self.done)
            if name:
                self._bar.set_postfix_str(name, refresh=False)
        elif done != self.done or not done:
            print(f"[{done}/{self.total}] {name}".rstrip(), file=self.stream, flush=True)
        self.done = done

    def update(self, name: str = "") -> None:
        self.set(self.done + 1, name)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
