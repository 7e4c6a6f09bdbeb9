"""What a MethodSpec declares reaches the engine and the UI without either naming the method: costs that
read the layer's channel count, supported tasks, display sign, size defaults, slow hints, lessons and
default picks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torchvision

import saliency_core as sc
from saliency_core.methods import base
from saliency_core.methods.base import ALL_TASKS, MethodSpec


def _map_of_ones(ctx: sc.MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    ones = torch.ones(ctx.x.shape[-2:])
    return ones, ones


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Register test methods; they are removed again afterwards so no other test sees them."""
    ids: list[str] = []
    yield ids
    for method_id in ids:
        base._METHODS.pop(method_id, None)


def _register(ids: list[str], **kwargs) -> MethodSpec:
    spec = MethodSpec(family="cam", description="test", compute=_map_of_ones, **kwargs)
    ids.append(spec.id)
    return sc.register_method(spec)


def test_a_per_channel_cost_is_estimated_from_the_layer_without_naming_the_method(registered) -> None:
    _register(
        registered,
        id="test_ablation_like",
        title="Per channel",
        params=(sc.LAYER,),
        cost=lambda p, info: (info.channels + 1, 0),
    )
    _register(
        registered, id="test_one_pass", title="One pass", params=(sc.LAYER,), cost=lambda p, info: (1, 1)
    )
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.rand(1, 3, 64, 64)
    engine = sc.Engine(device="cpu")
    calls: list[int] = []
    handle = model.register_forward_pre_hook(lambda *_: calls.append(1))
    assert engine.estimate(model, "test_one_pass", {"layer": "layer3"}, x).forward_passes == 1
    assert not calls  # a formula that does not read the channel count costs no probe pass
    assert engine.estimate(model, "test_ablation_like", {"layer": "layer3"}, x).forward_passes == 257
    assert engine.estimate(model, "test_ablation_like", {"layer": "layer2"}, x).forward_passes == 129
    assert engine.estimate(model, "scorecam", {"layer": "layer4"}, x).forward_passes == 513
    assert len(calls) == 3  # one probe per layer, remembered
    engine.estimate(model, "test_ablation_like", {"layer": "layer3"}, x)
    assert len(calls) == 3
    handle.remove()


def test_methods_support_every_task_unless_they_say_otherwise(registered) -> None:
    spec = _register(registered, id="test_any_task", title="Any task")
    assert spec.tasks is ALL_TASKS and "a_task_a_plugin_adds_later" in spec.tasks
    assert "test_any_task" in {m.id for m in sc.list_methods(task="a_task_a_plugin_adds_later")}
    cam_only = {m.id for m in sc.list_methods(task="detection")}
    assert "cam" not in cam_only and "gradcam" in cam_only  # CAM declares classification only


def test_registration_checks_what_a_spec_declares(registered) -> None:
    with pytest.raises(ValueError, match="sign"):
        _register(registered, id="test_bad_sign", title="x", sign="sideways")
    with pytest.raises(ValueError, match="views"):
        _register(registered, id="test_bad_view", title="x", featured={"homepage": 1})
    _register(registered, id="test_ok", title="x")
    with pytest.raises(ValueError, match="already registered"):
        _register(registered, id="test_ok", title="x")


def test_display_sign_and_default_picks_come_from_the_method_files() -> None:
    by_id = {m.id: m for m in sc.list_methods()}
    absolute = {i for i, m in by_id.items() if m.sign == "absolute"}
    assert {"gradient", "integrated_gradients", "guided_backprop", "guided_gradcam"} <= absolute
    assert by_id["gradcam"].sign == by_id["occlusion"].sign == "positive"
    assert sc.featured_methods("compare") == ["gradcam", "gradient_x_input", "guided_backprop", "edges_sobel"]
    assert sc.featured_methods("evaluate") == ["gradcam", "gradient"]
    assert sc.featured_methods("explore")[0] == "gradcam" and sc.featured_methods("learn") == [
        "guided_backprop"
    ]
    assert sc.featured_methods("compare", task="detection")[0] == "gradcam"


def test_size_defaults_scale_with_the_input_only_for_tasks_that_ask_and_stay_in_range() -> None:
    assert sc.method_defaults("occlusion", "classification", 224) == {}
    assert sc.method_defaults("occlusion", "detection", 640) == {"patch": 128, "stride": 64}
    assert sc.method_defaults("rise", "keypoints", 640) == {"masks": 200, "cell": 80}
    assert sc.method_defaults("rise", "segmentation", 520) == {"masks": 300, "cell": 65}
    assert sc.method_defaults("occlusion", "detection", 10_000) == {"patch": 512, "stride": 512}
    assert sc.method_defaults("gradcam", "detection", 640) == {}


def test_slow_hints_and_lessons_are_declared_by_each_method() -> None:
    by_id = {m.id: m for m in sc.list_methods()}
    hint = by_id["scorecam"].slow_hint({"layer": "layer4"}, 513, "about 2 min", "this model")
    assert "one forward pass per channel of layer4 (512 here)" in hint and "about 2 min" in hint
    assert by_id["occlusion"].slow_hint({}, 900, "about 2 min", "this model") == ""  # the generic advice
    for method in by_id.values():
        lesson = method.lesson
        assert lesson is not None and lesson.computes and lesson.cost and lesson.pitfalls, method.id
        assert lesson.compare_with is None or lesson.compare_with in by_id, method.id
        documented = set(lesson.params) - {p["name"] for p in method.params}
        assert not documented, f"{method.id}'s lesson explains parameters it does not have: {documented}"
