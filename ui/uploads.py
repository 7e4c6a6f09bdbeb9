"""Uploaded images kept on the server, so that a share link can reopen them (`?upload=<sha256 hex>`).

The store is content-addressed: a file is named by the SHA-256 of its bytes, which are the bytes of an
upload that was read and checked as an image (ui/images.read), so the same picture is kept once and a
link names exactly the picture it was made for. It is bounded by total bytes and by count, the least
recently used file going first, so a link works while the server keeps its image and then says so.

Settings (environment): SALIENCY_UPLOAD_DIR (the folder; default a private one made with
tempfile.mkdtemp, mode 0700, gone with the machine's temp files), SALIENCY_UPLOAD_STORE_MB (200) and
SALIENCY_UPLOAD_STORE_FILES (500). Only images are kept: uploaded weights are never stored or shared.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

DIR_ENV = "SALIENCY_UPLOAD_DIR"
MB_ENV = "SALIENCY_UPLOAD_STORE_MB"
FILES_ENV = "SALIENCY_UPLOAD_STORE_FILES"
DEFAULT_MB = 200
DEFAULT_FILES = 500
DIGEST = re.compile(r"[0-9a-f]{64}")  # the only form a link's `upload` value may take
SUFFIX = ".img"


def valid_digest(value: str) -> bool:
    """Whether `value` is a lowercase SHA-256 hex digest (64 characters), nothing else."""
    return isinstance(value, str) and DIGEST.fullmatch(value) is not None


class UploadStore:
    """Bytes by SHA-256 in one folder, at most `max_bytes` in all and `max_files` files; thread-safe."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int, max_files: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.max_files = int(max_bytes), int(max_files)
        self._lock = threading.Lock()
        self._sizes: OrderedDict[str, int] = OrderedDict()  # digest -> size, least recently used first
        # Files left by an earlier process in a configured folder are kept, oldest first.
        found = [p for p in self.folder.glob(f"*{SUFFIX}") if valid_digest(p.stem)]
        for path in sorted(found, key=lambda p: p.stat().st_mtime):
            self._sizes[path.stem] = path.stat().st_size
        with self._lock:
            self._evict()

    def put(self, data: bytes) -> str:
        """Keep `data` (again the most recent if already kept); return its digest. A file over the whole
        budget is not kept (the digest is still returned; `get` then finds nothing)."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            if digest in self._sizes:
                self._sizes.move_to_end(digest)
                return digest
            if len(data) > self.max_bytes or self.max_files < 1:
                return digest
            path = self._path(digest)
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            os.replace(partial, path)  # never a half-written file under the final name
            self._sizes[digest] = len(data)
            self._evict()
        return digest

    def get(self, digest: str) -> bytes | None:
        """The bytes kept under `digest`, or None (never kept, evicted, or not a digest at all)."""
        if not valid_digest(digest):
            return None
        with self._lock:
            if digest not in self._sizes:
                return None
            try:
                data = self._path(digest).read_bytes()
            except OSError:
                del self._sizes[digest]
                return None
            self._sizes.move_to_end(digest)
        if hashlib.sha256(data).hexdigest() != digest:  # changed on disk: not the picture linked
            return None
        return data

    def __contains__(self, digest: object) -> bool:
        with self._lock:
            return digest in self._sizes

    def usage(self) -> tuple[int, int]:
        """(files, bytes) kept now."""
        with self._lock:
            return len(self._sizes), sum(self._sizes.values())

    def _path(self, digest: str) -> Path:
        return self.folder / f"{digest}{SUFFIX}"

    def _evict(self) -> None:
        """Drop least-recently-used files until both bounds hold (the caller holds the lock)."""
        total = sum(self._sizes.values())
        while self._sizes and (total > self.max_bytes or len(self._sizes) > self.max_files):
            digest, size = self._sizes.popitem(last=False)
            total -= size
            self._path(digest).unlink(missing_ok=True)


def _number(name: str, default: int) -> int:
    try:
        return max(0, int(float(os.environ.get(name) or default)))
    except ValueError:
        return default


_STORE: UploadStore | None = None
_STORE_LOCK = threading.Lock()


def store() -> UploadStore:
    """The process's upload store, made on first use from the settings above."""
    global _STORE
    with _STORE_LOCK:
        if _STORE is None:
            folder = os.environ.get(DIR_ENV) or tempfile.mkdtemp(prefix="saliency-uploads-")
            _STORE = UploadStore(folder, _number(MB_ENV, DEFAULT_MB) << 20, _number(FILES_ENV, DEFAULT_FILES))
        return _STORE
