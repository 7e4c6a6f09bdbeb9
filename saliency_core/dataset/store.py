"""Resumable results of an evaluation: one small JSON part file per finished (image, method).

A part's key is the image's SHA-256, the method and the digest of the settings that change a number
(model, weights and their hash, steps, substrate, sanity, method parameters, tolerance). Parts live in
OUT/parts/<settings digest>/, beside that folder's settings.json: a re-run with the same settings skips
finished keys, and different settings get their own folder, so results of two settings never mix.
Each part is written to a temporary name and renamed, so an interrupted run leaves no half-written part.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    """What an evaluation's numbers depend on (besides the image and the method)."""

    model: str
    weights: str
    weights_sha256: str
    steps: int = 50
    substrate: str = "blur"
    sanity: bool = False
    tolerance: float = 15.0
    params: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    target: int | None = None  # a fixed class index for every file image (None: the top prediction)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["params"] = [list(p) for p in self.params]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        data = dict(data)
        data["params"] = tuple(tuple(p) for p in data.get("params", ()))
        return cls(**data)

    def digest(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _safe(method: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in method)


class PartStore:
    """Part files of one settings digest under `out`."""

    def __init__(self, out: Path, settings: Settings) -> None:
        self.settings = settings
        self.folder = Path(out) / "parts" / settings.digest()
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "settings.json"
        if not meta.exists():
            meta.write_text(json.dumps(settings.as_dict(), indent=2, sort_keys=True))

    def _path(self, sha256: str, method: str) -> Path:
        return self.folder / sha256 / f"{_safe(method)}.json"

    def done(self, sha256: str, method: str) -> bool:
        """Whether this image's row of `method` is stored."""
        return self._path(sha256, method).is_file()

    def pending(self, sha256: str, methods: Iterable[str]) -> list[str]:
        """The methods of `methods` whose row of this image is not stored yet, in order."""
        return [m for m in methods if not self.done(sha256, m)]

    def write(self, sha256: str, row: dict[str, Any]) -> None:
        """Store one finished row (atomically: a crash leaves the old state or the new, nothing between)."""
        path = self._path(sha256, row["method"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(row, allow_nan=True))
        os.replace(tmp, path)

    def read(self, sha256: str, method: str) -> dict[str, Any]:
        return json.loads(self._path(sha256, method).read_text())


def weights_sha256(model_id: str, weights: str, source_info: dict[str, Any]) -> str:
    """The SHA-256 of the weights a model was loaded with: the loader's record, else the file's ("random"
    for random init, "" when there is no file to read, e.g. a framework's cached download)."""
    if weights == "none":
        return "random"
    recorded = str(source_info.get("weights_sha256") or "")
    if recorded:
        return recorded
    from ..models.sources import model_info

    path = Path(weights) if weights != "default" else None
    if path is None:
        where = model_info(model_id).weights_path
        path = Path(where) if where else None
    if path is None or not path.is_file():
        return ""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
