"""End to end in a real browser: `streamlit run app.py`, driven by Playwright on Debian's Chromium.

Picks a sample, runs two methods (and cancels a slow one), downloads the PNG, opens Compare and checks that
the heatmaps render, computes faithfulness curves on Evaluate; saves small screenshots (docs/screenshots/
holds the three the README shows; refresh them with SALIENCY_UPDATE_SCREENSHOTS=1).
Without Chromium the browser tests skip with a message; .ci/run installs it and requires them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import ARTIFACTS, BROWSER_ARGS, chromium, save_small, variance, wait_idle

import saliency_core as sc
from ui.sidebar import sample_label

pytestmark = pytest.mark.e2e

VIEWPORT = {"width": 1000, "height": 1150}
TIMEOUT_MS = 90_000


def test_explore_two_methods_cancel_export_and_compare(server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    expect.set_options(timeout=TIMEOUT_MS)
    scenes = [s for s in sc.list_samples() if s.kind == "synthetic"]
    assert len(scenes) >= 2, "the bundled synthetic scenes are missing"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=BROWSER_ARGS,
        )
        page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
        page.set_default_timeout(TIMEOUT_MS)
        try:
            # A share link opens the view of a slow method (RISE with 4000 masks), which waits for Run.
            link = f"{server}/?sample={scenes[0].id}&model=shapes_demo&method=rise&p.masks=4000"
            demo = next(m for m in sc.list_models() if m.id == "shapes_demo")
            if not demo.weights_available:  # weights not bundled in this checkout: explicit random init
                link += "&weights=random"
            page.goto(link)
            sidebar = page.get_by_test_id("stSidebar")
            main = page.get_by_test_id("stMain")
            expect(sidebar.get_by_text("Target")).to_be_visible()
            wait_idle(page)
            expect(main.get_by_text("Press Run to compute RISE")).to_be_visible()

            # Run shows progress; Cancel stops it and says so, and the app stays usable
            main.get_by_role("button", name="Run").click()
            expect(main.get_by_test_id("stProgress")).to_be_visible()
            main.get_by_role("button", name="Cancel").click()
            expect(main.get_by_text("Cancelled.")).to_be_visible()
            wait_idle(page)
            expect(main.get_by_test_id("stProgress")).to_have_count(0)

            # pick a sample from the gallery
            sidebar.get_by_role("button", name=sample_label(scenes[1]), exact=True).click()
            wait_idle(page)
            expect(sidebar.locator("strong", has_text=scenes[1].title)).to_be_visible()

            # method 1: the plain gradient, which runs by itself (cheap)
            main.get_by_role("radio", name="Gradient-based").click()
            wait_idle(page)
            # drawn in grayscale, as its paper draws it
            expect(main.get_by_text("Gradient (saliency) in grayscale")).to_be_visible()
            # method 2: Grad-CAM
            main.get_by_role("radio", name="Class activation maps").click()
            wait_idle(page)
            expect(main.get_by_text("Grad-CAM overlay")).to_be_visible()
            overlay = main.get_by_test_id("stImage").nth(1)
            assert variance(overlay.screenshot()) > 5, "the overlay is blank"
            expect(main.locator(".js-plotly-plot")).to_have_count(1)
            main.evaluate("element => element.scrollTo(0, 0)")
            save_small(page.screenshot(), "explore.png")

            # export the view as PNG
            with page.expect_download() as download:
                main.get_by_role("button", name="PNG of the view").click()
            assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            # Compare starts from the two maps computed on Explore
            sidebar.get_by_role("link", name="Compare").click()
            expect(main.get_by_role("heading", name="Compare")).to_be_visible()
            wait_idle(page)
            chips = main.get_by_test_id("stMultiSelect").inner_text()
            assert "Grad-CAM" in chips and "Gradient (saliency)" in chips, chips
            expect(main.get_by_text("Spearman rank correlation")).to_be_visible()
            tiles = main.get_by_test_id("stImage")
            assert tiles.count() >= 4  # two grid tiles, then maps A and B of the difference view
            for i in range(2):
                assert variance(tiles.nth(i).screenshot()) > 5, f"grid tile {i} is blank"
            expect(main.locator(".js-plotly-plot")).to_have_count(3)
            main.evaluate("element => element.scrollTo(0, 0)")
            save_small(page.screenshot(), "compare.png")
        finally:
            page.screenshot(path=str(ARTIFACTS / "last.png"))
            browser.close()


def test_evaluate_faithfulness_curves(server: str) -> None:
    """Evaluate computes deletion and insertion curves with a progress bar and draws them (small: 20 steps)."""
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    expect.set_options(timeout=TIMEOUT_MS)
    scene = next(s for s in sc.list_samples() if s.kind == "synthetic")
    link = f"{server}/?sample={scene.id}&model=shapes_demo&method=gradcam"
    if not next(m for m in sc.list_models() if m.id == "shapes_demo").weights_available:
        link += "&weights=random"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=BROWSER_ARGS,
        )
        page = browser.new_page(viewport={"width": 1000, "height": 1250})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(link)
            wait_idle(page)
            sidebar, main = page.get_by_test_id("stSidebar"), page.get_by_test_id("stMain")
            sidebar.get_by_role("link", name="Evaluate").click()
            expect(main.get_by_role("heading", name="Evaluate")).to_be_visible()
            wait_idle(page)
            expect(main.get_by_role("tab", name="Faithfulness")).to_have_attribute("aria-selected", "true")
            main.get_by_role("button", name="Compute 6 curves").click()
            wait_idle(page)
            expect(main.locator(".js-plotly-plot")).to_have_count(2)
            expect(main.get_by_text("random order (AUC").first).to_be_visible()
            page.mouse.move(5, 5)  # no plotly toolbar over the chart titles
            main.evaluate("element => element.scrollTo(0, 0)")
            save_small(page.screenshot(), "evaluate.png")
        finally:
            page.screenshot(path=str(ARTIFACTS / "last_evaluate.png"))
            browser.close()
