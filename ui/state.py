"""Session-state keys shared by every page, and keeping widget values alive across pages.

Streamlit forgets a widget's value when a run does not draw that widget (e.g. the Explore page's method
picker while the Compare page is open). `keep_widget_values` re-stores the values under their keys at the
start of each run, which is the documented way to carry them across pages.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

# The shared selection (sidebar).
IMAGE = "sel.image"  # ImageChoice: the image in use
IMAGE_ERROR = "sel.image_error"  # message of the last rejected image, shown until the next good one
SOURCE = "sel.source"  # "Samples" | "Upload" | "Camera"
MODEL = "sel.model"  # model id
WEIGHTS = "sel.weights"  # {model id: "default" | "random"}
TARGET = "sel.target"  # index into the model's predictions, best first
THRESHOLD = "sel.threshold"  # detection / pose: the lowest score listed
KEYPOINT = "sel.keypoint"  # pose: the keypoint's name
REGION_ON = "sel.region_on"  # segmentation: restrict the class to a rectangle
REGION_X = "sel.region_x"  # (x0, x1) in input pixels
REGION_Y = "sel.region_y"  # (y0, y1)
WEIGHTS_FILES = "sel.weights_files"  # {model id: weights_files.Uploaded}
WEIGHTS_ERROR = "sel.weights_error"  # {model id: why the last uploaded weights file was refused}
VIEW = "sel.view"  # View of the current run (rebuilt by the sidebar every run)

# Explore
METHOD = "explore.method"  # method id
FAMILY = "explore.family"  # family id of the method picker
PENDING = "explore.pending"  # key of a run the user asked for, until it finishes
CANCELLED = "explore.cancelled"  # set by the cancel button, shown once

# Display (shared by Explore and Compare)
CMAP = "disp.cmap"
ALPHA = "disp.alpha"
SIGN = "disp.sign"
CLIP = "disp.clip"
ALPHA_BY_VALUE = "disp.alpha_by_value"
SHARED = "disp.shared"

# Results and bookkeeping
RESULTS = "results"  # ResultStore
COMPUTE_COUNT = "compute_count"  # maps computed by this session (the engine may still have had them cached)
SHARE_APPLIED = "share.applied"  # the share link in the URL was applied once

PARAM_PREFIX = "param."  # param.<method>.<name>
COMPARE_PREFIX = "compare."

ACTION_PREFIX = (
    "act."  # buttons, uploaders, camera: Streamlit refuses assigned values for these, so never kept
)

EVALUATE_PREFIX = "evaluate."  # widgets of the Evaluate page

_KEEP_PREFIXES = ("sel.", "explore.", "disp.", PARAM_PREFIX, COMPARE_PREFIX, EVALUATE_PREFIX, "learn.")


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
