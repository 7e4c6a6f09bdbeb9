"""Sidebar: "Your model" — any timm or torchvision architecture by name, with its pretrained weights, random
init or a checkpoint file, its number of classes and class names. (Plugins' models are in the catalogue.)

What the user chose is kept as a `CustomChoice`; the model itself lives in the shared engine (loaded once per
architecture, options and weights). Uploaded checkpoints go through `weights_files` (read as data only,
deleted at once); class-name files are small and kept under their digest so the engine can re-read them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import streamlit as st

import saliency_core as sc
from ui import resources, state, tasks
from ui.sidebar import weights_files
from ui.text import md
from ui.widgets import download

SOURCES = {"timm": "timm", "torchvision": "torchvision"}
WEIGHTS = ["Pretrained", "Random init", "Checkpoint file"]
CLASS_TYPES = ["txt", "json"]
MAX_CLASS_FILE = 1 << 20
STARTER = "resnet18"  # in both libraries  # a class-names file is text: 1 MB is thousands of names


@dataclass(frozen=True)
class CustomChoice:
    """The user's model, as loaded: its id, options and where its weights and class names came from."""

    source: str
    architecture: str
    weights: str  # "default" | "random" | "file"
    num_classes: int | None = None
    upload: weights_files.Uploaded | None = None
    categories: str | None = None  # path of the kept class-names file
    categories_name: str = ""

    @property
    def model_id(self) -> str:
        return f"{self.source}:{self.architecture}"

    @property
    def weights_key(self) -> str:
        """Part of every cache and result key: the same architecture with other options is another model."""
        weights = self.upload.mode if self.upload is not None else self.weights
        classes = f"/{self.num_classes}" if self.num_classes else ""
        names = f"/names:{self.categories.rsplit('-', 1)[-1]}" if self.categories else ""
        return f"custom:{weights}{classes}{names}"


def current() -> CustomChoice | None:
    found = st.session_state.get(state.CUSTOM_MODEL)
    return found if isinstance(found, CustomChoice) else None


def section() -> sc.LoadedModel | None:
    """The "Your model" form, then the model in use (None until one loads; errors keep the last one)."""
    # The library is outside the form: switching it must show that library's architectures at once.
    state.default(state.CUSTOM_SOURCE, "timm", allowed=list(SOURCES))
    source = st.segmented_control(
        "Library", list(SOURCES), key=state.CUSTOM_SOURCE, required=True, format_func=SOURCES.get
    )
    with st.form(key=state.CUSTOM_FORM, border=False):
        names = resources.architectures(str(source))
        arch_key = state.custom_architecture(str(source))
        # A small, familiar default: the first name of the list may be a billion-parameter model.
        first = STARTER if STARTER in names else (names[0] if names else "")
        state.default(arch_key, first, allowed=names)
        st.selectbox(
            "Architecture",
            names,
            key=arch_key,
            help="Any architecture of the library by name; type to search.",
        )
        state.default(state.CUSTOM_WEIGHTS, WEIGHTS[0], allowed=WEIGHTS)
        st.segmented_control("Weights", WEIGHTS, key=state.CUSTOM_WEIGHTS, required=True)
        state.default(state.CUSTOM_CLASSES, 0)
        st.number_input(
            "Number of classes",
            min_value=0,
            max_value=100_000,
            step=1,
            key=state.CUSTOM_CLASSES,
            help="0: the architecture's own head, or the size of the head in the checkpoint file.",
        )
        st.file_uploader(
            "Checkpoint file (.pth, .pt, .safetensors)",
            type=weights_files.TYPES,
            key=state.CUSTOM_CHECKPOINT,
            max_upload_size=weights_files.MAX_MB,
            help="A state dict saved with torch.save (wrapped in 'state_dict' or 'model', with 'module.' or "
            "Lightning 'model.' prefixes is fine) or a .safetensors file. Read as data only: pickled code "
            "is refused. Used when Weights is 'Checkpoint file'.",
        )
        st.file_uploader(
            "Class names (.txt: one per line, or .json)",
            type=CLASS_TYPES,
            key=state.CUSTOM_NAMES,
            help="Optional: one name per line, a JSON list, or a JSON mapping from index to name.",
        )
        submitted = st.form_submit_button("Load", icon=":material/download:", type="primary", width="stretch")
    if submitted:
        _submit(str(source), str(st.session_state.get(arch_key) or ""))
    if not sc.programs_allowed():
        st.caption(
            "TorchScript and torch.export programs are off: they are code, not weights, so only the "
            "operator can allow them (`allow_programs = true` in saliency.toml)."
        )
    error = st.session_state.get(state.CUSTOM_ERROR)
    if error:
        st.error(md(error, limit=None), icon=":material/error:")
    waiting = st.session_state.get(state.CUSTOM_DOWNLOAD)
    if waiting is not None:
        download.offer(waiting.model_id, waiting.model_id, on_done=lambda: _adopt(waiting))
    choice = current()
    if choice is None:
        st.caption("Choose an architecture and press **Load**.")
        return None
    try:
        model = _get(choice)
    except (sc.SaliencyError, weights_files.UploadGone) as exc:
        st.warning(md(exc, limit=None), icon=":material/upload_file:")
        return None
    _describe(choice, model)
    return model


def _submit(source: str, architecture: str) -> None:
    """Load what the form holds; on success it becomes the model in use, else the message is shown and
    the model in use stays (nothing the user had is lost)."""
    st.session_state.pop(state.CUSTOM_ERROR, None)
    st.session_state.pop(state.CUSTOM_DOWNLOAD, None)
    if not architecture:
        return
    mode = {"Pretrained": "default", "Random init": "random", "Checkpoint file": "file"}[
        str(st.session_state.get(state.CUSTOM_WEIGHTS))
    ]
    classes = int(st.session_state.get(state.CUSTOM_CLASSES) or 0) or None
    choice = CustomChoice(source, architecture, mode, classes)
    names = st.session_state.get(state.CUSTOM_NAMES)
    checkpoint = st.session_state.get(state.CUSTOM_CHECKPOINT)
    try:
        if names is not None:
            choice = replace(
                choice, categories=_keep_names(names.getvalue(), names.name), categories_name=names.name
            )
        options = {"num_classes": choice.num_classes, "categories": choice.categories}
        with st.spinner(f"Loading {choice.model_id}…"):
            if mode == "file":
                if checkpoint is None:
                    raise sc.InvalidWeights(
                        "Upload a checkpoint file, or choose pretrained or random weights."
                    )
                _, upload = weights_files.load(
                    choice.model_id, checkpoint.getvalue(), checkpoint.name, **options
                )
                choice = replace(choice, upload=upload)
            else:
                _get(choice)
    except (sc.SaliencyError, weights_files.UploadGone) as exc:
        st.session_state[state.CUSTOM_ERROR] = f"{choice.model_id} was not loaded: {exc}"
        if isinstance(exc, sc.WeightsUnavailable) and mode == "default":
            st.session_state[state.CUSTOM_DOWNLOAD] = choice  # offered below the message
        return
    st.session_state[state.CUSTOM_MODEL] = choice


def _adopt(choice: CustomChoice) -> None:
    """The downloaded model becomes the one in use."""
    st.session_state.pop(state.CUSTOM_ERROR, None)
    st.session_state.pop(state.CUSTOM_DOWNLOAD, None)
    st.session_state[state.CUSTOM_MODEL] = choice


def _keep_names(data: bytes, name: str) -> str:
    if len(data) > MAX_CLASS_FILE:
        raise sc.InvalidParameter(
            f"{name} is {len(data) / 2**20:.1f} MB; a class-names file may be at most 1 MB."
        )
    digest = hashlib.sha256(data).hexdigest()[:16]
    suffix = ".json" if name.lower().endswith(".json") else ".txt"
    path = weights_files.folder() / f"classes-{digest}{suffix}"
    weights_files.keep(path, data)  # in the private upload folder, never written through a link
    return str(path)


def _get(choice: CustomChoice) -> sc.LoadedModel:
    options = {"num_classes": choice.num_classes, "categories": choice.categories}
    if choice.upload is not None:
        return weights_files.get(choice.upload, **options)
    resources.engine()
    weights = None if choice.weights == "random" else "default"
    return sc.load_model(
        choice.model_id, weights=weights, **{k: v for k, v in options.items() if v is not None}
    )


def _describe(choice: CustomChoice, model: sc.LoadedModel) -> None:
    weights = {
        "default": "pretrained weights",
        "random": "random init",
        "file": f"weights from {md(choice.upload.name)}" if choice.upload else "a checkpoint",
    }[choice.weights]
    names = f" · names from {md(choice.categories_name)}" if choice.categories_name else ""
    st.caption(
        f"**{md(choice.model_id)}** · task: **{model.task}** · {len(model.categories)} classes · {weights}{names}"
    )
    warning = model.zero_head_warning()
    if warning:
        st.warning(warning, icon=":material/warning:")
    elif choice.weights == "random":
        st.warning(tasks.get(model.task).random_warning(), icon=":material/casino:")
