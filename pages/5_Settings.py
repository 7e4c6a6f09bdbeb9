"""Settings and status: device, caches, weights of every model, plugins, this session, versions."""

import streamlit as st

from ui import shell, status
from ui.sidebar import model

shell.setup("Settings")
st.title("Settings and status")
model.missing_panel()  # the chosen model's missing weights, with what to do (as on the other pages)
status.device()
status.cache()
status.weights()
status.plugins()
status.session()
status.versions()
