"""The shared engine: loads models once, serialises work per model, computes each need once.

Needs (a forward output, layer activations and gradients, input gradients) are cached per
(model, image, target, layer), so switching between methods that share them costs no model pass.

Modules by job: `results` (what comes back), `inputs` (validation, hashing), `context` (RunContext, the
needs), `loading` (models and weights), `cost` (estimates and speed), `jobs` (long requests as background
jobs), `core` (the Engine). This module holds the process-wide engine and re-exports the public names.
"""

from __future__ import annotations

import threading

from ..methods.context import CancelFn, ProgressFn
from .context import RunContext
from .core import Engine
from .cost import CostModel
from .inputs import check_input, image_digest, should_cancel
from .jobs import Job, JobRegistry, Progress
from .loading import ModelLoader
from .results import Attribution, Estimate

_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine (device from $SALIENCY_DEVICE or the best available)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Engine()
        return _ENGINE


def set_engine(engine: Engine) -> Engine:
    """Replace the process-wide engine (tests, or a different device)."""
    global _ENGINE
    with _ENGINE_LOCK:
        _ENGINE = engine
        return engine


__all__ = [
    "Attribution",
    "CancelFn",
    "CostModel",
    "Engine",
    "Estimate",
    "Job",
    "JobRegistry",
    "ModelLoader",
    "Progress",
    "ProgressFn",
    "RunContext",
    "check_input",
    "get_engine",
    "image_digest",
    "set_engine",
    "should_cancel",
]
