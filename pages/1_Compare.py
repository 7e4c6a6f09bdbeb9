"""Compare: several methods, or one method over a parameter, side by side on the same image and target."""

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
pairs = [(v.label, r) for v, r in zip(variants, found) if r is not None]
if not pairs:
    st.stop()
labels, done = [p[0] for p in pairs], [p[1] for p in pairs]

compare.grid(current, labels, done, shown, overlay=show == "Overlay")
st.subheader("Agreement")
agreement = compare.agreement_section(labels, done)
if len(done) >= 2:
    st.subheader("Difference")
    compare.difference_section(current, labels, done, shown)
st.divider()
compare.exports(current, labels, done, shown, show == "Overlay", agreement)
