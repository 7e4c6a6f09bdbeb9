"""The shared sidebar: image source, model (with weights status) and target; builds the current View.

Every page runs under it (app.py draws it before the page), and its choices live in st.session_state, so
they carry across pages.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import saliency_core as sc
from saliency_core import viz
from ui import images, resources, state, weights_files
from ui.view import View, prediction_picture, prepare, top_k

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
        max_upload_size=images.MAX_BYTES // 2**20,
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
def random_warning(task: str) -> str:
    """What random weights mean for a task (detectors find nothing useful, if anything at all)."""
    if task in ("detection", "keypoints"):
        return (
            RANDOM_WARNING + " A random-init detector detects nothing useful: usually nothing at all above "
            "the score threshold, or boxes that mean nothing."
        )
    return RANDOM_WARNING


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


def _weights_key(model_id: str) -> str:
    """The view's weights: "default", "random" or "file:<digest prefix>"."""
    mode = _weights_mode(model_id)
    upload = _uploaded(model_id)
    return upload.mode if mode == "file" and upload is not None else mode


def _status(info: sc.ModelInfo, mode: str) -> str:
    if mode == "random":
        return "random weights"
    if mode == "file":
        upload = _uploaded(info.id)
        return f"weights from {upload.name}" if upload is not None else "no weights"
    return "weights ✓" if info.weights_available else "no weights"


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
        st.error(f"{info.title} could not be loaded: {exc}", icon=":material/error:")
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
        st.warning(str(exc), icon=":material/upload_file:")
        _weights_uploader(info)
        st.button(
            "Back to the default weights",
            key=f"{state.ACTION_PREFIX}pretrained",
            on_click=_use_model,
            args=(info.id, "default"),
        )
        return None
    st.success(
        f"Weights from your file **{upload.name}** (sha256 {upload.sha256[:12]}…).", icon=":material/check:"
    )
    with st.expander("Use another weights file", icon=":material/upload_file:"):
        _weights_uploader(info)
        st.button(
            "Back to the default weights",
            key=f"{state.ACTION_PREFIX}pretrained",
            on_click=_use_model,
            args=(info.id, "default"),
        )
    return model


def _upload_key(model_id: str) -> str:
    return f"{state.ACTION_PREFIX}weights_file.{model_id}"


def _weights_uploader(info: sc.ModelInfo) -> None:
    """The weights-file uploader (its file is taken by `_receive_weights_file` on the next run)."""
    st.file_uploader(
        f"Weights file for {info.title} (.pth or .safetensors)",
        type=weights_files.TYPES,
        key=_upload_key(info.id),
        max_upload_size=weights_files.MAX_MB,
        help="A state dict saved with torch.save, or a .safetensors file. It is read as data only "
        "(pickled code is refused), checked against the architecture, and not kept on disk.",
    )
    error = st.session_state.get(state.WEIGHTS_ERROR, {}).get(info.id)
    if error:
        st.error(error, icon=":material/error:")


def _receive_weights_file(info: sc.ModelInfo) -> None:
    upload = st.session_state.get(_upload_key(info.id))
    seen = st.session_state.setdefault("sel.weights_upload_ids", {})
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
    folder, _, name = path.rpartition("/")
    if info.weights_help:
        where = info.weights_help[:1].upper() + info.weights_help[1:]
        st.warning(
            f"**{info.title} has no weights on this machine.** It needs the file `{name}` in the folder "
            f"`{folder}`, or upload a copy below. {where}.",
            icon=":material/cloud_off:",
        )
        _weights_uploader(info)
    else:
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
        help=random_warning(info.task),
        on_click=_use_model,
        args=(info.id, "random"),
        width="stretch",
    )
    if info.id != resources.DEMO_MODEL and not info.weights_help:
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
THRESHOLD_DEFAULT = 0.5
_PER_BASE = (state.KEYPOINT, state.REGION_ON, state.REGION_X, state.REGION_Y)  # reset for a new image/model


def _target_section(choice: images.ImageChoice, model: sc.LoadedModel) -> View | None:
    st.subheader("Explain")
    info = resources.model_info(model.id)
    if info is None:
        return None
    task = model.task
    threshold = 0.0
    if task in ("detection", "keypoints"):
        state.default(state.THRESHOLD, THRESHOLD_DEFAULT)
        threshold = float(
            st.slider(
                "Score threshold",
                0.05,
                0.95,
                step=0.05,
                key=state.THRESHOLD,
                help=f"{'Detections' if task == 'detection' else 'Persons'} scoring below this are not "
                "listed or drawn (the model itself drops those below 0.05).",
            )
        )
    try:
        x, picture = prepare(choice, model)
        predictions = model.predict(x, top_k=top_k(info), threshold=threshold)
    except sc.SaliencyError as exc:
        st.error(f"The model cannot run on this image: {exc}")
        return None
    weights = _weights_key(model.id)
    base = (choice.digest, model.id, weights)
    lost = ""
    if st.session_state.get("sel.base") != base:
        # A new image or model: its predictions differ, so start from the top one (unless a link chose).
        st.session_state["sel.base"] = base
        if not st.session_state.pop("sel.keep_target", False):
            st.session_state[state.TARGET] = 0
            for key in _PER_BASE:
                st.session_state.pop(key, None)
    else:
        previous = st.session_state.get(state.TARGET)
        if isinstance(previous, int) and previous >= len(predictions):
            lost = st.session_state.get("sel.target_label", "")
    options = list(range(len(predictions)))
    state.default(state.TARGET, 0, allowed=options)
    index = 0
    problem = ""
    if options:
        index = int(
            st.selectbox(
                _picker_title(task),
                options,
                key=state.TARGET,
                format_func=lambda i: _target_label(predictions[i], i, task),
                help=_picker_help(task, len(options)),
            )
            or 0
        )
    else:
        problem = _nothing_predicted(task, threshold, weights)
    if lost:
        what = "person" if task == "keypoints" else "detection"
        instead = "Now explaining the best one; pick another" if predictions else "Lower the threshold"
        st.warning(
            f"The chosen {what} ({lost}) is no longer listed: it scores below the threshold "
            f"{threshold:.2f}. {instead}.",
            icon=":material/search_off:",
        )
    chosen, region = None, None
    if predictions and task == "keypoints":
        chosen = _keypoint_picker(predictions[index])
    elif predictions and task == "segmentation":
        chosen, region, problem = _region_picker(predictions[index], picture.shape[:2])
    view = View(
        image=choice,
        info=info,
        weights=weights,
        model=model,
        x=x,
        picture=picture,
        predictions=predictions,
        target_index=index,
        chosen=chosen,
        problem=problem,
        region=region,
        threshold=threshold if task in ("detection", "keypoints") else None,
    )
    if problem:
        st.warning(problem, icon=":material/search_off:")
    if view.target is not None:
        st.session_state["sel.target_label"] = view.target_label
    else:
        st.session_state.pop("sel.target_label", None)
    if task != "classification":
        st.image(
            prediction_picture(view),
            caption=_picture_caption(task, len(predictions)),
            width="stretch",
        )
    return view


def _picker_title(task: str) -> str:
    return {
        "detection": "Detection",
        "keypoints": "Person",
        "segmentation": "Class",
        "salient_object": "Salient region",
    }.get(task, "Target")


def _picker_help(task: str, n: int) -> str:
    if task == "detection":
        return (
            f"What to explain: one of the {n} detections above the threshold, best first (its class score)."
        )
    if task == "keypoints":
        return f"Whose keypoint to explain: one of the {n} persons above the threshold, best first."
    if task == "segmentation":
        return (
            f"What to explain: one of the {n} classes present, largest first, summed over its predicted mask "
            "(its share of the image, and p: its mean probability there)."
        )
    if task == "salient_object":
        return (
            "The region the model predicts as salient (probability above 0.5), summed over: its share of "
            "the image, and p: its mean probability."
        )
    return f"What to explain: the model's {n} best predictions on this image, best first."


def _picture_caption(task: str, n: int) -> str:
    return {
        "detection": f"{n} detections; the chosen one highlighted",
        "keypoints": f"{n} persons; the chosen one's skeleton and keypoint",
        "segmentation": "The chosen class's predicted mask",
        "salient_object": "The predicted salient region",
    }.get(task, "Predictions")


def _nothing_predicted(task: str, threshold: float, weights: str) -> str:
    note = " (random weights detect nothing useful)" if weights == "random" else ""
    if task == "detection":
        return (
            f"No detection scores {threshold:.2f} or more on this image{note}: there is nothing to explain. "
            "Lower the score threshold, or try another image."
        )
    if task == "keypoints":
        return (
            f"No person scores {threshold:.2f} or more on this image{note}: there is nothing to explain. "
            "Lower the score threshold, or try an image with people."
        )
    if task == "salient_object":
        return (
            "The model predicts no salient region on this image (no pixel with probability above 0.5): "
            "there is nothing to explain."
        )
    return "The model predicts nothing on this image, so there is nothing to explain."


def _target_label(target: sc.Target, rank: int, task: str = "classification") -> str:
    if task == "detection":
        x0, y0 = (round(float(v)) for v in target.box[:2])
        return f"{rank + 1}. {target.label} — {target.score:.2f} (at {x0}, {y0})"
    if task == "keypoints":
        score = getattr(target, "person_score", None)
        return f"{target.person} — {score:.2f}" if score is not None else target.person
    if task in ("segmentation", "salient_object") and target.mask is not None:
        share = float(viz.as_map(target.mask).mean())
        score = f" (p {target.score:.2f})" if target.score is not None else ""
        name = f"{rank + 1}. {target.label}" if task == "segmentation" else "region"
        return f"{name} — {share:.0%}{score}"
    score = f" — {target.score:.1%}" if target.score is not None else ""
    return f"{rank + 1}. {target.describe()}{score}"


# --- keypoints and regions ---------------------------------------------------------------------------------
def _keypoint_picker(person: sc.Target) -> sc.Target:
    names = list(person.keypoint_names)
    state.default(state.KEYPOINT, person.keypoint_name, allowed=names)
    logits = viz.to_numpy(person.keypoints)[:, 2] if person.keypoints is not None else None
    name = st.selectbox(
        "Keypoint",
        names,
        key=state.KEYPOINT,
        format_func=lambda n: (
            n.replace("_", " ") + (f" (logit {logits[names.index(n)]:.1f})" if logits is not None else "")
        ),
        help="Which of the person's 17 COCO keypoints to explain: its heatmap logit at the predicted "
        "location. The most confident keypoint is chosen first.",
    )
    return person.with_keypoint(name)


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask > 0.5)
    if not len(xs):
        return 0, 0, mask.shape[1], mask.shape[0]
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _valid_range(value: object, hi: int) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
        and 0 <= value[0] < value[1] <= hi
    )


REGION_HELP = (
    "Explain the class only inside a rectangle: the target becomes the class's logits summed over the "
    "pixels that are inside the rectangle and predicted as this class (rectangle ∧ predicted mask). "
    "A rectangle around one of two objects of a class thus explains that one. Pixels the model gives to "
    "another class do not count, so a rectangle holding none of this class has nothing to explain."
)


def _region_picker(
    target: sc.Target, size: tuple[int, int]
) -> tuple[sc.Target | None, tuple[int, int, int, int] | None, str]:
    """(the class restricted to a rectangle, the rectangle, a problem) or (None, None, "") when off."""
    h, w = size
    on = st.toggle("Only inside a rectangle", key=state.REGION_ON, help=REGION_HELP)
    if not on:
        return None, None, ""
    predicted = viz.as_map(target.mask) if target.mask is not None else np.ones((h, w), np.float32)
    x0, y0, x1, y1 = _bounding_box(predicted)
    if not _valid_range(st.session_state.get(state.REGION_X), w):
        st.session_state[state.REGION_X] = (x0, x1)
    if not _valid_range(st.session_state.get(state.REGION_Y), h):
        st.session_state[state.REGION_Y] = (y0, y1)
    xs = st.slider("Rectangle x (pixels)", 0, w, key=state.REGION_X, help="Left and right edges.")
    ys = st.slider("Rectangle y (pixels)", 0, h, key=state.REGION_Y, help="Top and bottom edges.")
    rect = (int(xs[0]), int(ys[0]), int(xs[1]), int(ys[1]))
    inside = np.zeros((h, w), np.float32)
    inside[rect[1] : rect[3], rect[0] : rect[2]] = 1.0
    region = (predicted > 0.5).astype(np.float32) * inside
    if not region.any():
        problem = str(
            sc.TargetNotFound(
                f"Nothing to explain: no pixel inside the rectangle ({rect[0]}, {rect[1]}, {rect[2]}, "
                f"{rect[3]}) is predicted as '{target.label}'. Move the rectangle over the class's mask "
                "(outlined on the picture) or turn the rectangle off."
            )
        )
        return None, rect, problem
    share = float(region.mean())
    restricted = sc.ClassTarget(
        int(target.index),
        label=f"{target.label} inside ({rect[0]}, {rect[1]}, {rect[2]}, {rect[3]}), {share:.0%} of the image",
        score=target.score,
        mask=region,
    )
    return restricted, rect, ""
