"""The Evaluate page: which map to believe? Faithfulness curves, localisation, sanity checks and activation
maximisation in tabs (only the open one runs), then the JSON card of everything evaluated for the view.

One module per tab (faithfulness, localisation, sanity, actmax), `export` for the card and `common` for what
they share; the evaluations themselves live in ui.cards.
"""

from __future__ import annotations

import streamlit as st

from ui import state
from ui.evaluate import actmax, export, faithfulness, localisation, sanity
from ui.text import md
from ui.view import View

SECTIONS = {
    "Faithfulness": faithfulness.section,
    "Localisation": localisation.section,
    "Sanity checks": sanity.section,
    "Activation maximisation": actmax.section,
}


def page(view: View) -> None:
    st.caption(
        f"Target: **{md(view.target_label)}** · model: {md(view.info.title)} · image: {md(view.image.name)}"
    )
    state.default(state.EVALUATE_SECTION, next(iter(SECTIONS)), allowed=list(SECTIONS))
    tabs = st.tabs(list(SECTIONS), key=state.EVALUATE_SECTION, on_change="rerun")
    for tab, draw in zip(tabs, SECTIONS.values()):
        if tab.open:
            with tab:
                draw(view)
    st.divider()
    st.subheader("Export")
    export.section(view)
