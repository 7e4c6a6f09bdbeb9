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
    engine.estimate(model, "gradient", {}, x)  # the speed probe: once per model and input size
    assert calls
    calls.clear()
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


def test_a_model_check_hides_the_method_for_models_it_cannot_explain_and_says_why(registered) -> None:
    def needs_linear(model: sc.LoadedModel) -> str:
        has = any(isinstance(m, torch.nn.Linear) for m in model.module.modules())
        return "" if has else "Needs a model with a linear layer."

    _register(registered, id="test_needs_linear", title="Needs linear", model_check=needs_linear)
    engine = sc.Engine(device="cpu")
    with_linear = engine.resolve(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2)))
    conv_only = engine.resolve(
        torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    )
    assert "test_needs_linear" in {m.id for m in sc.list_methods(model=with_linear)}
    assert "test_needs_linear" not in {m.id for m in sc.list_methods(model=conv_only)}
    assert "test_needs_linear" in {m.id for m in sc.list_methods(task="classification")}
    x = torch.rand(1, 3, 32, 32)
    assert engine.attribute(with_linear, x, "test_needs_linear", 0).map.sum() == 32 * 32
    with pytest.raises(sc.InvalidParameter, match="Needs a model with a linear layer"):
        engine.attribute(conv_only, x, "test_needs_linear", 0)
    with pytest.raises(sc.InvalidParameter, match="Needs a model with a linear layer"):
        sc.submit(conv_only, x, "test_needs_linear", 0)


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


HOSTILE = (
    float("inf"),
    float("-inf"),
    float("nan"),
    "1e400",
    "inf",
    "nan",
    10**400,
    True,
    "",
    None,
    [1],
    "abc",
)
HOSTILE_PARAMS = (
    sc.Param("patch", "int", 32, "", min=1, max=512),
    sc.Param("count", "int", 0, ""),  # unbounded: 10**400 must still be refused
    sc.Param("p", "float", 0.5, "", min=0.0, max=1.0),
    sc.Param("scale", "float", 1.0, ""),  # unbounded: inf and NaN must still be refused
    sc.Param("ksize", "choice", 3, "", choices=(3, 5, 7)),
    sc.Param("flag", "bool", False, ""),
    sc.LAYER,
)


@pytest.mark.parametrize("param", HOSTILE_PARAMS, ids=lambda p: f"{p.kind}-{p.name}")
@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_values_are_refused_with_a_message_naming_the_parameter(param: sc.Param, value) -> None:
    if param.kind == "bool" and value is True:
        assert param.coerce(value) is True
        return
    if param.kind == "layer" and value in ("1e400", "inf", "nan", "abc"):
        assert param.coerce(value) == value  # any text is a name; the model checks that it exists
        return
    with pytest.raises(sc.InvalidParameter, match=f"Parameter '{param.name}' must be") as caught:
        param.coerce(value)
    assert len(str(caught.value)) < 200  # a 400-digit number is not echoed in full


def test_good_values_are_converted_to_the_parameters_type() -> None:
    patch, p, ksize, flag = HOSTILE_PARAMS[0], HOSTILE_PARAMS[2], HOSTILE_PARAMS[4], HOSTILE_PARAMS[5]
    assert [patch.coerce(v) for v in ("16", " 16 ", 16.0, "16.0", 512)] == [16, 16, 16, 16, 512]
    assert type(patch.coerce(16.0)) is int
    assert p.coerce("0.25") == 0.25 and type(p.coerce(1)) is float
    assert ksize.coerce("5") == 5 and ksize.coerce(7.0) == 7 and ksize.coerce(" 3") == 3
    assert [flag.coerce(v) for v in ("yes", "off", "TRUE", 0, 1, False)] == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    assert sc.LAYER.coerce("stage4") == "stage4"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (16.5, "a whole number from 1 to 512; got 16.5"),
        ("2.5", "a whole number from 1 to 512; got '2.5'"),
        (0, "at least 1; got 0"),
        (513, "at most 512; got 513"),
        (10**30, "at most 512; got 1000"),
    ],
)
def test_out_of_range_or_fractional_ints_say_what_is_allowed(value, message: str) -> None:
    with pytest.raises(sc.InvalidParameter, match=f"Parameter 'patch' must be {message}"):
        HOSTILE_PARAMS[0].coerce(value)


def test_a_flag_is_neither_a_number_nor_a_numeric_choice() -> None:
    with pytest.raises(sc.InvalidParameter, match="one of 3, 5, 7"):
        HOSTILE_PARAMS[4].coerce(True)
    with pytest.raises(sc.InvalidParameter):
        sc.Param("k", "choice", 1, "", choices=(0, 1)).coerce(True)
    with pytest.raises(sc.InvalidParameter, match="true or false"):
        HOSTILE_PARAMS[5].coerce(2)


def test_schema_dicts_round_trip_to_the_same_param() -> None:
    for method in sc.list_methods():
        for entry in method.params:
            assert sc.Param.from_dict(entry).as_dict() == entry


def test_an_attribution_with_a_non_finite_parameter_is_refused_before_running() -> None:
    model = sc.Engine(device="cpu").load_model("shapes_demo", weights=None)
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(sc.InvalidParameter, match="Parameter 'p' must be a finite number"):
        sc.attribute(model, x, "rise", 0, p=float("nan"), masks=8)
    with pytest.raises(sc.InvalidParameter, match="Parameter 'patch' must be a whole number"):
        sc.attribute(model, x, "occlusion", 0, patch="1e400")
    with pytest.raises(sc.InvalidParameter, match="Parameter 'layer' must be a layer name"):
        sc.attribute(model, x, "gradcam", 0, layer="")
