"""The synthetic scene generator: determinism, exact masks, the labelling rule's visible consequences."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from saliency_core.zoo.scenes import (
    DISTRACTOR_MAX_RATIO,
    SHAPE_CLASSES,
    Scene,
    make_batch,
    make_scene,
    shape_coverage,
)

SEEDS = range(3_000_000, 3_000_060)  # outside the training, held-out and sample ranges


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [make_scene(s) for s in SEEDS]


def test_same_seed_gives_identical_bytes() -> None:
    a, b = make_scene(12345), make_scene(12345)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.mask.tobytes() == b.mask.tobytes()
    assert (a.label, a.name, a.seed, a.box) == (b.label, b.name, b.seed, b.box)


def test_different_seeds_differ(scenes: list[Scene]) -> None:
    digests = {sc.image.tobytes() for sc in scenes}
    assert len(digests) == len(scenes)
    assert len({sc.mask.tobytes() for sc in scenes}) == len(scenes)


def test_types_and_shapes(scenes: list[Scene]) -> None:
    for sc in scenes:
        assert sc.image.shape == (224, 224, 3) and sc.image.dtype == np.uint8
        assert sc.mask.shape == (224, 224) and sc.mask.dtype == bool
        assert SHAPE_CLASSES[sc.label] == sc.name
        assert all(isinstance(v, int) for v in sc.box)


def test_every_class_appears(scenes: list[Scene]) -> None:
    assert {sc.label for sc in scenes} == set(range(len(SHAPE_CLASSES)))
    assert len(SHAPE_CLASSES) >= 6


def test_box_is_the_mask_bounding_box_and_target_is_inside(scenes: list[Scene]) -> None:
    for sc in scenes:
        ys, xs = np.nonzero(sc.mask)
        assert sc.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        x0, y0, x1, y1 = sc.box
        assert sc.mask[y0:y1, x0:x1].sum() == sc.mask.sum()
        assert x0 > 0 and y0 > 0 and x1 < 224 and y1 < 224, "target must be fully visible"


def test_mask_is_one_solid_colour_region(scenes: list[Scene]) -> None:
    """Fully covered target pixels hold exactly the target colour; the mask is one connected region."""
    for sc in scenes:
        assert sc.mask.sum() > 500, "target too small"
        interior = cv2.erode(sc.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        colours, counts = np.unique(sc.image[sc.mask], axis=0, return_counts=True)
        colour = colours[counts.argmax()]
        exact = np.all(sc.image == colour, axis=2)
        # anti-aliasing only touches the rim (and a pixel or two at reflex corners)
        assert (exact & interior).sum() >= 0.99 * interior.sum(), f"seed {sc.seed}: interior not one colour"
        assert (exact & sc.mask).sum() >= 0.75 * sc.mask.sum()
        assert (exact & ~sc.mask).sum() <= 0.01 * sc.mask.sum(), f"seed {sc.seed}: target colour outside mask"
        # partially covered pixels: exactly the mask rim, where anti-aliasing blends in the background
        rim = sc.mask & ~interior
        assert (sc.mask & ~exact & ~rim).sum() <= 0.01 * sc.mask.sum()
        n_components, _ = cv2.connectedComponents(sc.mask.astype(np.uint8), connectivity=8)
        assert n_components == 2, f"seed {sc.seed}: mask is not one region"
        # the target colour stands out from what is just outside the mask
        ring = cv2.dilate(sc.mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~cv2.dilate(
            sc.mask.astype(np.uint8), np.ones((5, 5), np.uint8)
        ).astype(bool)
        outside = sc.image[ring].astype(float).mean(0)
        assert np.linalg.norm(outside - colour.astype(float)) > 40, f"seed {sc.seed}: low contrast"


def test_labelling_rule(scenes: list[Scene]) -> None:
    """Distractors are of other classes, at most 0.55x the target's size, and never touch it."""
    assert sum(len(sc.distractors) for sc in scenes) > 2 * len(scenes)
    for sc in scenes:
        x0, y0, x1, y1 = sc.box
        assert sc.radius >= 28 and max(x1 - x0, y1 - y0) <= 2 * sc.radius + 2
        ys, xs = np.nonzero(sc.mask)
        for name, dx, dy, r in sc.distractors:
            assert name != sc.name and name in SHAPE_CLASSES
            assert r <= DISTRACTOR_MAX_RATIO * sc.radius + 1e-9
            # the distractor's circumscribed circle stays clear of every target pixel
            assert np.hypot(xs + 0.5 - dx, ys + 0.5 - dy).min() >= r + 1


def test_ring_mask_has_a_hole() -> None:
    alpha = shape_coverage("ring", (50.0, 50.0), 40.0, 0.0, 100)
    assert alpha[50, 50] == 0 and alpha[50, 50 + 25] == 255
    disc = shape_coverage("circle", (50.0, 50.0), 40.0, 0.0, 100)
    assert disc[50, 50] == 255
    with pytest.raises(ValueError):
        shape_coverage("hexagon", (50.0, 50.0), 40.0, 0.0, 100)


def test_make_batch_matches_make_scene() -> None:
    seeds = [7, 8, 9]
    images, labels, masks = make_batch(seeds)
    assert images.shape == (3, 224, 224, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and masks.dtype == bool
    for i, s in enumerate(seeds):
        sc = make_scene(s)
        assert np.array_equal(images[i], sc.image) and np.array_equal(masks[i], sc.mask)
        assert labels[i] == sc.label


def test_other_sizes_scale() -> None:
    sc = make_scene(5, size=112)
    assert sc.image.shape == (112, 112, 3) and sc.mask.shape == (112, 112) and sc.mask.any()
