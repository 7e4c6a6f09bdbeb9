"""The JSON card of one map made by `explain`: the library's card (saliency_core.card), as the app's export
card says it, from what the batch knows: the image file, the weights argument, the Attribution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from .. import card as card_mod
from ..engine import Attribution
from ..methods import MethodInfo
from ..models import LoadedModel
from ..targets import Target
from .sources import ImageSource


def listed(target: Target, predictions: Sequence[Target]) -> tuple[int | None, Target]:
    """The target's position among the listed predictions (None when not listed) and the listed one
    (with its score) where it is there, else the target itself."""
    key = target.key()
    for i, p in enumerate(predictions):
        if p is target or p.key() == key:
            return i, p
    return None, target


def card(
    source: ImageSource,
    sha256: str,
    image: Image.Image,
    picture: np.ndarray,
    model: LoadedModel,
    weights: str,
    a: Attribution,
    info: MethodInfo,
    sign: str,
    target: Target,
    predictions: Sequence[Target],
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of map `a` of `image` (the file's bytes hash to `sha256`; `picture` is the model's input)
    for `target` (what was explained: a listed prediction or `--target`), drawn with `sign`."""
    index, shown = listed(target, predictions)
    sample = source.sample
    record = card_mod.MapRecord.of(
        a,
        title=info.title,
        family=info.family,
        sign=sign,
        target_index=index if info.needs_target else None,
        target_label=shown.describe() if info.needs_target else card_mod.IGNORED_TARGET,
    )
    return card_mod.card(
        [record],
        image=card_mod.image_fields(
            sha256=sha256,
            name=sample.title if sample is not None else source.name,  # as the app names a sample
            source="sample" if sample is not None else "file",
            sample_id=sample.id if sample is not None else None,
            size=image.size,
            input_size=picture.shape[:2],
            path=str(source.path),
        ),
        model=model,
        weights=card_mod.weights_label(weights, model),
        weights_file=card_mod.weights_file(model, weights),
        target=card_mod.target_fields(shown, index),
        page="cli",
        metrics=metrics,
    )
