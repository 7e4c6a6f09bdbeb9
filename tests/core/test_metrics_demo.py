"""Faithfulness on the bundled demo model: Grad-CAM beats a random map over 50 held-out scenes."""

from __future__ import annotations

import numpy as np
import pytest

import saliency_core as sc
from saliency_core.zoo import HELDOUT_SEED_START
from saliency_core.zoo.scenes import make_scene

# Held-out: never trained on, apart from the training script's and the demo-model tests' ranges.
SEEDS = range(HELDOUT_SEED_START + 600_300, HELDOUT_SEED_START + 600_350)
STEPS = 6  # coarse curves keep this near half a minute; the ordering claim holds at any resolution


@pytest.mark.slow
def test_gradcam_beats_random_map_on_deletion_insertion_and_pointing() -> None:
    model = sc.load_model("shapes_demo")
    rows = []
    for seed in SEEDS:
        scene = make_scene(seed)
        x = model.preprocess(scene.image)
        cam = sc.attribute(model, x, "gradcam", scene.label).map
        noise = np.random.default_rng(seed).random(cam.shape)
        rows.append(
            [
                sc.metrics.deletion(model, x, scene.label, cam, steps=STEPS).auc,
                sc.metrics.random_curve(model, x, scene.label, "deletion", steps=STEPS, seed=seed).auc,
                sc.metrics.insertion(model, x, scene.label, cam, steps=STEPS).auc,
                sc.metrics.random_curve(model, x, scene.label, "insertion", steps=STEPS, seed=seed).auc,
                sc.metrics.pointing_game(cam, scene.mask),
                sc.metrics.pointing_game(noise, scene.mask),
            ]
        )
    del_cam, del_rnd, ins_cam, ins_rnd, hit_cam, hit_rnd = np.array(rows, dtype=float).mean(0)
    assert del_cam < del_rnd, (del_cam, del_rnd)
    assert ins_cam > ins_rnd, (ins_cam, ins_rnd)
    assert hit_cam > hit_rnd


def test_report_table_has_a_row_per_method_and_the_random_baseline(tmp_path) -> None:
    from saliency_core.metrics import report

    out = tmp_path / "table.md"
    assert (
        report.main(
            ["--scenes", "1", "--steps", "2", "--methods", "gradient,cam", "--quiet", "--out", str(out)]
        )
        == 0
    )
    lines = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert len(lines) == 4 and "`gradient`" in lines[1] and "`cam`" in lines[2] and "`random`" in lines[3]
    assert "--methods gradient,cam" in out.read_text()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert "Sanity" in cells[0][5]
    assert 0.0 <= float(cells[1][5]) < 0.5  # the gradient map does not survive randomising the model
    assert cells[3][5] == "—"  # the random map has no model to randomise
