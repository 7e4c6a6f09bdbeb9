"""Box, keypoint and mask targets on hand-made outputs; FPN-style layer selectors; detector preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import saliency_core as sc
from saliency_core.geometry import sample_at
from saliency_core.hooks import capture_layers, hook_count
from saliency_core.models.detection import detection_preprocess
from saliency_core.tasks.detection import drise_scores


def _detections(scores: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    boxes = torch.tensor([[10.0, 10, 50, 50], [12, 12, 52, 52], [100, 100, 140, 140]])
    return [{"boxes": boxes, "scores": scores, "labels": torch.tensor([3, 1, 1])}]


def test_box_target_scores_the_best_overlapping_detection_of_its_class() -> None:
    scores = torch.tensor([0.9, 0.6, 0.8], requires_grad=True)
    target = sc.BoxTarget((10, 10, 50, 50), 1, name="person")
    # Detection 0 fits the box exactly but is class 3; detection 1 (IoU 0.82) is the person.
    assert target.match(_detections(scores)) == [1]
    value = target(_detections(scores))
    assert value.shape == (1,) and value.item() == pytest.approx(0.6)
    (grad,) = torch.autograd.grad(value.sum(), scores)
    assert grad.tolist() == [0.0, 1.0, 0.0]
    assert target.label == "person" and "person" in target.describe() and target.box == (10, 10, 50, 50)
    assert target.keypoints is None and target.mask is None


def test_an_undetected_box_scores_zero_with_zero_gradient_and_bind_says_so() -> None:
    scores = torch.tensor([0.9, 0.6, 0.8], requires_grad=True)
    target = sc.BoxTarget((200, 10, 240, 50), 1, name="person")
    value = target(_detections(scores))
    assert value.item() == 0.0 and value.requires_grad
    (grad,) = torch.autograd.grad(value.sum(), scores)
    assert not grad.any()
    with pytest.raises(sc.TargetNotFound, match="no longer detected"):
        target.bind(_detections(scores))
    bound = sc.BoxTarget((11, 11, 51, 51), 1).bind(_detections(scores))
    assert bound.score == pytest.approx(0.6) and bound.key() == sc.BoxTarget((11, 11, 51, 51), 1).key()


def test_box_target_validation_and_keys() -> None:
    with pytest.raises(sc.InvalidParameter):
        sc.BoxTarget((10, 10, 5, 50), 1)
    with pytest.raises(sc.InvalidParameter):
        sc.BoxTarget((0, 0, 1, 1), -1)
    a, b = sc.BoxTarget(torch.tensor([1.0, 2, 3, 4]), 2), sc.BoxTarget((1, 2, 3, 4), 2, name="x", score=0.3)
    assert a.key() == b.key() and hash(a.key()) == hash(b.key())
    assert a.key() != sc.BoxTarget((1, 2, 3, 4), 3).key()


def test_drise_score_is_iou_times_class_score() -> None:
    scores = torch.tensor([0.9, 0.6, 0.8])
    iou = (38 * 38) / (40 * 40 * 2 - 38 * 38)
    value = drise_scores((10, 10, 50, 50), 1, _detections(scores))
    assert value.item() == pytest.approx(iou * 0.6, rel=1e-5)
    assert drise_scores((300, 300, 310, 310), 1, _detections(scores)).item() == 0.0


def _keypoint_output() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    heatmaps = torch.randn(2, 17, 56, 56, generator=g).requires_grad_(True)
    boxes = torch.tensor([[20.0, 10, 76, 122], [100, 100, 150, 150]])
    keypoints = torch.zeros(2, 17, 3)
    keypoints[0, 9] = torch.tensor([48.5, 60.5, 1.0])
    return [
        {
            "boxes": boxes,
            "scores": torch.tensor([0.9, 0.7]),
            "labels": torch.tensor([1, 1]),
            "keypoints": keypoints,
            "keypoints_scores": torch.zeros(2, 17),
            "keypoint_heatmaps": heatmaps,
        }
    ]


def test_keypoint_target_reads_the_heatmap_logit_at_the_bound_location() -> None:
    output = _keypoint_output()
    target = sc.KeypointTarget((22, 12, 78, 120), "left_wrist").bind(output)
    assert target.keypoint == 9 and target.keypoint_name == "left_wrist"
    assert target.location == (48.5, 60.5) and target.keypoints.shape == (17, 3)
    heat = output[0]["keypoint_heatmaps"]
    # (48.5 - 20) / 56 * 56 = 28.5 cells across, (60.5 - 10) / 112 * 56 = 25.25 cells down.
    expected = sample_at(heat[0, 9].detach(), (20, 10, 76, 122), (48.5, 60.5))
    value = target(output)
    assert value.item() == pytest.approx(float(expected)) == pytest.approx(target.score)
    (grad,) = torch.autograd.grad(value.sum(), heat)
    assert grad[0, 9].abs().sum() > 0 and grad[1].abs().sum() == 0 and grad[0, :9].abs().sum() == 0
    assert target.with_keypoint("nose").keypoint == 0 and target.with_keypoint(0).location == (0.0, 0.0)
    assert "left_wrist" in target.label and target.skeleton


def test_sample_at_cell_centres_hits_the_cell_value() -> None:
    values = torch.arange(16.0).reshape(4, 4)
    # A 40x40 box at (0, 0): cell (row 2, col 1) is centred at (15, 25).
    assert sample_at(values, (0, 0, 40, 40), (15, 25), mode="bilinear").item() == pytest.approx(9.0)
    assert sample_at(values, (0, 0, 40, 40), (45, 25)).item() == 0.0


def test_keypoint_target_errors() -> None:
    with pytest.raises(sc.InvalidParameter, match="left_wrist"):
        sc.KeypointTarget((0, 0, 10, 10), "left_hand")
    with pytest.raises(sc.InvalidParameter):
        sc.KeypointTarget((0, 0, 10, 10), 17)
    with pytest.raises(sc.TargetNotFound, match="no longer detected"):
        sc.KeypointTarget((300, 300, 320, 320), 0).bind(_keypoint_output())


def test_mask_target_sums_logits_over_the_predicted_or_given_region() -> None:
    logits = torch.full((1, 1, 8, 8), -2.0)
    logits[..., 2:5, 3:6] = 3.0
    logits.requires_grad_(True)
    bound = sc.MaskTarget().bind(logits)
    assert isinstance(bound.mask, torch.Tensor) and bound.mask.sum() == 9
    assert bound(logits).item() == pytest.approx(27.0)
    assert bound.score == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())
    given = np.zeros((8, 8), bool)
    given[0, 0] = True
    value = sc.MaskTarget(mask=given)(logits)
    (grad,) = torch.autograd.grad(value.sum(), logits)
    assert value.item() == -2.0 and grad[0, 0, 0, 0] == 1 and grad.sum() == 1
    assert sc.MaskTarget(mask=given).key() != bound.key()
    with pytest.raises(sc.TargetNotFound):
        sc.MaskTarget().bind(torch.full((1, 1, 8, 8), -1.0))
    with pytest.raises(sc.InvalidParameter, match="size"):
        sc.MaskTarget(mask=np.ones((4, 4)))(logits)


class _Pyramid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.conv(x)
        return {"0": y, "1": y[..., ::2, ::2] * 2}


class _UsesPyramid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fpn = _Pyramid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = self.fpn(x)
        return levels["0"].sum() + 3 * levels["1"].sum()


def test_layer_selector_picks_one_output_of_a_dict_module_and_keeps_gradients() -> None:
    model = _UsesPyramid()
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    with capture_layers(model, ["fpn:1", "fpn"]) as cap:
        out = model(x)
        grads = torch.autograd.grad(out, [cap.outputs["fpn:1"], cap.outputs["fpn"]])
    assert cap.outputs["fpn:1"].shape == (1, 2, 4, 4) and cap.outputs["fpn"].shape == (1, 2, 8, 8)
    assert torch.allclose(grads[0], torch.full_like(grads[0], 3.0))
    # Level "0" reaches the output directly (1) and through level "1" at even positions (2 x 3).
    expected = torch.ones_like(grads[1])
    expected[..., ::2, ::2] += 6.0
    assert torch.equal(grads[1], expected)
    assert hook_count(model) == 0
    with pytest.raises(sc.InvalidParameter, match="outputs are: 0, 1"), capture_layers(model, ["fpn:p6"]):
        model(x)
    assert hook_count(model) == 0


def test_detection_preprocess_fills_the_side_with_multiples_of_32() -> None:
    pre = detection_preprocess(640)
    x = pre(np.zeros((300, 410, 3), np.uint8))
    assert x.shape == (1, 3, 480, 640) and x.max() == 0
    assert pre(np.full((1000, 700, 3), 255, np.uint8)).shape == (1, 3, 640, 448)
