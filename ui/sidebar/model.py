"""Sidebar: the model picker, its weights status, missing-weights help and weights-file uploads."""

from __future__ import annotations

import streamlit as st

import saliency_core as sc
from ui import resources, state, tasks
from ui.sidebar import custom_model, weights_files
from ui.text import md
from ui.widgets import download


def random_warning(task: str) -> str:
    """What random weights mean for a task (detectors find nothing useful, if anything at all)."""
    return tasks.get(task).random_warning()


def _model_label(info: sc.ModelInfo) -> str:
    mark = "" if info.weights_available else " — weights missing"
    return f"{info.title}{mark}"


def _use_model(model_id: str, weights: str = "default") -> None:
    st.session_state[state.MODEL] = model_id
    st.session_state.setdefault(state.WEIGHTS, {})[model_id] = weights


def _weights_mode(model_id: str) -> str:
    """ "default" | "random" | "file" (a weights file the user uploaded)."""
    return st.session_state.setdefault(state.WEIGHTS, {}).get(model_id, "default")


def _uploaded(model_id: str) -> weights_files.Uploaded | None:
    return st.session_state.setdefault(state.WEIGHTS_FILES, {}).get(model_id)


def weights_key(model_id: str) -> str:
    """The view's weights: "default", "random", "file:<digest prefix>", or for "your model" its options."""
    custom = custom_model.current()
    if custom is not None and custom.model_id == model_id and _source() == SOURCES[1]:
        return custom.weights_key
    mode = _weights_mode(model_id)
    upload = _uploaded(model_id)
    return upload.mode if mode == "file" and upload is not None else mode


def _status(info: sc.ModelInfo, mode: str) -> str:
    if mode == "random":
        return "random weights"
    if mode == "file":
        upload = _uploaded(info.id)
        return f"weights from {upload.name}" if upload is not None else "no weights"
    if info.weights_available and not info.weights_path:
        return "weights made by its builder"  # a plugin's model with no weights file of its own
    return "weights ✓" if info.weights_available else "no weights"


SOURCES = ["Catalogue", "Your model"]


def _source() -> str:
    return str(st.session_state.get(state.MODEL_SOURCE) or SOURCES[0])


def section() -> sc.LoadedModel | None:
    """The model picker; None when no model can be used right now (the reason is shown)."""
    st.subheader("Model")
    st.session_state.pop(state.MISSING_WEIGHTS, None)  # set again below while the weights are missing
    state.default(state.MODEL_SOURCE, SOURCES[0], allowed=SOURCES)
    source = st.segmented_control(
        "Model source",
        SOURCES,
        key=state.MODEL_SOURCE,
        required=True,
        label_visibility="collapsed",
        help="The catalogue (with plugins' models), or your model: any timm or torchvision architecture, "
        "with its pretrained weights, random init or your checkpoint.",
    )
    if source == SOURCES[1]:
        return custom_model.section()
    infos = resources.models()
    ids = [m.id for m in infos]
    if not ids:
        st.error("No models are registered.")
        return None
    state.default(state.MODEL, resources.DEMO_MODEL if resources.DEMO_MODEL in ids else ids[0], allowed=ids)
    by_id = {m.id: m for m in infos}
    model_id = st.selectbox(
        "Model",
        ids,
        key=state.MODEL,
        format_func=lambda i: _model_label(by_id[i]),
        label_visibility="collapsed",
    )
    info = by_id[model_id]
    if info.weights_help:
        _receive_weights_file(info)  # a file just uploaded becomes this model's weights
    mode = _weights_mode(model_id)
    st.caption(f"Task: **{info.task}** · {info.num_classes} classes · {_status(info, mode)}")
    if mode == "file":
        return _uploaded_model(info)
    if mode == "default" and not info.weights_available:
        _missing_weights(info, info.weights_path)
        return None
    try:
        with st.spinner(f"Loading {info.title}…"):
            model = resources.load_model(model_id, mode)
    except sc.WeightsUnavailable as exc:
        _missing_weights(info, str(_join(exc.folder, exc.file_name)), detail=str(exc))
        return None
    except sc.SaliencyError as exc:
        st.error(f"{md(info.title)} could not be loaded: {md(exc, limit=None)}", icon=":material/error:")
        _offer_demo(info)
        return None
    if mode == "random":
        st.warning(random_warning(info.task), icon=":material/casino:")
        st.button(
            "Back to trained weights",
            key=f"{state.ACTION_PREFIX}pretrained",
            on_click=_use_model,
            args=(model_id, "default"),
        )
    elif info.weights_help:
        with st.expander("Use another weights file", icon=":material/upload_file:"):
            _weights_uploader(info)
    return model


def _uploaded_model(info: sc.ModelInfo) -> sc.LoadedModel | None:
    upload = _uploaded(info.id)
    try:
        if upload is None:
            raise weights_files.UploadGone("No weights file was uploaded for this model. Upload one.")
        model = weights_files.get(upload)
    except weights_files.UploadGone as exc:
        st.warning(md(exc, limit=None), icon=":material/upload_file:")
        _weights_uploader(info)
        _back_to_default(info.id)
        return None
    st.success(
        f"Weights from your file **{md(upload.name)}** (sha256 {upload.sha256[:12]}…).",
        icon=":material/check:",
    )
    with st.expander("Use another weights file", icon=":material/upload_file:"):
        _weights_uploader(info)
        _back_to_default(info.id)
    return model


def _back_to_default(model_id: str) -> None:
    st.button(
        "Back to the default weights",
        key=f"{state.ACTION_PREFIX}pretrained",
        on_click=_use_model,
        args=(model_id, "default"),
    )


def _weights_uploader(info: sc.ModelInfo) -> None:
    """The weights-file uploader (its file is taken by `_receive_weights_file` on the next run)."""
    st.file_uploader(
        f"Weights file for {info.title} (.pth or .safetensors)",
        type=weights_files.TYPES,
        key=state.weights_upload(info.id),
        max_upload_size=weights_files.MAX_MB,
        help="A state dict saved with torch.save, or a .safetensors file. It is read as data only "
        "(pickled code is refused), checked against the architecture, and not kept on disk.",
    )
    error = st.session_state.get(state.WEIGHTS_ERROR, {}).get(info.id)
    if error:
        st.error(md(error, limit=None), icon=":material/error:")


def _receive_weights_file(info: sc.ModelInfo) -> None:
    upload = st.session_state.get(state.weights_upload(info.id))
    seen = st.session_state.setdefault(state.WEIGHTS_UPLOAD_IDS, {})
    if upload is None or seen.get(info.id) == upload.file_id:
        return
    seen[info.id] = upload.file_id
    errors = st.session_state.setdefault(state.WEIGHTS_ERROR, {})
    try:
        with st.spinner(f"Loading {upload.name}…"):
            _, found = weights_files.load(info.id, upload.getvalue(), upload.name)
    except sc.SaliencyError as exc:
        errors[info.id] = f"{upload.name} was not loaded: {exc}"
        return
    errors.pop(info.id, None)
    st.session_state.setdefault(state.WEIGHTS_FILES, {})[info.id] = found
    st.session_state.setdefault(state.WEIGHTS, {})[info.id] = "file"  # the model picker is drawn already


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder else name


def _missing_weights(info: sc.ModelInfo, path: str, detail: str = "") -> None:
    """Say in the sidebar that the weights are missing; the page's main pane shows why and what to do
    (`missing_panel`), where it is in sight rather than below the fold of the sidebar."""
    st.session_state[state.MISSING_WEIGHTS] = (info.id, path, detail)
    st.warning(
        f"**{md(info.title)} has no weights on this machine.** What you can do is shown on the page.",
        icon=":material/cloud_off:",
    )


def missing_panel() -> bool:
    """The reason the chosen model cannot be used and its actions (upload, download, the demo model,
    random weights), in the page's main pane; False when no model's weights are missing."""
    found = st.session_state.get(state.MISSING_WEIGHTS)
    info = resources.model_info(found[0]) if found else None
    if info is None:
        return False
    _, path, detail = found
    folder, _, name = path.rpartition("/")
    with st.container(border=True):
        if info.weights_help:
            where = info.weights_help[:1].upper() + info.weights_help[1:]
            st.warning(
                f"**{md(info.title)} has no weights on this machine.** It needs the file `{name}` in the "
                f"folder `{folder}`, or upload a copy below. {where}.",
                icon=":material/cloud_off:",
            )
            _weights_uploader(info)
        else:
            st.warning(
                f"**{md(info.title)} has no weights on this machine.** It needs the file `{name}` in the "
                f"folder `{folder}`. Download it on a machine with internet access and put it there "
                "(or set TORCH_HOME to a folder whose hub/checkpoints holds it).",
                icon=":material/cloud_off:",
            )
        if detail:
            st.caption(md(detail, limit=None))
        if info.id != resources.DEMO_MODEL and not info.weights_help:
            download.offer(info.id, info.title)
        _offer_demo(info)
        st.button(
            "Use random weights (teaching only)",
            key=f"{state.ACTION_PREFIX}random",
            help=random_warning(info.task),
            on_click=_use_model,
            args=(info.id, "random"),
            width="stretch",
        )
    return True


def _offer_demo(info: sc.ModelInfo) -> None:
    demo = resources.model_info(resources.DEMO_MODEL)
    if demo is None or info.id == resources.DEMO_MODEL:
        return
    st.button(
        "Use the bundled demo model",
        key=f"{state.ACTION_PREFIX}demo",
        type="primary",
        on_click=_use_model,
        args=(resources.DEMO_MODEL, "default" if demo.weights_available else "random"),
        width="stretch",
    )
