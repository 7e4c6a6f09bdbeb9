"""Eight sessions on one shared engine and model: each gets the serial result, also while one of them fails
mid-run, one hits an invalid parameter and one is cancelled; no hook is left and nothing deadlocks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
import torchvision
from known_models import one_torch_thread
from torch import nn

import saliency_core as sc

JOIN_SECONDS = 60.0


class Injected(RuntimeError):
    pass


def _failing_progress() -> dict[str, Any]:
    """A progress callback that raises at its third report (one per run)."""
    seen: list[float] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(fraction)
        if len(seen) == 3:
            raise Injected("a progress callback failed")

    return {"progress": progress}


def _cancelling() -> dict[str, Any]:
    return {"cancel": lambda: True}


def _nothing() -> dict[str, Any]:
    return {}


Job = tuple[str, int, dict[str, Any], Callable[[], dict[str, Any]], type[BaseException] | None]
# (method, target, params, the run's other keyword arguments, the exception it ends with or None)
JOBS: list[Job] = [
    ("gradient", 1, {}, _nothing, None),
    ("gradcam", 2, {"layer": "layer4"}, _nothing, None),
    ("occlusion", 3, {"patch": 32, "stride": 16}, _nothing, None),
    ("gradcam", 4, {"layer": "layer3"}, _nothing, None),
    ("gradient", 5, {}, _nothing, None),
    # Fails inside the method, after the target's pass: the patch is larger than the image.
    ("occlusion", 6, {"patch": 100}, _nothing, sc.InvalidParameter),
    ("occlusion", 7, {"patch": 16, "stride": 8, "batch_size": 4}, _failing_progress, Injected),
    ("occlusion", 8, {"patch": 16, "stride": 8, "batch_size": 4}, _cancelling, sc.Cancelled),
]


def _no_hooks(module: nn.Module) -> None:
    for name, sub in module.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert not getattr(sub, attr), f"{attr} left on {name or 'the model'}"


def _run_all(engine: sc.Engine, module: nn.Module, x: torch.Tensor) -> list[Any]:
    outcomes: list[Any] = [None] * len(JOBS)
    barrier = threading.Barrier(len(JOBS))

    def run(i: int) -> None:
        method, target, params, extra, _ = JOBS[i]
        barrier.wait(timeout=JOIN_SECONDS)
        try:
            outcomes[i] = engine.attribute(module, x, method, target, **params, **extra()).map
        except Exception as exc:  # recorded and checked by the test
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(JOBS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_SECONDS)
    stuck = [JOBS[i][0] for i, t in enumerate(threads) if t.is_alive()]
    assert not stuck, f"deadlock: {stuck} still running after {JOIN_SECONDS} s"
    return outcomes


def test_eight_sessions_on_one_model_get_the_serial_results_while_others_fail_or_cancel() -> None:
    torch.manual_seed(0)
    module = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with one_torch_thread():
        serial = {
            i: sc.Engine(device="cpu").attribute(module, x, m, t, **p).map
            for i, (m, t, p, _, error) in enumerate(JOBS)
            if error is None
        }
        shared = sc.Engine(device="cpu")
        for round_ in range(2):  # the second round answers from the cache and shared needs
            outcomes = _run_all(shared, module, x)
            for i, (method, _, _, _, error) in enumerate(JOBS):
                if error is None:
                    assert isinstance(outcomes[i], torch.Tensor), (round_, method, outcomes[i])
                    assert torch.allclose(outcomes[i], serial[i], rtol=1e-5, atol=1e-7), (round_, method)
                else:
                    assert isinstance(outcomes[i], error), (round_, method, outcomes[i])
            _no_hooks(module)
        # The engine still serves a request the failing sessions made.
        after = shared.attribute(module, x, "occlusion", 7, patch=16, stride=8)
        alone = sc.Engine(device="cpu").attribute(module, x, "occlusion", 7, patch=16, stride=8)
        assert torch.allclose(after.map, alone.map, rtol=1e-5, atol=1e-7)
    _no_hooks(module)
