"""Every session-state key of the dashboard, and keeping widget values alive across pages.

All keys are named here (constants, or small functions for families of keys), so that what a session holds
can be read in one place. Keys under the prefixes in `_KEEP_PREFIXES` are widget values (or bookkeeping that
follows them) and survive page switches; the others are plain session data.

Streamlit forgets a widget's value when a run does not draw that widget (e.g. the Explore page's method
picker while the Compare page is open). `keep_widget_values` re-stores the values under their keys at the
start of each run, which is the documented way to carry them across pages.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

# --- prefixes --------------------------------------------------------------------------------------------
SEL_PREFIX = "sel."  # the shared selection (sidebar)
EXPLORE_PREFIX = "explore."
DISPLAY_PREFIX = "disp."  # display settings (shared by Explore and Compare)
PARAM_PREFIX = "param."  # param.<method>.<name>
COMPARE_PREFIX = "compare."
EVALUATE_PREFIX = "evaluate."  # widgets of the Evaluate page
LEARN_PREFIX = "learn."
BENCHMARK_PREFIX = "bench."  # widgets of the Benchmark page
ACTION_PREFIX = (
    "act."  # buttons, uploaders, camera: Streamlit refuses assigned values for these, so never kept
)

# --- the shared selection (sidebar) ----------------------------------------------------------------------
IMAGE = f"{SEL_PREFIX}image"  # ImageChoice: the image in use
IMAGE_ERROR = f"{SEL_PREFIX}image_error"  # message of the last rejected image, shown until the next good one
SOURCE = f"{SEL_PREFIX}source"  # "Samples" | "Upload" | "Camera"
UPLOAD_ID = f"{SEL_PREFIX}upload_id"  # file id of the uploaded image last accepted (taken once)
CAMERA_ID = f"{SEL_PREFIX}camera_id"  # file id of the camera picture last accepted (taken once)
MODEL = f"{SEL_PREFIX}model"  # model id
WEIGHTS = f"{SEL_PREFIX}weights"  # {model id: "default" | "random" | "file"}
WEIGHTS_FILES = f"{SEL_PREFIX}weights_files"  # {model id: ui.sidebar.weights_files.Uploaded}
WEIGHTS_ERROR = f"{SEL_PREFIX}weights_error"  # {model id: why the last uploaded weights file was refused}
WEIGHTS_UPLOAD_IDS = f"{SEL_PREFIX}weights_upload_ids"  # {model id: file id of the weights file last taken}
TARGET = f"{SEL_PREFIX}target"  # index into the model's predictions, best first
BASE = f"{SEL_PREFIX}base"  # (image digest, model id, weights) the target was chosen for
KEEP_TARGET = f"{SEL_PREFIX}keep_target"  # a share link chose the target: keep it for the new image/model
TARGET_LABEL = f"{SEL_PREFIX}target_label"  # label of the chosen target (to name one that dropped out)
THRESHOLD = f"{SEL_PREFIX}threshold"  # detection / pose: the lowest score listed
KEYPOINT = f"{SEL_PREFIX}keypoint"  # pose: the keypoint's name
REGION_ON = f"{SEL_PREFIX}region_on"  # segmentation: restrict the class to a rectangle
REGION_X = f"{SEL_PREFIX}region_x"  # (x0, x1) in input pixels
REGION_Y = f"{SEL_PREFIX}region_y"  # (y0, y1)
REGION_DRAW = f"{ACTION_PREFIX}region.draw"  # the picture's plotly chart: the rectangle drawn on it
REGION_DRAWN = f"{SEL_PREFIX}region_drawn"  # signature of the drawing last applied to the sliders
REGION_LASSO = f"{SEL_PREFIX}region_lasso"  # (bounding box, mask) of a lasso: the region while it is the box
VIEW = f"{SEL_PREFIX}view"  # View of the current run (rebuilt by the sidebar every run)
# (model id, weights path, detail) while the chosen model's weights are missing; not a widget, so
# not under a kept prefix: the sidebar sets it again on every run.
MISSING_WEIGHTS = "sidebar.missing_weights"

# "Your model" (ui/sidebar/custom_model.py)
MODEL_SOURCE = f"{SEL_PREFIX}model_source"  # "Catalogue" | "Your model"
CUSTOM_FORM = "custom_model_form"  # the form's key (not a value)
CUSTOM_SOURCE = f"{SEL_PREFIX}custom.source"  # "timm" | "torchvision"
CUSTOM_WEIGHTS = f"{SEL_PREFIX}custom.weights"  # "Pretrained" | "Random init" | "Checkpoint file"
CUSTOM_CLASSES = f"{SEL_PREFIX}custom.classes"  # number of classes, 0: from the architecture or the file
CUSTOM_MODEL = f"{SEL_PREFIX}custom.model"  # CustomChoice of the model in use
CUSTOM_ERROR = f"{SEL_PREFIX}custom.error"  # why the last "Load" failed, shown until the next one
CUSTOM_DOWNLOAD = f"{ACTION_PREFIX}custom.download"  # CustomChoice waiting for its pretrained weights
CUSTOM_CHECKPOINT = f"{ACTION_PREFIX}custom.checkpoint"  # checkpoint uploader (read when Load is pressed)
CUSTOM_NAMES = f"{ACTION_PREFIX}custom.names"  # class-names uploader


def custom_architecture(source: str) -> str:
    """The architecture picked for a library (each library keeps its own)."""
    return f"{SEL_PREFIX}custom.arch.{source}"


def weights_upload(model_id: str) -> str:
    """The weights-file uploader of a model (an action widget: its file is read on the next run)."""
    return f"{ACTION_PREFIX}weights_file.{model_id}"


# --- per-session caches (not widgets) --------------------------------------------------------------------
DECODED = "images.decoded"  # {image digest: the decoded PIL image}, one entry
PREPARED = "view.prepared"  # {(digest, model id, weights): (model input, picture)}, one entry

# --- Explore -----------------------------------------------------------------------------------------------
METHOD = f"{EXPLORE_PREFIX}method"  # method id
FAMILY = f"{EXPLORE_PREFIX}family"  # family id of the method picker
PENDING = f"{EXPLORE_PREFIX}pending"  # key of a run the user asked for, until it finishes
REFERENCE_PENDING = f"{PENDING}.reference"  # the same for the salient-object reference map
CANCELLED = f"{EXPLORE_PREFIX}cancelled"  # set by the cancel button (of any map computation), shown once

# --- display (shared by Explore and Compare) ---------------------------------------------------------------
CMAP = f"{DISPLAY_PREFIX}cmap"
ALPHA = f"{DISPLAY_PREFIX}alpha"
SIGN = f"{DISPLAY_PREFIX}sign"
CLIP = f"{DISPLAY_PREFIX}clip"
ALPHA_BY_VALUE = f"{DISPLAY_PREFIX}alpha_by_value"
SHARED = f"{DISPLAY_PREFIX}shared"
STYLE = f"{DISPLAY_PREFIX}style"  # "paper" (as the method declares), "overlay", "gray" or "smoothed"
ENCODED = "display.encoded"  # SessionStore of encoded pictures and heatmap figures, by what they show

# --- method parameters -------------------------------------------------------------------------------------
PARAMS_DEFAULTED = (
    "params.defaulted"  # {widget key: the default it was given}: unchanged ones follow the view
)


def param(method_id: str, name: str) -> str:
    """A method parameter's widget: param.<method>.<name> (shared by every page)."""
    return f"{PARAM_PREFIX}{method_id}.{name}"


# --- results and bookkeeping -------------------------------------------------------------------------------
RESULTS = "results"  # SessionStore of the computed maps
COMPUTE_COUNT = "compute_count"  # maps computed by this session (the engine may still have had them cached)
SHARE_APPLIED = "share.applied"  # the share link in the URL was applied once
VIEW_REQUEST = "share.view_request"  # {session key: value} of a view asked for, set at the next run's start
JOB_WATCHER = "jobs.watcher"  # this session's id as a watcher of the engine's jobs (Cancel detaches it)
REQUESTS = "jobs.requests"  # {request key: (view, method, params)} lately keyed, to ask the engine about


def cancelled_run(pending_key: str) -> str:
    """The key of the run last cancelled under `pending_key`, so that it does not simply start again."""
    return f"{pending_key}.cancelled"


# --- Compare -----------------------------------------------------------------------------------------------
COMPARE_MODE = f"{COMPARE_PREFIX}mode"  # one of ui.compare.MODES
COMPARE_METHODS = f"{COMPARE_PREFIX}methods"  # method ids compared
COMPARE_SHOW = f"{COMPARE_PREFIX}show"  # "Overlay" | "Map only"
COMPARE_PENDING = f"{COMPARE_PREFIX}pending"  # keys of the maps the user asked for, until computed
COMPARE_SWEEP_METHOD = f"{COMPARE_PREFIX}sweep_method"  # the method swept over a parameter
COMPARE_TARGETS_METHOD = f"{COMPARE_PREFIX}targets_method"  # the method shown for several targets
COMPARE_TARGETS_K = f"{COMPARE_PREFIX}targets_k"  # how many of the top predictions it explains
COMPARE_DIFF_A = f"{COMPARE_PREFIX}diff_a"  # index of map A of the difference view
COMPARE_DIFF_B = f"{COMPARE_PREFIX}diff_b"  # index of map B


def compare_sweep_param(method_id: str) -> str:
    """The parameter swept for a method."""
    return f"{COMPARE_PREFIX}sweep_param.{method_id}"


def compare_sweep_values(method_id: str, name: str) -> str:
    """The values swept for a method's parameter (a list, or comma-separated text for numbers)."""
    return f"{COMPARE_PREFIX}sweep_values.{method_id}.{name}"


# --- Learn -------------------------------------------------------------------------------------------------
LEARN_METHOD = f"{LEARN_PREFIX}method"  # method id explained
LEARN_PENDING = f"{LEARN_PREFIX}pending"  # keys of the live example the user asked for

# --- Evaluate ----------------------------------------------------------------------------------------------
EVALUATE_SECTION = f"{EVALUATE_PREFIX}section"  # the open tab
EVALUATIONS = "evaluations.store"  # SessionStore of the evaluations (not a widget)
EVALUATIONS_CANCELLED = "evaluations.cancelled"  # set when a metric run was cancelled, shown once
EVALUATION_MASKS = "evaluations.masks"  # {(digest, model id): a sample's ground-truth mask}, one entry

_FAITH = f"{EVALUATE_PREFIX}faith."  # Faithfulness
FAITH_METHODS = f"{_FAITH}methods"
FAITH_STEPS = f"{_FAITH}steps"
FAITH_SUBSTRATE = f"{_FAITH}substrate"
FAITH_PENDING = f"{_FAITH}pending"  # key of the curves the user asked for

_LOC = f"{EVALUATE_PREFIX}loc."  # Localisation
LOC_METHODS = f"{_LOC}methods"
LOC_REGION = f"{_LOC}region"  # "Ground-truth mask" | "Box"
LOC_TOLERANCE = f"{_LOC}tolerance"  # pixels
LOC_BOX_FOR = f"{_LOC}box.for"  # the view key the box was last reset for
LOC_PENDING = f"{_LOC}pending"  # keys of the maps the user asked for
LOC_DRAW = f"{ACTION_PREFIX}loc.draw"  # the picture's plotly chart: its box / lasso selection
LOC_DRAWN = f"{_LOC}drawn"  # signature of the selection last applied to the box (applied once)
LOC_LASSO = f"{_LOC}lasso"  # (bounding box, mask) of the lasso drawn: the region while the box is its own


def loc_box(coordinate: str) -> str:
    """One of the box's number inputs: "x0", "y0", "x1" or "y1" (input pixels)."""
    return f"{_LOC}box.{coordinate}"


_SANITY = f"{EVALUATE_PREFIX}sanity."  # Sanity checks
SANITY_TEST = f"{_SANITY}test"  # "Cascading" | "Independent" | "Random logit"
SANITY_METHOD = f"{_SANITY}method"
SANITY_SEED = f"{_SANITY}seed"
SANITY_PENDING = f"{_SANITY}pending"


def sanity_stages(model_id: str) -> str:
    """The blocks of a model to randomise."""
    return f"{_SANITY}stages.{model_id}"


_AM = f"{EVALUATE_PREFIX}am."  # Activation maximisation
AM_OBJECTIVE = f"{_AM}objective"  # "Class score" | "Layer channel"
AM_START = f"{_AM}start"  # "Noise" | "Current image"
AM_CHANNEL = f"{_AM}channel"
AM_STEPS = f"{_AM}steps"
AM_LR = f"{_AM}lr"
AM_JITTER = f"{_AM}jitter"
AM_BLUR_SIGMA = f"{_AM}blur_sigma"
AM_BLUR_EVERY = f"{_AM}blur_every"
AM_SEED = f"{_AM}seed"
AM_PENDING = f"{_AM}pending"


def am_class(model_id: str) -> str:
    """The class maximised, per model."""
    return f"{_AM}class.{model_id}"


def am_layer(model_id: str) -> str:
    """The layer whose channel is maximised, per model."""
    return f"{_AM}layer.{model_id}"


# --- Benchmark ---------------------------------------------------------------------------------------------
BENCH_FOLDER = f"{BENCHMARK_PREFIX}folder"  # the evaluation folder picked under the root
BENCH_MODEL = f"{BENCHMARK_PREFIX}model"  # model of a scenes run
BENCH_METHODS = f"{BENCHMARK_PREFIX}methods"
BENCH_SCENES = f"{BENCHMARK_PREFIX}scenes"
BENCH_STEPS = f"{BENCHMARK_PREFIX}steps"
BENCH_METRIC = f"{BENCHMARK_PREFIX}metric"  # the leaderboard's sort and chart metric
BENCH_FILTER = f"{BENCHMARK_PREFIX}filter"  # methods shown in the per-image rows
BENCH_PENDING = f"{BENCHMARK_PREFIX}pending"  # the scenes run asked for (its folder name), until it ends
BENCH_CANCELLED = "benchmark.cancelled"  # set by the run's Cancel, shown once
BENCH_RESULT = "benchmark.result"  # ui.benchmark.load.Opened: the evaluation on show
BENCH_ERROR = "benchmark.error"  # why the last file or folder could not be opened, shown until the next
BENCH_UPLOAD = f"{ACTION_PREFIX}benchmark.upload"  # the per-image table uploader
BENCH_UPLOAD_ID = "benchmark.upload_id"  # file id of the upload last read (read once)
BENCH_OPENED = "benchmark.opened"  # (result id, row) last opened in Explore (a selection opens once)


def bench_rows(result_id: str) -> str:
    """The per-image table of one result (its row selection opens the row in Explore)."""
    return f"{ACTION_PREFIX}benchmark.rows.{result_id}"


# --- keeping widget values ---------------------------------------------------------------------------------
_KEEP_PREFIXES = (
    SEL_PREFIX,
    EXPLORE_PREFIX,
    DISPLAY_PREFIX,
    PARAM_PREFIX,
    COMPARE_PREFIX,
    EVALUATE_PREFIX,
    LEARN_PREFIX,
    BENCHMARK_PREFIX,
)


def keep_widget_values() -> None:
    """Re-store widget values so that pages which do not draw a widget do not reset it."""
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith(_KEEP_PREFIXES):
            st.session_state[key] = st.session_state[key]


def default(key: str, value: Any, allowed: Any = None) -> Any:
    """Set `key` to `value` unless it already holds an allowed value; return what it holds.

    Widgets then take their value from the state (never also from a `value=` argument, which Streamlit
    warns about).
    """
    current = st.session_state.get(key)
    if key not in st.session_state or (allowed is not None and current not in allowed):
        st.session_state[key] = value
    return st.session_state[key]


def bump(key: str) -> int:
    """Increment a counter in the session state."""
    st.session_state[key] = int(st.session_state.get(key, 0)) + 1
    return st.session_state[key]


# Settings: the device picker (set from the engine on every run, so not kept) and why a move failed.
DEVICE = "settings.device"
DEVICE_ERROR = "settings.device_error"
DOWNLOAD = f"{ACTION_PREFIX}download.pending"  # model id whose weights download runs now (None: none)
DOWNLOAD_CANCELLED = f"{ACTION_PREFIX}download.cancelled"  # set by the download's Cancel, shown once
DOWNLOAD_ERROR = f"{ACTION_PREFIX}download.error"  # {model id: why its last download failed}
