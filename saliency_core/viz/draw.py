"""Predictions drawn on pictures: labelled boxes, keypoints with their skeleton, tinted and outlined masks,
in a palette of distinct colours."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

from .maps import as_map, resize_map, to_numpy
from .pictures import _font, to_rgb_uint8

_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 190),
    (0, 128, 128),
)


def palette(n: int) -> list[tuple[int, int, int]]:
    """`n` distinct RGB colours (cycling after ten)."""
    return [_PALETTE[i % len(_PALETTE)] for i in range(n)]


def _dim(picture: np.ndarray, amount: float = 0.45) -> np.ndarray:
    grey = picture.mean(axis=2, keepdims=True)
    return np.round(picture * (1 - amount) + grey * amount * 0.6).astype(np.uint8)


def _label(
    picture: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int], size: int = 13
) -> np.ndarray:
    canvas = Image.fromarray(picture)
    draw = ImageDraw.Draw(canvas)
    font = _font(size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 6, bottom - top + 4
    y0 = y - h if y - h >= 0 else y
    x0 = int(np.clip(x, 0, max(0, picture.shape[1] - w)))
    draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    draw.text((x0 + 3, y0 + 2 - top), text, fill=(0, 0, 0) if luminance > 150 else (255, 255, 255), font=font)
    return np.array(canvas)


def draw_boxes(
    image: Any,
    boxes: Any,
    labels: Sequence[str] | None = None,
    colors: Sequence[tuple[int, int, int]] | None = None,
    highlight: int | None = None,
    thickness: int = 2,
    font_size: int = 13,
) -> np.ndarray:
    """Boxes (x0, y0, x1, y1) in pixels drawn on a copy of the picture, each with an optional label.

    With `highlight`, that box is drawn thicker with its label, and the others thin, unlabelled and faded
    (their colour halfway to grey) over a dimmed picture, so one box stands out among many overlapping ones.
    """
    picture = to_rgb_uint8(image).copy()
    array = to_numpy(boxes).reshape(-1, 4) if len(boxes) else np.zeros((0, 4), np.float32)
    colours = list(colors) if colors is not None else palette(len(array))
    if highlight is not None and len(array):
        picture = _dim(picture)
    order = [i for i in range(len(array)) if i != highlight] + ([highlight] if highlight is not None else [])
    for i in order:
        if not 0 <= i < len(array):
            continue
        x0, y0, x1, y1 = (round(float(v)) for v in array[i])
        width = (
            thickness + 2
            if i == highlight
            else (max(1, thickness - 1) if highlight is not None else thickness)
        )
        colour = tuple(int(c) for c in colours[i])
        if highlight is not None and i != highlight:
            colour = tuple(round(c * 0.5 + 128 * 0.5) for c in colour)  # faded: halfway to grey
            width = 1
        cv2.rectangle(picture, (x0, y0), (x1, y1), colour, width)
        if highlight is not None and i != highlight:
            continue  # only the chosen box is labelled: thirty labels hide the picture
        if labels is not None and i < len(labels) and labels[i]:
            picture = _label(picture, str(labels[i]), x0, y0, tuple(int(c) for c in colours[i]), font_size)
    return picture


def draw_keypoints(
    image: Any,
    keypoints: Any,
    skeleton: Sequence[tuple[int, int]] = (),
    color: tuple[int, int, int] = (0, 255, 128),
    radius: int = 3,
    threshold: float = 0.0,
    highlight: int | None = None,
    names: Sequence[str] | None = None,
    font_size: int = 13,
) -> np.ndarray:
    """Keypoints [K, 3] (x, y, visibility or score) and skeleton edges drawn on a copy of the picture.

    Points whose third value is not above `threshold` are skipped; `highlight` marks one keypoint larger
    (with its name when `names` is given).
    """
    picture = to_rgb_uint8(image).copy()
    points = to_numpy(keypoints).reshape(-1, 3)
    visible = points[:, 2] > threshold
    colour = tuple(int(c) for c in color)
    for a, b in skeleton:
        if a < len(points) and b < len(points) and visible[a] and visible[b]:
            pa = (round(float(points[a, 0])), round(float(points[a, 1])))
            pb = (round(float(points[b, 0])), round(float(points[b, 1])))
            cv2.line(picture, pa, pb, colour, max(1, radius // 2), cv2.LINE_AA)
    for i, (x, y, _) in enumerate(points):
        if not visible[i]:
            continue
        centre = (round(float(x)), round(float(y)))
        if i == highlight:
            cv2.circle(picture, centre, radius * 2 + 2, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(picture, centre, radius * 2, (230, 25, 75), -1, cv2.LINE_AA)
        else:
            cv2.circle(picture, centre, radius, colour, -1, cv2.LINE_AA)
    if highlight is not None and names is not None and 0 <= highlight < len(points) and visible[highlight]:
        x, y, _ = points[highlight]
        picture = _label(
            picture,
            str(names[highlight]),
            round(float(x)) + 6,
            round(float(y)) - 6,
            (230, 25, 75),
            font_size,
        )
    return picture


def draw_mask(
    image: Any,
    mask: Any,
    color: tuple[int, int, int] = (0, 200, 255),
    alpha: float = 0.4,
    contour: bool = True,
) -> np.ndarray:
    """A region (bool or [0, 1] mask, resized to the picture) tinted over a copy of the picture, outlined."""
    picture = to_rgb_uint8(image)
    region = resize_map(as_map(mask), picture.shape[:2]) > 0.5
    out = picture.astype(np.float32)
    tint = np.asarray(color, dtype=np.float32)
    out[region] = (1.0 - alpha) * out[region] + alpha * tint
    out = np.round(out).astype(np.uint8)
    if contour:
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 2)
    return out
