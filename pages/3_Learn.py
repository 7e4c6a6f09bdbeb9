"""Learn: what each method computes, what its parameters do, what it costs and where it misleads."""

import streamlit as st

from ui import learn, shell, view

shell.setup("Learn")
st.title("Learn")
st.markdown(
    "A saliency map answers a precise question, and each method asks a different one. Pick a method to see "
    "its definition, its parameters, its cost and its known pitfalls, with a live example on the image and "
    "target chosen in the sidebar (a bundled sample by default)."
)
current = view.require()
with st.expander("All methods at a glance", icon=":material/table_rows:"):
    learn.overview(current)
method = learn.pick(current)
learn.section(current, method)
