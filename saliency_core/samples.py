"""Bundled samples: real photographs and synthetic scenes with ground-truth masks, listed in
``assets/samples/index.json``.

The assets folder is ``<repository>/assets`` (next to the package), or ``$SALIENCY_ASSETS`` when that is set.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

INDEX_NAME = "index.json"


def assets_dir() -> Path:
    """The assets folder: ``$SALIENCY_ASSETS`` if set, else ``assets/`` beside the ``saliency_core`` package."""
    env = os.environ.get("SALIENCY_ASSETS")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / "assets"


@dataclass(frozen=True)
class Sample:
    """One bundled sample image.

    ``kind`` is ``"photo"`` or ``"synthetic"``; ``suggested_model`` a model id of the registry; ``mask_path`` the
    binary ground-truth mask of the target object (synthetic scenes) or None; ``label`` the target's class name
    (synthetic) or None; ``credit`` author, source and licence (photos) or None.
    """

    id: str
    title: str
    kind: str
    path: Path
    suggested_model: str
    mask_path: Path | None = None
    label: str | None = None
    credit: str | None = None

    def image(self) -> Image.Image:
        """The image as an RGB PIL image."""
        with Image.open(self.path) as im:
            return im.convert("RGB")

    def mask(self) -> np.ndarray | None:
        """The ground-truth mask as an HxW bool array (non-zero pixels are the object), or None."""
        if self.mask_path is None:
            return None
        with Image.open(self.mask_path) as im:
            return np.asarray(im.convert("L")) > 127


def list_samples(root: Path | None = None) -> list[Sample]:
    """All samples listed in ``<assets>/samples/index.json``, in file order (empty if there is no index)."""
    folder = (root if root is not None else assets_dir()) / "samples"
    index = folder / INDEX_NAME
    if not index.is_file():
        return []
    entries = json.loads(index.read_text(encoding="utf-8"))
    if isinstance(entries, dict):
        entries = entries.get("samples", [])
    samples = []
    for e in entries:
        mask = e.get("mask")
        samples.append(
            Sample(
                id=str(e.get("id") or Path(e["file"]).stem),
                title=str(e.get("title") or Path(e["file"]).stem),
                kind=str(e["kind"]),
                path=folder / e["file"],
                suggested_model=str(e["suggested_model"]),
                mask_path=folder / mask if mask else None,
                label=e.get("label"),
                credit=e.get("credit"),
            )
        )
    return samples
