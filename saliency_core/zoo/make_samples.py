"""Regenerate ``assets/samples/``: photos from scikit-image's bundled data and synthetic shape scenes.

``python -m saliency_core.zoo.make_samples [--out DIR]``

Deterministic: photos are the images that ship inside scikit-image (no download), resized so the longer side is
at most 640 px and written as JPEG (quality 90); synthetic scenes use seeds from ``SAMPLE_SEED_START``
(2_000_000) upwards, disjoint from the training and held-out ranges: scene ``k`` is the first scene at or after
the previous one whose class is ``SHAPE_CLASSES[k % 6]``, so every class appears.  Masks are 0/255 PNGs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from saliency_core.zoo import SAMPLE_SEED_START
from saliency_core.zoo.scenes import SHAPE_CLASSES, make_scene

DEFAULT_OUT = Path(__file__).resolve().parent.parent.parent / "assets" / "samples"
N_SYNTHETIC = 8
MAX_SIDE = 640


@dataclass(frozen=True)
class Photo:
    id: str
    loader: str  # name of the skimage.data function
    title: str
    suggested_model: str
    credit: str  # author / source / licence as scikit-image documents it
    note: str = ""


PHOTOS: tuple[Photo, ...] = (
    Photo(
        "astronaut",
        "astronaut",
        "Astronaut Eileen Collins (person)",
        "keypointrcnn_resnet50_fpn",
        "NASA (NASA Great Images database, https://flic.kr/p/r9qvLn); no known copyright restrictions, "
        "released into the public domain. Via scikit-image (skimage.data.astronaut).",
    ),
    Photo(
        "coffee",
        "coffee",
        "Coffee cup, saucer and spoon (several objects)",
        "fasterrcnn_resnet50_fpn_v2",
        "Rachel Michetti, courtesy of Pikolo Espresso Bar; CC0 (no copyright restrictions). "
        "Via scikit-image (skimage.data.coffee).",
    ),
    Photo(
        "chelsea",
        "chelsea",
        "Chelsea the cat",
        "resnet50",
        "Stefan van der Walt; CC0 (no copyright restrictions). Via scikit-image (skimage.data.chelsea).",
    ),
    Photo(
        "rocket",
        "rocket",
        "Falcon 9 launch carrying DSCOVR",
        "resnet50",
        "SpaceX (https://www.flickr.com/photos/spacexphotos/16511594820/); released into the public domain. "
        "Via scikit-image (skimage.data.rocket).",
    ),
    Photo(
        "camera",
        "camera",
        "Cameraman with tripod (person, grayscale)",
        "keypointrcnn_resnet50_fpn",
        "Lav Varshney; CC0 (no copyright restrictions). Via scikit-image (skimage.data.camera).",
        "grayscale original, stored as RGB",
    ),
    Photo(
        "hubble_deep_field",
        "hubble_deep_field",
        "Hubble eXtreme Deep Field (many small objects)",
        "resnet50",
        "NASA (HubbleSite, release 2012-37); may be freely used in the public domain. "
        "Via scikit-image (skimage.data.hubble_deep_field).",
    ),
    Photo(
        "retina",
        "retina",
        "Human retina (fundus photograph)",
        "resnet50",
        "Mikael Häggström (Wikimedia Commons, Fundus_photograph_of_normal_left_eye.jpg); CC0 1.0 Universal "
        "Public Domain Dedication. Via scikit-image (skimage.data.retina).",
    ),
)


def _photo_array(loader: str) -> np.ndarray:
    import skimage.data

    fn: Callable[[], np.ndarray] = getattr(skimage.data, loader)
    arr = np.asarray(fn())
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3]).astype(np.uint8)


def write_photos(out: Path) -> list[dict]:
    entries = []
    for p in PHOTOS:
        im = Image.fromarray(_photo_array(p.loader), "RGB")
        scale = MAX_SIDE / max(im.size)
        if scale < 1:
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        name = f"{p.id}.jpg"
        im.save(out / name, "JPEG", quality=90, optimize=True)
        entries.append(
            {
                "id": p.id,
                "file": name,
                "title": p.title,
                "kind": "photo",
                "suggested_model": p.suggested_model,
                "mask": None,
                "label": None,
                "credit": p.credit,
                "source": f"skimage.data.{p.loader}",
            }
        )
    return entries


def sample_seeds(n: int = N_SYNTHETIC) -> list[int]:
    """Seeds of the synthetic samples (see the module docstring for the rule)."""
    seeds, seed = [], SAMPLE_SEED_START
    for k in range(n):
        while make_scene(seed).label != k % len(SHAPE_CLASSES):
            seed += 1
        seeds.append(seed)
        seed += 1
    return seeds


def write_scenes(out: Path, n: int = N_SYNTHETIC) -> list[dict]:
    entries = []
    for k, seed in enumerate(sample_seeds(n)):
        sc = make_scene(seed)
        name, mask_name = f"scene_{k:02d}.png", f"scene_{k:02d}_mask.png"
        Image.fromarray(sc.image, "RGB").save(out / name, optimize=True)
        Image.fromarray(sc.mask.astype(np.uint8) * 255, "L").save(out / mask_name, optimize=True)
        entries.append(
            {
                "id": f"scene_{k:02d}",
                "file": name,
                "title": f"Synthetic scene {k:02d}: {sc.name}",
                "kind": "synthetic",
                "suggested_model": "shapes_demo",
                "mask": mask_name,
                "label": sc.name,
                "credit": None,
                "seed": seed,
                "box": list(sc.box),
            }
        )
    return entries


def make_samples(out: str | Path = DEFAULT_OUT) -> list[dict]:
    """Write photos, scenes, masks and ``index.json`` into ``out``; return the index entries."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = write_photos(out) + write_scenes(out)
    index = {
        "description": "Bundled samples: scikit-image photos (see LICENSES.md) and synthetic shape scenes "
        "with ground-truth target masks (python -m saliency_core.zoo.make_samples).",
        "synthetic_seed_start": SAMPLE_SEED_START,
        "samples": entries,
    }
    (out / "index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return entries


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    for e in make_samples(args.out):
        print(f"{e['kind']:9s} {e['file']:24s} {e['title']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
