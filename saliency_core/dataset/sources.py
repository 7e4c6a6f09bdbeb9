"""What a batch command runs on: files, folders, globs and bundled sample ids, expanded to a list of images.

Expansion reads no pixels: a bad file is found (and reported) only when its image is loaded, so one bad
file never stops the others. The number of images is bounded by `limits().max_batch_images`.

Masks: with a masks folder, the file of the image's stem there; else a bundled sample's own mask, else the
file beside the image named `<stem>_mask.png` (or `<stem>_mask` with the image's own suffix). When a folder or
a glob is expanded, a file that is the mask beside another of its image files is left out of the images; a
file named on its own is always an image.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidImage
from ..limits import limits
from ..samples import Sample, list_samples

# Suffixes a folder's image files carry (what saliency_core.io reads); other files in a folder are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg", ".webp")
MASK_TAG = "_mask"  # `<stem>_mask.png` beside `<stem>.<ext>` is that image's mask
MASKS_RULE = (
    "Masks (pointing, energy pointing): with --masks DIR the file of the image's stem in DIR; else a bundled "
    "sample's own, or the file beside the image named <stem>_mask.png (or <stem>_mask with the image's own "
    "suffix). When a folder or glob is expanded, such a mask file beside its image is not itself an image; a "
    "file named on its own always is."
)


@dataclass(frozen=True)
class ImageSource:
    """One image of a batch: `path` on disk, `stem` unique in the batch (names its output folder),
    `sample` the bundled sample it is (or None), `mask_path` its ground-truth mask file (or None)."""

    path: Path
    stem: str
    name: str
    sample: Sample | None = None
    mask_path: Path | None = None


def _safe_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def beside_mask(image: Path) -> Path | None:
    """The mask file beside `image`: `<stem>_mask.png`, else `<stem>_mask` with the image's own suffix (as
    written, lower or upper case), or None."""
    seen: set[str] = set()
    for suffix in (".png", ".PNG", image.suffix, image.suffix.lower(), image.suffix.upper()):
        if not suffix or suffix in seen:
            continue
        seen.add(suffix)
        candidate = image.with_name(f"{image.stem}{MASK_TAG}{suffix}")
        if candidate.is_file():
            return candidate
    return None


def _without_masks(files: list[Path]) -> list[Path]:
    """`files` less those that are the mask beside another of them."""
    masks = {m.resolve() for m in (beside_mask(p) for p in files) if m is not None}
    return [p for p in files if p.resolve() not in masks]


def _expand_one(source: str, recursive: bool, samples: dict[str, Sample]) -> list[tuple[Path, Sample | None]]:
    path = Path(source).expanduser()
    if path.is_dir():
        found = path.rglob("*") if recursive else path.iterdir()
        files = _without_masks(sorted(p for p in found if _is_image(p)))
        if not files:
            raise InvalidImage(f"The folder {source} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
        return [(p, None) for p in files]
    if path.exists():
        return [(path, None)]
    if glob.has_magic(source):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=recursive) if Path(p).is_file())
        files = _without_masks(files)
        if not files:
            raise InvalidImage(f"No file matches {source!r}.")
        return [(p, None) for p in files]
    if source in samples:
        return [(samples[source].path, samples[source])]
    raise InvalidImage(f"No file {source!r} and no bundled sample with that id (see `samples`).")


def find_mask(stem: str, masks: Path | None) -> Path | None:
    """The mask file of an image stem in folder `masks` (same stem, an image suffix), or None."""
    if masks is None:
        return None
    for suffix in MASK_SUFFIXES:
        for candidate in (masks / f"{stem}{suffix}", masks / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def expand_sources(
    sources: Sequence[str], recursive: bool = False, masks: str | Path | None = None
) -> tuple[list[ImageSource], list[tuple[str, str]]]:
    """The images of `sources` in order (duplicates of one path once), and (source, message) for each
    source that names nothing. Raises ResourceLimit when there are more than `max_batch_images`."""
    samples = {s.id: s for s in list_samples()}
    mask_dir = Path(masks).expanduser() if masks is not None else None
    if mask_dir is not None and not mask_dir.is_dir():
        raise InvalidImage(f"The masks folder {masks} does not exist.")
    found: list[tuple[Path, Sample | None]] = []
    problems: list[tuple[str, str]] = []
    seen: set[Path] = set()
    for source in sources:
        try:
            expanded = _expand_one(source, recursive, samples)
        except InvalidImage as exc:
            problems.append((source, str(exc)))
            continue
        for path, sample in expanded:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append((path, sample))
    limits().check(
        "max_batch_images",
        len(found),
        "The number of images",
        "Split the images into several runs, or ask the operator to raise the limit.",
    )
    out: list[ImageSource] = []
    used: set[str] = set()
    for path, sample in found:
        base = _safe_stem(sample.id if sample is not None else path.stem)
        stem, n = base, 1
        while stem in used:  # two sources with one name (a/x.png, b/x.png) get x, x-2, ...
            n += 1
            stem = f"{base}-{n}"
        used.add(stem)
        own = sample.mask_path if sample is not None else None
        # A masks folder first (then a sample's own); without one a sample's own, then the file beside.
        in_folder = find_mask(path.stem, mask_dir) if mask_dir is not None else None
        mask = in_folder or own or (beside_mask(path) if mask_dir is None else None)
        out.append(ImageSource(path, stem, path.name, sample, mask))
    return out, problems
