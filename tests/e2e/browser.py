"""Helpers for the browser tests: finding Chromium, waiting for Streamlit, saving screenshots."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
ARTIFACTS = ROOT / ".e2e_artifacts"  # the server log, for when something goes wrong (git-ignored)
REQUIRE_ENV = "SALIENCY_REQUIRE_E2E"  # set by .ci/run: a missing Chromium fails instead of skipping
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    message = (
        "Chromium is not installed, so the browser tests are skipped. To run them, install Debian's package "
        "(`apt-get install chromium`). .ci/run installs it and sets SALIENCY_REQUIRE_E2E=1, which turns this "
        "skip into a failure, so CI never passes with them skipped."
    )
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_app(log_name: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`streamlit run app.py` on a free loopback port until healthy (its log in ARTIFACTS/log_name);
    yields its URL and stops it by its PID afterwards."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / log_name).open("w")
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start; see {ARTIFACTS / log_name}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def variance(png: bytes) -> float:
    with Image.open(io.BytesIO(png)) as image:
        return float(np.asarray(image.convert("L"), dtype=np.float32).std())


def save_small(png: bytes, name: str) -> Path:
    """A screenshot at most 1000 px wide, palette-compressed.

    It goes to docs/screenshots/ when missing there or when SALIENCY_UPDATE_SCREENSHOTS=1, else to
    .e2e_artifacts/, so that test runs do not rewrite the README's pictures (their timings change each run).
    """
    target = SCREENSHOTS / name
    if target.exists() and os.environ.get("SALIENCY_UPDATE_SCREENSHOTS") != "1":
        target = ARTIFACTS / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(io.BytesIO(png)) as image:
        image = image.convert("RGB")
        if image.width > 1000:
            image = image.resize((1000, round(image.height * 1000 / image.width)), Image.Resampling.LANCZOS)
        image.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    return target


def wait_idle(page) -> None:
    """Wait until the script run an action started is over (Streamlit flags its state on the app element)."""
    from playwright.sync_api import expect

    app = page.get_by_test_id("stApp")
    with contextlib.suppress(AssertionError):  # a short run may be over before we look
        expect(app).to_have_attribute("data-test-script-state", "running", timeout=1500)
    expect(app).to_have_attribute("data-test-script-state", "notRunning")
