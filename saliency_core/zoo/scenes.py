"""Deterministic synthetic shape scenes with an exact ground-truth mask of the target object.

Each scene is a ``size x size`` RGB image (224 by default) holding one *target* shape of one of
:data:`SHAPE_CLASSES` on a textured background (gradients, value noise, stripes, thin-stroke clutter, pixel
noise), with 1-6 *distractor* shapes drawn from the other classes.

Labelling rule (the label is determined by the image alone):

- the target is the **largest** object: its circumradius is 28-58 px at size 224, while every distractor's
  is at most ``DISTRACTOR_MAX_RATIO`` (0.55) of the target's;
- the target is the **only** object of its class (distractors are always of other classes);
- the target is fully inside the image and never touches a distractor (its circumscribed circle keeps a gap
  of at least 4 px from every distractor's), so the mask is exactly the target's own region;
- distractors may be cut by the image border and may not touch each other either;
- the target colour is chosen far from the background under it (RGB distance >= 100), so it stands out.

Shapes, for a circumradius ``R`` and a random rotation: circle (radius 0.85R), square and equilateral triangle
(circumradius R), five-pointed star (inner radius 0.45R), cross (arms 0.95R long and 0.6R wide), ring (an
annulus of outer radius 0.85R around a hole of radius 0.35R; the hole is background, not mask).

Rendering: shapes are rasterised with OpenCV's anti-aliased fill (sub-pixel coordinates) into a coverage map
``alpha`` in [0, 255]; the image is ``background * (1 - alpha) + colour * alpha``.  The target is composited
last and its mask is ``alpha >= 128`` (pixels at least half covered); pixels with full coverage hold the
target colour exactly.  Everything derives from ``numpy.random.default_rng(seed)``: the same seed gives a
byte-identical scene.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

TARGET_RADIUS = (28.0, 58.0)  # circumradius range of the target at size 224 (scaled with size)
DISTRACTOR_MIN_RADIUS = 7.0  # at size 224
DISTRACTOR_MAX_RATIO = 0.55  # distractor circumradius <= this * target circumradius
DISTRACTOR_COUNT = (1, 6)  # inclusive range of distractors attempted per scene
MIN_TARGET_CONTRAST = 100.0  # RGB distance between target colour and mean background under it
_SHIFT = 4  # OpenCV sub-pixel bits
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Scene:
    """One synthetic scene.

    ``image`` is HxWx3 uint8 RGB, ``mask`` HxW bool (the target's pixels), ``label`` the index of the target's
    class in :data:`SHAPE_CLASSES`, ``name`` that class's name, ``seed`` the generating seed and ``box`` the
    mask's bounding box ``(x0, y0, x1, y1)`` with exclusive ``x1``/``y1`` (``mask[y0:y1, x0:x1]`` holds it all).
    ``radius`` is the target's circumradius in pixels and ``distractors`` lists the drawn distractors as
    ``(class name, centre x, centre y, circumradius)``.
    """

    image: np.ndarray
    mask: np.ndarray
    label: int
    name: str
    seed: int
    box: tuple[int, int, int, int]
    radius: float = 0.0
    distractors: tuple[tuple[str, float, float, float], ...] = ()


# --------------------------------------------------------------------------------------------- shapes


def _regular_polygon(n: int, radius: float, phase: float) -> np.ndarray:
    angles = phase + 2.0 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _star(radius: float, phase: float) -> np.ndarray:
    angles = phase + math.pi * np.arange(10) / 5
    radii = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _cross(radius: float, phase: float) -> np.ndarray:
    a, w = 0.95 * radius, 0.3 * radius
    pts = np.array(
        [
            (w, -a),
            (w, -w),
            (a, -w),
            (a, w),
            (w, w),
            (w, a),
            (-w, a),
            (-w, w),
            (-a, w),
            (-a, -w),
            (-w, -w),
            (-w, -a),
        ]
    )
    c, s = math.cos(phase), math.sin(phase)
    return pts @ np.array([[c, s], [-s, c]])


def _fixed(v: float) -> int:
    return round(v * _ONE)


def shape_coverage(
    name: str,
    center: tuple[float, float],
    radius: float,
    angle: float,
    size: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Anti-aliased coverage (uint8, 0..255, ``size x size``) of one shape.

    ``radius`` is the circumradius in pixels and ``angle`` the rotation in radians.
    """
    alpha = np.zeros((size, size), np.uint8) if out is None else out
    cx, cy = center
    if name in ("circle", "ring"):
        c = (_fixed(cx), _fixed(cy))
        cv2.circle(alpha, c, _fixed(0.85 * radius), 255, -1, cv2.LINE_AA, _SHIFT)
        if name == "ring":
            cv2.circle(alpha, c, _fixed(0.35 * radius), 0, -1, cv2.LINE_AA, _SHIFT)
        return alpha
    if name == "square":
        pts = _regular_polygon(4, radius, angle)
    elif name == "triangle":
        pts = _regular_polygon(3, radius, angle)
    elif name == "star":
        pts = _star(radius, angle)
    elif name == "cross":
        pts = _cross(radius, angle)
    else:
        raise ValueError(f"unknown shape {name!r}; expected one of {SHAPE_CLASSES}")
    pts = np.round((pts + np.array([cx, cy])) * _ONE).astype(np.int32)
    cv2.fillPoly(alpha, [pts], 255, cv2.LINE_AA, shift=_SHIFT)
    return alpha


# --------------------------------------------------------------------------------------------- backgrounds


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 255.0, size=3).astype(np.float32)


def _two_tone(t: np.ndarray, rng: np.random.Generator, contrast: float) -> np.ndarray:
    """Map a scalar field ``t`` in [0, 1] between a base colour and a nearby second colour."""
    base = rng.uniform(30.0, 225.0, size=3).astype(np.float32)
    delta = rng.normal(size=3).astype(np.float32)
    delta *= contrast / (np.linalg.norm(delta) + 1e-6)
    a, b = np.clip(base - delta / 2, 0, 255), np.clip(base + delta / 2, 0, 255)
    return a + t[..., None] * (b - a)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = int(rng.integers(0, 4))
    ramp = np.arange(size, dtype=np.float32) / size
    xx, yy = ramp[None, :], ramp[:, None]
    if kind == 0:  # linear gradient
        phi = rng.uniform(0, 2 * math.pi)
        t = math.cos(phi) * xx + math.sin(phi) * yy
        t = (t - t.min()) / (t.max() - t.min() + 1e-6)
        img = _two_tone(t, rng, rng.uniform(40, 140))
    elif kind == 1:  # smooth value noise, per channel
        cells = int(rng.integers(3, 14))
        grid = rng.uniform(0, 1, size=(cells, cells, 3)).astype(np.float32)
        field = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        base = rng.uniform(40.0, 215.0, size=3).astype(np.float32)
        img = base + (field - 0.5) * rng.uniform(40, 120)
    elif kind == 2:  # stripes at a random angle
        phi = rng.uniform(0, math.pi)
        period = rng.uniform(5, 28) / size
        t = 0.5 + 0.5 * np.sin(2 * math.pi * (math.cos(phi) * xx + math.sin(phi) * yy) / period)
        img = _two_tone(t.astype(np.float32), rng, rng.uniform(25, 80))
    else:  # clutter: thin random strokes on a flat or gradient base
        t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)).astype(np.float32)
        img = np.ascontiguousarray(_two_tone((t - t.min()) / (t.max() - t.min() + 1e-6), rng, 40))
        for _ in range(int(rng.integers(10, 40))):
            p0 = rng.uniform(-10, size + 10, size=2)
            p1 = p0 + rng.normal(0, size / 6, size=2)
            colour = tuple(float(v) for v in np.clip(img[0, 0] + rng.normal(0, 60, size=3), 0, 255))
            cv2.line(
                img,
                (_fixed(p0[0]), _fixed(p0[1])),
                (_fixed(p1[0]), _fixed(p1[1])),
                colour,
                int(rng.integers(1, 3)),
                cv2.LINE_AA,
                _SHIFT,
            )
    noise = rng.standard_normal(size=(size, size, 3), dtype=np.float32)
    noise *= rng.uniform(0, 12)
    noise += img
    return np.clip(noise, 0, 255, out=noise)


def _composite(
    img: np.ndarray, alpha: np.ndarray, colour: np.ndarray, box: tuple[int, int, int, int]
) -> None:
    x0, y0, x1, y1 = box
    a = alpha[y0:y1, x0:x1, None].astype(np.float32) / 255.0
    region = img[y0:y1, x0:x1]
    img[y0:y1, x0:x1] = region * (1.0 - a) + colour * a


def _clip_box(cx: float, cy: float, r: float, size: int) -> tuple[int, int, int, int]:
    x0, y0 = max(math.floor(cx - r) - 2, 0), max(math.floor(cy - r) - 2, 0)
    x1, y1 = min(math.ceil(cx + r) + 3, size), min(math.ceil(cy + r) + 3, size)
    return x0, y0, max(x1, x0), max(y1, y0)


# --------------------------------------------------------------------------------------------- scenes


def make_scene(seed: int, size: int = 224) -> Scene:
    """Generate the scene for ``seed`` (same seed and size -> byte-identical scene)."""
    rng = np.random.default_rng(int(seed))
    scale = size / 224.0
    label = int(rng.integers(0, len(SHAPE_CLASSES)))
    img = _background(rng, size)

    # target geometry first, so distractors can keep clear of it
    margin = 4.0 * scale
    r_t = rng.uniform(*TARGET_RADIUS) * scale
    cx_t, cy_t = rng.uniform(r_t + margin, size - r_t - margin, size=2)
    angle_t = rng.uniform(0, 2 * math.pi)
    others = [i for i in range(len(SHAPE_CLASSES)) if i != label]

    placed: list[tuple[int, float, float, float]] = [(label, cx_t, cy_t, r_t)]
    alpha = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(DISTRACTOR_COUNT[0], DISTRACTOR_COUNT[1] + 1))):
        cls = others[int(rng.integers(0, len(others)))]
        r = rng.uniform(DISTRACTOR_MIN_RADIUS * scale, DISTRACTOR_MAX_RATIO * r_t)
        angle = rng.uniform(0, 2 * math.pi)
        colour = _random_colour(rng)
        for _try in range(20):
            cx, cy = rng.uniform(-0.3 * r, size + 0.3 * r, size=2)
            if all(math.hypot(cx - px, cy - py) >= r + pr + margin for _c, px, py, pr in placed):
                break
        else:
            continue
        placed.append((cls, cx, cy, r))
        box = _clip_box(cx, cy, r, size)
        shape_coverage(SHAPE_CLASSES[cls], (cx, cy), r, angle, size, out=alpha)
        _composite(img, alpha, colour, box)
        alpha[box[1] : box[3], box[0] : box[2]] = 0  # the box holds the whole shape: canvas is clean again

    # target last: its mask is its own coverage, never occluded
    box_t = _clip_box(cx_t, cy_t, r_t, size)
    shape_coverage(SHAPE_CLASSES[label], (cx_t, cy_t), r_t, angle_t, size, out=alpha)
    mask = alpha >= 128
    under = img[box_t[1] : box_t[3], box_t[0] : box_t[2]][
        mask[box_t[1] : box_t[3], box_t[0] : box_t[2]]
    ].mean(0)
    colour_t = _random_colour(rng)
    for _try in range(50):
        if np.linalg.norm(colour_t - under) >= MIN_TARGET_CONTRAST:
            break
        colour_t = _random_colour(rng)
    else:  # fall back to the opposite colour, which is always far enough in practice
        colour_t = np.where(under < 128, 255.0, 0.0).astype(np.float32)
    _composite(img, alpha, colour_t, box_t)

    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    distractors = tuple((SHAPE_CLASSES[c], float(x), float(y), float(r)) for c, x, y, r in placed[1:])
    return Scene(
        image=image,
        mask=mask,
        label=label,
        name=SHAPE_CLASSES[label],
        seed=int(seed),
        box=box,
        radius=float(r_t),
        distractors=distractors,
    )


def make_batch(seeds: Iterable[int], size: int = 224) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scenes for ``seeds`` stacked: images ``[N, H, W, 3]`` uint8, labels ``[N]`` int64, masks ``[N, H, W]`` bool."""
    seeds = [int(s) for s in seeds]
    images = np.empty((len(seeds), size, size, 3), np.uint8)
    masks = np.empty((len(seeds), size, size), bool)
    labels = np.empty(len(seeds), np.int64)
    for i, s in enumerate(seeds):
        sc = make_scene(s, size)
        images[i], masks[i], labels[i] = sc.image, sc.mask, sc.label
    return images, labels, masks
