"""Metrics as plain JSON-ready values, for the export card."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def to_jsonable(value: Any) -> Any:
    """Results (anything with `as_dict`), numbers, arrays, tensors, mappings and sequences -> JSON values.

    Non-finite floats become None (JSON has no NaN).
    """
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        return to_jsonable(as_dict())
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, (np.ndarray, torch.Tensor)):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        return to_jsonable(array.tolist())
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    raise TypeError(f"Cannot put a {type(value).__name__} into the export card.")


def card_metrics(**results: Any) -> dict[str, Any]:
    """Named results (curves, pointing hits, energy, sanity / random-logit results, agreement) as a
    JSON-serialisable dict for the export card; None values are left out.

    `card_metrics(deletion=curve, insertion=curve2, pointing=True, energy_pointing=0.8, sanity=result)`
    """
    return {name: to_jsonable(value) for name, value in results.items() if value is not None}
