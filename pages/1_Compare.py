"""Compare: several methods, one method over a parameter, or one method for several targets, side by side."""

import streamlit as st

from ui import compare, display, results, shell, state, view
from ui.text import md

shell.setup("Compare")
st.title("Compare")
current = view.require()
st.caption(
    f"Target: **{md(current.target_label)}** · model: {md(current.info.title)} · image: {md(current.image.name)}"
)

variants = compare.choose_variants(current)
shown = display.controls(show_shared=True)
state.default(state.COMPARE_SHOW, "Overlay", allowed=["Overlay", "Map only"])
show = st.segmented_control("Show", ["Overlay", "Map only"], key=state.COMPARE_SHOW, required=True)
results.show_cancelled()
if not variants:
    st.info("Choose at least one method (or value) to compare.")
    st.stop()

found = compare.compute(current, variants)
kept = [(v, r) for v, r in zip(variants, found) if r is not None]
if not kept:
    st.stop()
labels, done, views = [v.label for v, _ in kept], [r for _, r in kept], [v.view for v, _ in kept]

compare.grid(current, labels, done, shown, overlay=show == "Overlay", views=views)
st.subheader("Agreement")
agreement = compare.agreement_section(labels, done)
if len(done) >= 2:
    st.subheader("Difference")
    compare.difference_section(current, labels, done, shown)
st.divider()
compare.exports(current, labels, done, shown, show == "Overlay", agreement, views)
