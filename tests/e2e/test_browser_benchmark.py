"""The Benchmark page in Chromium: a small run on generated scenes shows its progress, then the leaderboard
and its chart (saved as docs/screenshots/benchmark.png when missing); selecting a per-image row opens
Explore on that scene with the row's method."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import ARTIFACTS, BROWSER_ARGS, chromium, save_small, serve_app, variance, wait_idle

pytestmark = pytest.mark.e2e

VIEWPORT = {"width": 1400, "height": 1150}
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def bench_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app on a free port with its evaluation root in a temporary folder; stopped by its PID."""
    chromium()
    root = tmp_path_factory.mktemp("saliency_eval")
    with serve_app("streamlit_benchmark.log", {"SALIENCY_EVAL_DIR": str(root)}) as url:
        yield url, root


@contextlib.contextmanager
def browser_page(failure_png: str) -> Iterator[Any]:
    """A Chromium page with the tests' viewport and timeouts; a full-page screenshot on failure."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=BROWSER_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page
        except Exception:
            page.screenshot(path=str(ARTIFACTS / failure_png), full_page=True)
            raise
        finally:
            browser.close()


def test_run_on_scenes_leaderboard_and_a_row_opened_in_explore(bench_server: tuple[str, Path]) -> None:
    from playwright.sync_api import expect

    url, root = bench_server
    with browser_page("benchmark_failure.png") as page:
        page.goto(url)
        wait_idle(page)
        sidebar = page.get_by_test_id("stSidebar")
        main = page.get_by_test_id("stMain")
        sidebar.get_by_role("link", name="Benchmark").click()
        expect(main.get_by_role("heading", name="Benchmark")).to_be_visible()
        wait_idle(page)
        main.get_by_role("tab", name="Run on generated scenes").click()
        scenes = main.get_by_role("spinbutton", name="Scenes")
        scenes.fill("6")
        scenes.press("Enter")
        wait_idle(page)
        main.get_by_role("button", name="Run", exact=True).click()
        expect(main.get_by_role("heading", name="Leaderboard")).to_be_visible()
        wait_idle(page)
        assert list(root.glob("scenes-shapes_demo*/per_image.parquet"))
        expect(main.get_by_text("Random map (baseline)").first).to_be_attached()
        chart = main.get_by_test_id("stPlotlyChart").first
        expect(chart).to_be_visible()
        page.mouse.move(5, 5)  # no tooltip in the picture
        main.get_by_role("heading", name="Leaderboard").scroll_into_view_if_needed()
        main.get_by_role("heading", name="Leaderboard").evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(800)  # plotly's first draw
        shot = page.screenshot()
        assert variance(shot) > 5
        save_small(shot, "benchmark.png")
        # Select the first per-image row by its row marker (the grid is a canvas: click by position).
        grid = main.get_by_test_id("stDataFrame").nth(1)
        grid.scroll_into_view_if_needed()
        box = grid.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)
        expect(main.get_by_role("heading", name="Explore")).to_be_visible()
        wait_idle(page)
        expect(sidebar.get_by_text("scene 1800000")).to_be_visible()


def test_cancel_stops_a_run_and_keeps_its_maps(bench_server: tuple[str, Path]) -> None:
    from playwright.sync_api import expect

    url, root = bench_server
    with browser_page("benchmark_cancel_failure.png") as page:
        page.goto(f"{url}/Benchmark")
        wait_idle(page)
        main = page.get_by_test_id("stMain")
        main.get_by_role("tab", name="Run on generated scenes").click()
        scenes = main.get_by_role("spinbutton", name="Scenes")
        scenes.fill("50")
        scenes.press("Enter")
        wait_idle(page)
        main.get_by_role("button", name="Run", exact=True).click()
        # The first test's 6 scenes (same settings) are resumed at once; wait for new ones.
        page.wait_for_function(
            "() => Number((/(\\d+) of 50 scenes/.exec(document.querySelector('[data-testid=stProgress]')"
            "?.innerText || '') || [0, 0])[1]) >= 8"
        )
        main.get_by_role("button", name="Cancel").click()
        expect(main.get_by_text("Cancelled. The finished maps are kept")).to_be_visible()
        assert not list(root.glob("scenes-*-50x*"))  # no tables: the run did not finish
        done = {p.parent for p in root.glob("_scene_parts/parts/*/*/*.json")}
        assert len(done) >= 8  # its finished maps are kept (a rerun resumes from them)
        expect(main.get_by_role("button", name="Run", exact=True)).to_be_visible()
