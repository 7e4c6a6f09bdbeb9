"""Benchmark: methods compared over many images — an evaluation's leaderboard with bootstrap intervals beside
the random-map baseline, and per-image rows that open in Explore."""

import streamlit as st

from ui import benchmark, shell

shell.setup("Benchmark")
st.title("Benchmark")
benchmark.page()
