"""Cost and speed: passes a method will make before it runs (checked against the work limit), seconds
from measured per-batch speeds of this model at this input size (see speed.py; a probe measures them
before any pass), and batch sizes from the batch memory limit."""

from __future__ import annotations

import statistics
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InvalidParameter
from ..hooks import capture_layers
from ..limits import limits
from ..methods.base import CostInfo, MethodSpec, Passes, get_method
from ..models.loaded import LoadedModel
from .inputs import check_input
from .results import Estimate
from .speed import SpeedModel

# A backward pass keeps every activation its forward saved and makes a gradient about as large as each.
GRAD_FACTOR = 2
# Activation bytes per input byte assumed for a model not measured yet: at 224 px a ResNet-18 measures
# about 50, a MobileNet V3 85, ResNet-50, VGG-16 and ViT-B/16 about 200.
UNMEASURED_RATIO = 200
_MEMORY_ENTRIES = 1024  # (model, input shape) measurements kept; each is a few numbers
_NOT_COST = ("seed", "batch_size")  # int parameters that never change the number of passes


@dataclass
class BatchMemory:
    """What one image costs in activation memory on a model at one input shape."""

    per_image: int  # bytes of one image's forward activations (a backward multiplies by GRAD_FACTOR)
    caps: dict[bool, int] = field(default_factory=dict)  # with gradients? -> largest batch that fit


class ActivationMeter:
    """Sums the bytes of every leaf module's output during a pass (a forward hook), and whether the pass
    kept a graph for a backward; on CUDA also the allocator's measured peak."""

    def __init__(self) -> None:
        self.bytes = 0
        self.grad = False
        self.peak = 0

    def hook(self, _module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, dict):
            output = tuple(output.values())
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                self.bytes += tensor.numel() * tensor.element_size()
                self.grad = self.grad or tensor.requires_grad


MIN_CALIBRATED_SECONDS = 0.02
MAX_FACTOR = 50.0


class CostModel(SpeedModel):
    """The Engine's estimates: a mixin that needs `self.device` and `self.resolve` (see ModelLoader)."""

    device: torch.device
    resolve: Callable[[LoadedModel | nn.Module | str], LoadedModel]
    forward_cached: Callable[..., tuple[Any, bool]]
    forward_count: int

    def __init__(self) -> None:
        SpeedModel.__init__(self)
        self._channels: dict[tuple[str, str], int] = {}  # (model id, layer) -> channels
        # (model key, method, input size) -> measured / predicted seconds of its runs: work outside the
        # model's passes (segmentations, a path's float64 steps, modified backward rules) is learned
        self._method_factor: dict[tuple, float] = {}
        self._method_ratios: dict[tuple, deque[float]] = {}
        self._memory: OrderedDict[tuple, BatchMemory] = OrderedDict()
        self._memory_lock = threading.Lock()

    # --- passes and work --------------------------------------------------------------------
    def estimate(
        self,
        model: LoadedModel | nn.Module,
        method: str,
        params: Mapping[str, Any] | None = None,
        x: torch.Tensor | None = None,
    ) -> Estimate:
        """Passes a method will make and the seconds they take: each pass timed by this model's measured
        speed at this input size, batched passes in the batches the engine will make. Before any pass
        of the model at this size, a probe measures it (a few hundred ms on the demo model)."""
        model = self.resolve(model)
        spec = get_method(method)
        resolved = spec.resolve(dict(params or {}), model.layers())
        shaped = check_input(model, x) if x is not None else _probe_input(model)
        size = tuple(shaped.shape[-2:])
        passes = spec.cost(resolved, self._cost_info(model, resolved, size, x))
        forward, backward = passes
        if forward + backward == 0:
            return Estimate(0, 0, 0.0)
        self.probe(model, shaped)
        timed = self._time_passes(model, shaped, resolved, passes)
        if timed is None:
            return Estimate(forward, backward, None)
        factor = self._method_factor.get((model.key, method, size), 1.0)
        return Estimate(forward, backward, timed[0] * factor, from_probe=timed[1])

    def calibrate(
        self, model: LoadedModel, method: str, resolved: Mapping[str, Any], x: torch.Tensor, seconds: float
    ) -> None:
        """Learn how far a finished run of `method` took from what its passes predict (the passes'
        speeds are recorded separately, per batch): the next estimate of it is scaled by that."""
        spec = get_method(method)
        size = tuple(x.shape[-2:])
        passes = spec.cost(resolved, self._cost_info(model, resolved, size, x))
        timed = self._time_passes(model, x, resolved, passes)
        if timed is None or max(timed[0], seconds) < MIN_CALIBRATED_SECONDS:
            return  # both too short: timer noise would decide the factor
        # A run far longer than its passes predict is learned even when the passes are quick: guided
        # Grad-CAM's hooked backward on the demo CNN takes about 4x its plain passes' 12 ms.
        measured = min(max(seconds / max(timed[0], 1e-9), 1 / MAX_FACTOR), MAX_FACTOR)
        key = (model.key, method, size)
        # The median of the last three runs: a first, cold run (lazy imports, allocations) does not last.
        recent = self._method_ratios.setdefault(key, deque(maxlen=3))
        recent.append(measured)
        self._method_factor[key] = statistics.median(recent)

    def _time_passes(
        self, model: LoadedModel, x: torch.Tensor, resolved: Mapping[str, Any], passes: tuple[int, int]
    ) -> tuple[float, bool] | None:
        """(seconds, whether any figure is the probe's alone) for `passes`, split as RunContext makes
        them: batched images through `for_batches`, the rest one image at a time."""
        forward, backward = passes
        batched = getattr(passes, "batched", 0) if isinstance(passes, Passes) else 0
        to_layer = getattr(passes, "to_layer", 0) if isinstance(passes, Passes) else 0
        grad_batched = batched if backward >= batched else 0  # batches with gradients: each has a backward
        layer_passes = min(to_layer, backward - grad_batched)
        work = [
            ("forward", 1, forward - backward - (batched - grad_batched)),
            ("backward", 1, backward - grad_batched - layer_passes),
            (f"layer:{resolved.get('layer')}", 1, layer_passes),
        ]
        if batched:
            kind = "backward" if grad_batched else "forward"
            work += [
                (kind, n, count)
                for n, count in self._batches(model, x, resolved, batched, bool(grad_batched))
            ]
        seconds, probed = 0.0, False
        for kind, n, count in work:
            if count <= 0:
                continue
            found = self.pass_seconds(model, x, kind, n)
            if found is None:
                return None
            seconds += count * found[0]
            probed = probed or found[1]
        return seconds, probed

    def _batches(
        self, model: LoadedModel, x: torch.Tensor, resolved: Mapping[str, Any], total: int, grad: bool
    ) -> list[tuple[int, int]]:
        """(batch size, how many batches of it) that `RunContext.for_batches` makes for `total` images."""
        requested = int(resolved.get("batch_size") or 0)
        size = requested if requested > 0 else device_batch_size(model.device, x)
        budget = self.budget_batch_size(model, x, grad)
        out = []
        if budget is None:  # the first batch is one image, measured; the guess is the cautious one
            out.append((1, 1))
            total -= 1
            budget = self.auto_batch_size(x, None, grad)
        size = max(1, min(size, budget))
        out += [(size, total // size), (total % size, 1 if total % size else 0)]
        return [(n, count) for n, count in out if n > 0 and count > 0]

    def check_work(
        self, model: LoadedModel, spec: MethodSpec, resolved: dict[str, Any], x: torch.Tensor
    ) -> None:
        """Raise ResourceLimit, before any pass, when passes × input pixels is over max_work_pixels."""
        h, w = (int(v) for v in x.shape[-2:])
        read: list[int] = []
        info = self._cost_info(model, resolved, (h, w), x, read)
        forward, backward = spec.cost(resolved, info)
        work = (forward + backward) * h * w
        if work <= limits().max_work_pixels:
            return
        limits().check(
            "max_work_pixels",
            work,
            f"The work of this {spec.title} request ({forward} forward + {backward} backward passes over "
            f"{w}×{h} input pixels)",
            _work_advice(spec, resolved, info, forward + backward, bool(read)),
        )

    def _cost_info(
        self,
        model: LoadedModel,
        resolved: Mapping[str, Any],
        size: tuple[int, ...],
        x: torch.Tensor | None,
        read: list[int] | None = None,
    ) -> CostInfo:
        """The CostInfo for a formula; `read` gets the channel count if the formula asks for it."""
        layer = resolved.get("layer")

        def channels() -> int:
            found = self.layer_channels(model, layer, x)
            if read is not None:
                read.append(found)
            return found

        # Channels cost a forward pass to measure, so only a cost formula that reads them pays for it.
        return CostInfo(size, channels if layer else 0)

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

    # --- batch sizes ------------------------------------------------------------------------
    def auto_batch_size(self, x: torch.Tensor, model: LoadedModel | None = None, grad: bool = False) -> int:
        """Images per batch for the device, scaled down for inputs larger than 224x224 and kept within
        max_batch_bytes (measured on `model` once it ran at this input size, else a cautious guess);
        `grad`: the batches also run a backward pass."""
        size = device_batch_size(self.device, x)
        budget = self.budget_batch_size(model, x, grad) if model is not None else None
        if budget is None:
            guess = _image_bytes(x) * UNMEASURED_RATIO * (GRAD_FACTOR if grad else 1)
            budget = max(1, limits().max_batch_bytes // guess)
        return min(size, budget)

    def budget_batch_size(self, model: LoadedModel, x: torch.Tensor, grad: bool) -> int | None:
        """The most images per batch within max_batch_bytes (and under any batch size that ran out of
        memory before), or None until one image of this shape was measured on the model."""
        with self._memory_lock:
            entry = self._memory.get(_memory_key(model, x))
            if entry is None:
                return None
            per_image = entry.per_image * (GRAD_FACTOR if grad else 1)
            size = max(1, limits().max_batch_bytes // max(per_image, 1))
            # A batch that ran out without gradients would with them; one that ran out with them had
            # about twice the need of one without.
            fitted = [entry.caps[False]] if False in entry.caps else []
            if True in entry.caps:
                fitted.append(entry.caps[True] * (1 if grad else GRAD_FACTOR))
            return min([size, *fitted])

    @contextmanager
    def measure_batch_memory(
        self, model: LoadedModel, x: torch.Tensor, images: int = 1
    ) -> Iterator[ActivationMeter]:
        """Measure the activation memory of the batch of `images` run inside the block; remember it per image."""
        meter = ActivationMeter()
        with _leaf_hooks(model.module, meter.hook), _cuda_peak(model.device, meter):
            yield meter
        if meter.bytes == 0 and meter.peak == 0:
            return  # no pass ran (an output from the cache): nothing learned
        share = meter.peak // GRAD_FACTOR if meter.grad else meter.peak
        per_image = max(meter.bytes, share) // max(images, 1) + _image_bytes(x)
        with self._memory_lock:
            key = _memory_key(model, x)
            self._memory[key] = BatchMemory(per_image)
            self._memory.move_to_end(key)
            while len(self._memory) > _MEMORY_ENTRIES:
                self._memory.popitem(last=False)

    def record_out_of_memory(self, model: LoadedModel, x: torch.Tensor, grad: bool, failed: int) -> int:
        """Remember that batches of `failed` images ran out of memory; returns the size to retry with."""
        retry = max(1, failed // 2)
        with self._memory_lock:
            entry = self._memory.get(_memory_key(model, x))
            if entry is not None:
                entry.caps[grad] = min(entry.caps.get(grad, retry), retry)
        return retry


def device_batch_size(device: torch.device, x: torch.Tensor) -> int:
    """The device's usual batch at 224x224, scaled down for larger inputs (before any memory limit)."""
    base = {"cuda": 64, "mps": 32}.get(device.type, 16)
    scale = (224 * 224) / max(1, x.shape[-1] * x.shape[-2])
    return int(max(1, min(256, round(base * scale))))


def _image_bytes(x: torch.Tensor) -> int:
    return int(np.prod(x.shape[-3:])) * 4  # one float32 image


def _memory_key(model: LoadedModel, x: torch.Tensor) -> tuple:
    return (model.key, tuple(x.shape[-3:]))


def _work_advice(
    spec: MethodSpec, resolved: dict[str, Any], info: CostInfo, passes: int, read_channels: bool
) -> str:
    """What makes fewer passes: each int parameter whose doubling changes the count, in the right
    direction, a layer with fewer channels where the count read them, and a smaller image."""
    lower, raise_ = [], []
    for param in spec.params:
        value = resolved.get(param.name)
        if param.kind != "int" or param.name in _NOT_COST or not isinstance(value, int):
            continue
        try:
            changed = sum(spec.cost({**resolved, param.name: max(1, value) * 2}, info))
        except Exception:  # a cost formula may refuse a value it was never meant to see
            continue
        if changed != passes:
            (lower if changed > passes else raise_).append(param.name)
    options = [f"lower {', '.join(lower)}"] if lower else []
    options += [f"raise {', '.join(raise_)}"] if raise_ else []
    if read_channels:
        options.append("pick a layer with fewer channels")
    return f"To make fewer passes: {'; '.join([*options, 'or use a smaller image'])}."


@contextmanager
def _leaf_hooks(module: nn.Module, hook: Callable[..., None]) -> Iterator[None]:
    """`hook` on every module without children (a container's output is its last child's) while inside."""
    handles = []
    try:
        # TorchScript takes no Python hooks: its batches are sized by the CUDA peak or the first guess.
        if not isinstance(module, torch.jit.ScriptModule):
            for sub in module.modules():
                if next(sub.children(), None) is None and not isinstance(sub, torch.jit.ScriptModule):
                    handles.append(sub.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def _cuda_peak(device: torch.device, meter: ActivationMeter) -> Iterator[None]:
    """The CUDA allocator's peak above what was allocated before the block (0 elsewhere)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        yield
        return
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    yield
    torch.cuda.synchronize(device)
    meter.peak = max(0, torch.cuda.max_memory_allocated(device) - before)


def _probe_input(model: LoadedModel) -> torch.Tensor:
    """A blank input of the model's preprocessed size, for measuring before any image is given."""
    size = model.spec.preprocess.crop if model.spec is not None and model.spec.preprocess.crop else 224
    return (
        model.preprocess(np.zeros((size, size, 3), np.uint8))
        if model.spec is not None
        else torch.zeros(1, 3, size, size)
    )
