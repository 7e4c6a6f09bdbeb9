"""Cost and speed: passes a method will make before it runs, measured seconds per image, and batch sizes."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InvalidParameter
from ..hooks import capture_layers
from ..methods.base import CostInfo, get_method
from ..models.loaded import LoadedModel
from .inputs import check_input
from .results import Estimate


class CostModel:
    """The Engine's estimates: a mixin that needs `self.device` and `self.resolve` (see ModelLoader)."""

    device: torch.device
    resolve: Callable[[LoadedModel | nn.Module | str], LoadedModel]

    def __init__(self) -> None:
        self._speed: dict[tuple[str, str], float] = {}  # (model id, "forward"|"backward") -> s/image
        self._speed_samples: dict[tuple[str, str], deque[float]] = {}
        self._channels: dict[tuple[str, str], int] = {}  # (model id, layer) -> channels

    def estimate(
        self,
        model: LoadedModel | nn.Module,
        method: str,
        params: Mapping[str, Any] | None = None,
        x: torch.Tensor | None = None,
    ) -> Estimate:
        """Passes a method will make before it runs, and seconds once this model's speed was measured."""
        model = self.resolve(model)
        spec = get_method(method)
        resolved = spec.resolve(dict(params or {}), model.layers())
        layer = resolved.get("layer")
        size = tuple(x.shape[-2:]) if x is not None else tuple(_probe_input(model).shape[-2:])
        # Channels cost a forward pass to measure, so only a cost formula that reads them pays for it.
        info = CostInfo(size, (lambda: self.layer_channels(model, layer, x)) if layer else 0)
        forward, backward = spec.cost(resolved, info)
        fwd = self._speed.get((model.id, "forward"))
        bwd = self._speed.get((model.id, "backward"))
        seconds = None
        if (fwd is not None or forward == backward) and (bwd is not None or backward == 0):
            seconds = (forward - backward) * (fwd or 0.0) + backward * (bwd or 0.0)
        return Estimate(forward, backward, seconds)

    def layer_channels(self, model: LoadedModel, layer: str, x: torch.Tensor | None = None) -> int:
        """Channels of a layer's (reshaped) output, measured with one forward pass and remembered."""
        key = (model.id, layer)
        if key not in self._channels:
            probe = x if x is not None else _probe_input(model)
            with model.lock, capture_layers(model.module, [layer]) as cap, torch.no_grad():
                model.forward(check_input(model, probe))
            if layer not in cap.outputs:
                raise InvalidParameter(f"Layer {layer} was not used in the forward pass.")
            fn = model.reshape_for(layer)
            out = fn(cap.outputs[layer]) if fn else cap.outputs[layer]
            self._channels[key] = int(out.shape[1])
        return self._channels[key]

    def record_speed(self, model: LoadedModel, kind: str, seconds: float, images: int) -> None:
        """Seconds per image of a forward (or forward + backward) pass, for time estimates.

        The first pass of a model pays for lazy initialisation and can be many times slower, so it only
        stands until later passes arrive; then the estimate is the median of the last few.
        """
        per_image = seconds / max(images, 1)
        key = (model.id, kind)
        samples = self._speed_samples.get(key)
        if samples is None:
            self._speed_samples[key] = deque(maxlen=5)
            self._speed[key] = per_image
            return
        samples.append(per_image)
        self._speed[key] = float(statistics.median(samples))

    def auto_batch_size(self, x: torch.Tensor) -> int:
        """Images per batch for the device, scaled down for inputs larger than 224x224."""
        base = {"cuda": 64, "mps": 32}.get(self.device.type, 16)
        scale = (224 * 224) / max(1, x.shape[-1] * x.shape[-2])
        return int(max(1, min(256, round(base * scale))))


def _probe_input(model: LoadedModel) -> torch.Tensor:
    """A blank input of the model's preprocessed size, for measuring before any image is given."""
    size = model.spec.preprocess.crop if model.spec is not None and model.spec.preprocess.crop else 224
    return (
        model.preprocess(np.zeros((size, size, 3), np.uint8))
        if model.spec is not None
        else torch.zeros(1, 3, size, size)
    )
