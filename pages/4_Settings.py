"""Settings and status: device, caches, weights of every model, plugins, this session, versions."""

import streamlit as st

from ui import shell, status

shell.setup("Settings")
st.title("Settings and status")
status.device()
status.cache()
status.weights()
status.plugins()
status.session()
status.versions()
