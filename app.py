"""Saliency dashboard, Explore page (`streamlit run app.py`): one image, one model, one method at a time.

The other pages live in pages/; every page shares the sidebar (image, model, target) through ui.shell.
"""

import streamlit as st

from ui import explore, shell, view

shell.setup("Explore")
st.title("Explore")
current = view.require()
method, values, auto = explore.method_panel(current)
explore.result_panel(current, method, values, auto)
