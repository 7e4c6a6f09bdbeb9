"""The shared sidebar: image source, model (with weights status) and target; builds the current View.

Every page runs under it (app.py draws it before the page), and its choices live in st.session_state, so
they carry across pages.
"""

from __future__ import annotations

import streamlit as st

import saliency_core as sc
from ui import images, resources, state
from ui.view import View, prepare, top_k

SOURCES = ["Samples", "Upload", "Camera"]
RANDOM_WARNING = "Random weights: maps are meaningless except for teaching."


def render() -> View | None:
    """Draw the sidebar and store the resulting view (or None) for the page."""
    view = None
    with st.sidebar:
        source = _image_section()
        choice = images.current()
        model = _model_section()
        if choice is not None and model is not None:
            view = _target_section(choice, model)
        if source == "Samples":
            # Last, so that model and target stay in sight above the (long) gallery.
            _gallery(resources.samples())
    st.session_state[state.VIEW] = view
    return view


# --- image ---------------------------------------------------------------------------------------------
def sample_label(sample: sc.Sample) -> str:
    """A label that fits under a thumbnail: the shape and scene number, or the photo's first word."""
    if sample.kind == "synthetic" and sample.label:
        number = sample.id.rsplit("_", 1)[-1].lstrip("0") or "0"
        return f"{sample.label} {number}"
    return sample.id.split("_")[0]


def _image_section() -> str:
    st.subheader("Image")
    samples = resources.samples()
    if images.current() is None and samples:
        images.use_sample(samples[0].id)  # start on a synthetic scene the demo model knows
    state.default(state.SOURCE, SOURCES[0], allowed=SOURCES)
    source = st.segmented_control(
        "Image source", SOURCES, key=state.SOURCE, required=True, label_visibility="collapsed"
    )
    if source == "Upload":
        _uploader()
    elif source == "Camera":
        _camera()
    error = st.session_state.get(state.IMAGE_ERROR)
    if error:
        st.error(error, icon=":material/broken_image:")
    choice = images.current()
    if choice is not None:
        st.caption(f"In use: **{choice.name}** ({choice.width}×{choice.height}, {choice.source})")
    elif source == "Samples":
        st.caption("Pick a sample from the gallery below.")
    return str(source)


def _gallery(samples: list[sc.Sample]) -> None:
    st.subheader("Samples")
    if not samples:
        st.info("No bundled samples are installed; upload an image instead.")
        return
    current = images.current()
    columns = st.columns(3, gap="small")
    for i, sample in enumerate(samples):
        with columns[i % 3]:
            thumb = resources.thumbnail(sample.id)
            if thumb is not None:
                st.image(thumb, width="stretch")
            chosen = current is not None and current.sample_id == sample.id
            label = sample_label(sample)
            st.button(
                f":primary[**{label}**]" if chosen else label,
                key=f"{state.ACTION_PREFIX}sample.{sample.id}",
                help=sample.title + (f" — {sample.credit}" if sample.credit else ""),
                type="tertiary",
                width="stretch",
                on_click=images.use_sample,
                args=(sample.id,),
            )


def _uploader() -> None:
    upload = st.file_uploader(
        "Upload an image",
        type=images.UPLOAD_TYPES,
        key=f"{state.ACTION_PREFIX}upload",
        help="PNG, JPEG, WebP, BMP, TIFF or GIF (first frame), up to 25 MB.",
    )
    if upload is not None and st.session_state.get("sel.upload_id") != upload.file_id:
        st.session_state["sel.upload_id"] = upload.file_id
        images.accept(upload.getvalue(), upload.name, "upload")


def _camera() -> None:
    shot = st.camera_input("Take a picture", key=f"{state.ACTION_PREFIX}camera")
    if shot is not None and st.session_state.get("sel.camera_id") != shot.file_id:
        st.session_state["sel.camera_id"] = shot.file_id
        images.accept(shot.getvalue(), "camera picture", "camera")


# --- model ---------------------------------------------------------------------------------------------
def _model_label(info: sc.ModelInfo) -> str:
    mark = "" if info.weights_available else " — weights missing"
    return f"{info.title}{mark}"


def _use_model(model_id: str, weights: str = "default") -> None:
    st.session_state[state.MODEL] = model_id
    st.session_state.setdefault(state.WEIGHTS, {})[model_id] = weights


def _weights_mode(model_id: str) -> str:
    return st.session_state.setdefault(state.WEIGHTS, {}).get(model_id, "default")


def _model_section() -> sc.LoadedModel | None:
    st.subheader("Model")
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
    weights = _weights_mode(model_id)
    status = (
        "random weights" if weights == "random" else ("weights ✓" if info.weights_available else "no weights")
    )
    st.caption(f"Task: **{info.task}** · {info.num_classes} classes · {status}")
    if weights == "default" and not info.weights_available:
        _missing_weights(info, info.weights_path)
        return None
    try:
        with st.spinner(f"Loading {info.title}…"):
            model = resources.load_model(model_id, weights)
    except sc.WeightsUnavailable as exc:
        _missing_weights(info, str(_join(exc.folder, exc.file_name)), detail=str(exc))
        return None
    except sc.SaliencyError as exc:
        st.error(f"{info.title} could not be loaded: {exc}")
        _offer_demo(info)
        return None
    if weights == "random":
        st.warning(RANDOM_WARNING, icon=":material/casino:")
        st.button(
            "Back to trained weights",
            key=f"{state.ACTION_PREFIX}pretrained",
            on_click=_use_model,
            args=(model_id, "default"),
        )
    return model


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder else name


def _missing_weights(info: sc.ModelInfo, path: str, detail: str = "") -> None:
    folder, _, name = path.rpartition("/")
    st.warning(
        f"**{info.title} has no weights on this machine.** It needs the file `{name}` in the folder "
        f"`{folder}`. Download it on a machine with internet access and put it there "
        "(or set TORCH_HOME to a folder whose hub/checkpoints holds it).",
        icon=":material/cloud_off:",
    )
    if detail:
        st.caption(detail)
    _offer_demo(info)
    st.button(
        "Use random weights (teaching only)",
        key=f"{state.ACTION_PREFIX}random",
        help=RANDOM_WARNING,
        on_click=_use_model,
        args=(info.id, "random"),
        width="stretch",
    )
    if info.id != resources.DEMO_MODEL:
        st.button(
            "Try to download the weights",
            key=f"{state.ACTION_PREFIX}download",
            on_click=_try_download,
            args=(info.id,),
            width="stretch",
        )


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


def _try_download(model_id: str) -> None:
    try:
        resources.load_model(model_id, "default")
    except sc.SaliencyError as exc:
        st.toast(f"Download failed: {exc}", icon=":material/cloud_off:")
        return
    resources.models.clear()


# --- target --------------------------------------------------------------------------------------------
def _target_section(choice: images.ImageChoice, model: sc.LoadedModel) -> View | None:
    st.subheader("Explain")
    info = resources.model_info(model.id)
    if info is None:
        return None
    try:
        x, picture = prepare(choice, model)
        predictions = model.predict(x, top_k=top_k(info))
    except sc.SaliencyError as exc:
        st.error(f"The model cannot run on this image: {exc}")
        return None
    if not predictions:
        st.info("The model predicts nothing on this image.")
    base = (choice.digest, model.id, model.weights)
    if st.session_state.get("sel.base") != base:
        # A new image or model: its predictions differ, so start from the top one (unless a link chose).
        st.session_state["sel.base"] = base
        if not st.session_state.pop("sel.keep_target", False):
            st.session_state[state.TARGET] = 0
    options = list(range(len(predictions)))
    state.default(state.TARGET, 0, allowed=options)
    index = 0
    if options:
        index = st.selectbox(
            "Target",
            options,
            key=state.TARGET,
            format_func=lambda i: _target_label(predictions[i], i),
            help=f"What to explain: the model's {len(options)} best predictions on this image, best first.",
        )
    return View(
        image=choice,
        info=info,
        weights=_weights_mode(model.id),
        model=model,
        x=x,
        picture=picture,
        predictions=predictions,
        target_index=int(index or 0),
    )


def _target_label(target: sc.Target, rank: int) -> str:
    score = f" — {target.score:.1%}" if target.score is not None else ""
    return f"{rank + 1}. {target.describe()}{score}"
