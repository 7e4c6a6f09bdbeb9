"""Input tensors the engine refuses before any pass, each with a message that says what is wrong and what
to do (rather than a raw torch error deep inside a model, or a silent cast)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

import saliency_core as sc
from saliency_core.engine import inputs


@pytest.fixture(scope="module")
def demo() -> sc.LoadedModel:
    return sc.Engine(device="cpu").load_model("shapes_demo", weights=None)


@pytest.fixture
def small_side_limit() -> Iterator[None]:
    previous = sc.set_limits(max_input_side=100)
    yield
    sc.set_limits(previous)


def _nan() -> torch.Tensor:
    x = torch.rand(1, 3, 64, 64)
    x[0, 1, 5, 5] = float("nan")
    return x


def _inf() -> torch.Tensor:
    x = torch.rand(1, 3, 64, 64)
    x[0, 0, 0, 0] = -float("inf")
    return x


BAD_INPUTS = {
    "one channel": (torch.rand(1, 1, 64, 64), sc.InvalidParameter, "takes 3-channel images; the input has 1"),
    "four channels": (torch.rand(1, 4, 64, 64), sc.InvalidParameter, "the input has 4"),
    "channels last": (torch.rand(64, 64, 3), sc.InvalidParameter, "the input has 64"),
    "8x8": (torch.rand(1, 3, 8, 8), sc.InvalidImage, "8×8 pixels; .* needs at least 32×32"),
    "thin": (torch.rand(1, 3, 200, 16), sc.InvalidImage, "16×200 pixels"),
    "0x0": (torch.rand(1, 3, 0, 0), sc.InvalidParameter, "empty"),
    "no channels": (torch.rand(1, 0, 64, 64), sc.InvalidParameter, "empty"),
    "meta": (torch.empty(1, 3, 64, 64, device="meta"), sc.InvalidParameter, "meta tensor"),
    "sparse": (torch.rand(1, 3, 64, 64).to_sparse(), sc.InvalidParameter, "sparse"),
    "uint8": (
        torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8),
        sc.InvalidParameter,
        "uint8 .*preprocess",
    ),
    "int64": (torch.zeros(1, 3, 64, 64, dtype=torch.long), sc.InvalidParameter, "int64 tensor"),
    "bool": (torch.ones(1, 3, 64, 64, dtype=torch.bool), sc.InvalidParameter, "bool tensor"),
    "complex": (torch.zeros(1, 3, 64, 64, dtype=torch.complex64), sc.InvalidParameter, "complex64"),
    "nan": (_nan(), sc.InvalidParameter, "NaN or infinite"),
    "inf": (_inf(), sc.InvalidParameter, "NaN or infinite"),
    "5-D": (torch.rand(1, 1, 3, 64, 64), sc.InvalidParameter, r"one image at a time.*\(1, 1, 3, 64, 64\)"),
    "2-D": (torch.rand(64, 64), sc.InvalidParameter, "one image at a time"),
    "batch of two": (torch.rand(2, 3, 64, 64), sc.InvalidParameter, "one image at a time"),
    "numpy": (np.zeros((1, 3, 64, 64), np.float32), sc.InvalidParameter, "must be a tensor .*not ndarray"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_a_bad_input_is_refused_with_a_clear_error(demo: sc.LoadedModel, case: str) -> None:
    x, error, message = BAD_INPUTS[case]
    with pytest.raises(error, match=message):
        sc.attribute(demo, x, "gradcam", 0)
    with pytest.raises(error, match=message):
        sc.attribute(demo, x, "edges_sobel")  # a model-free method checks the same input


def test_good_inputs_still_run_half_and_double_precision_included(demo: sc.LoadedModel) -> None:
    for dtype in (torch.float32, torch.float16, torch.float64):
        result = sc.attribute(demo, torch.rand(1, 3, 48, 40).to(dtype), "gradcam", 0)
        assert result.map.shape == (48, 40) and result.map.dtype == torch.float32
    assert sc.attribute(demo, torch.rand(3, 32, 32), "gradcam", 0).map.shape == (32, 32)  # [C, H, W]


def test_the_longer_side_is_bounded_by_the_servers_limit(demo: sc.LoadedModel, small_side_limit) -> None:
    with pytest.raises(
        sc.ResourceLimit, match=r"longer side.*120.*limit of 100 \(max_input_side\)"
    ) as caught:
        sc.attribute(demo, torch.rand(1, 3, 64, 120), "gradcam", 0)
    assert caught.value.limit == "max_input_side"
    assert sc.attribute(demo, torch.rand(1, 3, 64, 100), "gradcam", 0).map.shape == (64, 100)


class _GreyNet(nn.Module):
    """A bare one-channel module: it says its channels through its first convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean((2, 3)))


def test_a_bare_module_is_taken_at_its_word() -> None:
    engine = sc.Engine(device="cpu")
    model = _GreyNet().eval()
    assert engine.attribute(model, torch.rand(1, 1, 4, 4), "gradient", 0).map.shape == (4, 4)
    with pytest.raises(sc.InvalidParameter, match="takes 1-channel images; the input has 3"):
        engine.attribute(model, torch.rand(1, 3, 4, 4), "gradient", 0)
    assert inputs.expected_channels(engine.resolve(nn.Sequential(nn.ReLU()))) is None  # nothing says


def test_a_model_whose_preprocessing_makes_small_inputs_may_take_them(demo: sc.LoadedModel) -> None:
    assert inputs.min_side(demo) == inputs.MIN_INPUT_SIDE
    assert inputs.min_side(demo.engine.resolve(nn.Conv2d(3, 1, 1))) == 1
