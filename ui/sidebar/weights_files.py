"""Weights files a user uploads (U²-Net's published weights cannot be downloaded automatically).

The bytes are written to a temporary file named by their digest, in a folder private to this process
(made by mkdtemp, mode 0700; files are created exclusively, mode 0600, never through a link), loaded
through the library's safe path (`sc.load_model(id, weights=path)`: sizes checked from the file's index,
safetensors or `torch.load(weights_only=True)`, strict key matching), and the file is deleted at once:
the engine keeps the loaded model, so nothing stays on disk. At most MAX_LOADED uploaded models stay in
memory across all sessions; older ones are unloaded, and a session that still points at one is asked to
upload it again.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import stat
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

import saliency_core as sc
from ui import resources

TYPES = ["pth", "pt", "safetensors"]
MAX_MB = 200  # u2net.pth is 176 MB
MAX_LOADED = 3
FOLDER_PREFIX = "saliency-uploads-"
_LOCK = threading.Lock()
_FOLDER_LOCK = threading.Lock()
_FOLDER: Path | None = None
# Created exclusively: an existing name (a planted link, another file) makes the open fail, not follow.
_NEW_FILE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class Uploaded:
    """One uploaded weights file as a session remembers it (the bytes are not kept)."""

    model_id: str
    name: str
    sha256: str
    key: str  # what the engine knows the loaded model by (a path that no longer exists on disk)

    @property
    def mode(self) -> str:
        """The weights mode of the view: 'file:<digest prefix>' (part of cache and result keys)."""
        return f"file:{self.sha256[:16]}"


class UploadGone(sc.SaliencyError):
    """The uploaded model was unloaded to make room for newer uploads."""


@st.cache_resource(show_spinner=False)
def _loaded() -> OrderedDict[tuple[str, str], None]:
    """Process-wide: (model id, engine key) of the uploaded models still loaded, oldest first."""
    return OrderedDict()


def folder() -> Path:
    """This process's private folder for uploads (a fresh mkdtemp folder, mode 0700, removed at exit).

    A shared, predictable folder would let another local user plant links there that the upload is
    written through; a folder only this process knows and only this user can enter leaves no such opening.
    """
    global _FOLDER
    with _FOLDER_LOCK:
        if _FOLDER is None or not _is_own_dir(_FOLDER):
            _FOLDER = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
            atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)
        return _FOLDER


def _is_own_dir(path: Path) -> bool:
    try:
        info = os.lstat(path)  # lstat: a link put in the folder's place is not a folder
    except OSError:
        return False
    if not hasattr(os, "getuid"):  # Windows: no owners and modes to compare
        return stat.S_ISDIR(info.st_mode)
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700


def write_new(path: Path, data: bytes) -> None:
    """Write `data` to a new file (mode 0600), replacing whatever has its name without following it."""
    try:
        try:
            fd = os.open(path, _NEW_FILE, 0o600)
        except FileExistsError:
            os.unlink(path)  # removes a link itself, never its target
            fd = os.open(path, _NEW_FILE, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise sc.SaliencyError(f"The server could not store the uploaded file: {exc.strerror}.") from None


def keep(path: Path, data: bytes) -> None:
    """Make `path` a plain file holding `data`, unless it already is one (files named by their digest)."""
    try:
        # No links followed, and no wait on a pipe put in the file's place.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        fd = None  # absent, or a link: write it anew
    if fd is not None:
        with os.fdopen(fd, "rb") as fh:
            if stat.S_ISREG(os.fstat(fh.fileno()).st_mode) and fh.read(len(data) + 1) == data:
                return
    write_new(path, data)


def _suffix(name: str) -> str:
    return ".safetensors" if name.lower().endswith(".safetensors") else ".pth"


def _plain(message: str, path: Path, name: str) -> str:
    """The library's message with the temporary path replaced by the file's own name."""
    return message.replace(str(path), name).replace(path.name, name)


def load(model_id: str, data: bytes, name: str, **options: Any) -> tuple[sc.LoadedModel, Uploaded]:
    """Load uploaded weights into a model (`options`: num_classes, categories for "your model");
    raises sc.InvalidWeights with a plain message."""
    digest = hashlib.sha256(data).hexdigest()
    safe_id = re.sub(r"[^A-Za-z0-9_-]+", "_", model_id)
    path = folder() / f"{safe_id}-{digest[:16]}{_suffix(name)}"
    upload = Uploaded(model_id, name, digest, str(path))
    resources.engine()
    with _LOCK:
        try:
            write_new(path, data)
            model = sc.load_model(model_id, weights=str(path), **_given(options))
        except sc.SaliencyError as exc:
            # The same kind of error (a size limit stays a ResourceLimit), naming the user's file.
            exc.args = (_plain(str(exc), path, name), *exc.args[1:])
            raise
        finally:
            path.unlink(missing_ok=True)
        _remember(model_id, str(path))
    return model, upload


def _given(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


def get(upload: Uploaded, **options: Any) -> sc.LoadedModel:
    """The model loaded from an earlier upload; raises UploadGone when it was unloaded since."""
    gone = UploadGone(
        f"The weights file {upload.name} is no longer loaded on the server (newer uploads took its place). "
        "Upload it again."
    )
    entry = (upload.model_id, upload.key)
    with _LOCK:
        if entry not in _loaded():
            raise gone
        try:
            # The engine's copy: the file itself is gone.
            model = sc.load_model(upload.model_id, weights=upload.key, **_given(options))
        except sc.InvalidWeights:
            _loaded().pop(entry, None)
            raise gone from None
        _loaded().move_to_end(entry)
        return model


def _remember(model_id: str, key: str) -> None:
    loaded = _loaded()
    loaded[(model_id, key)] = None
    loaded.move_to_end((model_id, key))
    while len(loaded) > MAX_LOADED:
        (old_id, old_key), _ = loaded.popitem(last=False)
        sc.get_engine().unload(old_id, weights=old_key)
