"""Moving the shared engine to another device while sessions use it.

Every loaded model is moved under its own lock, so a move waits for the work running on a model and no
new work starts on it half-moved. What the cache holds that lives on the old device (forward outputs,
activations, gradients: the needs) is dropped; finished maps stay, since they are CPU tensors and the
same on any device up to float rounding (about 1e-6 relative between CPU and CUDA kernels), which is
below anything a heatmap shows. Measured speeds and batch memory belong to the old device, so the
estimates start again from fresh measurements. Modules wrapped with `Engine.wrap` are the caller's own
objects and stay where the caller put them.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

import torch

from ..device import check_device, free_memory
from ..errors import InvalidParameter

if TYPE_CHECKING:
    from .core import Engine

_ATTEMPTS = 20  # a model loaded while the locks were being taken makes the move start over


def move_engine(engine: Engine, name: str | torch.device) -> torch.device:
    """Move `engine` and its loaded models to the device named; raises InvalidParameter for a device this
    machine does not have, or when a model does not fit there (every model is then back where it was)."""
    device = check_device(name)
    with engine._move_lock:  # one move at a time
        for _ in range(_ATTEMPTS):
            models = engine.loaded_models()
            with ExitStack() as stack:
                for model in models:  # waits for the work running on each model
                    stack.enter_context(model.lock)
                with engine._load_lock:  # no model is loaded onto the old device meanwhile
                    if [id(m) for m in engine._models.values()] != [id(m) for m in models]:
                        continue
                    old = engine.device
                    _move_models(models, device, old)
                    engine.device = device
                    engine.cache.drop(_device_bound)
                    _reset_measurements(engine)
            if old != device:
                free_memory(old)
            return device
    raise InvalidParameter("Models kept being loaded while the engine was moving; try again.")


def _move_models(models: list, device: torch.device, old: torch.device) -> None:
    moved = []
    try:
        for model in models:
            model.module.to(device)
            model.device = device
            moved.append(model)
    except (RuntimeError, MemoryError) as exc:
        for model in moved:  # all or nothing: a half-moved engine would serve two devices
            model.module.to(old)
            model.device = old
        models[len(moved)].module.to(old)
        raise InvalidParameter(
            f"The models do not fit on {device} ({type(exc).__name__}); everything stays on {old}."
        ) from None


def _device_bound(key: object) -> bool:
    """Cache entries that hold tensors on the model's device: everything but finished maps."""
    return not (isinstance(key, tuple) and key and key[0] == "result")


def _reset_measurements(engine: Engine) -> None:
    # Speeds and batch memory were measured on the old device: the cost model's state starts over.
    from .cost import CostModel

    CostModel.__init__(engine)
