"""The images of an evaluation as small, picklable items (what Ray ships to its actors), and how one
becomes a model input, a target and a mask."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InvalidImage, ResourceLimit
from ..io import load_image
from ..limits import limits
from ..models import LoadedModel
from ..targets import ClassTarget, Target
from ..zoo.scenes import make_scene
from .masks import aligned_mask
from .sources import ImageSource


@dataclass(frozen=True)
class Item:
    """One image: a file (`path`, its `mask_path`) or a generated scene (`scene_seed`); `seed` seeds its
    random baseline map and its sanity check."""

    sha256: str
    name: str
    seed: int
    path: str | None = None
    scene_seed: int | None = None
    mask_path: str | None = None
    mask_sha256: str | None = None

    @property
    def key(self) -> str:
        """The key of its finished rows: the image's bytes and, with a mask file, the mask's (a mask added,
        changed or removed later makes the rows that depend on it new ones)."""
        return self.sha256 if self.mask_sha256 is None else f"{self.sha256}-mask-{self.mask_sha256[:16]}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scene_items(seeds: Sequence[int]) -> list[Item]:
    """Items of the generated scenes of `seeds` (the scene's seed seeds its baseline, as in the report)."""
    limits().check("max_batch_images", len(seeds), "The number of scenes", "Ask for fewer scenes.")
    out = []
    for seed in seeds:
        scene = make_scene(seed)
        digest = hashlib.sha256(b"scene:" + scene.image.tobytes()).hexdigest()
        out.append(Item(digest, f"scene-{seed}", int(seed), scene_seed=int(seed)))
    return out


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks; ResourceLimit (a person's message) for a file over
    max_image_bytes, before any of it is read: no acceptable image or mask is that large."""
    limits().check("max_image_bytes", path.stat().st_size, f"The file {path.name}", "Downscale it first.")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_items(sources: Sequence[ImageSource]) -> tuple[list[Item], list[tuple[str, str]]]:
    """Items of image files (keyed by their bytes' SHA-256), and (name, message) of files that cannot be
    read or are too large; a file whose bytes another file already has is listed once."""
    items: list[Item] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for s in sources:
        try:
            digest = file_digest(s.path)
        except OSError as exc:
            problems.append((str(s.path), f"The file cannot be read: {exc.strerror or exc}."))
            continue
        except ResourceLimit as exc:
            problems.append((str(s.path), str(exc)))
            continue
        if digest in seen:
            problems.append((str(s.path), "The same image as an earlier file; evaluated once."))
            continue
        seen.add(digest)
        mask, mask_digest = None, None
        if s.mask_path is not None:
            mask = str(s.mask_path)
            try:
                mask_digest = file_digest(Path(mask))
            except (OSError, ResourceLimit):
                mask_digest = "unreadable"  # reading it again in prepare() gives the person's message
        items.append(
            Item(
                digest,
                s.stem,
                int(digest[:8], 16),
                path=str(s.path),
                mask_path=mask,
                mask_sha256=mask_digest,
            )
        )
    return items, problems


def prepare(
    model: LoadedModel, item: Item, target_index: int | None = None
) -> tuple[torch.Tensor, Target, np.ndarray | None]:
    """The item's model input, target and mask at the input's resolution (None without a mask).

    A scene's target is its true class; a file's is `target_index`, else the model's top prediction.
    Raises InvalidImage (with the message a person reads) for an unreadable image or mask."""
    if item.scene_seed is not None:
        scene = make_scene(item.scene_seed)
        x = model.preprocess(scene.image)
        mask = (
            scene.mask
            if scene.mask.shape == tuple(x.shape[-2:])
            else aligned_mask(model, scene.mask, (scene.image.shape[1], scene.image.shape[0]))
        )
        return x, ClassTarget(scene.label, label=scene.name), mask
    assert item.path is not None
    image = load_image(item.path)
    x = model.preprocess(image)
    mask = None
    if item.mask_path is not None:
        mask = aligned_mask(model, Path(item.mask_path), image.size)
        if not mask.any():
            raise InvalidImage(f"The mask {Path(item.mask_path).name} covers no pixel of the model's input.")
    if target_index is not None:
        labels = model.categories
        label = labels[target_index] if 0 <= target_index < len(labels) else ""
        return x, ClassTarget(target_index, label=label), mask
    predictions = model.predict(x, top_k=1)
    if not predictions:
        raise InvalidImage("The model predicts nothing on this image; pass --target.")
    return x, predictions[0], mask
