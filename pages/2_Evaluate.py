"""Evaluate: which map to believe? Deletion/insertion curves, pointing games, sanity checks and activation
maximisation for the current image, model and target; every metric goes into the JSON card."""

import streamlit as st

from ui import evaluate, shell, view

shell.setup("Evaluate")
st.title("Evaluate")
evaluate.page(view.require())
