"""The app served once for all browser tests: `streamlit run` on a free port, stopped by its PID."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser import chromium, serve_app


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """The app served by `streamlit run` on a free port; stopped by its PID afterwards."""
    chromium()  # skip (or fail under .ci/run) before starting a server no browser can open
    with serve_app("streamlit.log") as url:
        yield url
