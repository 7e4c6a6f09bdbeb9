"""Toy detector, segmenter and salient-object model that see only one box: the maps must concentrate there."""

from __future__ import annotations

import pytest
import torch
from task_models import ToyDetector, ToyPoseDetector, ToySegmenter, scene, toy_model

import saliency_core as sc
from saliency_core.hooks import hook_count

SIZE = 96
BOX = (32, 24, 80, 72)  # a quarter of the image
DECOY = (0, 0, 20, 20)
# Gradient and CAM maps are exact; occlusion spreads a window's drop over its pixels (a patch-wide halo);
# RISE is a Monte-Carlo estimate blurred by its cells, so it gets a lower bar (still 2.4x the box's area).
CLAIMS = {
    "gradient": ({}, 0.8),
    "gradcam": ({"layer": "features"}, 0.8),
    "occlusion": ({"patch": 8, "stride": 4}, 0.8),
    "rise": ({"masks": 400, "cell": 24, "seed": 0}, 0.6),
}


TASKS = ["detection", "keypoints", "segmentation", "salient_object"]
FAST = {
    "smoothgrad": {"samples": 3},
    "integrated_gradients": {"steps": 4},
    "occlusion": {"patch": 32, "stride": 32},
    "rise": {"masks": 8, "cell": 24},
    "gradient_shap": {"samples": 4},
    "deeplift_shap": {"baselines": 2},
    "guided_ig": {"steps": 8},
    "blur_ig": {"steps": 8},
    "lime": {"samples": 16, "segments": 8},
    "kernel_shap": {"samples": 16, "segments": 8},
    "feature_ablation": {"segments": 8},
    "xrai": {"steps": 4},
}


def concentration(saliency: torch.Tensor, box: tuple[int, int, int, int]) -> float:
    """Share of the positive mass (about the map's median, RISE's baseline) that lies inside the box."""
    positive = (saliency - saliency.median()).clamp(min=0)
    x0, y0, x1, y1 = box
    return float(positive[y0:y1, x0:x1].sum() / positive.sum().clamp(min=1e-12))


@pytest.fixture(scope="module")
def engine() -> sc.Engine:
    return sc.Engine(device="cpu")


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return scene(SIZE, BOX)


@pytest.fixture(scope="module")
def models(engine: sc.Engine) -> dict[str, sc.LoadedModel]:
    return {
        "detection": toy_model(engine, ToyDetector(BOX, DECOY), "detection", ("bg", "thing", "decoy")),
        "keypoints": toy_model(engine, ToyPoseDetector(BOX), "keypoints", ("no person", "person")),
        "segmentation": toy_model(engine, ToySegmenter(BOX), "segmentation", ("bg", "thing", "other")),
        "salient_object": toy_model(engine, ToySegmenter(BOX, channels=1), "salient_object", ("salient",)),
    }


def _target(task: str) -> sc.Target:
    if task == "detection":
        return sc.BoxTarget((33, 25, 79, 70), 1, name="thing")  # a hand-drawn box around the thing
    if task == "keypoints":
        return sc.KeypointTarget((33, 25, 79, 70), "left_wrist")
    if task == "segmentation":
        return sc.ClassTarget(1, label="thing")
    return sc.MaskTarget()


@pytest.mark.parametrize("method", list(CLAIMS))
@pytest.mark.parametrize("task", TASKS)
def test_maps_concentrate_in_the_only_region_the_model_sees(engine, models, image, task, method) -> None:
    params, bar = CLAIMS[method]
    if (task, method) == ("keypoints", "rise"):
        bar = 0.4  # the keypoint sits near the box's top edge and RISE's cells blur across it (peak: below)
    model = models[task]
    a = engine.attribute(model, image, method, _target(task), **params)
    assert a.map.shape == (SIZE, SIZE) and torch.isfinite(a.map).all()
    assert concentration(a.map, BOX) > bar, f"{task}/{method}: {concentration(a.map, BOX):.2f}"
    assert hook_count(model.module) == 0


def test_predictions_name_boxes_classes_and_regions(models, image) -> None:
    boxes = models["detection"].predict(image)
    assert [(t.label, t.box) for t in boxes] == [("decoy", DECOY), ("thing", BOX)]
    classes = models["segmentation"].predict(image)
    assert [t.label for t in classes] == ["thing", "bg"] and classes[0].mask.sum() == 48 * 48
    (region,) = models["salient_object"].predict(image)
    assert region.mask[24:72, 32:80].all() and region.mask.sum() == 48 * 48 and "25%" in region.label


def test_detection_matching_follows_the_label(engine, models, image) -> None:
    # The decoy's score is constant: its maps are zero, and the thing's box with the decoy's label matches nothing.
    decoy = engine.attribute(models["detection"], image, "gradient", sc.BoxTarget(DECOY, 2))
    assert not decoy.map.any()
    with pytest.raises(sc.TargetNotFound, match="no longer detected"):
        engine.attribute(models["detection"], image, "gradient", sc.BoxTarget(BOX, 2))
    with pytest.raises(sc.TargetNotFound):
        engine.attribute(models["detection"], image, "occlusion", sc.BoxTarget((0, 60, 30, 90), 1))


def test_default_target_is_the_top_prediction(engine, models, image) -> None:
    a = engine.attribute(models["segmentation"], image, "gradient")
    assert isinstance(a.target, sc.ClassTarget) and a.target.index == 1 and a.target.mask is not None


@pytest.mark.parametrize("task", TASKS)
def test_every_method_of_a_task_runs_and_leaves_no_hook(engine, models, image, task) -> None:
    model = models[task]
    methods = sc.list_methods(model=model)
    assert "cam" not in {m.id for m in methods}  # CAM needs a classifier's pooled linear head
    for method in methods:
        a = engine.attribute(model, image, method.id, _target(task), **FAST.get(method.id, {}))
        assert a.map.shape == (SIZE, SIZE) and torch.isfinite(a.map).all(), method.id
    assert hook_count(model.module) == 0
    offered = {m.id for m in methods}
    for info in sc.list_methods():
        if info.id not in offered:  # the others say why, in a sentence the UI can show
            why = info.unsupported(model)
            assert len(why) > 20 and why.endswith("."), (info.id, why)
            with pytest.raises(sc.InvalidParameter):
                engine.attribute(model, image, info.id, _target(task))


def test_keypoint_predictions_carry_the_skeleton(models, image) -> None:
    (person,) = models["keypoints"].predict(image)
    assert isinstance(person, sc.KeypointTarget) and person.box == BOX
    assert person.keypoints.shape == (17, 3) and person.label.startswith("person 1: ")
    wrist = person.with_keypoint("left_wrist")
    assert wrist.location == tuple(person.keypoints[9, :2]) and wrist.score == person.keypoints[9, 2]


@pytest.mark.parametrize("method", ["gradient", "occlusion", "rise"])
def test_keypoint_maps_peak_at_the_keypoint(engine, models, image, method) -> None:
    model = models["keypoints"]
    target = _target("keypoints").bind(engine.forward(model, image))
    a = engine.attribute(model, image, method, target, **CLAIMS[method][0])
    y, x = divmod(int(a.map.abs().argmax() if method == "gradient" else a.map.argmax()), SIZE)
    # Within one heatmap cell (48 / 8 = 6 px) of the keypoint.
    assert abs(x - target.location[0]) <= 6 and abs(y - target.location[1]) <= 6, (x, y, target.location)
