"""The CAM layer picker's choices: the model's whole module tree at this input size, suggested layers
first, each labelled with its output shape (and how tokens are read as a grid)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


class LayerChoices(list[str]):
    """Every layer name (a plain list, so parameter checks accept any of them), the suggested ones first,
    with `labels` for the picker, `notes` for layers CAM methods cannot read, and `suggested`."""

    def __init__(self, options: Iterable[Any] = ()) -> None:
        options = list(options)
        super().__init__(o.name for o in options)
        self.suggested: list[str] = [o.name for o in options if o.suggested]
        self.labels: dict[str, str] = {o.name: o.describe() for o in options}
        self.notes: dict[str, str] = {o.name: o.note for o in options if o.grid is None}

    def label(self, name: str) -> str:
        mark = "★ " if name in self.suggested else ""
        return mark + self.labels.get(name, name)


def choices(view: Any) -> LayerChoices:
    """The layers of the view's model at the view's input size (one probe pass per model and size)."""
    return LayerChoices(view.model.layer_options(view.x))


def suggested(layers: Sequence[str]) -> list[str]:
    """The suggested layers of a LayerChoices (what sweeps try), or the list itself."""
    return list(getattr(layers, "suggested", None) or layers)
