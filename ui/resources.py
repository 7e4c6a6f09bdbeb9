"""Process-wide resources behind Streamlit caches: the engine, models, samples, method descriptions.

The engine (and the models it loads) is shared by every session and thread; it serialises work per model.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

import saliency_core as sc
from saliency_core import viz
from saliency_core.card import versions as card_versions
from saliency_core.methods import FAMILY_TITLES

DEMO_MODEL = "shapes_demo"


@st.cache_resource(show_spinner=False)
def engine() -> sc.Engine:
    """The shared engine (device chosen once per process)."""
    return sc.get_engine()


def load_model(model_id: str, weights: str) -> sc.LoadedModel:
    """A model with "default" (pretrained or bundled) or "random" weights; loaded once by the engine.

    Raises sc.WeightsUnavailable / sc.InvalidWeights / sc.UnknownModel with user-facing messages.
    """
    engine()  # make sure the process-wide engine is the cached one
    return sc.load_model(model_id, weights=None if weights == "random" else "default")


@st.cache_data(ttl=30, show_spinner=False)
def models() -> list[sc.ModelInfo]:
    """Registered models with their weights status (re-read every 30 s: a user may drop a file in)."""
    return sc.list_models()


def model_info(model_id: str) -> sc.ModelInfo | None:
    return next((m for m in models() if m.id == model_id), None)


def info_for(model: sc.LoadedModel) -> sc.ModelInfo:
    """A catalogue model's info, or for "your model" (timm, torchvision) the loaded model's own."""
    found = model_info(model.id)
    if found is not None:
        return found
    layers = model.layers()
    return sc.ModelInfo(
        id=model.id,
        task=model.task,
        title=model.title,
        weights_available=True,
        weights_path="",
        description="",
        default_layer=layers[0] if layers else None,
        num_classes=len(model.categories),
    )


@st.cache_data(show_spinner=False)
def architectures(source: str) -> list[str]:
    """Every architecture name of a library ("timm" | "torchvision"), for the searchable picker."""
    return sc.list_architectures(source)


@st.cache_data(show_spinner=False)
def samples() -> list[sc.Sample]:
    """The bundled samples, synthetic scenes (which the demo model knows) first."""
    found = sc.list_samples()
    return sorted(found, key=lambda s: (s.kind != "synthetic", found.index(s)))


def sample(sample_id: str) -> sc.Sample | None:
    return next((s for s in samples() if s.id == sample_id), None)


@st.cache_data(show_spinner=False)
def thumbnail(sample_id: str, side: int = 112) -> np.ndarray | None:
    """A square thumbnail of a sample (centre crop), or None if it cannot be read."""
    found = sample(sample_id)
    if found is None:
        return None
    try:
        image = sc.load_image(found.path)
    except sc.InvalidImage:
        return None
    w, h = image.size
    s = min(w, h)
    image = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((side, side))
    return viz.to_rgb_uint8(image)


@st.cache_data(show_spinner=False)
def sample_bytes(sample_id: str) -> bytes | None:
    found = sample(sample_id)
    return found.path.read_bytes() if found is not None and found.path.is_file() else None


def methods(model: sc.LoadedModel | None = None) -> list[sc.MethodInfo]:
    """Methods that can explain `model` (its task, and what each method needs of the model: attention
    methods a transformer), in family order; all of them without a model."""
    return sc.list_methods(model=model)


def unsupported(model: sc.LoadedModel) -> list[tuple[sc.MethodInfo, str]]:
    """The methods of the model's task that cannot explain this model, each with the reason."""
    found = ((m, m.unsupported(model)) for m in sc.list_methods(task=model.task))
    return [(m, why) for m, why in found if why]


def method(method_id: str) -> sc.MethodInfo | None:
    return next((m for m in sc.list_methods() if m.id == method_id), None)


def featured(view: str, task: str | None = None) -> list[str]:
    """Ids of the methods `view` picks by default (for a task), as the methods declare."""
    return sc.featured_methods(view, task)


def first_featured(view: str, ids: list[str]) -> str:
    """The first method featured in `view` among `ids` (else the first of `ids`)."""
    return next((m for m in featured(view) if m in ids), ids[0])


def family_title(family: str) -> str:
    return FAMILY_TITLES.get(family, family.title())


def plugins() -> list[sc.PluginStatus]:
    """The configured plugins and whether each loaded (they load once per process)."""
    return sc.load_plugins()


def plugin_config() -> str:
    """The config file the library reads plugins from (it need not exist)."""
    return str(sc.plugins.config_path())


def digest(data: bytes) -> str:
    """The sha256 of image bytes: the identity of an image in caches, exports and share links."""
    return hashlib.sha256(data).hexdigest()


@st.cache_data(show_spinner=False)
def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (for the export card): the CLI's card lists the same."""
    return card_versions()
