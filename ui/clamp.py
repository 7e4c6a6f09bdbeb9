"""Values typed or read from a link, made fit for their widget: read as the parameter's type by
`saliency_core.Param` (so inf, NaN, '1e400' and the like are refused as everywhere else), then moved
into the widget's range, because a slider given a value outside its range breaks the page on every run."""

from __future__ import annotations

import dataclasses
from typing import Any

import saliency_core as sc


def parse(param: sc.Param, text: Any) -> Any:
    """`text` as the parameter's type, its range not checked; raises sc.InvalidParameter."""
    return dataclasses.replace(param, min=None, max=None).coerce(text)


def into_range(param: sc.Param, value: Any) -> Any:
    """A number moved to the nearest end of the parameter's range (other kinds unchanged)."""
    if param.kind not in ("int", "float"):
        return value
    if param.min is not None and value < param.min:
        value = param.min
    if param.max is not None and value > param.max:
        value = param.max
    return int(value) if param.kind == "int" else float(value)


def from_link(param: sc.Param, text: Any) -> tuple[Any, str]:
    """(value, note) for a link's text: the value fits the widget; the note ("alpha=5 (set to 1.0)") says
    when it had to be moved into range. Raises sc.InvalidParameter when the text is no value at all."""
    value = parse(param, text)
    fitted = param.coerce(into_range(param, value))
    return fitted, ("" if fitted == value else f"{param.name}={text} (set to {fitted})")
