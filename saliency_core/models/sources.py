"""Open-ended model sources reached by an id prefix: "timm:<name>", "torchvision:<name>", "program:<path>".

A source id is not registered: its `ModelSpec` is built when the id is first resolved (per head size),
from the architecture itself (layers, head, token geometry) and its published preprocessing. The same
ids are what the UI shows and share links carry; `list_models()` keeps listing only the curated and
plugin models.
"""

from __future__ import annotations

import difflib
import importlib
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from ..errors import InvalidParameter, UnknownModel
from .categories import class_names
from .registry import ModelInfo, ModelSpec, info_for

# prefix -> module (in this package) with names() -> list[str] and spec(name, num_classes) -> ModelSpec
SOURCES = {"timm": "timm_source", "torchvision": "torchvision_source", "program": "program_source"}
LISTED = ("timm", "torchvision")  # sources whose architectures can be listed
MAX_CLASSES = 100_000


def split_id(model_id: str) -> tuple[str, str] | None:
    """("timm", "resnet18") for "timm:resnet18"; None when the id has no known source prefix."""
    prefix, sep, name = model_id.partition(":")
    return (prefix, name) if sep and prefix in SOURCES else None


def _source(prefix: str) -> ModuleType:
    return importlib.import_module(f".{SOURCES[prefix]}", __package__)


def resolve(model_id: str, num_classes: int | None = None) -> ModelSpec:
    """The spec of a source id, with a head of `num_classes` outputs (None: the architecture's default)."""
    found = split_id(model_id)
    if found is None:
        raise UnknownModel(f"'{model_id}' does not name a model source ({', '.join(SOURCES)}).")
    prefix, name = found
    if not name.strip():
        raise UnknownModel(f"The model id '{model_id}' names no architecture after '{prefix}:'.")
    check_num_classes(num_classes)
    if prefix == "program":  # a file that can change: read it each time
        return _source(prefix).spec(name, num_classes)
    return _cached_spec(prefix, name, num_classes)


@lru_cache(maxsize=64)
def _cached_spec(prefix: str, name: str, num_classes: int | None) -> ModelSpec:
    return _source(prefix).spec(name, num_classes)


def check_num_classes(num_classes: int | None) -> None:
    if num_classes is None:
        return
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or not 1 <= num_classes <= MAX_CLASSES
    ):
        raise InvalidParameter(
            f"num_classes must be a whole number from 1 to {MAX_CLASSES}, not {num_classes!r}."
        )


def list_architectures(source: str) -> list[str]:
    """Every architecture name a source offers ("timm" or "torchvision"), sorted."""
    if source not in LISTED:
        raise InvalidParameter(f"Unknown model source '{source}': one of {', '.join(LISTED)}.")
    return sorted(_source(source).names())


def torchvision_names() -> list[str]:
    """torchvision's classification, detection and segmentation builders."""
    return list_architectures("torchvision")


def unknown(source: str, name: str, known: list[str]) -> UnknownModel:
    """UnknownModel for a name a source does not have, with its closest names."""
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    return UnknownModel(
        f"Unknown {source} architecture '{name}'.{hint} sc.list_architectures('{source}') lists all "
        f"{len(known)}."
    )


def model_info(model_id: str, num_classes: int | None = None) -> ModelInfo:
    """What the UI shows about a model id (curated, plugin or source) without loading weights."""
    from .registry import get_spec

    return info_for(get_spec(model_id, num_classes))


def default_categories(spec: ModelSpec, weights: str, classes: int) -> tuple[str, ...]:
    """Class names without a names file: the weights' metadata where it fits the head, else "class i".

    `weights` is "default", "random" or "file": names that come only with a source's pretrained weights
    (timm's ImageNet labels) are used only with those weights.
    """
    pretrained = spec.extra.get("pretrained_categories")
    if weights == "default" and pretrained is not None:
        names = tuple(pretrained())
        if len(names) == classes:
            return names
    names = tuple(spec.categories())
    return names if len(names) == classes else class_names(classes)


def spec_file(model_id: str) -> Path | None:
    """The file a source id is made from (a program), whose digest belongs in cache keys; else None."""
    found = split_id(model_id)
    if found is None or found[0] != "program":
        return None
    return Path(found[1]).expanduser()
