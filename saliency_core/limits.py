"""Resource limits that every user-controlled input is checked against before work starts.

The defaults suit a shared server with a few cores and a few GiB per session. Operators change them in
the `[limits]` table of saliency.toml (or the file named by SALIENCY_CONFIG) or with environment
variables `SALIENCY_LIMIT_<NAME>` (e.g. SALIENCY_LIMIT_MAX_PIXELS=20000000), which win over the file.
`limits()` reads them once per process; `set_limits(...)` replaces them (tests, embedding programs).
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import warnings
from dataclasses import dataclass, fields
from typing import Any

from .errors import ResourceLimit

ENV_PREFIX = "SALIENCY_LIMIT_"
MiB = 1024**2
GiB = 1024**3


@dataclass(frozen=True)
class Limits:
    """Bounds on memory and time per request; each is checked before the work it bounds starts."""

    max_pixels: int = 40_000_000  # width × height of a decoded image
    max_image_bytes: int = 512 * MiB  # a decoded image in memory, at its own bit depth and bands
    max_upload_bytes: int = 25 * MiB  # an uploaded image file
    max_weights_bytes: int = 2 * GiB  # a weights file, and the sum of its tensors once inflated
    max_batch_bytes: int = 1 * GiB  # estimated activation memory of one batch (sets batch sizes)
    # Input pixels × (forward + backward) passes in one request (bounds its time). Every default setting
    # fits: the largest, Score-CAM on a ResNet-50's 2048-channel layer4, is 5.4e8 at 512 px and 8.4e8 on
    # a 640-px detector; a 4000×4000 Integrated Gradients (1.1e9) does not.
    max_work_pixels: float = 1.0e9
    max_input_side: int = 2048  # the longer side of a tensor a method runs on
    max_metric_steps: int = 1000  # steps of a deletion / insertion curve
    max_batch_images: int = 100_000  # images of one batch command (explain over folders, evaluate)

    def check(self, name: str, value: float, what: str, advice: str = "") -> None:
        """Raise ResourceLimit when `value` is over the limit `name`, naming it and what to do."""
        limit = getattr(self, name)
        if not math.isfinite(value) or value > limit:
            shown = _human(name, value)
            raise ResourceLimit(
                f"{what} is {shown}, over this server's limit of {_human(name, limit)} "
                f"({name}).{' ' + advice if advice else ''}",
                limit=name,
            )


def _human(name: str, value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if name.endswith("_bytes"):
        for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
            if value >= size:
                return f"{value / size:.1f} {unit}"
        return f"{int(value)} bytes"
    if value >= 1e6:
        return f"{value / 1e6:.1f} million"
    return f"{value:g}"


_LOCK = threading.Lock()
_CURRENT: Limits | None = None


def limits() -> Limits:
    """The limits in force: defaults, then saliency.toml's [limits], then SALIENCY_LIMIT_* variables."""
    global _CURRENT
    with _LOCK:
        if _CURRENT is None:
            _CURRENT = _read()
        return _CURRENT


def set_limits(new: Limits | None = None, **changes: Any) -> Limits:
    """Replace the limits (None: read the configuration again); returns the previous ones."""
    global _CURRENT
    previous = limits()
    with _LOCK:
        base = new if new is not None else (_read() if not changes else previous)
        _CURRENT = dataclasses.replace(base, **changes) if changes else base
    return previous


def _read() -> Limits:
    from .plugins import read_config

    values: dict[str, Any] = {}
    table = read_config().get("limits", {})
    if not isinstance(table, dict):
        warnings.warn("saliency.toml: [limits] must be a table; using the defaults.", stacklevel=3)
        table = {}
    for f in fields(Limits):
        raw = os.environ.get(ENV_PREFIX + f.name.upper(), table.get(f.name))
        if raw is None:
            continue
        kind = int if f.type in ("int", int) else float
        try:
            value = kind(float(raw))
        except (TypeError, ValueError, OverflowError):
            warnings.warn(f"Limit {f.name}={raw!r} is not a number; using {f.default}.", stacklevel=3)
            continue
        if not value > 0:
            warnings.warn(f"Limit {f.name}={raw!r} must be positive; using {f.default}.", stacklevel=3)
            continue
        values[f.name] = value
    for unknown in sorted(set(table) - {f.name for f in fields(Limits)}):
        warnings.warn(f"saliency.toml: unknown limit '{unknown}' is ignored.", stacklevel=3)
    return Limits(**values)
