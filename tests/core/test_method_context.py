"""Methods against a hand-made MethodContext (no engine, no model), and the engine's RunContext against the
protocol: a method needs only what `MethodContext` declares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from saliency_core.engine import Engine, RunContext, image_digest
from saliency_core.methods import get_method
from saliency_core.methods.context import MethodContext
from saliency_core.targets import ClassTarget


def t(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


class _PixelSumAdapter:
    """Stands in for a task adapter: an image's score is the sum of its pixels."""

    @staticmethod
    def perturbation_score(target: Any, output: torch.Tensor) -> torch.Tensor:
        return output.sum(dim=(1, 2, 3))


class _FakeModel:
    adapter = _PixelSumAdapter()


class FakeContext:
    """Every MethodContext member, backed by the tensors given; the model's output is the input itself."""

    def __init__(
        self,
        x: torch.Tensor,
        params: dict[str, Any],
        *,
        layers: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        input_grad: torch.Tensor | None = None,
        batch: int = 3,
    ) -> None:
        self.x = x
        self.target: Any = ClassTarget(0)
        self.params = params
        self.model: Any = _FakeModel()
        self.extras: dict[str, Any] = {}
        self._layers = layers or {}
        self._input_grad = input_grad
        self._batch = batch  # small, so that batched methods are checked across batch boundaries
        self.steps: list[tuple[int, int]] = []
        self.passes = [0, 0]
        self.previews: list[tuple[torch.Tensor, str]] = []
        self.notes: list[str] = []
        self._shared: dict[str, Any] = {}

    def step(self, done: int, total: int, message: str = "") -> None:
        self.steps.append((done, total))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def shared(self, kind: str, make: Callable[[], Any]) -> Any:
        if kind not in self._shared:
            self._shared[kind] = make()
        return self._shared[kind]

    wants_preview = True  # so progressive methods build their partial maps here too

    def preview(self, saliency: torch.Tensor, label: str) -> None:
        self.previews.append((saliency.clone(), label))

    def for_batches(self, total: int, body: Callable[[int, int], None], message: str) -> None:
        for start in range(0, total, self._batch):
            body(start, min(total, start + self._batch))
            self.step(min(total, start + self._batch), total, message)

    def count_passes(self, forward: int, backward: int = 0) -> None:
        self.passes[0] += forward
        self.passes[1] += backward

    def output(self) -> torch.Tensor:
        return self.x

    def input_grad(self) -> torch.Tensor:
        assert self._input_grad is not None
        return self._input_grad

    def layer(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self._layers[name]

    def activations(self, name: str) -> torch.Tensor:
        return self._layers[name][0]

    def guided_grad(self) -> torch.Tensor:
        return self.input_grad()

    def gradients(self, xs: torch.Tensor) -> torch.Tensor:
        return self.input_grad().expand_as(xs).clone()

    def guided_gradients(self, xs: torch.Tensor) -> torch.Tensor:
        return self.gradients(xs)

    def scores(self, xs: torch.Tensor, score: Callable[[Any], torch.Tensor] | None = None) -> torch.Tensor:
        return score(xs) if score is not None else self.model.adapter.perturbation_score(self.target, xs)


def _compute(method: str, ctx: FakeContext) -> tuple[torch.Tensor, torch.Tensor]:
    return get_method(method).compute(ctx)


def _ctx(method: str, x: torch.Tensor, given: dict[str, Any] | None = None, **kwargs: Any) -> FakeContext:
    params = get_method(method).resolve(given or {}, layers=["l"])
    return FakeContext(x, params, **kwargs)


# A 2-channel 2x2 layer: mean gradients are 1 (channel 0) and -0.5 (channel 1).
A = t([[[[1, 2], [3, 4]], [[1, 1], [0, 0]]]])  # [1, K=2, 2, 2]
G = t([[[[1, 1], [1, 1]], [[-2, 0], [0, 0]]]])


def test_gradcam_weights_channels_by_their_mean_gradient() -> None:
    # 1 * A_0 - 0.5 * A_1
    raw, saliency = _compute("gradcam", _ctx("gradcam", torch.zeros(1, 3, 2, 2), layers={"l": (A, G)}))
    assert torch.allclose(raw, t([[0.5, 1.5], [3, 4]]))
    assert torch.allclose(saliency, raw)  # the layer is already at the input's size


def test_gradcam_map_is_upsampled_to_the_input() -> None:
    _, saliency = _compute("gradcam", _ctx("gradcam", torch.zeros(1, 3, 8, 8), layers={"l": (A, G)}))
    assert saliency.shape == (8, 8)


def test_hirescam_multiplies_gradients_and_activations_elementwise() -> None:
    # G_0 * A_0 + G_1 * A_1 = [[1, 2], [3, 4]] + [[-2, 0], [0, 0]]
    raw, _ = _compute("hirescam", _ctx("hirescam", torch.zeros(1, 3, 2, 2), layers={"l": (A, G)}))
    assert torch.allclose(raw, t([[-1, 2], [3, 4]]))


def test_gradient_x_input_is_the_product_summed_over_channels() -> None:
    x = t([[[[1, -1], [2, 0.5]], [[0, 3], [1, 1]]]])  # [1, 2, 2, 2]
    grad = t([[[[2, 2], [-1, 4]], [[5, 1], [0, -3]]]])
    raw, saliency = _compute("gradient_x_input", _ctx("gradient_x_input", x, input_grad=grad))
    assert torch.allclose(raw, (grad * x)[0])
    assert torch.allclose(saliency, t([[2, 1], [-2, -1]]))


def test_occlusion_with_disjoint_windows_gives_each_pixel_its_window_sum() -> None:
    # Score = pixel sum and a zero baseline: hiding a window drops the score by the window's sum.
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    ctx = _ctx("occlusion", x, {"patch": 2, "stride": 2, "baseline": "zero"})
    raw, saliency = _compute("occlusion", ctx)
    expected = t([[10, 10, 18, 18], [10, 10, 18, 18], [42, 42, 50, 50], [42, 42, 50, 50]])
    assert torch.allclose(raw, expected)
    assert torch.allclose(saliency, expected)
    assert ctx.steps[-1] == (4, 4)  # four windows, in batches of three: every window was scored


def test_occlusion_with_overlapping_windows_averages_the_drops() -> None:
    # 3x3 of ones, patch 2 stride 1: every window hides four pixels, so every drop is 4.
    ctx = _ctx("occlusion", torch.ones(1, 1, 3, 3), {"patch": 2, "stride": 1})
    raw, _ = _compute("occlusion", ctx)
    assert torch.allclose(raw, torch.full((3, 3), 4.0))


def _protocol_members() -> set[str]:
    # MethodContext is not runtime_checkable, so isinstance cannot check conformance: list its
    # annotated attributes and its methods instead.
    methods = {n for n, v in vars(MethodContext).items() if callable(v) and not n.startswith("_")}
    return set(MethodContext.__annotations__) | methods


def test_the_protocol_lists_attributes_and_methods() -> None:
    members = _protocol_members()
    assert {"x", "target", "params", "model", "extras", "output", "layer", "scores", "for_batches"} <= members


def test_run_context_has_every_member_of_the_protocol() -> None:
    engine = Engine(device="cpu")
    model = engine.wrap(nn.Conv2d(3, 2, 1))
    x = torch.zeros(1, 3, 4, 4)
    ctx = RunContext(engine, model, x, image_digest(x), ClassTarget(0), {}, None, None)
    missing = sorted(name for name in _protocol_members() if not hasattr(ctx, name))
    assert not missing, f"RunContext lacks {missing}"


def test_the_fake_context_has_every_member_of_the_protocol() -> None:
    ctx = _ctx("gradcam", torch.zeros(1, 1, 2, 2))
    assert not sorted(name for name in _protocol_members() if not hasattr(ctx, name))
