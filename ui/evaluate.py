"""The Evaluate page: which map to believe? Faithfulness curves, localisation, sanity checks and activation
maximisation in tabs (only the open one runs), then the JSON card of everything evaluated for the view."""

from __future__ import annotations

import streamlit as st

from ui import (
    evaluate_actmax,
    evaluate_export,
    evaluate_faithfulness,
    evaluate_localisation,
    evaluate_sanity,
    state,
)
from ui import evaluate_common as common
from ui.view import View

SECTION = f"{common.PREFIX}section"
SECTIONS = {
    "Faithfulness": evaluate_faithfulness.section,
    "Localisation": evaluate_localisation.section,
    "Sanity checks": evaluate_sanity.section,
    "Activation maximisation": evaluate_actmax.section,
}


def page(view: View) -> None:
    st.caption(f"Target: **{view.target_label}** · model: {view.info.title} · image: {view.image.name}")
    state.default(SECTION, next(iter(SECTIONS)), allowed=list(SECTIONS))
    tabs = st.tabs(list(SECTIONS), key=SECTION, on_change="rerun")
    for tab, draw in zip(tabs, SECTIONS.values()):
        if tab.open:
            with tab:
                draw(view)
    st.divider()
    st.subheader("Export")
    evaluate_export.section(view)
