"""Pointing game and energy pointing: known answers for masks, boxes and the 15-pixel tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import saliency_core as sc
from saliency_core.zoo import HELDOUT_SEED_START
from saliency_core.zoo.scenes import make_scene

SEEDS = range(HELDOUT_SEED_START + 600_000, HELDOUT_SEED_START + 600_020)


def test_map_equal_to_mask_scores_one_and_inverted_zero() -> None:
    hits, inverted_hits, energy, inverted_energy = [], [], [], []
    for seed in SEEDS:
        mask = make_scene(seed).mask
        as_map = torch.from_numpy(mask.astype(np.float32))
        hits.append(sc.metrics.pointing_game(as_map, mask))
        inverted_hits.append(sc.metrics.pointing_game(1.0 - as_map, mask))
        energy.append(sc.metrics.energy_pointing(as_map, mask))
        inverted_energy.append(sc.metrics.energy_pointing(1.0 - as_map, mask))
    assert np.mean(hits) == 1.0 and np.mean(energy) == 1.0
    assert np.mean(inverted_hits) == 0.0 and np.mean(inverted_energy) == 0.0


def _peak_map(row: int, col: int, shape: tuple[int, int] = (200, 200)) -> np.ndarray:
    sal = np.zeros(shape, np.float32)
    sal[row, col] = 1.0
    return sal


def test_tolerance_is_euclidean_and_inclusive_at_15_pixels() -> None:
    mask = np.zeros((200, 200), bool)
    mask[100, 100] = True
    assert sc.metrics.pointing_game(_peak_map(100, 115), mask)  # exactly 15 px to the right
    assert not sc.metrics.pointing_game(_peak_map(100, 116), mask)
    assert sc.metrics.pointing_game(_peak_map(109, 112), mask)  # 9-12-15 triangle: exactly 15 px
    assert not sc.metrics.pointing_game(_peak_map(111, 111), mask)  # 15.56 px diagonally
    assert not sc.metrics.pointing_game(_peak_map(100, 115), mask, tolerance=14.9)
    assert sc.metrics.pointing_game(_peak_map(100, 100), mask, tolerance=0)
    assert sc.metrics.pointing_distance(_peak_map(109, 112), mask) == pytest.approx(15.0)


def test_nearest_mask_pixel_counts() -> None:
    mask = np.zeros((100, 100), bool)
    mask[10:20, 10:20] = True
    mask[80, 80] = True
    assert sc.metrics.pointing_distance(_peak_map(80, 90, (100, 100)), mask) == pytest.approx(10.0)
    assert sc.metrics.pointing_distance(_peak_map(25, 19, (100, 100)), mask) == pytest.approx(6.0)


def test_boxes_exclusive_corner_and_same_as_mask() -> None:
    box = (10, 20, 30, 40)  # x0, y0, x1, y1: columns 10..29, rows 20..39
    mask = np.zeros((60, 50), bool)
    mask[20:40, 10:30] = True
    np.testing.assert_array_equal(sc.metrics.region_mask(box, (60, 50)), mask)
    assert sc.metrics.pointing_game(_peak_map(25, 29, (60, 50)), box, tolerance=0)
    assert not sc.metrics.pointing_game(_peak_map(25, 30, (60, 50)), box, tolerance=0)
    assert sc.metrics.pointing_game(_peak_map(25, 30, (60, 50)), box, tolerance=1)
    assert sc.metrics.pointing_distance(_peak_map(0, 0, (60, 50)), box) == pytest.approx(np.hypot(20, 10))
    # a box from a scene equals its mask's bounding box
    scene = make_scene(SEEDS[0])
    sal = np.random.default_rng(0).random(scene.mask.shape)
    inside = sc.metrics.region_mask(scene.box, scene.mask.shape)
    assert inside[scene.mask].all()
    assert sc.metrics.energy_pointing(sal, scene.box) == pytest.approx(sal[inside].sum() / sal.sum())


def test_energy_counts_only_positive_saliency() -> None:
    mask = np.zeros((10, 10), bool)
    mask[:5] = True
    sal = np.zeros((10, 10))
    sal[:5] = 1.0  # 50 inside
    sal[5:] = -3.0  # negative outside: ignored
    assert sc.metrics.energy_pointing(sal, mask) == 1.0
    sal[9, 9] = 50.0
    assert sc.metrics.energy_pointing(sal, mask) == pytest.approx(0.5)
    assert sc.metrics.energy_pointing(-np.abs(sal), mask) == 0.0  # nothing positive
    assert sc.metrics.energy_pointing(np.ones((10, 10)), mask) == pytest.approx(0.5)


def test_constant_map_points_nowhere_and_bad_inputs_fail() -> None:
    mask = np.ones((8, 8), bool)
    assert not sc.metrics.pointing_game(np.zeros((8, 8)), mask)
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.pointing_game(np.zeros((8, 8)), np.ones((9, 8), bool))
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.pointing_game(_peak_map(1, 1, (8, 8)), np.zeros((8, 8), bool))
    with pytest.raises(sc.InvalidParameter):
        sc.metrics.energy_pointing(np.ones((8, 8)), (5, 5, 2, 2))
